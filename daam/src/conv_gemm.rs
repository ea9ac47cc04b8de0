//! Convolutions as matrix products of ordinary tensor ops (im2col), for backends without a
//! fused convolution kernel of ours.
//!
//! burn-cubecl 0.21 built without cubecl's `autotune` runs every convolution, and both halves of
//! its backward, as a direct convolution: on an H200 those kernels took 86 % of a DAT head's
//! training step and left the `paper` VQ-VAE at 0.019× PyTorch (BENCHMARKS.md, GPU session 11),
//! while the same build's matrix products were fast. These functions express a convolution
//! through slicing, stacking, padding and one batched matrix product, so no direct-convolution
//! kernel runs, forward or backward. Their gradients are written out too
//! ([`conv2d_gemm_backward`], [`conv_transpose2d_gemm_backward`]): under `Autodiff` a
//! convolution on this route is one graph node that keeps its input and weight, as burn's own
//! convolution does, and rebuilds the unfolded input (`kh · kw` times the input for a stride-1
//! convolution) in the backward pass; autodiff over the forward's ops would keep it from the
//! forward to the backward pass, every convolution's at once.
//!
//! A stride-1 convolution or transposed convolution, forward and backward, is computed either
//! over the unfolded input (`in · kh·kw` rows, written once and read once) or by the fold of
//! `out · kh·kw` rows of contributions (written, gathered and summed: four passes), whichever
//! moves fewer bytes (`folds`).
//! Padding keeps the input's dtype, so bf16 tensors of an f32 backend (mixed precision) stay
//! bf16.
//!
//! [`ComposedConv`] chooses between them and the backend's own `conv2d` in the composed
//! [`DaamBackend::fused_conv2d`](crate::DaamBackend::fused_conv2d) default.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use burn::tensor::backend::Backend;
use burn::tensor::{s, Int, Tensor, TensorData};

use crate::reduce::sum_last;

/// How a backend without a fused convolution computes the composed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposedConv {
    /// The backend's own `conv2d` / `conv_transpose2d` (burn's module ops).
    Backend,
    /// Matrix products of tensor ops: [`conv2d_gemm`] and [`conv_transpose2d_gemm`].
    Gemm,
    /// Stride-1 convolutions (forward, data and weight gradients) by the backend's
    /// implicit-GEMM kernel, which never writes the unfolded input
    /// ([`DaamBackend::implicit_conv2d`](crate::DaamBackend::implicit_conv2d): burn-cubecl's
    /// tensor-core convolution on CUDA and wgpu); everything else, and backends without such a
    /// kernel, as [`Self::Gemm`].
    Implicit,
}

impl ComposedConv {
    /// The environment variable that overrides a backend's choice: `gemm`, `backend` or
    /// `implicit`.
    pub const ENV: &'static str = "DAAM_CONV";
    const CHOICES: [(&'static str, Self); 3] = [
        ("gemm", Self::Gemm),
        ("backend", Self::Backend),
        ("implicit", Self::Implicit),
    ];

    /// `DAAM_CONV` if it names a choice, else `default` (with a warning on stderr when it is
    /// set to anything else).
    pub fn from_env_or(default: Self) -> Self {
        crate::env_choice::from_env(Self::ENV, &Self::CHOICES, default)
    }

    /// The choice a `DAAM_CONV` value names (`gemm`, `backend` or `implicit`, any case); `None` for
    /// anything else or nothing.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        crate::env_choice::parse(value, &Self::CHOICES)
    }
}

/// `conv2d(x, weight) + bias` (one group, no dilation) as one batched matrix product over the
/// unfolded input: `weight [out, in·kh·kw] · cols [batch, in·kh·kw, out_h·out_w]`.
///
/// A stride-1 convolution with fewer than half as many output as input channels (`folds`)
/// runs as the equivalent transposed convolution of the mirrored weight
/// ([`conv_transpose2d_gemm`]'s fold), whose intermediate holds `out · kh·kw` rows instead of
/// `in · kh·kw`: for the DAT head's `512 → 24` convolution 21 times less.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels, kernel_h, kernel_w]`
/// - `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, out_h, out_w]`, `out_h = (height + 2·padding_h −
///   kernel_h) / stride_h + 1`
///
/// # Panics
/// If the channel counts disagree, a stride is zero or the kernel is larger than the padded
/// input.
pub fn conv2d_gemm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    let [batch_size, in_channels, height, width] = x.dims();
    let [out_channels, weight_in, kernel_h, kernel_w] = weight.dims();
    assert_eq!(
        in_channels, weight_in,
        "conv2d_gemm: input has {in_channels} channels, the weight expects {weight_in}"
    );
    assert!(stride[0] > 0 && stride[1] > 0, "conv2d_gemm: zero stride");
    let [padded_h, padded_w] = [height + 2 * padding[0], width + 2 * padding[1]];
    assert!(
        kernel_h <= padded_h && kernel_w <= padded_w,
        "conv2d_gemm: kernel {kernel_h}×{kernel_w} larger than the padded input \
         {padded_h}×{padded_w}"
    );
    if stride == [1, 1] && folds(in_channels, out_channels, false) {
        if let Some(mirrored) = mirrored_padding([kernel_h, kernel_w], padding) {
            // Few outputs: fold `out · kh·kw` rows rather than unfold `in · kh·kw`.
            return conv_transpose2d_folded(x, mirror(weight), bias, stride, mirrored, [0, 0]);
        }
    }
    let out = conv_out([height, width], [kernel_h, kernel_w], stride, padding);
    let taps = kernel_h * kernel_w;
    let cols = unfold(x, [kernel_h, kernel_w], stride, padding, out);
    let output = weight
        .reshape([1, out_channels, in_channels * taps])
        .matmul(cols);
    let output = match bias {
        Some(bias) => output + bias.reshape([1, out_channels, 1]),
        None => output,
    };
    output.reshape([batch_size, out_channels, out[0], out[1]])
}

