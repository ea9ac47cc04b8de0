//! A stack of unpadded strided 1-D convolutions, each followed by an optional per-frame layer
//! norm over channels and GELU (WavLM's feature encoder with `feat_extract_norm: "layer"`), in
//! the frames-first layout `[batch, time, channels]`.
//!
//! Frames first, the receptive field of output frame `t` is the contiguous run of
//! `kernel · channels_in` values starting at frame `t · stride`, so the convolution is one `gemm`
//! call per clip over a strided view of the input (row stride `stride · channels_in`), with no
//! im2col copy, against the kernel rearranged to `[kernel · channels_in, channels_out]`. Its
//! output rows are frames, which is the axis the layer norm reduces over; norm and GELU then run
//! in one pass per row. burn's Flex `conv1d` (channels first) followed by a transposed layer
//! norm was about three times slower on WavLM-Large's stack.

use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::gemm::{matmul, worth_parallel, MatMut, MatRef};
use super::simd::{self, dispatch, erf};
use super::{flex_tensor, from_flex, into_flex, into_flex_optional, values};

/// One layer of the stack.
#[derive(Debug, Clone)]
pub struct StridedConv<B: Backend> {
    /// Kernel, `[channels_out, channels_in, kernel_size]` (PyTorch's layout).
    pub weight: Tensor<B, 3>,
    /// Bias, `[channels_out]`.
    pub bias: Option<Tensor<B, 1>>,
    /// Layer norm over channels at every frame, before the GELU.
    pub norm: Option<FrameNorm<B>>,
    /// Stride in input frames.
    pub stride: usize,
}

/// A layer norm over the channels of each frame.
#[derive(Debug, Clone)]
pub struct FrameNorm<B: Backend> {
    /// γ, `[channels_out]`.
    pub gamma: Tensor<B, 1>,
    /// β, `[channels_out]`.
    pub beta: Option<Tensor<B, 1>>,
    /// ε added to the variance.
    pub epsilon: f64,
}

/// `[kernel · channels_in, channels_out]` (row `j · channels_in + c`) from PyTorch's
/// `[channels_out, channels_in, kernel]`.
fn rearrange_kernel(weight: &[f32], c_out: usize, c_in: usize, kernel: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for (o, filter) in weight.chunks_exact(c_in * kernel).enumerate() {
        for (c, taps) in filter.chunks_exact(kernel).enumerate() {
            for (j, &w) in taps.iter().enumerate() {
                out[(j * c_in + c) * c_out + o] = w;
            }
        }
    }
    out
}

#[inline(always)]
fn norm_gelu_rows_body(
    rows: &mut [f32],
    width: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    epsilon: f32,
) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for row in rows.chunks_exact_mut(width) {
        if let Some(gamma) = gamma {
            let mean = simd::sum_map(row, |v| v) / width as f32;
            let var = simd::sum_map(row, |v| (v - mean) * (v - mean)) / width as f32;
            let inv = 1.0 / (var + epsilon).sqrt();
            match beta {
                Some(beta) => {
                    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
                        *v = (*v - mean) * inv * g + b;
                    }
                }
                None => {
                    for (v, &g) in row.iter_mut().zip(gamma) {
                        *v = (*v - mean) * inv * g;
                    }
                }
            }
        }
        for v in row.iter_mut() {
            let h = 0.5 * *v;
            *v = h + h * erf(*v * FRAC_1_SQRT_2);
        }
    }
}

dispatch!(fn norm_gelu_rows(
    rows: &mut [f32],
    width: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    epsilon: f32,
) => norm_gelu_rows_body);

/// One layer's tensors, moved to Flex.
struct FlexLayer {
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    gamma: Option<FlexTensor>,
    beta: Option<FlexTensor>,
}

/// The values of one layer, borrowed from its tensors.
struct LayerValues<'a> {
    kernel: Vec<f32>,
    bias: Option<&'a [f32]>,
    gamma: Option<&'a [f32]>,
    beta: Option<&'a [f32]>,
    epsilon: f32,
    c_out: usize,
    c_in: usize,
    kernel_size: usize,
    stride: usize,
}

/// One layer on row-major `[batch, time, c_in]` values; returns the output and its length.
fn layer_forward(
    x: &[f32],
    batch: usize,
    time: usize,
    layer: &LayerValues<'_>,
) -> (Vec<f32>, usize) {
    let (c_in, c_out, k, s) = (layer.c_in, layer.c_out, layer.kernel_size, layer.stride);
    let t_out = if time >= k { (time - k) / s + 1 } else { 0 };
    let mut out = match layer.bias {
        Some(bias) => bias.repeat(batch * t_out),
        None => vec![0.0; batch * t_out * c_out],
    };
    if t_out == 0 {
        return (out, 0);
    }
    let kernel = MatRef::row_major(&layer.kernel, k * c_in, c_out);
    for (b, y) in out.chunks_exact_mut(t_out * c_out).enumerate() {
        matmul(
            MatMut::row_major(y, t_out, c_out),
            layer.bias.is_some(),
            MatRef::new(x, b * time * c_in, [t_out, k * c_in], [s * c_in, 1]),
            kernel,
            1.0,
            worth_parallel(t_out, k * c_in, c_out),
        );
    }
    let rows_per_task = (1 << 15) / c_out.max(1) + 1;
    out.par_chunks_mut(rows_per_task * c_out)
        .for_each(|rows| norm_gelu_rows(rows, c_out, layer.gamma, layer.beta, layer.epsilon));
    (out, t_out)
}

