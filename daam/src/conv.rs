//! Convolution through [`DaamBackend::fused_conv2d`]: the fused im2col + gemm kernel on Flex
//! ([`crate::kernel::conv2d`]), burn's own convolution elsewhere. Used by the DAT heads and the
//! VQ-VAE in place of `burn::nn::conv::Conv2d::forward`, optionally with the ReLU that follows
//! fused in.

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::Tensor;

use crate::backend::{float, ConvSettings, DaamBackend};

/// `conv2d(x, weight) + bias` with `stride` and symmetric zero `padding`.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, out_h, out_w]`
///
/// # Panics
/// If the channel counts of `x` and `weight` differ.
pub fn conv2d<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    fused(x, weight, bias, stride, padding, false)
}

/// `relu(conv2d(x, weight) + bias)`, the ReLU fused into the convolution.
///
/// # Shapes
/// As [`conv2d`].
///
/// # Panics
/// As [`conv2d`].
pub fn conv2d_relu<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    fused(x, weight, bias, stride, padding, true)
}

fn fused<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    stride: [usize; 2],
    padding: [usize; 2],
    relu: bool,
) -> Tensor<B, 4> {
    let [_, in_channels, _, _] = x.dims();
    let [out_channels, weight_in, _, _] = weight.dims();
    assert_eq!(
        in_channels, weight_in,
        "conv2d: input has {in_channels} channels, the weight expects {weight_in}"
    );
    assert_eq!(
        bias.dims(),
        [out_channels],
        "conv2d: bias of {out_channels} channels"
    );
    float(B::fused_conv2d(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
        ConvSettings {
            stride,
            padding,
            transposed: None,
            relu,
        },
    ))
}

/// Runs a burn `Conv2d` module through [`conv2d`] when it can (bias, no dilation, one group,
/// symmetric padding), else through its own `forward`.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - output: `[batch_size, out_channels, out_h, out_w]`
pub fn conv2d_module<B: DaamBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    module(conv, x, false)
}

/// `relu(conv.forward(x))`, through [`conv2d_relu`] when [`conv2d_module`] would use the fused
/// op.
///
/// # Shapes
/// As [`conv2d_module`].
pub fn conv2d_relu_module<B: DaamBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    module(conv, x, true)
}

fn module<B: DaamBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>, with_relu: bool) -> Tensor<B, 4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    match (&conv.bias, padding) {
        (Some(bias), Some(padding)) if conv.dilation == [1, 1] && conv.groups == 1 => fused(
            x,
            conv.weight.val(),
            bias.val(),
            conv.stride,
            padding,
            with_relu,
        ),
        _ if with_relu => relu(conv.forward(x)),
        _ => conv.forward(x),
    }
}

