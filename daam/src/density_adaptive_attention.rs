//! Per-feature multi-head Density Adaptive Attention (paper Alg. 1 and 3; the authors' `DAAM` /
//! `MultiHeadDAAM`, `reference/daam-reference.md` §1).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backend::{float, DaamBackend};
use crate::GaussianForm;

/// Configuration of a [`DensityAdaptiveAttention`].
///
/// The paper's DAAMv1 is `num_heads = 8`, DAAMv2 is `num_heads = 1` (Table 1, §1.4).
#[derive(Config, Debug)]
pub struct DensityAdaptiveAttentionConfig {
    /// Feature width `d_model` (D): one Gaussian per feature and head.
    pub d_model: usize,
    /// Heads splitting the sequence axis into contiguous equal chunks; must divide
    /// `seq_length`. Default 8 (DAAMv1).
    #[config(default = 8)]
    pub num_heads: usize,
    /// Initial scaled variance ξ (paper §1.4: 2). The mean offset δ starts at 0.
    #[config(default = 2.0)]
    pub initial_scaled_variance: f64,
    /// `exp(−y²/(2ξ))` (code, default) or `exp(−y²/(2ξ²))` (paper text).
    #[config(default = "GaussianForm::Variance")]
    pub form: GaussianForm,
}

/// Per-feature multi-head DAAM.
///
/// `num_heads` split the sequence axis into contiguous chunks of `G = seq_length / num_heads`
/// positions. For each batch item, head `h` and feature `d`, over the chunk's positions:
///
/// ```text
/// μ = mean(x)   var = |mean(x²) − μ²| + 1e-8   y = (x − (μ + δ[h,d])) / sqrt(var + 1e-5)
/// w = exp(−y² / (2 ξ[h,d]))                    output = x ⊙ w
/// ```
///
/// No residual and no normalisation of `w` (authors' code, `IEMOCAP/DAAMv1.py` L113–136).
/// Parameters: `2 · num_heads · d_model`.
#[derive(Module, Debug)]
pub struct DensityAdaptiveAttention<B: Backend> {
    /// Mean offset δ, `[num_heads, d_model]`, initialised to 0.
    pub mean_offset: Param<Tensor<B, 2>>,
    /// Scaled variance ξ (`c` in the authors' code), `[num_heads, d_model]`, initialised to 2.
    pub scaled_variance: Param<Tensor<B, 2>>,
    /// Heads splitting the sequence axis.
    pub num_heads: usize,
    /// Exponent form.
    #[module(skip)]
    pub form: GaussianForm,
}

/// The output of [`DensityAdaptiveAttention::forward_with_weights`].
#[derive(Debug, Clone)]
pub struct DensityAttentionOutput<B: Backend, const D: usize> {
    /// `x ⊙ w`.
    pub output: Tensor<B, D>,
    /// The density weights `w` (not tracked by autodiff), same shape: what the Importance
    /// Factor averages.
    pub weights: Tensor<B, D>,
}

impl DensityAdaptiveAttentionConfig {
    /// Builds the module with δ = 0 and ξ = `initial_scaled_variance`.
    ///
    /// # Panics
    /// If `d_model` or `num_heads` is zero, or the initial ξ is not positive.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DensityAdaptiveAttention<B> {
        assert!(
            self.d_model > 0 && self.num_heads > 0,
            "d_model ({}) and num_heads ({}) must be positive",
            self.d_model,
            self.num_heads
        );
        assert!(
            self.initial_scaled_variance > 0.0,
            "initial_scaled_variance ({}) must be positive",
            self.initial_scaled_variance
        );
        let shape = [self.num_heads, self.d_model];
        DensityAdaptiveAttention {
            mean_offset: Initializer::Zeros.init(shape, device),
            scaled_variance: Initializer::Constant {
                value: self.initial_scaled_variance,
            }
            .init(shape, device),
            num_heads: self.num_heads,
            form: self.form,
        }
    }
}

impl<B: DaamBackend> DensityAdaptiveAttention<B> {
    /// Applies the density weights.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, seq_length, d_model]`
    ///
    /// # Panics
    /// If `d_model` differs from the module's, or `num_heads` does not divide `seq_length`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_with_weights(x).output
    }

    /// [`forward`](Self::forward), also returning the weights `w`.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - `output`, `weights`: `[batch_size, seq_length, d_model]`
    ///
    /// # Panics
    /// As [`forward`](Self::forward).
    pub fn forward_with_weights(&self, x: Tensor<B, 3>) -> DensityAttentionOutput<B, 3> {
        let [_, seq_length, d_model] = x.dims();
        let [num_heads, expected_d_model] = self.mean_offset.dims();
        assert_eq!(
            d_model, expected_d_model,
            "DensityAdaptiveAttention: input d_model ({d_model}) differs from the module's \
             ({expected_d_model})"
        );
        assert!(
            seq_length % num_heads == 0,
            "DensityAdaptiveAttention: num_heads ({num_heads}) must divide seq_length \
             ({seq_length})"
        );
        let fused = B::density_adaptive_attention(
            x.into_primitive().tensor(),
            self.mean_offset.val().into_primitive().tensor(),
            self.scaled_variance.val().into_primitive().tensor(),
            num_heads,
            self.form,
        );
        DensityAttentionOutput {
            output: float(fused.output),
            weights: float(fused.weights),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::module::Module;

    #[test]
    fn parameter_counts_match_the_paper() {
        let device = Default::default();
        for (heads, d_model, expected) in [(8, 1024, 16_384), (8, 5120, 81_920), (1, 1024, 2_048)] {
            let module = DensityAdaptiveAttentionConfig::new(d_model)
                .with_num_heads(heads)
                .init::<TestBackend>(&device);
            assert_eq!(module.num_params(), expected, "H={heads}, D={d_model}");
        }
    }

    #[test]
    fn initial_weights_are_symmetric_gaussians() {
        // With δ = 0 the weight of a position depends only on its distance to the chunk mean.
        let device = Default::default();
        let module = DensityAdaptiveAttentionConfig::new(1)
            .with_num_heads(1)
            .init::<TestBackend>(&device);
        let x = Tensor::<TestBackend, 3>::from_floats([[[-1.0], [0.0], [1.0]]], &device);
        let w = module
            .forward_with_weights(x)
            .weights
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!((w[0] - w[2]).abs() < 1e-6 && w[1] == 1.0, "{w:?}");
        // var = 2/3, y = ±1/sqrt(2/3 + 1e-8 + 1e-5), w = exp(−y²/4).
        let y2 = 1.0 / (2.0f64 / 3.0 + 1e-8 + 1e-5);
        assert!((f64::from(w[0]) - (-y2 / 4.0).exp()).abs() < 1e-6);
    }

    #[test]
    #[should_panic(expected = "num_heads (8) must divide seq_length (12)")]
    fn non_dividing_heads_panic() {
        let device = Default::default();
        let module = DensityAdaptiveAttentionConfig::new(4).init::<TestBackend>(&device);
        module.forward(Tensor::zeros([2, 12, 4], &device));
    }

    #[test]
    #[should_panic(expected = "input d_model (5) differs from the module's (4)")]
    fn wrong_d_model_panics() {
        let device = Default::default();
        let module = DensityAdaptiveAttentionConfig::new(4).init::<TestBackend>(&device);
        module.forward(Tensor::zeros([2, 16, 5], &device));
    }
}