/// The stack on Flex; gives the waveform back on other backends (and for non-`f32` values).
///
/// # Shapes
/// - `waveform`: `[batch_size, samples]`
/// - output: `[batch_size, seq_length, channels]`, frames first
///
/// # Panics
/// When a kernel's input channels differ from the previous layer's output channels (the first
/// layer takes one channel).
pub fn strided_conv_stack<B: Backend>(
    waveform: Tensor<B, 2>,
    layers: &[StridedConv<B>],
) -> std::result::Result<Tensor<B, 3>, Tensor<B, 2>> {
    let flex = into_flex(waveform)?;
    let [batch, samples] = [flex.layout().shape()[0], flex.layout().shape()[1]];
    let tensors = layers
        .iter()
        .map(|layer| {
            Some(FlexLayer {
                weight: into_flex(layer.weight.clone()).ok()?,
                bias: into_flex_optional(layer.bias.clone())?,
                gamma: into_flex_optional(layer.norm.as_ref().map(|n| n.gamma.clone()))?,
                beta: into_flex_optional(layer.norm.as_ref().and_then(|n| n.beta.clone()))?,
            })
        })
        .collect::<Option<Vec<_>>>();
    let Some(tensors) = tensors else {
        return Err(from_flex(flex));
    };
    let weight_values: Vec<_> = tensors.iter().map(|t| values(&t.weight)).collect();
    let bias_values: Vec<_> = tensors
        .iter()
        .map(|t| t.bias.as_ref().map(values))
        .collect();
    let gamma_values: Vec<_> = tensors
        .iter()
        .map(|t| t.gamma.as_ref().map(values))
        .collect();
    let beta_values: Vec<_> = tensors
        .iter()
        .map(|t| t.beta.as_ref().map(values))
        .collect();

    let mut x = values(&flex).into_owned();
    let (mut time, mut channels) = (samples, 1);
    for (i, layer) in layers.iter().enumerate() {
        let [c_out, c_in, kernel_size] = layer.weight.dims();
        assert_eq!(
            c_in, channels,
            "convolution {i} takes {c_in} channels, the previous layer gives {channels}"
        );
        let values = LayerValues {
            kernel: rearrange_kernel(&weight_values[i], c_out, c_in, kernel_size),
            bias: bias_values[i].as_deref(),
            gamma: gamma_values[i].as_deref(),
            beta: beta_values[i].as_deref(),
            epsilon: layer.norm.as_ref().map_or(0.0, |n| n.epsilon as f32),
            c_out,
            c_in,
            kernel_size,
            stride: layer.stride,
        };
        let (y, t_out) = layer_forward(&x, batch, time, &values);
        x = y;
        time = t_out;
        channels = c_out;
    }
    Ok(from_flex(flex_tensor(x, &[batch, time, channels])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_tensor;
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::activation::gelu;
    use burn::tensor::module::conv1d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Tolerance;

    fn random<const D: usize>(seed: u64, shape: [usize; D]) -> Tensor<Flex, D> {
        test_tensor(shape, seed)
    }

    #[test]
    fn matches_conv1d_then_layer_norm_then_gelu() {
        let device = Default::default();
        let layers = vec![
            StridedConv {
                weight: random(1, [6, 1, 4]),
                bias: None,
                norm: Some(FrameNorm {
                    gamma: random(2, [6]),
                    beta: Some(random(3, [6])),
                    epsilon: 1e-5,
                }),
                stride: 3,
            },
            StridedConv {
                weight: random(4, [5, 6, 3]),
                bias: Some(random(5, [5])),
                norm: None,
                stride: 2,
            },
            StridedConv {
                weight: random(6, [4, 5, 2]),
                bias: None,
                norm: Some(FrameNorm {
                    gamma: random(7, [4]),
                    beta: None,
                    epsilon: 1e-5,
                }),
                stride: 1,
            },
        ];
        let wave = random(8, [2, 61]);
        let mut x = wave.clone().reshape([2, 1, 61]);
        for layer in &layers {
            let options = ConvOptions::new([layer.stride], [0], [1], 1);
            let y = conv1d(x, layer.weight.clone(), layer.bias.clone(), options);
            x = match &layer.norm {
                None => gelu(y),
                Some(norm) => {
                    let mut ln = LayerNormConfig::new(norm.gamma.dims()[0])
                        .with_epsilon(norm.epsilon)
                        .with_bias(norm.beta.is_some())
                        .init::<Flex>(&device);
                    ln.gamma = Param::from_tensor(norm.gamma.clone());
                    ln.beta = norm.beta.clone().map(Param::from_tensor);
                    gelu(ln.forward(y.swap_dims(1, 2))).swap_dims(1, 2)
                }
            };
        }
        let expected = x.swap_dims(1, 2); // [2, 8, 4]: 61 → 20 → 9 → 8 frames
        let got = strided_conv_stack(wave, &layers).expect("Flex");
        assert_eq!(got.dims(), [2, 8, 4]);
        got.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn other_backends_get_the_waveform_back() {
        type A = burn::backend::Autodiff<Flex>;
        let wave = Tensor::<A, 2>::zeros([1, 9], &Default::default());
        let layers = vec![StridedConv::<A> {
            weight: Tensor::zeros([2, 1, 3], &Default::default()),
            bias: None,
            norm: None,
            stride: 1,
        }];
        assert!(strided_conv_stack(wave, &layers).is_err());
    }
}