/// Runs a burn `ConvTranspose2d` module through [`DaamBackend::fused_conv2d`] when it can
/// (bias, no dilation, one group), else through its own `forward`.
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - output: `[batch_size, out_channels, (height − 1)·stride − 2·padding + kernel + padding_out, …]`
pub fn conv_transpose2d_module<B: DaamBackend>(
    conv: &ConvTranspose2d<B>,
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    match &conv.bias {
        Some(bias) if conv.dilation == [1, 1] && conv.groups == 1 => float(B::fused_conv2d(
            x.into_primitive().tensor(),
            conv.weight.val().into_primitive().tensor(),
            bias.val().into_primitive().tensor(),
            ConvSettings {
                stride: conv.stride,
                padding: conv.padding,
                transposed: Some(conv.padding_out),
                relu: false,
            },
        )),
        _ => conv.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::Distribution;

    type B = Autodiff<Flex>;

    /// The fused op, with and without its ReLU, and burn's own convolution (then `relu`)
    /// agree in output and every gradient; the 96 → 5 case takes the shifted kernel.
    #[test]
    fn fused_matches_burn_forward_and_gradients() {
        let device = Default::default();
        for ((channels, kernel, stride, padding, size), with_relu) in [
            ([3, 8], [3, 3], [1, 1], 1, [9, 7]),
            ([4, 70], [3, 3], [2, 2], 1, [10, 8]),
            ([6, 2], [1, 1], [1, 1], 0, [5, 5]),
            ([2, 5], [4, 4], [2, 2], 1, [8, 8]),
            ([96, 5], [3, 3], [1, 1], 1, [6, 5]),
        ]
        .into_iter()
        .flat_map(|case| [(case, false), (case, true)])
        {
            let conv = Conv2dConfig::new(channels, kernel)
                .with_stride(stride)
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .init::<B>(&device);
            let x = Tensor::<B, 4>::random(
                [3, channels[0], size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let g = Tensor::<B, 4>::random(
                conv.forward(x.clone()).dims(),
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let grads_of = |fused: bool| {
                let x = x.clone().detach().require_grad();
                let out = match (fused, with_relu) {
                    (true, false) => conv2d_module(&conv, x.clone()),
                    (true, true) => conv2d_relu_module(&conv, x.clone()),
                    (false, false) => conv.forward(x.clone()),
                    (false, true) => relu(conv.forward(x.clone())),
                };
                let grads = (out.clone() * g.clone()).sum().backward();
                let gx = x.grad(&grads).unwrap();
                let gw = conv.weight.grad(&grads).unwrap();
                let gb = conv.bias.as_ref().unwrap().grad(&grads).unwrap();
                (out.inner(), gx, gw, gb)
            };
            let (a, b) = (grads_of(true), grads_of(false));
            let close = |p: Vec<f32>, q: Vec<f32>, what: &str| {
                for (i, (u, v)) in p.iter().zip(&q).enumerate() {
                    assert!(
                        (u - v).abs() < 1e-4 * (1.0 + v.abs()),
                        "{what} [{i}] {u} vs {v} ({channels:?} {kernel:?} s{stride:?} relu \
                         {with_relu})"
                    );
                }
            };
            let vec4 = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
            close(vec4(a.0), vec4(b.0), "output");
            close(vec4(a.1), vec4(b.1), "grad x");
            close(vec4(a.2), vec4(b.2), "grad weight");
            close(
                a.3.into_data().to_vec().unwrap(),
                b.3.into_data().to_vec().unwrap(),
                "grad bias",
            );
        }
    }

    /// The fused transposed convolution and burn's agree in output and every gradient.
    #[test]
    fn fused_transpose_matches_burn_forward_and_gradients() {
        let device = Default::default();
        for (channels, kernel, stride, padding, padding_out, size) in [
            ([6, 3], [4, 4], [2, 2], [1, 1], [0, 0], [5, 4]),
            ([3, 70], [3, 3], [2, 2], [1, 1], [1, 1], [4, 6]),
            ([4, 5], [3, 3], [1, 1], [1, 1], [0, 0], [6, 5]),
        ] {
            let conv = ConvTranspose2dConfig::new(channels, kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_padding_out(padding_out)
                .init::<B>(&device);
            let x = Tensor::<B, 4>::random(
                [2, channels[0], size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let dims = conv.forward(x.clone()).dims();
            let g = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let run = |fused: bool| {
                let x = x.clone().detach().require_grad();
                let out = if fused {
                    conv_transpose2d_module(&conv, x.clone())
                } else {
                    conv.forward(x.clone())
                };
                let grads = (out.clone() * g.clone()).sum().backward();
                let flat4 = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
                vec![
                    flat4(out.inner()),
                    flat4(x.grad(&grads).unwrap()),
                    flat4(conv.weight.grad(&grads).unwrap()),
                    conv.bias
                        .as_ref()
                        .unwrap()
                        .grad(&grads)
                        .unwrap()
                        .into_data()
                        .to_vec()
                        .unwrap(),
                ]
            };
            for (what, (a, b)) in ["output", "grad x", "grad weight", "grad bias"]
                .iter()
                .zip(run(true).into_iter().zip(run(false)))
            {
                assert_eq!(a.len(), b.len(), "{what}");
                for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (u - v).abs() < 1e-4 * (1.0 + v.abs()),
                        "{what} [{i}]: {u} vs {v} ({channels:?} {kernel:?})"
                    );
                }
            }
        }
    }

    /// The composed default (other backends) computes the fused ReLU's gradient as burn's
    /// `relu` then convolution would, through burn's convolution and through matrix products.
    #[test]
    fn composed_relu_backward_matches_burn() {
        use crate::backend::composed;
        use crate::conv_gemm::ComposedConv;
        let device = Default::default();
        let conv = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<B>(&device);
        let x = Tensor::<B, 4>::random([2, 3, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<Flex, 4>::random([2, 4, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        let settings = ConvSettings {
            stride: [1, 1],
            padding: [1, 1],
            transposed: None,
            relu: true,
        };
        let prim4 = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
        let inner_w = conv.weight.val().inner();
        let inner_b = conv.bias.as_ref().unwrap().val().inner();
        let x = x.detach().require_grad();
        let out = relu(conv.forward(x.clone()));
        let expected = (out.clone() * Tensor::from_inner(g.clone()))
            .sum()
            .backward();
        let tol = burn::tensor::Tolerance::<f32>::default();
        for how in [
            ComposedConv::Backend,
            ComposedConv::Gemm,
            ComposedConv::Implicit,
        ] {
            let output = composed::conv2d_forward::<Flex>(
                prim4(x.clone().inner()),
                prim4(inner_w.clone()),
                inner_b.clone().into_primitive().tensor(),
                settings,
                how,
            );
            let grads = composed::conv2d_backward::<Flex>(
                prim4(x.clone().inner()),
                prim4(inner_w.clone()),
                inner_b.clone().into_primitive().tensor(),
                Some(output.clone()),
                settings,
                prim4(g.clone()),
                how,
            );
            float::<Flex, 4>(output)
                .into_data()
                .assert_approx_eq(&out.clone().inner().into_data(), tol);
            float::<Flex, 4>(grads.x)
                .into_data()
                .assert_approx_eq(&x.grad(&expected).unwrap().into_data(), tol);
            float::<Flex, 4>(grads.weight)
                .into_data()
                .assert_approx_eq(&conv.weight.grad(&expected).unwrap().into_data(), tol);
        }
    }
}
