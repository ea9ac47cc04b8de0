//! The backend extension that runs each DAAM module as one fused op.
//!
//! [`DaamBackend`] has default methods built from ordinary tensor ops (forward: the composed
//! reference in [`crate::reference`]; backward: that reference differentiated by burn's
//! autodiff), so every burn backend can implement it with an empty `impl`. Backends with a fused
//! kernel override the methods: Flex (CPU) runs [`crate::kernel`]'s rayon loops.
//! `Autodiff<B>` records one graph node per call whose backward calls `B`'s backward method.

mod autodiff;
mod flex;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub mod implicit;
mod stacked_mixture;
pub use flex::cpu_kernels_enabled;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::conv_gemm::ComposedConv;
use crate::{reference, GaussianForm};

/// Output of a fused DAAM forward: `output = x ⊙ weights`.
#[derive(Debug, Clone)]
pub struct DensityOutput<B: Backend> {
    /// `x ⊙ weights`, `[outer, axis, inner]`.
    pub output: FloatTensor<B>,
    /// The density weights (`w` or `mixture`), `[outer, axis, inner]`; never tracked by autodiff.
    pub weights: FloatTensor<B>,
}

/// Gradients of a fused DAAM call: input first, then the two parameters.
#[derive(Debug, Clone)]
pub struct DensityGrads<B: Backend> {
    /// `∂L/∂x`, `[outer, axis, inner]`.
    pub x: FloatTensor<B>,
    /// Gradient of the mean offsets (δ `[num_heads, inner]` or m `[num_heads, num_gaussians]`).
    pub mean_offset: FloatTensor<B>,
    /// Gradient of the scales (ξ `[num_heads, inner]` or c `[num_heads, num_gaussians]`).
    pub scale: FloatTensor<B>,
}

/// Gradients of a fused GroupNorm call.
#[derive(Debug, Clone)]
pub struct GroupNormGrads<B: Backend> {
    /// `∂L/∂x`, `[batch_size, channels, spatial]`.
    pub x: FloatTensor<B>,
    /// `∂L/∂γ`, `[channels]`.
    pub gamma: FloatTensor<B>,
    /// `∂L/∂β`, `[channels]`.
    pub beta: FloatTensor<B>,
}

/// Settings of a fused GroupNorm call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNormSettings {
    /// Groups (divide the channels).
    pub groups: usize,
    /// ε added to the variance.
    pub eps: f64,
    /// Whether a ReLU follows.
    pub relu: bool,
    /// Whether to normalise. `false`: only the per-channel affine map `γ_c x + β_c` (and the
    /// ReLU), with `groups` and `eps` unused: the VQ-VAE's sampling blocks without their
    /// GroupNorm (`sampling_norm = false`).
    pub normalize: bool,
}

/// Gradients of a fused convolution.
#[derive(Debug, Clone)]
pub struct ConvGrads<B: Backend> {
    /// `∂L/∂x`, `[batch_size, in_channels, height, width]`.
    pub x: FloatTensor<B>,
    /// `∂L/∂weight`, `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub weight: FloatTensor<B>,
    /// `∂L/∂bias`, `[out_channels]`.
    pub bias: FloatTensor<B>,
}

/// Settings of a fused convolution (no dilation, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSettings {
    /// Stride `[height, width]`.
    pub stride: [usize; 2],
    /// Zero padding `[height, width]`, the same on both sides.
    pub padding: [usize; 2],
    /// `Some(output_padding)` for a transposed convolution (weight
    /// `[in_channels, out_channels, kernel_h, kernel_w]`), `None` for a convolution.
    pub transposed: Option<[usize; 2]>,
    /// Whether a ReLU follows (fused: no separate op over the output and its gradient).
    pub relu: bool,
}

/// Settings of a fused attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionSettings {
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (divide `num_heads`; equal for multi-head attention).
    pub num_kv_heads: usize,
}

/// Gradients of a fused attention call.
#[derive(Debug, Clone)]
pub struct AttentionGrads<B: Backend> {
    /// `∂L/∂q`, `[batch_size, seq_length, num_heads · head_dim]`.
    pub q: FloatTensor<B>,
    /// `∂L/∂k`, `[batch_size, seq_length, num_kv_heads · head_dim]`.
    pub k: FloatTensor<B>,
    /// `∂L/∂v`, `[batch_size, seq_length, num_kv_heads · head_dim]`.
    pub v: FloatTensor<B>,
}

/// A burn backend that can run the DAAM modules. Implemented for Flex, `Autodiff<B>` and (with
/// the `cuda` feature) CUDA; any other backend gets the composed default with an empty `impl`.
///
/// All tensors are rank 3, `[outer, axis, inner]`, statistics along `axis`; the modules reshape
/// their inputs to that view.
///
/// The trait also carries a fused GroupNorm (+ ReLU) ([`crate::kernel::group_norm`]): the DAAM
/// VQ-VAE's convolutional blocks spend most of their time in GroupNorm when it is composed from
/// broadcasting ops on burn 0.21's Flex backend.
pub trait DaamBackend: Backend {
    /// Whether this backend runs the ops below with its own kernels for these inputs (their
    /// dtypes). `Autodiff<Self>` records one graph node per op either way: every composed
    /// default's backward is written out in tensor ops, no autodiff pass of its own (inside
    /// burn's backward pass, which holds the autodiff graph's lock, a second pass would wait on
    /// that lock forever). The one exception is the convolution through the backend's own
    /// `conv2d` ([`Self::composed_conv`] `Backend`): where this is false it is composed from
    /// burn's tracked convolution, differentiated by burn.
    fn fused_kernels(inputs: &[&FloatTensor<Self>]) -> bool {
        let _ = inputs;
        false
    }

