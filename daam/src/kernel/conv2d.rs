//! 2-D convolution (any kernel, stride and zero padding; no dilation, one group) as im2col +
//! one large matrix multiply per image, forward and backward.
//!
//! burn 0.21's Flex convolution tiles each image into many small multiplies and runs its
//! backward through generic transposed convolutions; on the DAT head and VQ-VAE shapes that is
//! 3–4× slower than PyTorch (BENCHMARKS.md). Here, per image `b` with `cols_b = im2col(x_b)`
//! (`[K = in·kh·kw, N = out_h·out_w]`):
//!
//! - forward: `out_b = W · cols_b + bias` (`W`: `[out, K]`);
//! - backward: `∂W += ∂out_b · cols_bᵀ`, `∂bias += Σ_N ∂out_b`, `∂x_b = col2im(Wᵀ · ∂out_b)`.
//!
//! Images run in parallel (rayon), each multiply single-threaded; a batch of one multiplies
//! on every thread instead. Stride-1 convolutions with many input and few output channels go
//! to [`super::conv2d_shifted`] instead, which needs no im2col matrix.
//!
//! A ReLU can follow: the forward writes `max(y, 0)` and the backward takes the forward's
//! output to zero `∂out` where it is not positive (`relu_output`), which saves burn's separate
//! ReLU op and its backward over the (for the DAT head 32 × 512 × 32 × 32) hidden map.

use rayon::prelude::*;

use super::conv2d_shifted;

