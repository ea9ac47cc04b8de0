//! Multi-head Mixture-of-Densities attention (paper App. B, Alg. 2; the authors'
//! `MultiHeadDensityAdaptiveAttention`, `reference/daam-reference.md` §2).

use burn::config::Config;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::backend::{float, DaamBackend};
use crate::density_adaptive_attention::DensityAttentionOutput;

/// How the Gaussians' scales `c` start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ScaleInit {
    /// `c = exp(n)`, `n ~ N(0, 1)` from a seeded generator (the authors' code, GAA `145d1bc`).
    LogNormal {
        /// Seed of the generator; the same seed gives the same `c` on every backend.
        seed: u64,
    },
    /// Every `c` equal to `value`.
    Constant {
        /// The initial scale (positive).
        value: f64,
    },
}

/// Configuration of a [`MixtureDensityAttention`] layer.
#[derive(Config, Debug)]
pub struct MixtureDensityAttentionConfig {
    /// Axis the densities are taken and normalised along (`norm_axis`); 1 is the channel axis of
    /// `[batch_size, channels, height, width]`.
    pub norm_axis: usize,
    /// Heads splitting the norm axis into contiguous chunks, the last one taking the remainder.
    /// Default 4.
    #[config(default = 4)]
    pub num_heads: usize,
    /// Gaussians per head (N). Default 4.
    #[config(default = 4)]
    pub num_gaussians: usize,
    /// ε added to the (unbiased) variance. Default 1e-8 (authors' code).
    #[config(default = 1e-8)]
    pub eps: f64,
    /// Initial scales `c`. Default log-normal with seed 0.
    #[config(default = "ScaleInit::LogNormal { seed: 0 }")]
    pub scale_init: ScaleInit,
}

/// Multi-head Mixture-of-Densities attention: a product of Gaussians per head, normalised along
/// the norm axis, multiplying the input.
///
/// Per head `h` (a chunk along `norm_axis`) and for every other index, over the chunk:
///
/// ```text
/// μ = mean(x)   σ² = unbiased var(x) + ε   (σ² = ε for a chunk of one position)
/// ℓ = Σ_i −(x − μ − m_i)² / (2 c_i² σ²)
/// mixture = softmax_norm_axis(ℓ)        output = x ⊙ mixture
/// ```
///
/// The softmax equals the authors' product of normalised Gaussians divided by its sum (the
/// `1/sqrt(2πc²)` factors cancel), computed stably. No residual here: [`crate::DensityBlock`]
/// adds it. Parameters: `2 · num_heads · num_gaussians` scalars.
#[derive(Module, Debug)]
pub struct MixtureDensityAttention<B: Backend> {
    /// Mean offsets m, `[num_heads, num_gaussians]`, initialised to 0.
    pub mean_offsets: Param<Tensor<B, 2>>,
    /// Scales c, `[num_heads, num_gaussians]`.
    pub c: Param<Tensor<B, 2>>,
    /// Axis the densities are taken along.
    pub norm_axis: usize,
    /// ε added to the variance.
    pub eps: f64,
}

impl MixtureDensityAttentionConfig {
    /// Builds the layer.
    ///
    /// # Panics
    /// If `num_heads` or `num_gaussians` is zero, or a constant scale is not positive.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MixtureDensityAttention<B> {
        assert!(
            self.num_heads > 0 && self.num_gaussians > 0,
            "num_heads ({}) and num_gaussians ({}) must be positive",
            self.num_heads,
            self.num_gaussians
        );
        let shape = [self.num_heads, self.num_gaussians];
        let c = match self.scale_init {
            ScaleInit::LogNormal { seed } => {
                let mut rng = StdRng::seed_from_u64(seed);
                let normal = TensorData::random::<f32, _, _>(
                    shape,
                    Distribution::Normal(0.0, 1.0),
                    &mut rng,
                );
                Param::from_tensor(Tensor::<B, 2>::from_data(normal, device).exp())
            }
            ScaleInit::Constant { value } => {
                assert!(value > 0.0, "constant scale ({value}) must be positive");
                Initializer::Constant { value }.init(shape, device)
            }
        };
        MixtureDensityAttention {
            mean_offsets: Initializer::Zeros.init(shape, device),
            c,
            norm_axis: self.norm_axis,
            eps: self.eps,
        }
    }
}