    /// How the composed convolution computes where this backend has no fused one (and, under
    /// `Autodiff`, where [`Self::fused_kernels`] is false): the backend's own `conv2d`, or
    /// matrix products of tensor ops ([`crate::conv_gemm`]). Default: the backend's own. With
    /// matrix products `Autodiff<Self>` records one node per convolution whose backward is
    /// [`crate::conv_gemm`]'s written-out gradients (no autodiff pass of its own).
    fn composed_conv() -> ComposedConv {
        ComposedConv::Backend
    }

    /// Whether [`crate::lookup::select_rows`] differentiates a row lookup by a one-hot matrix
    /// product instead of burn's scatter-add: as `DAAM_LOOKUP=product|scatter` says, else
    /// the backend's default (burn's scatter here; the product on the cubecl backends, where
    /// the scatter's atomics collide).
    fn lookup_grad_by_product() -> bool {
        crate::lookup::lookup_from_env().unwrap_or(false)
    }

    /// Per-feature DAAM forward ([`crate::kernel::per_feature`]); δ and ξ are
    /// `[num_heads, inner]`.
    fn density_adaptive_attention(
        x: FloatTensor<Self>,
        mean_offset: FloatTensor<Self>,
        scaled_variance: FloatTensor<Self>,
        num_heads: usize,
        form: GaussianForm,
    ) -> DensityOutput<Self> {
        composed::per_feature_forward::<Self>(x, mean_offset, scaled_variance, num_heads, form)
    }

    /// Per-feature DAAM backward for `grad_out = ∂L/∂output`.
    #[allow(clippy::too_many_arguments)]
    fn density_adaptive_attention_backward(
        x: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        mean_offset: FloatTensor<Self>,
        scaled_variance: FloatTensor<Self>,
        num_heads: usize,
        form: GaussianForm,
        grad_out: FloatTensor<Self>,
    ) -> DensityGrads<Self> {
        composed::per_feature_backward::<Self>(
            x,
            weights,
            mean_offset,
            scaled_variance,
            num_heads,
            form,
            grad_out,
        )
    }

    /// Mixture-of-densities forward ([`crate::kernel::mixture`]); m and c are
    /// `[num_heads, num_gaussians]`.
    fn mixture_density_attention(
        x: FloatTensor<Self>,
        mean_offsets: FloatTensor<Self>,
        c: FloatTensor<Self>,
        num_heads: usize,
        eps: f64,
    ) -> DensityOutput<Self> {
        composed::mixture_forward::<Self>(x, mean_offsets, c, num_heads, eps)
    }

    /// Mixture-of-densities backward for `grad_out = ∂L/∂output` (the mixture is recomputed
    /// from `x`, not read back from the forward). The composed default writes the gradients of
    /// [`crate::kernel::mixture`]'s header out in tensor ops (no autodiff pass): every head at
    /// once where the heads split the axis evenly, else one head at a time (`DAAM_MIXTURE`).
    fn mixture_density_attention_backward(
        x: FloatTensor<Self>,
        mean_offsets: FloatTensor<Self>,
        c: FloatTensor<Self>,
        num_heads: usize,
        eps: f64,
        grad_out: FloatTensor<Self>,
    ) -> DensityGrads<Self> {
        composed::mixture_backward::<Self>(x, mean_offsets, c, num_heads, eps, grad_out)
    }

