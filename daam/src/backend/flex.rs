//! Flex (burn's CPU backend): the fused rayon kernels of [`crate::kernel`].

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{DType, TensorData, TensorMetadata};

use super::{
    composed, AttentionGrads, AttentionSettings, ConvGrads, ConvSettings, DaamBackend,
    DensityGrads, DensityOutput, GroupNormGrads, GroupNormSettings,
};
use crate::conv_gemm::ComposedConv;
use crate::kernel::attention::{self, AttentionDims};
use crate::kernel::conv2d::{self, Conv2dDims};
use crate::kernel::group_norm::{self, GroupNormDims};
use crate::kernel::mixture::{self, MixtureParams};
use crate::kernel::per_feature::{self, PerFeatureParams};
use crate::kernel::ViewDims;
use crate::GaussianForm;

/// A contiguous `f32` copy-free view (copying only when the tensor is strided).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    let n = t.shape().num_elements();
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        std::borrow::Cow::Borrowed(&t.storage::<f32>()[..n])
    } else {
        std::borrow::Cow::Owned(t.to_contiguous().storage::<f32>()[..n].to_vec())
    }
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// The environment variable that turns Flex's kernels off: `DAAM_KERNELS=composed` runs every
/// op as a backend without kernels does (CUDA today): the composed defaults, with
/// `DAAM_CONV=gemm|backend` choosing the convolution, so that path can be profiled and measured
/// on the CPU. Anything else (or nothing) keeps the kernels.
const KERNELS_ENV: &str = "DAAM_KERNELS";

/// `DAAM_KERNELS`'s choices: whether the kernels are off.
const KERNELS_CHOICES: [(&str, bool); 2] = [("composed", true), ("fused", false)];

/// Whether the CPU kernels are on: not turned off by `DAAM_KERNELS=composed` (read once, with a
/// warning for a value that is neither `composed` nor `fused`). The `encoders` crate's kernels
/// follow the same switch.
pub fn cpu_kernels_enabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    !*OFF.get_or_init(|| crate::env_choice::from_env(KERNELS_ENV, &KERNELS_CHOICES, false))
}