impl<B: DaamBackend> MixtureDensityAttention<B> {
    /// Applies the mixture weights along `norm_axis`.
    ///
    /// # Shapes
    /// - `x`: any rank `D`, e.g. `[batch_size, channels, height, width]` with `norm_axis = 1`
    /// - output: same as `x`
    ///
    /// # Panics
    /// If `norm_axis >= D`, or `num_heads` exceeds the norm axis length.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.forward_with_weights(x).output
    }

    /// [`forward`](Self::forward), also returning the mixture weights.
    ///
    /// # Shapes
    /// - `x`, `output`, `weights`: any rank `D`, all the same shape
    ///
    /// # Panics
    /// As [`forward`](Self::forward).
    pub fn forward_with_weights<const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> DensityAttentionOutput<B, D> {
        let dims = x.dims();
        let axis = self.norm_axis;
        assert!(
            axis < D,
            "MixtureDensityAttention: norm_axis ({axis}) is out of range for a rank-{D} input"
        );
        let [num_heads, _] = self.mean_offsets.dims();
        assert!(
            num_heads <= dims[axis],
            "MixtureDensityAttention: num_heads ({num_heads}) exceeds the length of norm axis \
             {axis} ({})",
            dims[axis]
        );
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let x = x.reshape([outer, dims[axis], inner]); // [outer, axis, inner]
        let fused = B::mixture_density_attention(
            x.into_primitive().tensor(),
            self.mean_offsets.val().into_primitive().tensor(),
            self.c.val().into_primitive().tensor(),
            num_heads,
            self.eps,
        );
        DensityAttentionOutput {
            output: float::<B, 3>(fused.output).reshape(dims),
            weights: float::<B, 3>(fused.weights).reshape(dims),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;

    #[test]
    fn parameter_count_matches_table_3() {
        let module = MixtureDensityAttentionConfig::new(2)
            .with_num_heads(8)
            .with_num_gaussians(4)
            .init::<TestBackend>(&Default::default());
        assert_eq!(module.num_params(), 64);
    }

    #[test]
    fn weights_sum_to_one_per_head_chunk() {
        let device = Default::default();
        let module = MixtureDensityAttentionConfig::new(1)
            .with_num_heads(3)
            .with_num_gaussians(2)
            .init::<TestBackend>(&device);
        let x =
            Tensor::<TestBackend, 3>::random([2, 7, 5], Distribution::Normal(0.0, 1.0), &device);
        let w = module.forward_with_weights(x).weights;
        // Chunks along axis 1: [0, 2), [2, 4), [4, 7).
        for (start, len) in [(0, 2), (2, 2), (4, 3)] {
            let sums = w.clone().narrow(1, start, len).sum_dim(1).into_data();
            for s in sums.to_vec::<f32>().unwrap() {
                assert!((s - 1.0).abs() < 1e-5, "chunk at {start}: sum {s}");
            }
        }
    }

    #[test]
    fn same_seed_same_scales() {
        let device = Default::default();
        let config = MixtureDensityAttentionConfig::new(1);
        let a = config.init::<TestBackend>(&device).c.val().into_data();
        let b = config.init::<TestBackend>(&device).c.val().into_data();
        let other = config
            .clone()
            .with_scale_init(ScaleInit::LogNormal { seed: 1 })
            .init::<TestBackend>(&device)
            .c
            .val()
            .into_data();
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    #[should_panic(expected = "norm_axis (3) is out of range for a rank-3 input")]
    fn axis_out_of_range_panics() {
        let device = Default::default();
        let module = MixtureDensityAttentionConfig::new(3).init::<TestBackend>(&device);
        module.forward(Tensor::<TestBackend, 3>::zeros([2, 8, 4], &device));
    }

    #[test]
    #[should_panic(expected = "num_heads (4) exceeds the length of norm axis 1 (3)")]
    fn too_many_heads_panic() {
        let device = Default::default();
        let module = MixtureDensityAttentionConfig::new(1).init::<TestBackend>(&device);
        module.forward(Tensor::<TestBackend, 3>::zeros([2, 3, 4], &device));
    }
}