/// A convolution's output size per axis: `(size + 2·padding − kernel) / stride + 1` (the
/// kernel must fit the padded input).
fn conv_out(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> [usize; 2] {
    std::array::from_fn(|a| (size[a] + 2 * padding[a] - kernel[a]) / stride[a] + 1)
}

/// A transposed convolution's output per axis before the padding crops it: `(size − 1)·stride
/// + kernel + padding_out`.
pub(crate) fn transposed_full(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding_out: [usize; 2],
) -> [usize; 2] {
    std::array::from_fn(|a| (size[a] - 1) * stride[a] + kernel[a] + padding_out[a])
}

/// The unfolded (im2col) input: row `c · kh·kw + i · kw + j` holds, for each of the `out`
/// window positions, `x_padded[c, y·stride_h + i, x·stride_w + j]`.
///
/// # Shapes
/// - `x`: `[batch_size, channels, height, width]`
/// - output: `[batch_size, channels · kernel_h · kernel_w, out_h · out_w]`
///
/// `out` may be fewer positions than fit (the transposed convolution's weight gradient);
/// the last window must lie inside the padded input.
fn unfold<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    out: [usize; 2],
) -> Tensor<B, 3> {
    let [batch_size, channels, _, _] = x.dims();
    let taps = kernel[0] * kernel[1];
    let x = pad_zeros(x, [(padding[0], padding[0]), (padding[1], padding[1])]);
    let [_, _, padded_h, padded_w] = x.dims();
    if taps == 1 && stride == [1, 1] && out == [padded_h, padded_w] {
        return x.reshape([batch_size, channels, out[0] * out[1]]);
    }
    match Unfold::from_env() {
        Unfold::Gather => unfold_gather(x, kernel, stride, out),
        Unfold::Slices => unfold_slices(x, kernel, stride, out),
    }
}

/// How [`unfold`] builds its columns and the transposed convolution's fold its output.
/// `DAAM_UNFOLD=gather|slices` chooses; `gather` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unfold {
    /// One `select` each: the unfold along the padded input's flattened positions (its index
    /// built on the device), the fold along the contributions' (index built on the host, the
    /// slots no tap fills multiplied by zero, then one sum over the taps): the columns and the
    /// contributions are read once.
    Gather,
    /// One strided slice per kernel tap, stacked, for the unfold: on burn's cubecl backends
    /// each tap is a copy (a window's offset is rarely aligned enough to be a view) and then a
    /// slice-assign into the stack, so the columns are written twice. For the fold, a slice, a
    /// padding and a sum per tap, then the phases interleaved (sessions 11–17's route).
    Slices,
}

impl Unfold {
    const ENV: &'static str = "DAAM_UNFOLD";

    fn from_env() -> Self {
        static CHOICE: std::sync::OnceLock<Unfold> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let choices = [("gather", Self::Gather), ("slices", Self::Slices)];
            crate::env_choice::from_env(Self::ENV, &choices, Self::Gather)
        })
    }
}

/// [`unfold`] of an already padded input by one `select`: position `(tap, y, x)` of a channel's
/// columns reads flat position `(y·stride_h + i)·width + x·stride_w + j` of its padded plane.
fn unfold_gather<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    out: [usize; 2],
) -> Tensor<B, 3> {
    let [batch_size, channels, height, width] = x.dims();
    let taps = kernel[0] * kernel[1];
    let device = x.device();
    let offsets: Vec<i64> = (0..kernel[0])
        .flat_map(|i| (0..kernel[1]).map(move |j| (i * width + j) as i64))
        .collect();
    let offsets = Tensor::<B, 1, Int>::from_data(TensorData::new(offsets, [taps]), &device)
        .reshape([taps, 1, 1]);
    let range = |count: usize, step: usize| 0..(count * step) as i64;
    let rows = Tensor::<B, 1, Int>::arange_step(range(out[0], stride[0]), stride[0], &device)
        .mul_scalar(width as i64)
        .reshape([1, out[0], 1]);
    let columns = Tensor::<B, 1, Int>::arange_step(range(out[1], stride[1]), stride[1], &device)
        .reshape([1, 1, out[1]]);
    let index = (offsets + rows + columns).reshape([taps * out[0] * out[1]]);
    x.reshape([batch_size, channels, height * width])
        .select(2, index)
        .reshape([batch_size, channels * taps, out[0] * out[1]])
}

/// [`unfold`] of an already padded input by strided slices, one per kernel tap, stacked.
fn unfold_slices<B: Backend>(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    out: [usize; 2],
) -> Tensor<B, 3> {
    let [batch_size, channels, _, _] = x.dims();
    let taps = kernel[0] * kernel[1];
    // One strided window of the padded input per kernel tap, in the weight's (i, j) order.
    let windows = (0..kernel[0])
        .flat_map(|i| (0..kernel[1]).map(move |j| (i, j)))
        .map(|(i, j)| {
            let rows = i..i + (out[0] - 1) * stride[0] + 1;
            let columns = j..j + (out[1] - 1) * stride[1] + 1;
            x.clone()
                .slice(s![.., .., rows;stride[0] as isize, columns;stride[1] as isize])
        })
        .collect();
    // [batch, channels, taps, out_h, out_w]: row `c · taps + tap`.
    Tensor::stack::<5>(windows, 2).reshape([batch_size, channels * taps, out[0] * out[1]])
}

/// Whether a stride-1 convolution (`transposed` false) or transposed convolution from
/// `in_channels` to `out_channels` is computed by the fold of `out · kh·kw` rows of
/// contributions rather than over the `in · kh·kw` rows of the unfolded input, as
/// [`FoldRule::from_env`] says (by default [`FoldRule::Half`]: the one that moves fewer bytes).
/// The unfold writes its columns once and the matrix product reads them once; the fold's
/// contributions are written by the product, gathered (read and written) and summed over the
/// taps (read): four passes against two, so the fold pays only with fewer than half as many
/// rows. On an H100 (BENCHMARKS.md, GPU session 20, autotune
/// build) the data gradient of the decoder's 128 → 128 convolutions at 256² took 23.6 ms by
/// the fold (product 9.9, gather 10.2, sum 3.6) and the same convolution's forward 16 ms over
/// its unfolded input (padding 0.8, gather 6.2, product 9.1); without autotune 28.0 against
/// 20.7 ms.
fn folds(in_channels: usize, out_channels: usize, transposed: bool) -> bool {
    FoldRule::from_env().folds(in_channels, out_channels, transposed)
}

/// When a stride-1 convolution takes the fold (`folds`). `DAAM_FOLD=half|fewer` chooses;
/// `half` is the default, `fewer` keeps sessions 11–19's rule for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoldRule {
    /// The fold only with fewer than half as many output as input channels (its four passes
    /// against the unfold's two), either kind of convolution.
    Half,
    /// The fold with fewer output than input channels for a convolution, with at most as many
    /// for a transposed one, so that every `c → c` data gradient folded.
    Fewer,
}