    /// GroupNorm (+ ReLU) forward on `[batch_size, channels, spatial]`; γ and β are
    /// `[channels]`.
    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        settings: GroupNormSettings,
    ) -> FloatTensor<Self> {
        composed::group_norm_forward::<Self>(x, gamma, beta, settings)
    }

    /// 2-D convolution, or transposed convolution, with bias and an optional ReLU
    /// ([`crate::kernel::conv2d`] on Flex; elsewhere burn's own `conv2d` / `conv_transpose2d` or
    /// matrix products, as [`Self::composed_conv`] says).
    ///
    /// # Shapes
    /// - `x`: `[batch_size, in_channels, height, width]`
    /// - `weight`: `[out_channels, in_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
    fn fused_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        settings: ConvSettings,
    ) -> FloatTensor<Self> {
        composed::conv2d_forward::<Self>(x, weight, bias, settings, Self::composed_conv())
    }

    /// Convolution backward for `grad_out = ∂L/∂output`; `output` is the forward's output,
    /// given when `settings.relu` (the ReLU's gradient is zero where it is not positive).
    ///
    /// # Panics
    /// If `settings.relu` and `output` is `None`.
    fn fused_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        output: Option<FloatTensor<Self>>,
        settings: ConvSettings,
        grad_out: FloatTensor<Self>,
    ) -> ConvGrads<Self> {
        composed::conv2d_backward::<Self>(
            x,
            weight,
            bias,
            output,
            settings,
            grad_out,
            Self::composed_conv(),
        )
    }

    /// A convolution `conv2d(x, weight) + bias` with `stride` and zero `padding` by an
    /// implicit-GEMM kernel ([`ComposedConv::Implicit`]): cubek's tensor-core convolution on
    /// the CUDA and wgpu backends (`daam::implicit`), run as one fusion op, which never writes
    /// the unfolded input. The default, and the cubecl backends where that kernel does not take
    /// the shapes (no tensor cores, as lavapipe), compute [`crate::conv_gemm::conv2d_gemm`].
    /// [`crate::conv_implicit`] builds every convolution and gradient of that route from this
    /// and the two methods below.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, in_channels, height, width]`
    /// - `weight`: `[out_channels, in_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
    /// - output: `[batch_size, out_channels, (height + 2·padding_h − kernel_h) / stride_h + 1,
    ///   …]`
    fn implicit_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        composed::composed_implicit_conv2d::<Self>(x, weight, bias, stride, padding)
    }

    /// The data and weight gradients `(∂L/∂x, ∂L/∂weight)` of a stride-1
    /// [`Self::implicit_conv2d`] for `grad_out = ∂L/∂output`, by the same kernels (the default:
    /// [`crate::conv_gemm::conv2d_gemm_backward`]).
    ///
    /// # Shapes
    /// - `x`, `weight`: as [`Self::implicit_conv2d`]; `grad_out`: its output's
    /// - output: `x`'s and `weight`'s
    fn implicit_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        padding: [usize; 2],
        grad_out: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed::composed_implicit_conv2d_backward::<Self>(x, weight, padding, grad_out)
    }

    /// The weight gradient alone of [`Self::implicit_conv2d`] with any `stride`, by the same
    /// kernels (the default: [`crate::conv_gemm::conv2d_gemm_weight_grad`]). Also a transposed
    /// convolution's weight gradient, with its output's gradient as `x` and its input as
    /// `grad_out` ([`crate::conv_implicit::conv_transpose2d_backward`]).
    ///
    /// # Shapes
    /// - `x`: `[batch_size, in_channels, height, width]`
    /// - `grad_out`: `[batch_size, out_channels, out_h, out_w]`, the convolution's output
    ///   shape (`x` may have rows and columns past the last window, which get no gradient)
    /// - output: `[out_channels, in_channels, kernel[0], kernel[1]]`
    fn implicit_conv2d_weight_grad(
        x: FloatTensor<Self>,
        grad_out: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        composed::composed_implicit_conv2d_weight_grad::<Self>(x, grad_out, kernel, stride, padding)
    }

    /// Scaled dot-product attention with grouped key/value heads
    /// ([`crate::kernel::attention`] on Flex; [`reference::scaled_dot_product_attention`]
    /// elsewhere).
    ///
    /// # Shapes
    /// - `q`: `[batch_size, seq_length, num_heads · head_dim]`
    /// - `k`, `v`: `[batch_size, seq_length, num_kv_heads · head_dim]`
    /// - output: `[batch_size, seq_length, num_heads · head_dim]`
    fn scaled_dot_product_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        settings: AttentionSettings,
    ) -> FloatTensor<Self> {
        composed::attention_forward::<Self>(q, k, v, settings)
    }

    /// Attention backward for `grad_out = ∂L/∂output`.
    fn scaled_dot_product_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        settings: AttentionSettings,
        grad_out: FloatTensor<Self>,
    ) -> AttentionGrads<Self> {
        composed::attention_backward::<Self>(q, k, v, settings, grad_out)
    }

    /// GroupNorm (+ ReLU) backward for `grad_out = ∂L/∂output`.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        settings: GroupNormSettings,
        grad_out: FloatTensor<Self>,
    ) -> GroupNormGrads<Self> {
        composed::group_norm_backward::<Self>(x, gamma, beta, settings, grad_out)
    }
}

/// Wraps a float primitive as a tensor.
pub(crate) fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The default implementations, from ordinary tensor ops; also the fallback of fused backends
/// for dtypes their kernels do not cover.
pub(crate) mod composed {
    use super::stacked_mixture::{self, MixtureRoute};
    use super::*;
    use crate::reduce::{mean_last, sum_last};
    use burn::tensor::activation::{relu, softmax};

    pub(crate) fn per_feature_forward<B: Backend>(
        x: FloatTensor<B>,
        mean_offset: FloatTensor<B>,
        scaled_variance: FloatTensor<B>,
        num_heads: usize,
        form: GaussianForm,
    ) -> DensityOutput<B> {
        let (output, weights) = reference::density_adaptive_attention(
            float::<B, 3>(x),
            float(mean_offset),
            float(scaled_variance),
            num_heads,
            form,
        );
        DensityOutput {
            output: output.into_primitive().tensor(),
            weights: weights.into_primitive().tensor(),
        }
    }