/// Sizes of a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dDims {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Input `[height, width]`.
    pub input: [usize; 2],
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[height, width]`.
    pub stride: [usize; 2],
    /// Zero padding `[height, width]`, the same on both sides.
    pub padding: [usize; 2],
}

impl Conv2dDims {
    /// Output `[height, width]`.
    ///
    /// # Panics
    /// If the padded input is smaller than the kernel or a stride is zero.
    pub fn output(&self) -> [usize; 2] {
        let out = |i: usize| {
            let padded = self.input[i] + 2 * self.padding[i];
            assert!(
                self.stride[i] > 0 && padded >= self.kernel[i],
                "conv2d: padded input {padded} is smaller than the kernel {} (or stride 0)",
                self.kernel[i]
            );
            (padded - self.kernel[i]) / self.stride[i] + 1
        };
        [out(0), out(1)]
    }

    /// Rows of an image's im2col matrix: `in_channels · kernel_h · kernel_w`.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    fn positions(&self) -> usize {
        let [h, w] = self.output();
        h * w
    }
}

/// `dst = (accumulate ? dst : 0) + lhs · rhs`, with `[rows, cols]` strides per matrix
/// (`(row_stride, col_stride)`), through the `gemm` crate burn's Flex backend uses.
///
/// # Panics
/// If a matrix's largest index falls outside its slice.
#[allow(unsafe_code, clippy::too_many_arguments)]
pub fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    dst_strides: (usize, usize),
    lhs: &[f32],
    lhs_strides: (usize, usize),
    rhs: &[f32],
    rhs_strides: (usize, usize),
    accumulate: bool,
    parallel: bool,
) {
    let fits = |len: usize, rows: usize, cols: usize, (rs, cs): (usize, usize)| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    assert!(
        fits(dst.len(), m, n, dst_strides),
        "matmul: dst out of bounds"
    );
    assert!(
        fits(lhs.len(), m, k, lhs_strides),
        "matmul: lhs out of bounds"
    );
    assert!(
        fits(rhs.len(), k, n, rhs_strides),
        "matmul: rhs out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_strides.0 + j * dst_strides.1] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every element gemm reads or writes inside its slice
    // (non-negative strides, rows·row_stride + cols·col_stride < len); `dst` is borrowed
    // mutably and cannot alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.1 as isize,
            dst_strides.0 as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.1 as isize,
            lhs_strides.0 as isize,
            rhs.as_ptr(),
            rhs_strides.1 as isize,
            rhs_strides.0 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Output columns `ox` whose input column `ox·stride + k − pad` lies inside `0..len`.
pub(crate) fn valid_range(
    out_len: usize,
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> std::ops::Range<usize> {
    // ox·s + k ≥ pad  and  ox·s + k − pad ≤ len − 1
    let lo = pad.saturating_sub(k).div_ceil(stride);
    let hi = if len + pad > k {
        (len + pad - k - 1) / stride + 1
    } else {
        0
    };
    lo.min(out_len)..hi.min(out_len).max(lo.min(out_len))
}

/// Writes image `x_b` (`[in_channels, height, width]`) as its im2col matrix `[K, N]`.
fn im2col(x: &[f32], d: &Conv2dDims, cols: &mut [f32]) {
    let [h, w] = d.input;
    let [oh, ow] = d.output();
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let [ph, pw] = d.padding;
    for c in 0..d.in_channels {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            let rows = valid_range(oh, h, ky, sh, ph);
            for kx in 0..kw {
                let cols_x = valid_range(ow, w, kx, sw, pw);
                let row = ((c * kh + ky) * kw + kx) * oh * ow;
                let out = &mut cols[row..row + oh * ow];
                for oy in 0..oh {
                    let dst = &mut out[oy * ow..(oy + 1) * ow];
                    if !rows.contains(&oy) || cols_x.is_empty() {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[(oy * sh + ky - ph) * w..][..w];
                    dst[..cols_x.start].fill(0.0);
                    dst[cols_x.end..].fill(0.0);
                    let first = cols_x.start * sw + kx - pw;
                    if sw == 1 {
                        dst[cols_x.clone()].copy_from_slice(&src[first..first + cols_x.len()]);
                    } else {
                        for (v, &s) in dst[cols_x.clone()]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(sw))
                        {
                            *v = s;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the im2col-shaped `cols` (`[K, N]`) back onto image `dx` (`[in, height, width]`).
fn col2im(cols: &[f32], d: &Conv2dDims, dx: &mut [f32]) {
    let [h, w] = d.input;
    let [oh, ow] = d.output();
    let [kh, kw] = d.kernel;
    let [sh, sw] = d.stride;
    let [ph, pw] = d.padding;
    for c in 0..d.in_channels {
        let plane = &mut dx[c * h * w..(c + 1) * h * w];
        for ky in 0..kh {
            let rows = valid_range(oh, h, ky, sh, ph);
            for kx in 0..kw {
                let cols_x = valid_range(ow, w, kx, sw, pw);
                if cols_x.is_empty() {
                    continue;
                }
                let row = ((c * kh + ky) * kw + kx) * oh * ow;
                let src_rows = &cols[row..row + oh * ow];
                let first = cols_x.start * sw + kx - pw;
                for oy in rows.clone() {
                    let dst = &mut plane[(oy * sh + ky - ph) * w..][..w];
                    let src = &src_rows[oy * ow..(oy + 1) * ow][cols_x.clone()];
                    if sw == 1 {
                        for (t, &v) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *t += v;
                        }
                    } else {
                        for (t, &v) in dst[first..].iter_mut().step_by(sw).zip(src) {
                            *t += v;
                        }
                    }
                }
            }
        }
    }
}

/// The least number of images one rayon task takes (`with_min_len`): about one piece per thread.
///
/// rayon calls a `fold`'s identity (and `for_each_init`'s init) once per piece it splits the
/// work into, and when threads steal work it splits a batch of 16 into as many as 16: each
/// piece then allocates and zero-fills its own im2col buffers (`K × N` floats, 4.7 MB for a 3×3
/// conv of 32 channels at 64²; 5.6 % of a `small` VQ-VAE training step was that `memset`).
/// rayon halves the work only while a half keeps at least this many images, so the floor
/// divides by the thread count rounded up to a power of two: every thread can still get a piece
/// (3 threads: 4 pieces), and an odd batch is still split (2 threads, 15 images: 7 + 8). A
/// 2-thread pool makes the buffers twice per call and sums the partial weight gradients in the
/// same grouping on every run.
pub(crate) fn images_per_task(batch: usize) -> usize {
    (batch / rayon::current_num_threads().next_power_of_two()).max(1)
}

/// Sums two workers' partial `(∂W, ∂bias)`.
fn add_partials(
    (mut weight, mut bias): (Vec<f32>, Vec<f32>),
    (other_weight, other_bias): (Vec<f32>, Vec<f32>),
) -> (Vec<f32>, Vec<f32>) {
    weight
        .iter_mut()
        .zip(&other_weight)
        .for_each(|(a, b)| *a += b);
    bias.iter_mut().zip(&other_bias).for_each(|(a, b)| *a += b);
    (weight, bias)
}

/// Adds `bias[o]` to output plane `o` and applies the ReLU if asked.
pub(crate) fn epilogue(out: &mut [f32], plane: usize, bias: Option<&[f32]>, relu: bool) {
    for (o, row) in out.chunks_exact_mut(plane).enumerate() {
        let b = bias.map_or(0.0, |bias| bias[o]);
        if relu {
            row.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
        } else if b != 0.0 {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// `dst = grad` where the ReLU's `output` is positive, else 0 (the ReLU's backward).
pub(crate) fn relu_masked(grad: &[f32], output: &[f32], dst: &mut [f32]) {
    for ((d, &g), &o) in dst.iter_mut().zip(grad).zip(output) {
        *d = if o > 0.0 { g } else { 0.0 };
    }
}

/// `grad` with the ReLU's backward applied when `relu_output` is given, for the whole batch.
pub(crate) fn masked_gradient<'a>(
    grad: &'a [f32],
    relu_output: Option<&[f32]>,
) -> std::borrow::Cow<'a, [f32]> {
    match relu_output {
        None => std::borrow::Cow::Borrowed(grad),
        Some(output) => {
            assert_eq!(output.len(), grad.len(), "conv2d: ReLU output length");
            let mut masked = vec![0.0; grad.len()];
            const CHUNK: usize = 1 << 16;
            masked
                .par_chunks_mut(CHUNK)
                .zip(grad.par_chunks(CHUNK).zip(output.par_chunks(CHUNK)))
                .for_each(|(dst, (g, o))| relu_masked(g, o, dst));
            std::borrow::Cow::Owned(masked)
        }
    }
}

fn check(d: &Conv2dDims, x: usize, weight: usize) {
    assert_eq!(
        x,
        d.batch * d.in_channels * d.input[0] * d.input[1],
        "conv2d: input of {d:?}"
    );
    assert_eq!(
        weight,
        d.out_channels * d.patch_len(),
        "conv2d: weight of {d:?}"
    );
}

/// `out_b = W · im2col(x_b)` for one image; `out` is `[out_channels, N]`.
fn forward_image(
    x: &[f32],
    weight: &[f32],
    d: &Conv2dDims,
    cols: &mut [f32],
    out: &mut [f32],
    parallel: bool,
) {
    let (k, n, co) = (d.patch_len(), d.positions(), d.out_channels);
    im2col(x, d, cols);
    if co < 64 {
        // Few output channels: multiply as outᵀ = colsᵀ · Wᵀ, the shape gemm prefers.
        matmul(
            [n, co, k],
            out,
            (1, n),
            cols,
            (1, n),
            weight,
            (1, k),
            false,
            parallel,
        );
    } else {
        matmul(
            [co, n, k],
            out,
            (n, 1),
            weight,
            (k, 1),
            cols,
            (n, 1),
            false,
            parallel,
        );
    }
}

/// Convolution forward: `x` `[batch, in, h, w]`, `weight` `[out, in, kh, kw]`, optional
/// `bias` `[out]`, then a ReLU if `relu`; writes `out` `[batch, out, out_h, out_w]`.
///
/// # Panics
/// If a slice length does not fit `d`.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: &Conv2dDims,
    out: &mut [f32],
) {
    check(d, x.len(), weight.len());
    if conv2d_shifted::preferred(d) {
        return conv2d_shifted::forward(x, weight, bias, relu, d, out);
    }
    let (k, n, co) = (d.patch_len(), d.positions(), d.out_channels);
    assert_eq!(out.len(), d.batch * co * n, "conv2d: output of {d:?}");
    let image = d.in_channels * d.input[0] * d.input[1];
    if d.batch == 1 {
        let mut cols = vec![0.0; k * n];
        forward_image(x, weight, d, &mut cols, out, true);
        epilogue(out, n, bias, relu);
        return;
    }
    out.par_chunks_mut(co * n)
        .zip(x.par_chunks(image))
        .with_min_len(images_per_task(d.batch))
        .for_each_init(
            || vec![0.0; k * n],
            |cols, (out_b, x_b)| {
                forward_image(x_b, weight, d, cols, out_b, false);
                epilogue(out_b, n, bias, relu);
            },
        );
}

/// Gradients of a convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2dGradients {
    /// `∂L/∂x`, `[batch, in, h, w]`.
    pub x: Vec<f32>,
    /// `∂L/∂weight`, `[out, in, kh, kw]`.
    pub weight: Vec<f32>,
    /// `∂L/∂bias`, `[out]`.
    pub bias: Vec<f32>,
}

/// Convolution backward for `grad_out` `[batch, out, out_h, out_w]`; `relu_output` is the
/// forward's output when a ReLU followed (its gradient is zero where the output is not
/// positive).
///
/// # Panics
/// If a slice length does not fit `d`.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    relu_output: Option<&[f32]>,
    d: &Conv2dDims,
) -> Conv2dGradients {
    check(d, x.len(), weight.len());
    if conv2d_shifted::preferred(d) {
        return conv2d_shifted::backward(x, weight, grad_out, relu_output, d);
    }
    let (k, n, co) = (d.patch_len(), d.positions(), d.out_channels);
    assert_eq!(
        grad_out.len(),
        d.batch * co * n,
        "conv2d: grad_out of {d:?}"
    );
    let image = d.in_channels * d.input[0] * d.input[1];
    let mut grad_x = vec![0.0; x.len()];
    let parallel = d.batch == 1;
    if let Some(output) = relu_output {
        assert_eq!(output.len(), grad_out.len(), "conv2d: ReLU output of {d:?}");
    }
    // Per worker: im2col buffer, ∂cols buffer, ∂W and ∂bias partial sums, masked ∂out.
    let (grad_w, grad_b) = grad_x
        .par_chunks_mut(image)
        .zip(x.par_chunks(image))
        .zip(grad_out.par_chunks(co * n).enumerate())
        .with_min_len(images_per_task(d.batch))
        .fold(
            || {
                (
                    vec![0.0; k * n],
                    vec![0.0; k * n],
                    vec![0.0; co * k],
                    vec![0.0; co],
                    vec![0.0; if relu_output.is_some() { co * n } else { 0 }],
                )
            },
            |(mut cols, mut dcols, mut gw, mut gb, mut masked), ((dx_b, x_b), (b, go_b))| {
                let go_b = match relu_output {
                    Some(output) => {
                        relu_masked(go_b, &output[b * co * n..][..co * n], &mut masked);
                        &masked[..]
                    }
                    None => go_b,
                };
                im2col(x_b, d, &mut cols);
                // ∂W [co, K] += ∂out_b [co, N] · cols_bᵀ [N, K]
                matmul(
                    [co, k, n],
                    &mut gw,
                    (k, 1),
                    go_b,
                    (n, 1),
                    &cols,
                    (1, n),
                    true,
                    parallel,
                );
                for (g, row) in gb.iter_mut().zip(go_b.chunks_exact(n)) {
                    *g += row.iter().sum::<f32>();
                }
                // ∂cols [K, N] = Wᵀ [K, co] · ∂out_b [co, N]
                matmul(
                    [k, n, co],
                    &mut dcols,
                    (n, 1),
                    weight,
                    (1, k),
                    go_b,
                    (n, 1),
                    false,
                    parallel,
                );
                col2im(&dcols, d, dx_b);
                (cols, dcols, gw, gb, masked)
            },
        )
        .map(|(_, _, gw, gb, _)| (gw, gb))
        .reduce(|| (vec![0.0; co * k], vec![0.0; co]), add_partials);
    Conv2dGradients {
        x: grad_x,
        weight: grad_w,
        bias: grad_b,
    }
}

/// Transposed convolution forward, as the input gradient of the convolution `d` describes:
/// `x` `[batch, d.out_channels, out_h, out_w]` (`d.output()`), `weight`
/// `[d.out_channels, d.in_channels, kh, kw]` (burn's transposed-conv layout), `bias`
/// `[d.in_channels]`, then a ReLU if `relu`; writes `out` `[batch, d.in_channels, d.input]`.
///
/// # Panics
/// If a slice length does not fit `d`.
pub fn transpose_forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: &Conv2dDims,
    out: &mut [f32],
) {
    let (k, n, co) = (d.patch_len(), d.positions(), d.out_channels);
    let image = d.in_channels * d.input[0] * d.input[1];
    assert_eq!(
        x.len(),
        d.batch * co * n,
        "conv_transpose2d: input of {d:?}"
    );
    assert_eq!(weight.len(), co * k, "conv_transpose2d: weight of {d:?}");
    assert_eq!(
        out.len(),
        d.batch * image,
        "conv_transpose2d: output of {d:?}"
    );
    let parallel = d.batch == 1;
    out.par_chunks_mut(image)
        .zip(x.par_chunks(co * n))
        .with_min_len(images_per_task(d.batch))
        .for_each_init(
            || vec![0.0; k * n],
            |dcols, (out_b, x_b)| {
                // cols [K, N] = Wᵀ [K, co] · x_b [co, N], then scattered back onto the image.
                matmul(
                    [k, n, co],
                    dcols,
                    (n, 1),
                    weight,
                    (1, k),
                    x_b,
                    (n, 1),
                    false,
                    parallel,
                );
                out_b.fill(0.0);
                col2im(dcols, d, out_b);
                epilogue(out_b, d.input[0] * d.input[1], bias, relu);
            },
        );
}

/// Transposed convolution backward for `grad_out` `[batch, d.in_channels, d.input]`; the
/// gradients are of `x` `[batch, d.out_channels, out_h, out_w]`, `weight` and `bias`
/// `[d.in_channels]`. `relu_output` as in [`backward`].
///
/// # Panics
/// If a slice length does not fit `d`.
pub fn transpose_backward(
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    relu_output: Option<&[f32]>,
    d: &Conv2dDims,
) -> Conv2dGradients {
    let (k, n, co, ci) = (d.patch_len(), d.positions(), d.out_channels, d.in_channels);
    let image = ci * d.input[0] * d.input[1];
    let plane = d.input[0] * d.input[1];
    assert_eq!(
        x.len(),
        d.batch * co * n,
        "conv_transpose2d: input of {d:?}"
    );
    assert_eq!(
        grad_out.len(),
        d.batch * image,
        "conv_transpose2d: grad_out of {d:?}"
    );
    let grad_out = masked_gradient(grad_out, relu_output);
    let mut grad_x = vec![0.0; x.len()];
    let parallel = d.batch == 1;
    let (grad_w, grad_b) = grad_x
        .par_chunks_mut(co * n)
        .zip(x.par_chunks(co * n))
        .zip(grad_out.par_chunks(image))
        .with_min_len(images_per_task(d.batch))
        .fold(
            || (vec![0.0; k * n], vec![0.0; co * k], vec![0.0; ci]),
            |(mut cols, mut gw, mut gb), ((dx_b, x_b), go_b)| {
                im2col(go_b, d, &mut cols);
                // ∂x_b [co, N] = W [co, K] · im2col(∂out_b) [K, N]
                matmul(
                    [co, n, k],
                    dx_b,
                    (n, 1),
                    weight,
                    (k, 1),
                    &cols,
                    (n, 1),
                    false,
                    parallel,
                );
                // ∂W [co, K] += x_b [co, N] · im2col(∂out_b)ᵀ [N, K]
                matmul(
                    [co, k, n],
                    &mut gw,
                    (k, 1),
                    x_b,
                    (n, 1),
                    &cols,
                    (1, n),
                    true,
                    parallel,
                );
                for (g, p) in gb.iter_mut().zip(go_b.chunks_exact(plane)) {
                    *g += p.iter().sum::<f32>();
                }
                (cols, gw, gb)
            },
        )
        .map(|(_, gw, gb)| (gw, gb))
        .reduce(|| (vec![0.0; co * k], vec![0.0; ci]), add_partials);
    Conv2dGradients {
        x: grad_x,
        weight: grad_w,
        bias: grad_b,
    }
}

#[cfg(test)]
pub(super) mod tests {
    #[test]
    fn images_per_task_leaves_every_thread_a_piece() {
        // rayon's length rule: a piece is halved while `len / 2 >= min_len`.
        fn pieces(len: usize, min: usize) -> usize {
            if len / 2 >= min {
                pieces(len / 2, min) + pieces(len - len / 2, min)
            } else {
                1
            }
        }
        for threads in 1..=8 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for batch in [1, 2, 3, 7, 15, 16, 32] {
                let min = pool.install(|| images_per_task(batch));
                let n = pieces(batch, min);
                assert!(
                    n >= threads.min(batch) && n < 2 * threads.next_power_of_two(),
                    "{threads} threads, batch {batch}: min {min}, {n} pieces"
                );
            }
        }
    }

    use super::*;

    /// Direct definition: out[b, o, y, x] = bias[o] + Σ w[o, c, i, j] · x[b, c, y·s + i − p, x·s + j − p].
    pub(crate) fn naive(x: &[f32], w: &[f32], bias: &[f32], d: &Conv2dDims) -> Vec<f32> {
        let [h, wd] = d.input;
        let [oh, ow] = d.output();
        let [kh, kw] = d.kernel;
        let mut out = vec![0.0f64; d.batch * d.out_channels * oh * ow];
        for b in 0..d.batch {
            for o in 0..d.out_channels {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = f64::from(bias[o]);
                        for c in 0..d.in_channels {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * d.stride[0] + i) as isize - d.padding[0] as isize;
                                    let ix =
                                        (xx * d.stride[1] + j) as isize - d.padding[1] as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd
                                    {
                                        acc += f64::from(
                                            w[((o * d.in_channels + c) * kh + i) * kw + j],
                                        ) * f64::from(
                                            x[((b * d.in_channels + c) * h + iy as usize) * wd
                                                + ix as usize],
                                        );
                                    }
                                }
                            }
                        }
                        out[((b * d.out_channels + o) * oh + y) * ow + xx] = acc;
                    }
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    fn cases() -> Vec<Conv2dDims> {
        let d = |batch, in_channels, out_channels, input, kernel, stride, padding| Conv2dDims {
            batch,
            in_channels,
            out_channels,
            input,
            kernel,
            stride,
            padding,
        };
        vec![
            d(2, 3, 5, [7, 6], [3, 3], [1, 1], [1, 1]),
            d(3, 4, 70, [9, 8], [3, 3], [2, 2], [1, 1]),
            d(1, 2, 3, [5, 7], [1, 1], [1, 1], [0, 0]),
            d(2, 3, 4, [8, 8], [4, 4], [2, 2], [1, 1]),
            d(1, 5, 2, [6, 5], [3, 2], [1, 2], [0, 1]),
        ]
    }

    #[test]
    fn valid_ranges_match_a_scan() {
        for (out_len, len, k, stride, pad) in [
            (7, 7, 0, 1, 1),
            (7, 7, 2, 1, 1),
            (4, 8, 3, 2, 1),
            (3, 5, 0, 2, 0),
            (2, 3, 4, 1, 2),
            (5, 9, 1, 2, 2),
        ] {
            let scan: Vec<usize> = (0..out_len)
                .filter(|&o| {
                    let i = (o * stride + k) as isize - pad as isize;
                    i >= 0 && (i as usize) < len
                })
                .collect();
            let range: Vec<usize> = valid_range(out_len, len, k, stride, pad).collect();
            assert_eq!(range, scan, "{out_len} {len} {k} {stride} {pad}");
        }
    }

    #[test]
    fn forward_matches_the_definition() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 1);
            let w = values(d.out_channels * d.patch_len(), 2);
            let b = values(d.out_channels, 3);
            let [oh, ow] = d.output();
            let mut out = vec![0.0; d.batch * d.out_channels * oh * ow];
            forward(&x, &w, Some(&b), false, &d, &mut out);
            let expected = naive(&x, &w, &b, &d);
            for (i, (a, e)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "{d:?} at {i}: {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_of_the_definition() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 4);
            let w = values(d.out_channels * d.patch_len(), 5);
            let b = values(d.out_channels, 6);
            let [oh, ow] = d.output();
            let g = values(d.batch * d.out_channels * oh * ow, 7);
            let grads = backward(&x, &w, &g, None, &d);
            // L = Σ g ⊙ conv(x, w, b) is linear in each argument, so a unit step gives the
            // exact derivative; check a spread of coordinates.
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
                naive(x, w, b, &d)
                    .iter()
                    .zip(&g)
                    .map(|(o, g)| f64::from(*o) * f64::from(*g))
                    .sum()
            };
            let base = loss(&x, &w, &b);
            let step = |v: &[f32], i: usize| {
                let mut v = v.to_vec();
                v[i] += 1.0;
                v
            };
            for i in (0..x.len()).step_by(7) {
                let fd = loss(&step(&x, i), &w, &b) - base;
                assert!(
                    (f64::from(grads.x[i]) - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{d:?} dx[{i}]"
                );
            }
            for i in (0..w.len()).step_by(5) {
                let fd = loss(&x, &step(&w, i), &b) - base;
                assert!(
                    (f64::from(grads.weight[i]) - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{d:?} dw[{i}]"
                );
            }
            for i in 0..b.len() {
                let fd = loss(&x, &w, &step(&b, i)) - base;
                assert!(
                    (f64::from(grads.bias[i]) - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{d:?} db[{i}]"
                );
            }
        }
    }

    /// With a ReLU the forward is `max(conv, 0)` and the backward equals the plain backward of
    /// `∂out` zeroed where that output is not positive.
    #[test]
    fn relu_forward_and_backward_match_the_masked_convolution() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 11);
            let w = values(d.out_channels * d.patch_len(), 12);
            let b = values(d.out_channels, 13);
            let [oh, ow] = d.output();
            let g = values(d.batch * d.out_channels * oh * ow, 14);
            let (mut plain, mut fused) = (vec![0.0; g.len()], vec![0.0; g.len()]);
            forward(&x, &w, Some(&b), false, &d, &mut plain);
            forward(&x, &w, Some(&b), true, &d, &mut fused);
            assert!(
                plain.iter().any(|&v| v < 0.0),
                "{d:?}: no negative output to mask"
            );
            for (f, p) in fused.iter().zip(&plain) {
                assert_eq!(*f, p.max(0.0), "{d:?}");
            }
            let masked: Vec<f32> = g
                .iter()
                .zip(&plain)
                .map(|(&g, &p)| if p > 0.0 { g } else { 0.0 })
                .collect();
            assert_eq!(
                backward(&x, &w, &g, Some(&fused), &d),
                backward(&x, &w, &masked, None, &d),
                "{d:?}"
            );
        }
    }

    /// The transposed convolution's fused ReLU, the same way.
    #[test]
    fn transposed_relu_matches_the_masked_transposed_convolution() {
        for d in cases() {
            let [oh, ow] = d.output();
            let x = values(d.batch * d.out_channels * oh * ow, 15);
            let w = values(d.out_channels * d.patch_len(), 16);
            let b = values(d.in_channels, 17);
            let len = d.batch * d.in_channels * d.input[0] * d.input[1];
            let g = values(len, 18);
            let (mut plain, mut fused) = (vec![0.0; len], vec![0.0; len]);
            transpose_forward(&x, &w, Some(&b), false, &d, &mut plain);
            transpose_forward(&x, &w, Some(&b), true, &d, &mut fused);
            for (f, p) in fused.iter().zip(&plain) {
                assert_eq!(*f, p.max(0.0), "{d:?}");
            }
            let masked: Vec<f32> = g
                .iter()
                .zip(&plain)
                .map(|(&g, &p)| if p > 0.0 { g } else { 0.0 })
                .collect();
            assert_eq!(
                transpose_backward(&x, &w, &g, Some(&fused), &d),
                transpose_backward(&x, &w, &masked, None, &d),
                "{d:?}"
            );
        }
    }
}