impl FoldRule {
    const ENV: &'static str = "DAAM_FOLD";
    const CHOICES: [(&'static str, Self); 2] = [("half", Self::Half), ("fewer", Self::Fewer)];

    fn from_env() -> Self {
        static CHOICE: std::sync::OnceLock<FoldRule> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| crate::env_choice::from_env(Self::ENV, &Self::CHOICES, Self::Half))
    }

    fn folds(self, in_channels: usize, out_channels: usize, transposed: bool) -> bool {
        match self {
            Self::Half => 2 * out_channels < in_channels,
            Self::Fewer if transposed => out_channels <= in_channels,
            Self::Fewer => out_channels < in_channels,
        }
    }
}

/// The padding of the mirrored convolution a transposed convolution `[in, out]` channels runs
/// as ([`conv_transpose2d_gemm`]), or `None` where it runs as the fold: one answer for its
/// forward and its backward ([`conv_transpose2d_gemm_backward`]).
fn transposed_as_conv(
    [in_channels, out_channels]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
) -> Option<[usize; 2]> {
    let eligible = stride == [1, 1] && padding_out == [0, 0];
    if eligible && !folds(in_channels, out_channels, true) {
        mirrored_padding(kernel, padding)
    } else {
        None
    }
}

/// For a stride-1 convolution, the padding of the same function computed the other way round:
/// `conv2d(x, w, p) = conv_transpose2d(x, mirror(w), k − 1 − p)` and back. `None` where a
/// padding reaches the kernel's size (that padding would be negative), and for 1×1 kernels.
fn mirrored_padding(kernel: [usize; 2], padding: [usize; 2]) -> Option<[usize; 2]> {
    // A 1×1 kernel unfolds for free (a reshape); its fold would copy.
    (kernel != [1, 1] && padding[0] < kernel[0] && padding[1] < kernel[1])
        .then(|| [kernel[0] - 1 - padding[0], kernel[1] - 1 - padding[1]])
}

/// The weight of the other direction ([`mirrored_padding`]): taps reversed, the two channel
/// axes swapped (`[out, in, kh, kw]` ↔ `[in, out, kh, kw]`).
fn mirror<B: Backend>(weight: Tensor<B, 4>) -> Tensor<B, 4> {
    weight.flip([2, 3]).swap_dims(0, 1)
}

/// Zero padding of the last two dimensions, `[(top, bottom), (left, right)]`, in `x`'s dtype.
/// burn 0.21's `pad` fills a tensor of the device's default float dtype and assigns `x` into it,
/// which fails for a bf16 tensor of an f32 backend (mixed precision: on Flex "storage: dtype
/// mismatch (expected BF16, got F32)").
///
/// # Shapes
/// - `x`: `[..., height, width]`
/// - output: `[..., top + height + bottom, left + width + right]`
pub fn pad_zeros<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    [(top, bottom), (left, right)]: [(usize, usize); 2],
) -> Tensor<B, D> {
    if top + bottom + left + right == 0 {
        return x;
    }
    let mut dims = x.dims();
    dims[D - 2] += top + bottom;
    dims[D - 1] += left + right;
    let ranges: [Range<usize>; D] = std::array::from_fn(|i| match i {
        _ if i == D - 2 => top..dims[i] - bottom,
        _ if i == D - 1 => left..dims[i] - right,
        _ => 0..dims[i],
    });
    Tensor::zeros(dims, (&x.device(), x.dtype())).slice_assign(ranges, x)
}

/// `conv_transpose2d(x, weight) + bias` (one group, no dilation) as one batched matrix product
/// and a fold: every input pixel's `weight[in, :, i, j]` contributions, `[batch, out·kh·kw,
/// height·width]`, are shifted into place per output phase (`i mod stride`) with padding, the
/// phases interleaved, and the border cropped.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[in_channels, out_channels, kernel_h, kernel_w]`
/// - `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, out_h, out_w]`, `out_h = (height − 1)·stride_h −
///   2·padding_h + kernel_h + padding_out_h`
///
/// A stride-1 one without output padding runs as the equivalent convolution of the mirrored
/// weight ([`conv2d_gemm`]'s unfold of `in · kh·kw` rows rather than this fold's `out · kh·kw`)
/// unless it has fewer than half as many output as input channels (`folds`).
///
/// # Panics
/// If the channel counts disagree, a stride is zero or the padding crops more than the
/// output holds.
pub fn conv_transpose2d_gemm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
) -> Tensor<B, 4> {
    let [_, in_channels, height, width] = x.dims();
    let [weight_in, out_channels, kernel_h, kernel_w] = weight.dims();
    assert_eq!(
        in_channels, weight_in,
        "conv_transpose2d_gemm: input has {in_channels} channels, the weight expects {weight_in}"
    );
    assert!(
        stride[0] > 0 && stride[1] > 0,
        "conv_transpose2d_gemm: zero stride"
    );
    let full = transposed_full([height, width], [kernel_h, kernel_w], stride, padding_out);
    assert!(
        full[0] > 2 * padding[0] && full[1] > 2 * padding[1],
        "conv_transpose2d_gemm: padding {padding:?} crops the whole output"
    );
    if let Some(mirrored) = transposed_as_conv(
        [in_channels, out_channels],
        [kernel_h, kernel_w],
        stride,
        padding,
        padding_out,
    ) {
        return conv2d_gemm(x, mirror(weight), bias, stride, mirrored);
    }
    conv_transpose2d_folded(x, weight, bias, stride, padding, padding_out)
}

/// [`conv_transpose2d_gemm`] by its matrix product and fold, whatever the channel counts (the
/// callers have checked the arguments).
fn conv_transpose2d_folded<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
) -> Tensor<B, 4> {
    let [batch_size, in_channels, height, width] = x.dims();
    let [_, out_channels, kernel_h, kernel_w] = weight.dims();
    let full = transposed_full([height, width], [kernel_h, kernel_w], stride, padding_out);
    let out_h = full[0] - 2 * padding[0];
    let out_w = full[1] - 2 * padding[1];
    let (device, dtype) = (x.device(), x.dtype());

    // contributions[b, o, i, j, y, x] = Σ_c weight[c, o, i, j] · x[b, c, y, x]
    let contributions = weight
        .reshape([in_channels, out_channels * kernel_h * kernel_w])
        .transpose()
        .unsqueeze::<3>()
        .matmul(x.reshape([batch_size, in_channels, height * width]))
        .reshape([batch_size, out_channels, kernel_h, kernel_w, height, width]);
    let output = match Unfold::from_env() {
        Unfold::Gather => fold_gather(contributions, stride, padding, [out_h, out_w], &device),
        Unfold::Slices => fold_slices(
            contributions,
            stride,
            padding,
            full,
            [out_h, out_w],
            (&device, dtype),
        ),
    };
    match bias {
        Some(bias) => output + bias.reshape([1, out_channels, 1, 1]),
        None => output,
    }
}

