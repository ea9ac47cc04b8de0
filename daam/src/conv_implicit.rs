//! The implicit-GEMM route ([`ComposedConv::Implicit`], `DAAM_CONV=implicit`) for every
//! convolution the models run, strided and transposed included, from the backend's three
//! implicit-GEMM primitives ([`DaamBackend::implicit_conv2d`] with any stride,
//! [`DaamBackend::implicit_conv2d_backward`] for stride 1, and
//! [`DaamBackend::implicit_conv2d_weight_grad`] with any stride): cubek's kernels on the CUDA
//! and wgpu backends, the matrix products ([`crate::conv_gemm`]) elsewhere.
//!
//! cubek has no data gradient for a strided convolution, which is also what a transposed
//! convolution computes. Those run as one stride-1 convolution per output phase
//! ([`crate::conv_phases`]). Every other pass is one kernel:
//!
//! | convolution | forward | data gradient | weight gradient |
//! |---|---|---|---|
//! | stride 1 | kernel | kernel | kernel |
//! | strided | kernel | phases | kernel |
//! | transposed | phases | kernel (the strided convolution of the output's gradient) | kernel (roles swapped) |
//!
//! [`ComposedConv::Implicit`]: crate::conv_gemm::ComposedConv::Implicit

use burn::tensor::ops::FloatTensor;
use burn::tensor::{s, Tensor, TensorPrimitive};

use crate::conv_gemm::{bias_grad, data_grad_padding_out, transposed_full, GemmGrads};
use crate::conv_phases::conv_transpose2d_phases;
use crate::DaamBackend;

fn primitive<B: DaamBackend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

fn tensor<B: DaamBackend>(primitive: FloatTensor<B>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// `conv2d(x, weight) + bias` (one group, no dilation) by [`DaamBackend::implicit_conv2d`].
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[out_channels, in_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, (height + 2·padding_h − kernel_h) / stride_h + 1, …]`
pub fn conv2d<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<B, 4> {
    tensor(B::implicit_conv2d(
        primitive(x),
        primitive(weight),
        bias.map(primitive),
        stride,
        padding,
    ))
}

/// A stride-1 convolution by the backend's implicit-GEMM kernel, the phases' convolution.
fn stride_one<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    padding: [usize; 2],
) -> Tensor<B, 4> {
    conv2d(x, weight, None, [1, 1], padding)
}

/// The gradients of [`conv2d`] for `grad_out = ∂L/∂output`: for stride 1 both from one
/// [`DaamBackend::implicit_conv2d_backward`]; otherwise the weight gradient by
/// [`DaamBackend::implicit_conv2d_weight_grad`] and the data gradient, a transposed
/// convolution, by phases.
///
/// # Shapes
/// - `x`, `weight`: as [`conv2d`]; `grad_out`: its output's
/// - output: `x`'s, `weight`'s and `[out_channels]`
pub fn conv2d_backward<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
    grad_out: Tensor<B, 4>,
) -> GemmGrads<B> {
    let bias = bias_grad(grad_out.clone());
    if stride == [1, 1] {
        let (x, weight) = B::implicit_conv2d_backward(
            primitive(x),
            primitive(weight),
            padding,
            primitive(grad_out),
        );
        return GemmGrads {
            x: tensor(x),
            weight: tensor(weight),
            bias,
        };
    }
    let [_, _, height, width] = x.dims();
    let [_, _, kernel_h, kernel_w] = weight.dims();
    let [_, _, out_h, out_w] = grad_out.dims();
    let grad_weight = tensor(B::implicit_conv2d_weight_grad(
        primitive(x),
        primitive(grad_out.clone()),
        [kernel_h, kernel_w],
        stride,
        padding,
    ));
    let padding_out = data_grad_padding_out(
        [height, width],
        [kernel_h, kernel_w],
        stride,
        padding,
        [out_h, out_w],
    );
    let grad_x = conv_transpose2d_phases(
        grad_out,
        weight,
        None,
        stride,
        padding,
        padding_out,
        stride_one,
    );
    GemmGrads {
        x: grad_x,
        weight: grad_weight,
        bias,
    }
}

/// `conv_transpose2d(x, weight) + bias` (one group, no dilation) as one stride-1
/// [`DaamBackend::implicit_conv2d`] per output phase ([`conv_transpose2d_phases`]).
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[in_channels, out_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, out_h, out_w]`, `out_h = (height − 1)·stride_h −
///   2·padding_h + kernel_h + padding_out_h`
pub fn conv_transpose2d<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
) -> Tensor<B, 4> {
    conv_transpose2d_phases(x, weight, bias, stride, padding, padding_out, stride_one)
}

/// The gradients of [`conv_transpose2d`] for `grad_out = ∂L/∂output`: `∂x` is the (strided)
/// convolution of `grad_out` with the same weight, `∂weight` that convolution's weight
/// gradient with `grad_out` as its input and `x` as its output's gradient; one kernel each.
///
/// # Shapes
/// - `x`, `weight`: as [`conv_transpose2d`]; `grad_out`: its output's
/// - output: `x`'s, `weight`'s and `[out_channels]`
///
/// # Panics
/// If `grad_out` is not the forward's output shape.
pub fn conv_transpose2d_backward<B: DaamBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
    grad_out: Tensor<B, 4>,
) -> GemmGrads<B> {
    let [batch_size, _, height, width] = x.dims();
    let [_, out_channels, kernel_h, kernel_w] = weight.dims();
    let full = transposed_full([height, width], [kernel_h, kernel_w], stride, padding_out);
    let expected: [usize; 2] = std::array::from_fn(|a| full[a].saturating_sub(2 * padding[a]));
    assert_eq!(
        grad_out.dims(),
        [batch_size, out_channels, expected[0], expected[1]],
        "conv_implicit::conv_transpose2d_backward: gradient shape"
    );
    let grad_x = conv2d(grad_out.clone(), weight, None, stride, padding);
    // An output padding of a stride or more adds output rows no input reaches: drop them.
    let grad_x = if grad_x.dims()[2..] == [height, width] {
        grad_x
    } else {
        grad_x.slice(s![.., .., 0..height, 0..width])
    };
    let grad_weight = tensor(B::implicit_conv2d_weight_grad(
        primitive(grad_out.clone()),
        primitive(x),
        [kernel_h, kernel_w],
        stride,
        padding,
    ));
    GemmGrads {
        x: grad_x,
        weight: grad_weight,
        bias: bias_grad(grad_out),
    }
}
