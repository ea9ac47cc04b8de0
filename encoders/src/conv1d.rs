//! The encoders' 1-D convolutions off the CPU kernels: burn's `conv1d`, or one batched matrix
//! product over the unfolded input.
//!
//! WavLM's feature encoder (seven strided convolutions over the waveform) and its grouped
//! positional convolution are its only convolutions. On Flex they run as the CPU kernels of
//! [`crate::kernels`]; elsewhere (CUDA) they took burn's `conv1d`, which burn-cubecl 0.21 built
//! without cubecl's `autotune` runs as a direct convolution — the kernel that took 86 % of a DAT
//! head's training step on an H200 (BENCHMARKS.md, GPU session 11). [`conv1d`] runs them as
//! matrix products there instead ([`conv1d_gemm`]), as `daam::conv_gemm` does for the 2-D
//! convolutions; `DAAM_CONV=gemm|backend` overrides the choice, as it does for those
//! ([`ComposedConv`]).

use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{s, Tensor};
use daam::conv_gemm::{pad_zeros, ComposedConv};

/// Whether [`conv1d`] takes matrix products on a backend without the CPU kernels: `DAAM_CONV`
/// when it names a route ([`ComposedConv::from_env_or`]: `gemm` and `implicit` take them, the
/// implicit-GEMM route being 2-D only and WavLM's convolutions strided or grouped; `backend`
/// does not), else yes in CUDA builds without cubecl's autotune (whose `conv1d` is a direct
/// convolution) and no otherwise. Read once.
pub fn gemm_route() -> bool {
    static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        let default = if cfg!(all(
            any(feature = "cuda", feature = "wgpu"),
            not(feature = "autotune")
        )) {
            ComposedConv::Gemm
        } else {
            ComposedConv::Backend
        };
        ComposedConv::from_env_or(default) != ComposedConv::Backend
    })
}

/// `conv1d(x, weight, bias, options)`: [`conv1d_gemm`] where [`gemm_route`] says so and the
/// options have no dilation, burn's `conv1d` otherwise.
///
/// # Shapes
/// As [`conv1d_gemm`].
pub fn conv1d<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<1>,
) -> Tensor<B, 3> {
    if gemm_route() && options.dilation == [1] {
        conv1d_gemm(
            x,
            weight,
            bias,
            options.stride[0],
            options.padding[0],
            options.groups,
        )
    } else {
        module::conv1d(x, weight, bias, options)
    }
}

/// `conv1d` (no dilation) as one batched matrix product per group over the unfolded input:
/// `weight [groups, out/groups, in/groups · kernel] · cols [batch, groups, in/groups · kernel,
/// out_len]`. Composed from tensor ops, so it differentiates under `Autodiff`.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, length]`
/// - `weight`: `[out_channels, in_channels / groups, kernel_size]`
/// - `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, (length + 2·padding − kernel_size) / stride + 1]`
///
/// # Panics
/// If the channels do not divide into the groups or disagree with the weight, the stride is
/// zero, or the kernel is longer than the padded input.
pub fn conv1d_gemm<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Option<Tensor<B, 1>>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Tensor<B, 3> {
    let [batch_size, in_channels, length] = x.dims();
    let [out_channels, group_in, kernel_size] = weight.dims();
    assert!(
        groups > 0 && in_channels % groups == 0 && out_channels % groups == 0,
        "conv1d_gemm: {in_channels} → {out_channels} channels do not split into {groups} groups"
    );
    assert_eq!(
        group_in * groups,
        in_channels,
        "conv1d_gemm: input has {in_channels} channels, the weight expects {group_in} per group \
         × {groups}"
    );
    assert!(stride > 0, "conv1d_gemm: zero stride");
    let padded = length + 2 * padding;
    assert!(
        kernel_size <= padded,
        "conv1d_gemm: kernel {kernel_size} longer than the padded input {padded}"
    );
    let out_len = (padded - kernel_size) / stride + 1;
    let x = pad_zeros(x, [(0, 0), (padding, padding)]);
    // One strided window of the padded input per kernel tap: cols[b, c, k, t] = x[b, c, t·s + k].
    let span = (out_len - 1) * stride + 1;
    let cols = if kernel_size == 1 && stride == 1 {
        x.slice(s![.., .., 0..span]).unsqueeze_dim::<4>(2)
    } else {
        Tensor::stack::<4>(
            (0..kernel_size)
                .map(|k| x.clone().slice(s![.., .., k..k + span;stride as isize]))
                .collect(),
            2,
        )
    };
    let group_out = out_channels / groups;
    let cols = cols.reshape([batch_size, groups, group_in * kernel_size, out_len]);
    let output = weight
        .reshape([1, groups, group_out, group_in * kernel_size])
        .matmul(cols)
        .reshape([batch_size, out_channels, out_len]);
    match bias {
        Some(bias) => output + bias.reshape([1, out_channels, 1]),
        None => output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, Tolerance};

    type A = Autodiff<Flex>;

    fn random(dims: [usize; 3]) -> Tensor<A, 3> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), &Default::default()).require_grad()
    }

    /// Output and the gradients of x, weight and bias against burn's `conv1d`.
    fn check(
        [batch, in_channels, length]: [usize; 3],
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    ) {
        let x = random([batch, in_channels, length]);
        let weight = random([out_channels, in_channels / groups, kernel]);
        let bias = Tensor::<A, 1>::random([out_channels], Distribution::Default, &x.device())
            .require_grad();
        let ours = conv1d_gemm(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            stride,
            padding,
            groups,
        );
        let reference = module::conv1d(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            ConvOptions::new([stride], [padding], [1], groups),
        );
        let what = format!(
            "[{batch}, {in_channels}, {length}] → {out_channels}, k {kernel}, s {stride}, \
             p {padding}, g {groups}"
        );
        assert_eq!(ours.dims(), reference.dims(), "{what}: shape");
        let tolerance = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
        ours.clone()
            .into_data()
            .assert_approx_eq::<f32>(&reference.clone().into_data(), tolerance);
        // A loss weighing every output element differently.
        let probe = Tensor::<A, 3>::random(ours.dims(), Distribution::Default, &x.device());
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe).sum().backward();
        x.grad(&g_ours)
            .expect("∂x")
            .into_data()
            .assert_approx_eq::<f32>(&x.grad(&g_ref).expect("∂x").into_data(), tolerance);
        weight
            .grad(&g_ours)
            .expect("∂w")
            .into_data()
            .assert_approx_eq::<f32>(&weight.grad(&g_ref).expect("∂w").into_data(), tolerance);
        bias.grad(&g_ours)
            .expect("∂b")
            .into_data()
            .assert_approx_eq::<f32>(&bias.grad(&g_ref).expect("∂b").into_data(), tolerance);
    }

    #[test]
    fn matches_burns_conv1d_and_its_gradients() {
        check([2, 1, 50], 6, 10, 5, 0, 1); // WavLM's first layer: waveform, kernel 10, stride 5
        check([2, 6, 19], 6, 3, 2, 0, 1); // the strided layers
        check([1, 6, 9], 4, 2, 2, 0, 1); // kernel = stride (the last two layers)
        check([2, 8, 7], 8, 4, 1, 2, 4); // positional: grouped, even kernel, padding K/2
        check([1, 6, 5], 6, 3, 1, 1, 3); // grouped, odd kernel
        check([2, 3, 8], 5, 1, 1, 0, 1); // 1 × 1
        check([1, 2, 10], 3, 3, 3, 1, 1); // a last sample no window reaches
    }
}