/// The fold of [`conv_transpose2d_folded`] by one `select` and one sum: output position
/// `(oy, ox)` (in the cropped output) sums, over the taps that reach it, the contribution
/// `[i, j, y, x]` with `oy + padding_h = y·stride_h + i` (and likewise for columns). Each
/// position has at most `⌈kh / stride_h⌉ · ⌈kw / stride_w⌉` such taps; the index (built on
/// the host, with its mask, once per geometry) points the missing ones at position 0 and the
/// mask zeroes them.
///
/// # Shapes
/// - `contributions`: `[batch_size, out_channels, kernel_h, kernel_w, height, width]`
/// - output: `[batch_size, out_channels, out_h, out_w]`
fn fold_gather<B: Backend>(
    contributions: Tensor<B, 6>,
    stride: [usize; 2],
    padding: [usize; 2],
    out: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 4> {
    let [batch_size, out_channels, kernel_h, kernel_w, height, width] = contributions.dims();
    let len = kernel_h * kernel_w * height * width;
    let FoldIndex { index, keep, taps } =
        cached_fold_index([kernel_h, kernel_w], stride, padding, [height, width], out);
    let entries = taps * out[0] * out[1];
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index.to_vec(), [entries]), device);
    // The slots that miss read position 0 and are multiplied by zero. (A contribution that is
    // infinite or NaN stays NaN times zero; its fold is not finite either way.)
    let keep = Tensor::<B, 1>::from_data(TensorData::new(keep.to_vec(), [entries]), device)
        .cast(contributions.dtype());
    (contributions
        .reshape([batch_size, out_channels, len])
        .select(2, index)
        * keep.reshape([1, 1, entries]))
    .reshape([batch_size, out_channels, taps, out[0] * out[1]])
    .sum_dim(2)
    .reshape([batch_size, out_channels, out[0], out[1]])
}

/// [`fold_gather`]'s index and mask for one geometry.
#[derive(Clone)]
struct FoldIndex {
    /// [`fold_index`] with the slots no tap fills pointed at position 0.
    index: Arc<[i64]>,
    /// 1 for a filled slot, 0 for the others.
    keep: Arc<[f32]>,
    /// Slots per output position.
    taps: usize,
}

/// [`fold_index`] and its mask, built once per geometry: a model's few transposed convolutions
/// fold in every training step, and the index has `⌈kh / stride_h⌉ · ⌈kw / stride_w⌉` entries
/// per output position (262,144 for the VQ-VAE's last up-sampling at 256²).
fn cached_fold_index(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    size: [usize; 2],
    out: [usize; 2],
) -> FoldIndex {
    type Geometry = [[usize; 2]; 5];
    static INDICES: LazyLock<Mutex<HashMap<Geometry, FoldIndex>>> = LazyLock::new(Default::default);
    let mut indices = INDICES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    indices
        .entry([kernel, stride, padding, size, out])
        .or_insert_with(|| {
            let (index, taps) = fold_index(kernel, stride, padding, size, out);
            let missing = (kernel[0] * kernel[1] * size[0] * size[1]) as i64;
            FoldIndex {
                keep: index
                    .iter()
                    .map(|&i| if i == missing { 0.0 } else { 1.0 })
                    .collect(),
                index: index
                    .iter()
                    .map(|&i| if i == missing { 0 } else { i })
                    .collect(),
                taps,
            }
        })
        .clone()
}

/// [`fold_gather`]'s index, tap-major: entry `t · out_h·out_w + oy · out_w + ox` is the flat
/// position `((i · kw + j) · height + y) · width + x` of the contribution that the `t`-th tap
/// slot `(q_h, q_w)` brings to output position `(oy, ox)`, or `kh · kw · height · width` (one
/// past the last) when that slot's tap lies outside the kernel or its input position outside
/// the input. Returns the index and the number of slots per position.
fn fold_index(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    size: [usize; 2],
    out: [usize; 2],
) -> (Vec<i64>, usize) {
    let steps = [kernel[0].div_ceil(stride[0]), kernel[1].div_ceil(stride[1])];
    let taps = steps[0] * steps[1];
    let positions = out[0] * out[1];
    let zero = (kernel[0] * kernel[1] * size[0] * size[1]) as i64;
    let mut index = vec![zero; taps * positions];
    // Along one axis: the (tap, input position) that slot `q` brings to full-output row `full`.
    let source = |axis: usize, full: usize, q: usize| {
        let (phase_row, phase) = (full / stride[axis], full % stride[axis]);
        let tap = q * stride[axis] + phase;
        (tap < kernel[axis] && q <= phase_row && phase_row - q < size[axis])
            .then(|| (tap, phase_row - q))
    };
    for oy in 0..out[0] {
        for ox in 0..out[1] {
            for q_h in 0..steps[0] {
                let Some((i, y)) = source(0, oy + padding[0], q_h) else {
                    continue;
                };
                for q_w in 0..steps[1] {
                    let Some((j, x)) = source(1, ox + padding[1], q_w) else {
                        continue;
                    };
                    let slot = (q_h * steps[1] + q_w) * positions + oy * out[1] + ox;
                    index[slot] = (((i * kernel[1] + j) * size[0] + y) * size[1] + x) as i64;
                }
            }
        }
    }
    (index, taps)
}