/// Whether Flex's kernels run for these tensors: f32 only, and [`cpu_kernels_enabled`].
fn kernels_for(tensors: &[&FlexTensor]) -> bool {
    cpu_kernels_enabled() && tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn view(x: &FlexTensor) -> (ViewDims, Vec<usize>) {
    let shape = x.shape().to_vec();
    assert_eq!(
        shape.len(),
        3,
        "fused DAAM ops take [outer, axis, inner] tensors"
    );
    (ViewDims::around(&shape, 1), shape)
}

impl DaamBackend for Flex {
    fn fused_kernels(inputs: &[&FlexTensor]) -> bool {
        kernels_for(inputs)
    }

    /// burn's own convolution unless `DAAM_CONV` says otherwise (only where the kernels do not
    /// run: dtypes other than f32, or `DAAM_KERNELS=composed`).
    fn composed_conv() -> ComposedConv {
        static CHOICE: std::sync::OnceLock<ComposedConv> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| ComposedConv::from_env_or(ComposedConv::Backend))
    }

    fn density_adaptive_attention(
        x: FlexTensor,
        mean_offset: FlexTensor,
        scaled_variance: FlexTensor,
        num_heads: usize,
        form: GaussianForm,
    ) -> DensityOutput<Self> {
        if !kernels_for(&[&x, &mean_offset, &scaled_variance]) {
            return composed::per_feature_forward::<Self>(
                x,
                mean_offset,
                scaled_variance,
                num_heads,
                form,
            );
        }
        let (dims, shape) = view(&x);
        let (delta, xi) = (values(&mean_offset), values(&scaled_variance));
        let params = PerFeatureParams {
            mean_offset: &delta,
            scaled_variance: &xi,
            num_heads,
            form,
        };
        let mut output = vec![0.0; dims.len()];
        let mut weights = vec![0.0; dims.len()];
        per_feature::forward(&values(&x), dims, &params, &mut output, &mut weights);
        DensityOutput {
            output: tensor(output, &shape),
            weights: tensor(weights, &shape),
        }
    }

    fn density_adaptive_attention_backward(
        x: FlexTensor,
        weights: FlexTensor,
        mean_offset: FlexTensor,
        scaled_variance: FlexTensor,
        num_heads: usize,
        form: GaussianForm,
        grad_out: FlexTensor,
    ) -> DensityGrads<Self> {
        if !kernels_for(&[&x, &weights, &mean_offset, &scaled_variance, &grad_out]) {
            return composed::per_feature_backward::<Self>(
                x,
                weights,
                mean_offset,
                scaled_variance,
                num_heads,
                form,
                grad_out,
            );
        }
        let (dims, shape) = view(&x);
        let param_shape = mean_offset.shape().to_vec();
        let (delta, xi) = (values(&mean_offset), values(&scaled_variance));
        let params = PerFeatureParams {
            mean_offset: &delta,
            scaled_variance: &xi,
            num_heads,
            form,
        };
        let mut grad_x = vec![0.0; dims.len()];
        let grads = per_feature::backward(
            &values(&x),
            &values(&weights),
            &values(&grad_out),
            dims,
            &params,
            &mut grad_x,
        );
        DensityGrads {
            x: tensor(grad_x, &shape),
            mean_offset: tensor(grads.mean_offset, &param_shape),
            scale: tensor(grads.scaled_variance, &param_shape),
        }
    }

    fn mixture_density_attention(
        x: FlexTensor,
        mean_offsets: FlexTensor,
        c: FlexTensor,
        num_heads: usize,
        eps: f64,
    ) -> DensityOutput<Self> {
        if !kernels_for(&[&x, &mean_offsets, &c]) {
            return composed::mixture_forward::<Self>(x, mean_offsets, c, num_heads, eps);
        }
        let (dims, shape) = view(&x);
        let num_gaussians = mean_offsets.shape()[1];
        let (m, scales) = (values(&mean_offsets), values(&c));
        let params = MixtureParams {
            mean_offsets: &m,
            c: &scales,
            num_heads,
            num_gaussians,
            eps,
        };
        let mut output = vec![0.0; dims.len()];
        let mut weights = vec![0.0; dims.len()];
        mixture::forward(&values(&x), dims, &params, &mut output, &mut weights);
        DensityOutput {
            output: tensor(output, &shape),
            weights: tensor(weights, &shape),
        }
    }

    fn mixture_density_attention_backward(
        x: FlexTensor,
        mean_offsets: FlexTensor,
        c: FlexTensor,
        num_heads: usize,
        eps: f64,
        grad_out: FlexTensor,
    ) -> DensityGrads<Self> {
        if !kernels_for(&[&x, &mean_offsets, &c, &grad_out]) {
            return composed::mixture_backward::<Self>(
                x,
                mean_offsets,
                c,
                num_heads,
                eps,
                grad_out,
            );
        }
        let (dims, shape) = view(&x);
        let param_shape = mean_offsets.shape().to_vec();
        let (m, scales) = (values(&mean_offsets), values(&c));
        let params = MixtureParams {
            mean_offsets: &m,
            c: &scales,
            num_heads,
            num_gaussians: param_shape[1],
            eps,
        };
        let mut grad_x = vec![0.0; dims.len()];
        let grads = mixture::backward(&values(&x), &values(&grad_out), dims, &params, &mut grad_x);
        DensityGrads {
            x: tensor(grad_x, &shape),
            mean_offset: tensor(grads.mean_offsets, &param_shape),
            scale: tensor(grads.c, &param_shape),
        }
    }

    fn fused_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        settings: ConvSettings,
    ) -> FlexTensor {
        if !kernels_for(&[&x, &weight, &bias]) {
            return composed::conv2d_forward::<Self>(
                x,
                weight,
                bias,
                settings,
                Self::composed_conv(),
            );
        }
        let d = conv_dims(&x, &weight, settings);
        if settings.transposed.is_some() {
            let mut out = vec![0.0; d.batch * d.in_channels * d.input[0] * d.input[1]];
            conv2d::transpose_forward(
                &values(&x),
                &values(&weight),
                Some(&values(&bias)),
                settings.relu,
                &d,
                &mut out,
            );
            return tensor(out, &[d.batch, d.in_channels, d.input[0], d.input[1]]);
        }
        let [oh, ow] = d.output();
        let mut out = vec![0.0; d.batch * d.out_channels * oh * ow];
        conv2d::forward(
            &values(&x),
            &values(&weight),
            Some(&values(&bias)),
            settings.relu,
            &d,
            &mut out,
        );
        tensor(out, &[d.batch, d.out_channels, oh, ow])
    }

    fn fused_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        output: Option<FlexTensor>,
        settings: ConvSettings,
        grad_out: FlexTensor,
    ) -> ConvGrads<Self> {
        let output_f32 = output.as_ref().is_none_or(|o| kernels_for(&[o]));
        if !kernels_for(&[&x, &weight, &bias, &grad_out]) || !output_f32 {
            return composed::conv2d_backward::<Self>(
                x,
                weight,
                bias,
                output,
                settings,
                grad_out,
                Self::composed_conv(),
            );
        }
        let d = conv_dims(&x, &weight, settings);
        let (x_values, w_values, g_values) = (values(&x), values(&weight), values(&grad_out));
        let relu_output = settings.relu.then(|| {
            values(
                output
                    .as_ref()
                    .expect("a fused ReLU's backward needs the output"),
            )
        });
        let relu_output = relu_output.as_deref();
        let (grads, bias_len) = match settings.transposed {
            None => (
                conv2d::backward(&x_values, &w_values, &g_values, relu_output, &d),
                d.out_channels,
            ),
            Some(_) => (
                conv2d::transpose_backward(&x_values, &w_values, &g_values, relu_output, &d),
                d.in_channels,
            ),
        };
        ConvGrads {
            x: tensor(grads.x, &x.shape().to_vec()),
            weight: tensor(grads.weight, &weight.shape().to_vec()),
            bias: tensor(grads.bias, &[bias_len]),
        }
    }

    fn scaled_dot_product_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        settings: AttentionSettings,
    ) -> FlexTensor {
        if !kernels_for(&[&q, &k, &v]) {
            return composed::attention_forward::<Self>(q, k, v, settings);
        }
        let (dims, shape) = attention_dims(&q, &k, settings);
        let mut out = vec![0.0; dims.q_len()];
        attention::forward(&values(&q), &values(&k), &values(&v), &dims, &mut out);
        tensor(out, &shape)
    }

    fn scaled_dot_product_attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        settings: AttentionSettings,
        grad_out: FlexTensor,
    ) -> AttentionGrads<Self> {
        if !kernels_for(&[&q, &k, &v, &grad_out]) {
            return composed::attention_backward::<Self>(q, k, v, settings, grad_out);
        }
        let (dims, shape) = attention_dims(&q, &k, settings);
        let kv_shape = k.shape().to_vec();
        let grads = attention::backward(
            &values(&q),
            &values(&k),
            &values(&v),
            &values(&grad_out),
            &dims,
        );
        AttentionGrads {
            q: tensor(grads.q, &shape),
            k: tensor(grads.k, &kv_shape),
            v: tensor(grads.v, &kv_shape),
        }
    }

    fn group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        settings: GroupNormSettings,
    ) -> FlexTensor {
        if !kernels_for(&[&x, &gamma, &beta]) {
            return composed::group_norm_forward::<Self>(x, gamma, beta, settings);
        }
        let (dims, shape) = group_norm_dims(&x, settings);
        let mut output = vec![0.0; x.shape().num_elements()];
        group_norm::forward(
            &values(&x),
            &values(&gamma),
            &values(&beta),
            &dims,
            &mut output,
        );
        tensor(output, &shape)
    }

    fn group_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        settings: GroupNormSettings,
        grad_out: FlexTensor,
    ) -> GroupNormGrads<Self> {
        if !kernels_for(&[&x, &gamma, &beta, &grad_out]) {
            return composed::group_norm_backward::<Self>(x, gamma, beta, settings, grad_out);
        }
        let (dims, shape) = group_norm_dims(&x, settings);
        let mut grad_x = vec![0.0; x.shape().num_elements()];
        let grads = group_norm::backward(
            &values(&x),
            &values(&gamma),
            &values(&beta),
            &values(&grad_out),
            &dims,
            &mut grad_x,
        );
        let channels = [dims.channels];
        GroupNormGrads {
            x: tensor(grad_x, &shape),
            gamma: tensor(grads.gamma, &channels),
            beta: tensor(grads.beta, &channels),
        }
    }
}

