//! A stack of mixture layers with residuals (paper App. B, Alg. 4; the authors' `DensityBlock`
//! / `GaussianBlock`).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backend::DaamBackend;
use crate::mixture_density_attention::{
    MixtureDensityAttention, MixtureDensityAttentionConfig, ScaleInit,
};

/// Configuration of a [`DensityBlock`]: one [`MixtureDensityAttentionConfig`] per layer.
#[derive(Config, Debug)]
pub struct DensityBlockConfig {
    /// The layers, applied in order, each with its residual.
    pub layers: Vec<MixtureDensityAttentionConfig>,
}

impl DensityBlockConfig {
    /// `num_layers` identical layers. A log-normal scale seed `s` becomes `s + j` for layer `j`,
    /// so the layers start different.
    pub fn repeated(layer: MixtureDensityAttentionConfig, num_layers: usize) -> Self {
        let layers = (0..num_layers)
            .map(|j| match layer.scale_init {
                ScaleInit::LogNormal { seed } => {
                    layer.clone().with_scale_init(ScaleInit::LogNormal {
                        seed: seed + j as u64,
                    })
                }
                ScaleInit::Constant { .. } => layer.clone(),
            })
            .collect();
        Self { layers }
    }

    /// Builds the block.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DensityBlock<B> {
        DensityBlock {
            layers: self.layers.iter().map(|layer| layer.init(device)).collect(),
        }
    }
}

/// `x ← layer(x) + x` for each [`MixtureDensityAttention`] layer.
///
/// The residual matters: the mixture weights sum to one along each head's chunk, so
/// `layer(x)` alone shrinks activations by about the chunk length.
#[derive(Module, Debug)]
pub struct DensityBlock<B: Backend> {
    /// The mixture layers.
    pub layers: Vec<MixtureDensityAttention<B>>,
}

impl<B: DaamBackend> DensityBlock<B> {
    /// Applies every layer with its residual.
    ///
    /// # Shapes
    /// - `x`: any rank `D`, e.g. `[batch_size, channels, height, width]`
    /// - output: same as `x`
    ///
    /// # Panics
    /// As [`MixtureDensityAttention::forward`].
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.layers
            .iter()
            .fold(x, |x, layer| layer.forward(x.clone()) + x)
    }

    /// [`forward`](Self::forward), also returning each layer's mixture weights.
    ///
    /// # Shapes
    /// - `x`, output, each weight tensor: any rank `D`, all the same shape
    pub fn forward_with_weights<const D: usize>(
        &self,
        x: Tensor<B, D>,
    ) -> (Tensor<B, D>, Vec<Tensor<B, D>>) {
        let mut weights = Vec::with_capacity(self.layers.len());
        let mut x = x;
        for layer in &self.layers {
            let out = layer.forward_with_weights(x.clone());
            weights.push(out.weights);
            x = out.output + x;
        }
        (x, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;

    #[test]
    fn layers_start_different_and_count_parameters() {
        let config = DensityBlockConfig::repeated(
            MixtureDensityAttentionConfig::new(1)
                .with_num_heads(4)
                .with_num_gaussians(3),
            3,
        );
        let block = config.init::<TestBackend>(&Default::default());
        assert_eq!(block.num_params(), 3 * 2 * 4 * 3);
        let c0 = block.layers[0].c.val().into_data();
        assert_ne!(c0, block.layers[1].c.val().into_data());
    }
}