/// The fold of [`conv_transpose2d_folded`] by shifted sums: each output phase (`row mod
/// stride`) sums its taps, each padded into place, and the phases are interleaved and cropped.
///
/// # Shapes
/// - `contributions`: `[batch_size, out_channels, kernel_h, kernel_w, height, width]`
/// - output: `[batch_size, out_channels, out_h, out_w]`
fn fold_slices<B: Backend>(
    contributions: Tensor<B, 6>,
    stride: [usize; 2],
    padding: [usize; 2],
    full: [usize; 2],
    [out_h, out_w]: [usize; 2],
    (device, dtype): (&B::Device, burn::tensor::DType),
) -> Tensor<B, 4> {
    let [batch_size, out_channels, kernel_h, kernel_w, height, width] = contributions.dims();
    // Tap (i, j) lands on full-output row y·stride + i = (y + q)·stride + r for i = q·stride + r:
    // row y + q of phase r. Each phase is a sum of its taps shifted by q.
    let [steps_h, steps_w] = [kernel_h.div_ceil(stride[0]), kernel_w.div_ceil(stride[1])];
    let phase_dims = [
        batch_size,
        out_channels,
        height + steps_h - 1,
        width + steps_w - 1,
    ];
    let mut phases = Vec::with_capacity(stride[0] * stride[1]);
    for r_h in 0..stride[0] {
        for r_w in 0..stride[1] {
            let mut phase: Option<Tensor<B, 4>> = None;
            for q_h in 0..steps_h {
                for q_w in 0..steps_w {
                    let (i, j) = (q_h * stride[0] + r_h, q_w * stride[1] + r_w);
                    if i >= kernel_h || j >= kernel_w {
                        continue;
                    }
                    let tap = contributions
                        .clone()
                        .slice(s![.., .., i..i + 1, j..j + 1, .., ..])
                        .reshape([batch_size, out_channels, height, width]);
                    let tap = pad_zeros(tap, [(q_h, steps_h - 1 - q_h), (q_w, steps_w - 1 - q_w)]);
                    phase = Some(match phase {
                        Some(sum) => sum + tap,
                        None => tap,
                    });
                }
            }
            phases.push(phase.unwrap_or_else(|| Tensor::zeros(phase_dims, (device, dtype))));
        }
    }
    // Interleave: full[b, o, a·stride_h + r_h, c·stride_w + r_w] = phase (r_h, r_w)[b, o, a, c].
    let [_, _, phase_h, phase_w] = phase_dims;
    let interleaved = Tensor::stack::<5>(phases, 4)
        .reshape([
            batch_size,
            out_channels,
            phase_h,
            phase_w,
            stride[0],
            stride[1],
        ])
        .permute([0, 1, 2, 4, 3, 5])
        .reshape([
            batch_size,
            out_channels,
            phase_h * stride[0],
            phase_w * stride[1],
        ]);
    // The phases cover (height + steps − 1)·stride rows; the output padding can reach past them.
    let short_h = full[0].saturating_sub(phase_h * stride[0]);
    let short_w = full[1].saturating_sub(phase_w * stride[1]);
    let interleaved = pad_zeros(interleaved, [(0, short_h), (0, short_w)]);
    interleaved.slice(s![
        ..,
        ..,
        padding[0]..padding[0] + out_h,
        padding[1]..padding[1] + out_w
    ])
}

/// Gradients of [`conv2d_gemm`] or [`conv_transpose2d_gemm`] for `∂L/∂output`, with the input
/// and the weight's shapes.
#[derive(Debug, Clone)]
pub struct GemmGrads<B: Backend> {
    /// `∂L/∂x`.
    pub x: Tensor<B, 4>,
    /// `∂L/∂weight`.
    pub weight: Tensor<B, 4>,
    /// `∂L/∂bias`, `[out_channels]`.
    pub bias: Tensor<B, 1>,
}

/// The gradients of [`conv2d_gemm`], written out rather than recorded: `∂x` is the transposed
/// convolution of `grad_out` ([`conv_transpose2d_gemm`]), `∂weight` one batched matrix product
/// of `grad_out` with the unfolded input, recomputed here, so a caller that records one graph
/// node per convolution keeps only `x` and `weight` for the backward pass, not the unfolded
/// input (`kh · kw` times `x`) that autodiff over [`conv2d_gemm`] keeps. No autodiff runs.
///
/// # Shapes
/// - `x`, `weight`: as [`conv2d_gemm`]
/// - `grad_out`: `[batch_size, out_channels, out_h, out_w]`, the forward's output shape
///
/// # Panics
/// As [`conv2d_gemm`], or if `grad_out` is not the forward's output shape.
pub fn conv2d_gemm_backward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
    grad_out: Tensor<B, 4>,
) -> GemmGrads<B> {
    let [batch_size, _, height, width] = x.dims();
    let [out_channels, _, kernel_h, kernel_w] = weight.dims();
    let [grad_batch, grad_channels, out_h, out_w] = grad_out.dims();
    let [expected_h, expected_w] = conv_out([height, width], [kernel_h, kernel_w], stride, padding);
    let expected = [batch_size, out_channels, expected_h, expected_w];
    assert_eq!(
        [grad_batch, grad_channels, out_h, out_w],
        expected,
        "conv2d_gemm_backward: gradient shape"
    );
    let padding_out = data_grad_padding_out(
        [height, width],
        [kernel_h, kernel_w],
        stride,
        padding,
        [out_h, out_w],
    );
    let grad_x =
        conv_transpose2d_gemm(grad_out.clone(), weight, None, stride, padding, padding_out);
    let grad_weight =
        conv2d_gemm_weight_grad(x, grad_out.clone(), [kernel_h, kernel_w], stride, padding);
    GemmGrads {
        x: grad_x,
        weight: grad_weight,
        bias: bias_grad(grad_out),
    }
}

/// The output padding of the transposed convolution that is a convolution's data gradient: the
/// rows and columns of the input (`size`) the forward's `out` windows did not reach get no
/// gradient, and the padding restores them.
pub(crate) fn data_grad_padding_out(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    out: [usize; 2],
) -> [usize; 2] {
    std::array::from_fn(|a| size[a] + 2 * padding[a] - kernel[a] - (out[a] - 1) * stride[a])
}

/// A convolution's bias gradient: `grad_out` summed over the batch and the positions, the
/// positions first by [`sum_last`] (two passes over long axes on cubecl).
///
/// # Shapes
/// - `grad_out`: `[batch_size, out_channels, out_h, out_w]`
/// - output: `[out_channels]`
pub fn bias_grad<B: Backend>(grad_out: Tensor<B, 4>) -> Tensor<B, 1> {
    let [batch_size, out_channels, out_h, out_w] = grad_out.dims();
    sum_last(grad_out.reshape([batch_size, out_channels, out_h * out_w]))
        .sum_dim(0)
        .reshape([out_channels])
}