    /// The gradients of [`crate::kernel::per_feature`]'s header written out in tensor ops (no
    /// autodiff pass), the statistics recomputed from `x` as
    /// [`reference::density_adaptive_attention`] computes them and the weights read back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn per_feature_backward<B: Backend>(
        x: FloatTensor<B>,
        weights: FloatTensor<B>,
        mean_offset: FloatTensor<B>,
        scaled_variance: FloatTensor<B>,
        num_heads: usize,
        form: GaussianForm,
        grad_out: FloatTensor<B>,
    ) -> DensityGrads<B> {
        let x = float::<B, 3>(x);
        let [outer, axis, inner] = x.dims();
        let chunk = axis / num_heads;
        let heads = [outer, num_heads, chunk, inner];
        let x = x.reshape(heads);
        let weights = float::<B, 3>(weights).reshape(heads);
        let grad_out = float::<B, 3>(grad_out).reshape(heads);
        let per_head = |t: FloatTensor<B>| float::<B, 2>(t).reshape([1, num_heads, 1, inner]);
        let (delta, xi) = (per_head(mean_offset), per_head(scaled_variance));
        // Over the batch: `[num_heads, inner]`.
        let batch_sum = |t: Tensor<B, 4>| t.sum_dim(0).reshape([num_heads, inner]);

        let mean = x.clone().mean_dim(2);
        let raw_variance = x.clone().powi_scalar(2).mean_dim(2) - mean.clone().powi_scalar(2);
        let std = raw_variance
            .clone()
            .abs()
            .add_scalar(crate::kernel::per_feature::VARIANCE_FLOOR)
            .add_scalar(crate::kernel::per_feature::NORM_EPS)
            .sqrt();
        let y = (x.clone() - (mean.clone() + delta)) / std.clone();
        // w = exp(−y² / den), den = 2ξ or 2ξ².
        let denominator = match form {
            GaussianForm::Variance => xi.clone().mul_scalar(2.0),
            GaussianForm::StdDev => xi.clone().powi_scalar(2).mul_scalar(2.0),
        };
        let gxw = grad_out.clone() * x.clone() * weights.clone();
        // a = ∂L/∂y = g x w (−2y / den)
        let a = gxw.clone() * y.clone() * denominator.clone().recip().mul_scalar(-2.0);
        let sum_a = a.clone().sum_dim(2);
        let grad_std = -((a.clone() * y.clone()).sum_dim(2) / std.clone());
        let grad_raw_variance = grad_std * raw_variance.sign() / std.clone().mul_scalar(2.0);
        let grad_x = grad_out * weights + a / std.clone()
            - (sum_a.clone() / std.clone()).div_scalar(chunk as f64)
            + (x - mean) * grad_raw_variance.mul_scalar(2.0 / chunk as f64);
        let grad_denominator = batch_sum((gxw * y.powi_scalar(2)).sum_dim(2))
            / denominator.powi_scalar(2).reshape([num_heads, inner]);
        let xi = xi.reshape([num_heads, inner]);
        let grad_xi = match form {
            GaussianForm::Variance => grad_denominator.mul_scalar(2.0),
            GaussianForm::StdDev => grad_denominator * xi.mul_scalar(4.0),
        };
        DensityGrads {
            x: grad_x
                .reshape([outer, axis, inner])
                .into_primitive()
                .tensor(),
            mean_offset: (-batch_sum(sum_a / std)).into_primitive().tensor(),
            scale: grad_xi.into_primitive().tensor(),
        }
    }

    pub(crate) fn mixture_forward<B: Backend>(
        x: FloatTensor<B>,
        mean_offsets: FloatTensor<B>,
        c: FloatTensor<B>,
        num_heads: usize,
        eps: f64,
    ) -> DensityOutput<B> {
        let x = float::<B, 3>(x);
        let (mean_offsets, c) = (float::<B, 2>(mean_offsets), float::<B, 2>(c));
        let (output, weights) = match MixtureRoute::for_heads(x.dims()[1], num_heads) {
            MixtureRoute::Stacked => stacked_mixture::forward(x, mean_offsets, c, eps),
            MixtureRoute::PerHead => {
                reference::mixture_density_attention(x, mean_offsets, c, num_heads, eps)
            }
        };
        DensityOutput {
            output: output.into_primitive().tensor(),
            weights: weights.into_primitive().tensor(),
        }
    }

    pub(crate) fn mixture_backward<B: Backend>(
        x: FloatTensor<B>,
        mean_offsets: FloatTensor<B>,
        c: FloatTensor<B>,
        num_heads: usize,
        eps: f64,
        grad_out: FloatTensor<B>,
    ) -> DensityGrads<B> {
        let x = float::<B, 3>(x);
        let (mean_offsets, c) = (float::<B, 2>(mean_offsets), float::<B, 2>(c));
        let grad_out = float::<B, 3>(grad_out);
        let (grad_x, grad_m, grad_c) = match MixtureRoute::for_heads(x.dims()[1], num_heads) {
            MixtureRoute::Stacked => stacked_mixture::backward(x, mean_offsets, c, eps, grad_out),
            MixtureRoute::PerHead => {
                per_head_mixture_backward(x, mean_offsets, c, num_heads, eps, grad_out)
            }
        };
        DensityGrads {
            x: grad_x.into_primitive().tensor(),
            mean_offset: grad_m.into_primitive().tensor(),
            scale: grad_c.into_primitive().tensor(),
        }
    }

    /// The gradients of [`reference::mixture_density_attention`] written out one head at a time:
    /// `(∂L/∂x, ∂L/∂m, ∂L/∂c)`.
    pub(crate) fn per_head_mixture_backward<B: Backend>(
        x: Tensor<B, 3>,
        mean_offsets: Tensor<B, 2>,
        c: Tensor<B, 2>,
        num_heads: usize,
        eps: f64,
        grad_out: Tensor<B, 3>,
    ) -> (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 2>) {
        let [_, axis, _] = x.dims();
        let [_, num_gaussians] = mean_offsets.dims();
        let chunks = crate::kernel::HeadChunks { axis, num_heads };
        let mut grad_x = Vec::with_capacity(num_heads);
        let (mut grad_m, mut grad_c) = (Vec::new(), Vec::new());
        for h in 0..num_heads {
            let (start, len) = chunks.span(h);
            let x = x.clone().narrow(1, start, len);
            let g = grad_out.clone().narrow(1, start, len);
            // The forward's statistics, as `reference::mixture_density_attention` computes them.
            let (z, variance) = reference::centred_and_variance(x.clone(), eps);
            let gaussian = |i: usize| reference::gaussian(&mean_offsets, &c, h, i);
            let mut logit = z.zeros_like();
            // Σ_i p_i (z − m_i), p_i = 1 / c_i²: ∂ℓ/∂z = −that / V.
            let mut slope = z.zeros_like();
            for i in 0..num_gaussians {
                let (m, c) = gaussian(i);
                let t = z.clone() - m;
                logit = logit
                    - t.clone().powi_scalar(2)
                        / (c.clone().powi_scalar(2).mul_scalar(2.0) * variance.clone());
                slope = slope + t / c.powi_scalar(2);
            }
            let mixture = burn::tensor::activation::softmax(logit.clone(), 1);
            // e = ∂L/∂ℓ (softmax backward along the chunk).
            let gx = g.clone() * x;
            let e = mixture.clone() * (gx.clone() - (mixture.clone() * gx).sum_dim(1));
            let e_over_v = e.clone() / variance.clone();
            let grad_z = -(e_over_v.clone() * slope);
            // ∂L/∂V = Σ e Q / (2V²) with Q = Σ p_i (z − m_i)² = −2Vℓ.
            let grad_variance = -(e_over_v.clone() * logit).sum_dim(1);
            let mut gx = g * mixture + grad_z.clone() - grad_z.mean_dim(1);
            if len > 1 {
                gx = gx + z.clone() * grad_variance.mul_scalar(2.0 / (len - 1) as f64);
            }
            grad_x.push(gx);
            // ∂L/∂m_i = Σ e p_i (z − m_i) / V,  ∂L/∂c_i = Σ e (z − m_i)² / (V c_i³).
            for i in 0..num_gaussians {
                let (m, c) = gaussian(i);
                let t = z.clone() - m;
                let weighted = e_over_v.clone() * t.clone();
                grad_m.push(weighted.clone().sum().reshape([1, 1, 1]) / c.clone().powi_scalar(2));
                grad_c.push((weighted * t).sum().reshape([1, 1, 1]) / c.powi_scalar(3));
            }
        }
        let per_gaussian =
            |grads: Vec<Tensor<B, 3>>| Tensor::cat(grads, 0).reshape([num_heads, num_gaussians]);
        (
            Tensor::cat(grad_x, 1),
            per_gaussian(grad_m),
            per_gaussian(grad_c),
        )
    }

    /// The convolution without its ReLU.
    fn apply_conv<B: Backend>(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Tensor<B, 1>,
        s: ConvSettings,
        how: ComposedConv,
    ) -> Tensor<B, 4> {
        match (s.transposed, how) {
            // `conv2d_forward` runs Implicit by `conv_implicit`; were it to come here, the
            // matrix products compute the same function.
            (None, ComposedConv::Gemm | ComposedConv::Implicit) => {
                crate::conv_gemm::conv2d_gemm(x, weight, Some(bias), s.stride, s.padding)
            }
            (None, ComposedConv::Backend) => burn::tensor::module::conv2d(
                x,
                weight,
                Some(bias),
                burn::tensor::ops::ConvOptions::new(s.stride, s.padding, [1, 1], 1),
            ),
            (Some(padding_out), ComposedConv::Backend) => burn::tensor::module::conv_transpose2d(
                x,
                weight,
                Some(bias),
                burn::tensor::ops::ConvTransposeOptions::new(
                    s.stride,
                    s.padding,
                    padding_out,
                    [1, 1],
                    1,
                ),
            ),
            (Some(padding_out), ComposedConv::Gemm | ComposedConv::Implicit) => {
                crate::conv_gemm::conv_transpose2d_gemm(
                    x,
                    weight,
                    Some(bias),
                    s.stride,
                    s.padding,
                    padding_out,
                )
            }
        }
    }

    /// [`DaamBackend::implicit_conv2d`]'s default: [`crate::conv_gemm::conv2d_gemm`].
    pub(crate) fn composed_implicit_conv2d<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<B> {
        crate::conv_gemm::conv2d_gemm(
            float::<B, 4>(x),
            float(weight),
            bias.map(float),
            stride,
            padding,
        )
        .into_primitive()
        .tensor()
    }

    /// [`DaamBackend::implicit_conv2d_weight_grad`]'s default:
    /// [`crate::conv_gemm::conv2d_gemm_weight_grad`].
    pub(crate) fn composed_implicit_conv2d_weight_grad<B: Backend>(
        x: FloatTensor<B>,
        grad_out: FloatTensor<B>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<B> {
        crate::conv_gemm::conv2d_gemm_weight_grad(
            float::<B, 4>(x),
            float(grad_out),
            kernel,
            stride,
            padding,
        )
        .into_primitive()
        .tensor()
    }

    /// [`DaamBackend::implicit_conv2d_backward`]'s default:
    /// [`crate::conv_gemm::conv2d_gemm_backward`]'s data and weight gradients.
    pub(crate) fn composed_implicit_conv2d_backward<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        padding: [usize; 2],
        grad_out: FloatTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let grads = crate::conv_gemm::conv2d_gemm_backward(
            float::<B, 4>(x),
            float(weight),
            [1, 1],
            padding,
            float(grad_out),
        );
        (
            grads.x.into_primitive().tensor(),
            grads.weight.into_primitive().tensor(),
        )
    }

    pub(crate) fn conv2d_forward<B: DaamBackend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        s: ConvSettings,
        how: ComposedConv,
    ) -> FloatTensor<B> {
        let (x, weight, bias) = (float::<B, 4>(x), float(weight), float(bias));
        let y = match (how, s.transposed) {
            (ComposedConv::Implicit, None) => {
                crate::conv_implicit::conv2d(x, weight, Some(bias), s.stride, s.padding)
            }
            (ComposedConv::Implicit, Some(padding_out)) => crate::conv_implicit::conv_transpose2d(
                x,
                weight,
                Some(bias),
                s.stride,
                s.padding,
                padding_out,
            ),
            _ => apply_conv(x, weight, bias, s, how),
        };
        let y = if s.relu { relu(y) } else { y };
        y.into_primitive().tensor()
    }

    pub(crate) fn conv2d_backward<B: DaamBackend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: FloatTensor<B>,
        output: Option<FloatTensor<B>>,
        s: ConvSettings,
        grad_out: FloatTensor<B>,
        how: ComposedConv,
    ) -> ConvGrads<B> {
        let mut grad_out = float::<B, 4>(grad_out);
        if s.relu {
            let output = float::<B, 4>(output.expect("a fused ReLU's backward needs the output"));
            grad_out = grad_out.mask_fill(output.lower_equal_elem(0.0), 0.0);
        }
        if how != ComposedConv::Backend {
            // Written out: no autodiff pass of its own (see `DaamBackend::fused_kernels`).
            let (x, weight) = (float::<B, 4>(x), float::<B, 4>(weight));
            let grads = match (how, s.transposed) {
                (ComposedConv::Implicit, None) => {
                    crate::conv_implicit::conv2d_backward(x, weight, s.stride, s.padding, grad_out)
                }
                (ComposedConv::Implicit, Some(padding_out)) => {
                    crate::conv_implicit::conv_transpose2d_backward(
                        x,
                        weight,
                        s.stride,
                        s.padding,
                        padding_out,
                        grad_out,
                    )
                }
                (_, None) => {
                    crate::conv_gemm::conv2d_gemm_backward(x, weight, s.stride, s.padding, grad_out)
                }
                (_, Some(padding_out)) => crate::conv_gemm::conv_transpose2d_gemm_backward(
                    x,
                    weight,
                    s.stride,
                    s.padding,
                    padding_out,
                    grad_out,
                ),
            };
            return ConvGrads {
                x: grads.x.into_primitive().tensor(),
                weight: grads.weight.into_primitive().tensor(),
                bias: grads.bias.into_primitive().tensor(),
            };
        }
        let x = Tensor::<Autodiff<B>, 4>::from_inner(float(x)).require_grad();
        let weight = Tensor::<Autodiff<B>, 4>::from_inner(float(weight)).require_grad();
        let bias = Tensor::<Autodiff<B>, 1>::from_inner(float(bias)).require_grad();
        let output = apply_conv(x.clone(), weight.clone(), bias.clone(), s, how);
        let grads = (output * Tensor::from_inner(grad_out)).sum().backward();
        ConvGrads {
            x: x.grad(&grads)
                .expect("x is tracked")
                .into_primitive()
                .tensor(),
            weight: weight
                .grad(&grads)
                .expect("weight is tracked")
                .into_primitive()
                .tensor(),
            bias: bias
                .grad(&grads)
                .expect("bias is tracked")
                .into_primitive()
                .tensor(),
        }
    }

    pub(crate) fn attention_forward<B: Backend>(
        q: FloatTensor<B>,
        k: FloatTensor<B>,
        v: FloatTensor<B>,
        s: AttentionSettings,
    ) -> FloatTensor<B> {
        reference::scaled_dot_product_attention(
            float::<B, 3>(q),
            float(k),
            float(v),
            s.num_heads,
            s.num_kv_heads,
        )
        .into_primitive()
        .tensor()
    }

    /// The attention's gradients written out (no autodiff pass), in
    /// [`reference::scaled_dot_product_attention`]'s layout (each key/value head with its
    /// group's query heads stacked along the rows): with `P = softmax(S)`, `S = QKᵀ/√d`,
    /// `∂V = Pᵀ∂O`, `∂S = P ⊙ (∂O Vᵀ − rowsum(∂O Vᵀ ⊙ P))`, `∂Q = ∂S K/√d`, `∂K = ∂Sᵀ Q/√d`.
    pub(crate) fn attention_backward<B: Backend>(
        q: FloatTensor<B>,
        k: FloatTensor<B>,
        v: FloatTensor<B>,
        s: AttentionSettings,
        grad_out: FloatTensor<B>,
    ) -> AttentionGrads<B> {
        let q = float::<B, 3>(q);
        let [batch_size, seq_length, width] = q.dims();
        let (num_heads, num_kv_heads) = (s.num_heads, s.num_kv_heads);
        let head_dim = width / num_heads;
        let group = num_heads / num_kv_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        // [batch, seq, heads · head_dim] ↔ [batch, kv heads, group · seq, head_dim]
        let split_q = |t: Tensor<B, 3>| {
            t.reshape([batch_size, seq_length, num_heads, head_dim])
                .swap_dims(1, 2)
                .reshape([batch_size, num_kv_heads, group * seq_length, head_dim])
        };
        let merge_q = |t: Tensor<B, 4>| {
            t.reshape([batch_size, num_heads, seq_length, head_dim])
                .swap_dims(1, 2)
                .reshape([batch_size, seq_length, width])
        };
        // [batch, seq, kv heads · head_dim] ↔ [batch, kv heads, seq, head_dim]
        let split_kv = |t: FloatTensor<B>| {
            float::<B, 3>(t)
                .reshape([batch_size, seq_length, num_kv_heads, head_dim])
                .swap_dims(1, 2)
        };
        let merge_kv = |t: Tensor<B, 4>| {
            t.swap_dims(1, 2)
                .reshape([batch_size, seq_length, num_kv_heads * head_dim])
        };
        let (q, k, v) = (split_q(q), split_kv(k), split_kv(v));
        let grad_out = split_q(float::<B, 3>(grad_out));
        let probabilities = softmax(
            q.clone()
                .matmul(k.clone().swap_dims(2, 3))
                .mul_scalar(scale),
            3,
        );
        let grad_v = probabilities
            .clone()
            .swap_dims(2, 3)
            .matmul(grad_out.clone());
        let grad_p = grad_out.matmul(v.swap_dims(2, 3));
        let grad_scores =
            probabilities.clone() * (grad_p.clone() - (grad_p * probabilities).sum_dim(3));
        let grad_q = grad_scores.clone().matmul(k).mul_scalar(scale);
        let grad_k = grad_scores.swap_dims(2, 3).matmul(q).mul_scalar(scale);
        AttentionGrads {
            q: merge_q(grad_q).into_primitive().tensor(),
            k: merge_kv(grad_k).into_primitive().tensor(),
            v: merge_kv(grad_v).into_primitive().tensor(),
        }
    }

    /// [`reference::group_norm`], or [`reference::affine`] without normalisation.
    fn composed_group_norm<B: Backend>(
        x: Tensor<B, 3>,
        gamma: Tensor<B, 1>,
        beta: Tensor<B, 1>,
        s: GroupNormSettings,
    ) -> Tensor<B, 3> {
        if s.normalize {
            reference::group_norm(x, gamma, beta, s.groups, s.eps, s.relu)
        } else {
            reference::affine(x, gamma, beta, s.relu)
        }
    }

    pub(crate) fn group_norm_forward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        s: GroupNormSettings,
    ) -> FloatTensor<B> {
        composed_group_norm(float::<B, 3>(x), float(gamma), float(beta), s)
            .into_primitive()
            .tensor()
    }

    /// GroupNorm's (or the affine map's) gradients written out, no autodiff pass: with
    /// `x̂ = (x − μ_g) / σ_g` and `g` the output gradient (zero where a ReLU cut the output),
    /// `∂β_c = Σ g`, `∂γ_c = Σ g·x̂`, and with `h = γ_c·g`,
    /// `∂x = (h − mean_g(h) − x̂ · mean_g(h·x̂)) / σ_g` (means over each group's channels and
    /// positions). The statistics are recomputed from `x` as the forward computes them.
    pub(crate) fn group_norm_backward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        s: GroupNormSettings,
        grad_out: FloatTensor<B>,
    ) -> GroupNormGrads<B> {
        let x = float::<B, 3>(x);
        let (gamma, beta) = (float::<B, 1>(gamma), float::<B, 1>(beta));
        let grad_out = float::<B, 3>(grad_out);
        let [batch_size, channels, spatial] = x.dims();
        let per_channel = |t: Tensor<B, 1>| t.reshape([1, channels, 1]);
        // `x̂` and σ per group (`[batch, groups, 1]`), or `x` itself without normalisation.
        let (normalized, std) = if s.normalize {
            let grouped = x.reshape([batch_size, s.groups, channels / s.groups * spatial]);
            let centered = grouped.clone() - mean_last(grouped);
            let std = mean_last(centered.clone().powi_scalar(2))
                .add_scalar(s.eps)
                .sqrt();
            let normalized = (centered / std.clone()).reshape([batch_size, channels, spatial]);
            (normalized, Some(std))
        } else {
            (x, None)
        };
        let grad_out = if s.relu {
            let y = normalized.clone() * per_channel(gamma.clone()) + per_channel(beta);
            grad_out.mask_fill(y.lower_equal_elem(0.0), 0.0)
        } else {
            grad_out
        };
        // Per sample and channel, `[batch, channels, 1]`: Σ g and Σ g x̂ over the positions.
        // They give β's and γ's gradients and, weighted by γ, the group means of h = γ g and
        // of h x̂ that the input's gradient needs: two passes over the tensor instead of four.
        let sum_g = sum_last(grad_out.clone());
        let sum_gx = sum_last(grad_out.clone() * normalized.clone());
        let grad_beta = sum_g.clone().sum_dim(0).reshape([channels]);
        let grad_gamma = sum_gx.clone().sum_dim(0).reshape([channels]);
        let h = grad_out * per_channel(gamma.clone());
        let grad_x = match std {
            None => h,
            Some(std) => {
                let group_size = channels / s.groups;
                let grouped = [batch_size, s.groups, group_size * spatial];
                // Σ over a group's channels of γ_c · (a per-channel sum), over its size.
                let group_mean = |sums: Tensor<B, 3>| {
                    (sums * per_channel(gamma.clone()))
                        .reshape([batch_size, s.groups, group_size])
                        .sum_dim(2)
                        .div_scalar((group_size * spatial) as f64)
                };
                let (mean_h, projection) = (group_mean(sum_g), group_mean(sum_gx));
                ((h.reshape(grouped) - mean_h - normalized.reshape(grouped) * projection) / std)
                    .reshape([batch_size, channels, spatial])
            }
        };
        GroupNormGrads {
            x: grad_x.into_primitive().tensor(),
            gamma: grad_gamma.into_primitive().tensor(),
            beta: grad_beta.into_primitive().tensor(),
        }
    }
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod cube {
    //! burn's cubecl backends (CUDA, wgpu) run the composed defaults until a cubecl kernel lands
    //! (see BENCHMARKS.md); under `Autodiff` each op is one node with written-out gradients
    //! ([`DaamBackend::fused_kernels`]).
    //!
    //! Convolutions: built without cubecl's `autotune`, burn-cubecl 0.21 runs them as direct
    //! convolutions, 50× behind PyTorch on the VQ-VAE's `paper` preset on an H200 (GPU session
    //! 11), so that build composes them from matrix products ([`crate::conv_gemm`]); with
    //! autotune, burn's own (tuned) convolution. `DAAM_CONV=gemm|backend` overrides either.
    use burn::tensor::ops::FloatTensor;

    use super::composed::{
        composed_implicit_conv2d, composed_implicit_conv2d_backward,
        composed_implicit_conv2d_weight_grad,
    };
    use super::implicit::FusedCube;
    use crate::conv_gemm::ComposedConv;

    /// The composed convolution for this build, unless `DAAM_CONV` says otherwise.
    pub(super) fn cube_conv() -> ComposedConv {
        static CHOICE: std::sync::OnceLock<ComposedConv> = std::sync::OnceLock::new();
        let default = if cfg!(feature = "autotune") {
            ComposedConv::Backend
        } else {
            ComposedConv::Gemm
        };
        *CHOICE.get_or_init(|| ComposedConv::from_env_or(default))
    }

    /// `impl DaamBackend` with [`cube_conv`] for each listed backend.
    macro_rules! cube_backends {
        ($($backend:ty),* $(,)?) => {
            $(impl super::DaamBackend for $backend {
                fn composed_conv() -> ComposedConv {
                    cube_conv()
                }

                fn lookup_grad_by_product() -> bool {
                    crate::lookup::lookup_from_env().unwrap_or(true)
                }

                fn implicit_conv2d(
                    x: FloatTensor<Self>,
                    weight: FloatTensor<Self>,
                    bias: Option<FloatTensor<Self>>,
                    stride: [usize; 2],
                    padding: [usize; 2],
                ) -> FloatTensor<Self> {
                    if x.dtype != weight.dtype {
                        // Mixed precision: the matrix products cast as they go.
                        return composed_implicit_conv2d::<Self>(
                            x, weight, bias, stride, padding,
                        );
                    }
                    <Self as FusedCube>::conv2d(x, weight, bias, stride, padding)
                }

                fn implicit_conv2d_backward(
                    x: FloatTensor<Self>,
                    weight: FloatTensor<Self>,
                    padding: [usize; 2],
                    grad_out: FloatTensor<Self>,
                ) -> (FloatTensor<Self>, FloatTensor<Self>) {
                    if x.dtype != weight.dtype || grad_out.dtype != weight.dtype {
                        return composed_implicit_conv2d_backward::<Self>(
                            x, weight, padding, grad_out,
                        );
                    }
                    <Self as FusedCube>::conv2d_backward(x, weight, padding, grad_out)
                }

                fn implicit_conv2d_weight_grad(
                    x: FloatTensor<Self>,
                    grad_out: FloatTensor<Self>,
                    kernel: [usize; 2],
                    stride: [usize; 2],
                    padding: [usize; 2],
                ) -> FloatTensor<Self> {
                    if x.dtype != grad_out.dtype {
                        return composed_implicit_conv2d_weight_grad::<Self>(
                            x, grad_out, kernel, stride, padding,
                        );
                    }
                    <Self as FusedCube>::conv2d_weight_grad(x, grad_out, kernel, stride, padding)
                }
            })*
        };
    }

    #[cfg(feature = "cuda")]
    cube_backends!(
        crate::device::Cuda<f32>,
        crate::device::Cuda<burn::tensor::f16>,
        crate::device::Cuda<burn::tensor::bf16>,
    );
    // wgpu: f32 only (WGSL has no bf16, and f16 needs an optional adapter feature).
    #[cfg(feature = "wgpu")]
    cube_backends!(crate::device::Wgpu<f32>);
}