/// The attention a call computes, and the query's shape.
fn attention_dims(
    q: &FlexTensor,
    k: &FlexTensor,
    s: AttentionSettings,
) -> (AttentionDims, Vec<usize>) {
    let (qs, ks) = (q.shape().to_vec(), k.shape().to_vec());
    assert!(
        qs.len() == 3 && ks.len() == 3 && qs[..2] == ks[..2],
        "fused attention: query {qs:?} and key {ks:?} do not fit"
    );
    let head_dim = qs[2] / s.num_heads;
    assert_eq!(
        [qs[2], ks[2]],
        [s.num_heads * head_dim, s.num_kv_heads * head_dim],
        "fused attention: widths of {} query and {} key/value heads",
        s.num_heads,
        s.num_kv_heads
    );
    let dims = AttentionDims {
        batch: qs[0],
        seq_length: qs[1],
        num_heads: s.num_heads,
        num_kv_heads: s.num_kv_heads,
        head_dim,
    };
    (dims, qs)
}

/// The convolution a call computes, or (transposed) whose input gradient it computes.
fn conv_dims(x: &FlexTensor, weight: &FlexTensor, s: ConvSettings) -> Conv2dDims {
    let (xs, ws) = (x.shape().to_vec(), weight.shape().to_vec());
    match s.transposed {
        None => {
            assert!(
                xs.len() == 4 && ws.len() == 4 && xs[1] == ws[1],
                "fused conv2d: input {xs:?} and weight {ws:?} do not fit"
            );
            Conv2dDims {
                batch: xs[0],
                in_channels: xs[1],
                out_channels: ws[0],
                input: [xs[2], xs[3]],
                kernel: [ws[2], ws[3]],
                stride: s.stride,
                padding: s.padding,
            }
        }
        Some(padding_out) => {
            assert!(
                xs.len() == 4 && ws.len() == 4 && xs[1] == ws[0],
                "fused conv_transpose2d: input {xs:?} and weight {ws:?} do not fit"
            );
            let side = |i: usize| {
                (xs[2 + i] - 1) * s.stride[i] + ws[2 + i] + padding_out[i] - 2 * s.padding[i]
            };
            let d = Conv2dDims {
                batch: xs[0],
                in_channels: ws[1],
                out_channels: ws[0],
                input: [side(0), side(1)],
                kernel: [ws[2], ws[3]],
                stride: s.stride,
                padding: s.padding,
            };
            assert_eq!(d.output(), [xs[2], xs[3]], "fused conv_transpose2d: {d:?}");
            d
        }
    }
}

fn group_norm_dims(x: &FlexTensor, s: GroupNormSettings) -> (GroupNormDims, Vec<usize>) {
    let shape = x.shape().to_vec();
    assert_eq!(
        shape.len(),
        3,
        "fused GroupNorm takes [batch_size, channels, spatial] tensors"
    );
    let dims = GroupNormDims {
        batch: shape[0],
        channels: shape[1],
        spatial: shape[2],
        groups: s.groups,
        eps: s.eps,
        relu: s.relu,
        normalize: s.normalize,
    };
    (dims, shape)
}

#[cfg(test)]
mod tests {
    use super::KERNELS_CHOICES;
    use crate::env_choice::parse;

    #[test]
    fn kernels_env_values() {
        assert_eq!(parse(Some(" Composed "), &KERNELS_CHOICES), Some(true));
        assert_eq!(parse(Some("fused"), &KERNELS_CHOICES), Some(false));
        assert_eq!(parse(Some("off"), &KERNELS_CHOICES), None);
    }
}