/// The weight gradient of [`conv2d_gemm`] alone, as [`conv2d_gemm_backward`] computes it.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `grad_out`: `[batch_size, out_channels, out_h, out_w]`, the forward's output shape
/// - output: `[out_channels, in_channels, kernel[0], kernel[1]]`
pub fn conv2d_gemm_weight_grad<B: Backend>(
    x: Tensor<B, 4>,
    grad_out: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    let [batch_size, in_channels, height, width] = x.dims();
    let [_, out_channels, out_h, out_w] = grad_out.dims();
    let [kernel_h, kernel_w] = kernel;
    let mirrored = mirrored_padding([kernel_h, kernel_w], padding);
    match mirrored {
        Some(mirrored) if stride == [1, 1] && out_channels < in_channels => {
            // ∂w[o, c, i, j] = Σ x[c, y, x] · g[o, y + p − i, x + p − j]: unfold the gradient's
            // `out · kh·kw` rows (taps reversed) over the input's positions instead of the
            // input's `in · kh·kw` rows over the output's.
            let cols = unfold(
                grad_out,
                [kernel_h, kernel_w],
                stride,
                mirrored,
                [height, width],
            );
            cols.matmul(
                x.reshape([batch_size, in_channels, height * width])
                    .swap_dims(1, 2),
            )
            .sum_dim(0)
            .reshape([out_channels, kernel_h, kernel_w, in_channels])
            .flip([1, 2])
            .permute([0, 3, 1, 2])
        }
        _ => {
            let cols = unfold(x, [kernel_h, kernel_w], stride, padding, [out_h, out_w]);
            grad_out
                .reshape([batch_size, out_channels, out_h * out_w])
                .matmul(cols.swap_dims(1, 2))
                .sum_dim(0)
                .reshape([out_channels, in_channels, kernel_h, kernel_w])
        }
    }
}

/// The gradients of [`conv_transpose2d_gemm`], written out rather than recorded: `∂x` is the
/// convolution of `grad_out` with the same weight ([`conv2d_gemm`]), `∂weight` one batched
/// matrix product of `x` with the unfolded `grad_out`. No autodiff runs.
///
/// # Shapes
/// - `x`, `weight`: as [`conv_transpose2d_gemm`]
/// - `grad_out`: `[batch_size, out_channels, out_h, out_w]`, the forward's output shape
///
/// # Panics
/// As [`conv_transpose2d_gemm`], or if `grad_out` is not the forward's output shape.
pub fn conv_transpose2d_gemm_backward<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
    grad_out: Tensor<B, 4>,
) -> GemmGrads<B> {
    let [batch_size, in_channels, height, width] = x.dims();
    let [_, out_channels, kernel_h, kernel_w] = weight.dims();
    let full = transposed_full([height, width], [kernel_h, kernel_w], stride, padding_out);
    let expected = [
        batch_size,
        out_channels,
        full[0].saturating_sub(2 * padding[0]),
        full[1].saturating_sub(2 * padding[1]),
    ];
    assert_eq!(
        grad_out.dims(),
        expected,
        "conv_transpose2d_gemm_backward: gradient shape"
    );
    if let Some(mirrored) = transposed_as_conv(
        [in_channels, out_channels],
        [kernel_h, kernel_w],
        stride,
        padding,
        padding_out,
    ) {
        // The forward ran as the mirrored convolution: its gradients, whose weight gradient
        // unfolds the input's `in · kh·kw` rows, not the gradient's `out · kh·kw`.
        let grads = conv2d_gemm_backward(x, mirror(weight), stride, mirrored, grad_out);
        return GemmGrads {
            weight: mirror(grads.weight),
            ..grads
        };
    }
    // An output padding of a stride or more adds output rows no input reaches: drop them.
    let grad_x = conv2d_gemm(grad_out.clone(), weight, None, stride, padding).slice(s![
        ..,
        ..,
        0..height,
        0..width
    ]);
    let cols = unfold(
        grad_out.clone(),
        [kernel_h, kernel_w],
        stride,
        padding,
        [height, width],
    );
    let grad_weight = x
        .reshape([batch_size, in_channels, height * width])
        .matmul(cols.swap_dims(1, 2))
        .sum_dim(0)
        .reshape([in_channels, out_channels, kernel_h, kernel_w]);
    let grad_bias = bias_grad(grad_out);
    GemmGrads {
        x: grad_x,
        weight: grad_weight,
        bias: grad_bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    fn random<const D: usize>(dims: [usize; D]) -> Tensor<B, D> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), &Default::default()).require_grad()
    }

    fn assert_close<const D: usize>(actual: Tensor<B, D>, expected: Tensor<B, D>, what: &str) {
        assert_eq!(actual.dims(), expected.dims(), "{what}: shapes");
        let actual = actual.into_data().to_vec::<f32>().expect("f32");
        let expected = expected.into_data().to_vec::<f32>().expect("f32");
        let worst = actual
            .iter()
            .zip(&expected)
            .map(|(a, e)| (a - e).abs() / (1.0 + e.abs()))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: off by {worst:e}");
    }

    /// Output and every gradient of `ours` against `reference`, for a loss that weighs each
    /// output element differently (a plain sum would hide a permuted output); and the
    /// gradients `explicit` writes out for that loss's `∂L/∂output` (the probe).
    fn assert_same_function(
        ours: Tensor<B, 4>,
        reference: Tensor<B, 4>,
        inputs: [&Tensor<B, 4>; 2],
        bias: &Tensor<B, 1>,
        explicit: impl FnOnce(Tensor<Flex, 4>) -> GemmGrads<Flex>,
        what: &str,
    ) {
        let probe = random::<4>(reference.dims()).detach();
        assert_close(ours.clone(), reference.clone(), what);
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe.clone()).sum().backward();
        let GemmGrads {
            x: written_x,
            weight: written_weight,
            bias: written_bias,
        } = explicit(probe.inner());
        let written = [written_x, written_weight];
        for ((name, t), written) in ["x", "weight"].into_iter().zip(inputs).zip(written) {
            let expected = || t.grad(&g_ref).map(Tensor::from_inner).expect("tracked");
            assert_close(
                t.grad(&g_ours).map(Tensor::from_inner).expect("tracked"),
                expected(),
                &format!("{what}: ∂{name}"),
            );
            assert_close(
                Tensor::from_inner(written),
                expected(),
                &format!("{what}: written-out ∂{name}"),
            );
        }
        let expected = || bias.grad(&g_ref).map(Tensor::from_inner).expect("tracked");
        assert_close(
            bias.grad(&g_ours).map(Tensor::from_inner).expect("tracked"),
            expected(),
            &format!("{what}: ∂bias"),
        );
        assert_close(
            Tensor::from_inner(written_bias),
            expected(),
            &format!("{what}: written-out ∂bias"),
        );
    }

    /// Output and every gradient against burn's own convolution.
    fn check_conv(
        dims: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) {
        let [_, in_channels, _, _] = dims;
        let (x, weight, bias) = (
            random(dims),
            random([out_channels, in_channels, kernel[0], kernel[1]]),
            random([out_channels]),
        );
        let ours = conv2d_gemm(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            stride,
            padding,
        );
        let reference = conv2d(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            ConvOptions::new(stride, padding, [1, 1], 1),
        );
        let what =
            format!("conv {dims:?} → {out_channels}, k {kernel:?}, s {stride:?}, p {padding:?}");
        let explicit = |probe| {
            conv2d_gemm_backward(
                x.clone().inner(),
                weight.clone().inner(),
                stride,
                padding,
                probe,
            )
        };
        assert_same_function(ours, reference, [&x, &weight], &bias, explicit, &what);
    }

    fn check_transpose(
        dims: [usize; 4],
        out_channels: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        padding_out: [usize; 2],
    ) {
        let [_, in_channels, _, _] = dims;
        let (x, weight, bias) = (
            random(dims),
            random([in_channels, out_channels, kernel[0], kernel[1]]),
            random([out_channels]),
        );
        let ours = conv_transpose2d_gemm(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            stride,
            padding,
            padding_out,
        );
        let reference = conv_transpose2d(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            ConvTransposeOptions::new(stride, padding, padding_out, [1, 1], 1),
        );
        let what = format!(
            "transposed {dims:?} → {out_channels}, k {kernel:?}, s {stride:?}, p {padding:?}, \
             out {padding_out:?}"
        );
        let explicit = |probe| {
            conv_transpose2d_gemm_backward(
                x.clone().inner(),
                weight.clone().inner(),
                stride,
                padding,
                padding_out,
                probe,
            )
        };
        assert_same_function(ours, reference, [&x, &weight], &bias, explicit, &what);
    }

    #[test]
    fn conv_matches_burn_and_its_gradients() {
        // The VQ-VAE's and the DAT head's convolutions, plus odd shapes.
        check_conv([2, 3, 8, 8], 5, [3, 3], [1, 1], [1, 1]); // stem, residual 3×3
        check_conv([2, 4, 8, 8], 6, [4, 4], [2, 2], [1, 1]); // strided down-sampling
        check_conv([2, 4, 6, 6], 3, [1, 1], [1, 1], [0, 0]); // 1×1 to the code dimension
        check_conv([1, 3, 7, 9], 2, [3, 2], [2, 3], [2, 1]); // non-square everything
        check_conv([3, 2, 5, 5], 4, [5, 5], [1, 1], [0, 0]); // kernel = input
        check_conv([1, 2, 8, 7], 3, [3, 3], [2, 2], [1, 1]); // last row unreached (∂x's padding)
        check_conv([2, 2, 5, 5], 20, [3, 1], [1, 1], [1, 0]); // more outputs than in · taps

        // Fewer than half as many outputs as inputs at stride 1: the mirrored fold forward, ∂x
        // by the unfolded gradient, ∂w by the gradient's unfold (the DAT head's 512 → 24).
        check_conv([2, 12, 6, 6], 3, [3, 3], [1, 1], [1, 1]);
        check_conv([1, 5, 7, 6], 2, [3, 2], [1, 1], [2, 1]); // non-square, padding k − 1
        check_conv([2, 6, 5, 5], 2, [3, 3], [1, 1], [0, 0]); // valid convolution
        check_conv([1, 4, 3, 3], 2, [2, 2], [1, 1], [2, 2]); // padding ≥ kernel: unfolded

        // As many outputs as inputs, or fewer but not half: unfolded forward, ∂x by the
        // mirrored unfold of the gradient (the residual blocks' c → c), ∂w by the gradient's
        // unfold where out < in.
        check_conv([2, 4, 6, 6], 4, [3, 3], [1, 1], [1, 1]);
        check_conv([1, 6, 5, 5], 4, [3, 3], [1, 1], [1, 1]);
        check_conv([1, 4, 5, 4], 2, [3, 3], [1, 1], [1, 1]); // out = in / 2: unfolded
    }

    #[test]
    fn transposed_conv_matches_burn_and_its_gradients() {
        check_transpose([2, 4, 4, 4], 3, [4, 4], [2, 2], [1, 1], [0, 0]); // VQ-VAE up-sampling
        check_transpose([2, 3, 5, 5], 2, [3, 3], [1, 1], [1, 1], [0, 0]);
        check_transpose([1, 2, 3, 4], 3, [3, 3], [2, 2], [1, 1], [1, 1]); // output padding
        check_transpose([1, 2, 3, 3], 2, [3, 2], [3, 2], [0, 1], [2, 1]); // kernel < stride (h), phases
        check_transpose([2, 2, 4, 3], 2, [1, 1], [2, 2], [0, 0], [1, 0]); // taps < phases
        check_transpose([2, 12, 3, 3], 2, [2, 2], [2, 2], [0, 0], [0, 0]); // in > out · taps

        // At stride 1 the mirrored unfold, unless fewer than half as many outputs as inputs.
        check_transpose([2, 2, 5, 4], 7, [3, 3], [1, 1], [1, 1], [0, 0]);
        check_transpose([1, 3, 4, 4], 5, [2, 3], [1, 1], [0, 2], [0, 0]);
        check_transpose([2, 4, 4, 4], 4, [3, 3], [1, 1], [1, 1], [0, 0]); // in = out
        check_transpose([1, 4, 4, 5], 2, [3, 3], [1, 1], [1, 1], [0, 0]); // in = 2 · out
        check_transpose([1, 5, 4, 4], 2, [3, 3], [1, 1], [1, 1], [0, 0]); // folded
    }

    /// bf16 tensors of an f32 backend (mixed precision, as `classify --precision bf16` casts
    /// them): every route keeps the dtype (burn's `pad` did not) and stays near the f32 result.
    #[test]
    fn bf16_tensors_of_an_f32_backend_stay_bf16() {
        use burn::tensor::DType;
        let device = Default::default();
        let normal = |dims: [usize; 4]| {
            Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device)
        };
        let bf16 = |t: &Tensor<Flex, 4>| t.clone().cast(DType::BF16);
        let close = |actual: Tensor<Flex, 4>, expected: Tensor<Flex, 4>, what: &str| {
            assert_eq!(actual.dtype(), DType::BF16, "{what}: dtype");
            let actual = actual.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
            let expected = expected.into_data().to_vec::<f32>().unwrap();
            let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let worst = actual
                .iter()
                .zip(&expected)
                .fold(0.0f32, |m, (a, e)| m.max((a - e).abs() / scale));
            assert!(
                worst < 2e-2,
                "{what}: off by {worst:e} of the largest value"
            );
        };
        // (x, out channels, kernel, stride, padding): the mirrored stride-1 route and a strided one.
        for (dims, out, kernel, stride, padding) in [
            ([2, 12, 6, 6], 3, 3, 1, 1),
            ([2, 3, 6, 6], 5, 3, 1, 1),
            ([2, 4, 8, 7], 6, 4, 2, 1),
        ] {
            let (x, w) = (normal(dims), normal([out, dims[1], kernel, kernel]));
            let what = format!("conv {dims:?} → {out}, k {kernel}, s {stride}, p {padding}");
            let y = conv2d_gemm(x.clone(), w.clone(), None, [stride; 2], [padding; 2]);
            let y16 = conv2d_gemm(bf16(&x), bf16(&w), None, [stride; 2], [padding; 2]);
            close(y16, y.clone(), &what);
            let g = normal(y.dims());
            let full =
                conv2d_gemm_backward(x.clone(), w.clone(), [stride; 2], [padding; 2], g.clone());
            let half =
                conv2d_gemm_backward(bf16(&x), bf16(&w), [stride; 2], [padding; 2], bf16(&g));
            close(half.x, full.x, &format!("{what}: ∂x"));
            close(half.weight, full.weight, &format!("{what}: ∂w"));
        }
        // The VQ-VAE's up-sampling, and output padding past the phases (a zero phase, a pad).
        for (dims, out, kernel, stride, padding, padding_out) in
            [([2, 4, 4, 4], 3, 4, 2, 1, 0), ([2, 2, 3, 3], 2, 1, 2, 0, 1)]
        {
            let (x, w) = (normal(dims), normal([dims[1], out, kernel, kernel]));
            let what = format!("transposed {dims:?} → {out}, k {kernel}, s {stride}");
            let args = ([stride; 2], [padding; 2], [padding_out; 2]);
            let y = conv_transpose2d_gemm(x.clone(), w.clone(), None, args.0, args.1, args.2);
            let y16 = conv_transpose2d_gemm(bf16(&x), bf16(&w), None, args.0, args.1, args.2);
            close(y16, y, &what);
        }
    }

    /// `DAAM_UNFOLD` picks one route per process, so the two are compared here directly: the
    /// same columns from the unfold and the same output from the fold, strides, output padding
    /// and kernels smaller than the stride included.
    #[test]
    fn gather_and_slices_routes_agree() {
        let device = Default::default();
        for (dims, kernel, stride, padding) in [
            ([2, 3, 7, 6], [3, 3], [1, 1], [1, 1]),
            ([1, 2, 9, 8], [4, 4], [2, 2], [1, 1]),
            ([1, 2, 5, 7], [3, 2], [2, 3], [2, 0]),
            ([2, 2, 6, 5], [2, 2], [2, 2], [0, 0]),
            ([1, 1, 3, 4], [1, 1], [1, 1], [2, 1]),
        ] {
            let x = pad_zeros(
                Tensor::<Flex, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device),
                [(padding[0], padding[0]), (padding[1], padding[1])],
            );
            let out = conv_out([dims[2], dims[3]], kernel, stride, padding);
            let what = format!("unfold {dims:?}, k {kernel:?}, s {stride:?}, p {padding:?}");
            let gather = unfold_gather(x.clone(), kernel, stride, out);
            let slices = unfold_slices(x, kernel, stride, out);
            assert_eq!(gather.to_data(), slices.to_data(), "{what}");
        }
        for (size, kernel, stride, padding, padding_out) in [
            ([4, 4], [4, 4], [2, 2], [1, 1], [0, 0]),
            ([3, 4], [3, 3], [2, 2], [1, 1], [1, 1]),
            ([3, 3], [3, 2], [3, 2], [0, 1], [2, 1]),
            ([4, 3], [1, 1], [2, 2], [0, 0], [1, 0]),
            ([5, 4], [3, 3], [1, 1], [1, 1], [0, 0]),
        ] {
            let contributions = Tensor::<Flex, 6>::random(
                [2, 3, kernel[0], kernel[1], size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let full = transposed_full(size, kernel, stride, padding_out);
            let out = [full[0] - 2 * padding[0], full[1] - 2 * padding[1]];
            let gather = fold_gather(contributions.clone(), stride, padding, out, &device);
            let slices = fold_slices(
                contributions,
                stride,
                padding,
                full,
                out,
                (&device, burn::tensor::DType::F32),
            );
            gather.into_data().assert_approx_eq::<f32>(
                &slices.into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );
        }
    }

    #[test]
    fn env_values_parse() {
        assert_eq!(ComposedConv::parse(Some("gemm")), Some(ComposedConv::Gemm));
        assert_eq!(
            ComposedConv::parse(Some(" Backend ")),
            Some(ComposedConv::Backend)
        );
        assert_eq!(
            ComposedConv::parse(Some("IMPLICIT")),
            Some(ComposedConv::Implicit)
        );
        assert_eq!(ComposedConv::parse(Some("direct")), None);
        assert_eq!(ComposedConv::parse(None), None);
        let fold = |value| crate::env_choice::parse(Some(value), &FoldRule::CHOICES);
        assert_eq!(fold(" Half"), Some(FoldRule::Half));
        assert_eq!(fold("fewer"), Some(FoldRule::Fewer));
        assert_eq!(fold("always"), None);
    }

    /// The two rules' routes: the default folds only below half, `fewer` as sessions 11–19 did
    /// (a `c → c` convolution unfolded, its transposed twin folded).
    #[test]
    fn fold_rules() {
        let cases = [
            // (in, out, transposed): (half, fewer)
            ((512, 24, false), (true, true)),
            ((128, 128, false), (false, false)),
            ((128, 128, true), (false, true)),
            ((512, 256, true), (false, true)),
            ((6, 4, false), (false, true)),
            ((4, 2, false), (false, true)),
            ((5, 2, true), (true, true)),
            ((2, 7, true), (false, false)),
        ];
        for ((c_in, c_out, transposed), expected) in cases {
            let got = (
                FoldRule::Half.folds(c_in, c_out, transposed),
                FoldRule::Fewer.folds(c_in, c_out, transposed),
            );
            assert_eq!(got, expected, "{c_in} → {c_out}, transposed {transposed}");
        }
    }
}
