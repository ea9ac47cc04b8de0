//! The VQ-VAE: encoder → vector quantizer → decoder.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use daam::DaamBackend;

use super::{
    Decoder, DecoderConfig, Encoder, EncoderConfig, QuantizerOutput, VectorQuantizer,
    VectorQuantizerConfig,
};

/// Configuration of a [`VqVae`].
#[derive(Config, Debug)]
pub struct VqVaeConfig {
    /// The encoder.
    pub encoder: EncoderConfig,
    /// The quantizer.
    pub quantizer: VectorQuantizerConfig,
    /// The decoder.
    pub decoder: DecoderConfig,
}

/// A VQ-VAE with DAAM residual blocks (blog "Advanced Applications"; DESIGN.md "vqvae").
#[derive(Module, Debug)]
pub struct VqVae<B: Backend> {
    /// Images → latents.
    pub encoder: Encoder<B>,
    /// Latents → codes.
    pub quantizer: VectorQuantizer<B>,
    /// Codes → images.
    pub decoder: Decoder<B>,
}

/// The output of [`VqVae::forward`].
#[derive(Debug, Clone)]
pub struct VqVaeOutput<B: Backend> {
    /// Reconstructed images, `[batch_size, 3, height, width]`, not clamped.
    pub reconstruction: Tensor<B, 4>,
    /// What the quantizer produced (codes, losses).
    pub quantizer: QuantizerOutput<B>,
}

impl VqVaeConfig {
    /// Builds the model.
    ///
    /// # Panics
    /// If the encoder's code dimension differs from the quantizer's or the decoder's.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VqVae<B> {
        assert!(
            self.encoder.code_dim == self.quantizer.code_dim
                && self.decoder.code_dim == self.quantizer.code_dim,
            "code_dim differs: encoder {}, quantizer {}, decoder {}",
            self.encoder.code_dim,
            self.quantizer.code_dim,
            self.decoder.code_dim
        );
        VqVae {
            encoder: self.encoder.init(device),
            quantizer: self.quantizer.init(device),
            decoder: self.decoder.init(device),
        }
    }

    /// The spatial down-sampling factor `f` (256² images → `256/f` squared latents).
    pub fn downsampling(&self) -> usize {
        1 << self.encoder.hidden.len()
    }
}

impl<B: DaamBackend> VqVae<B> {
    /// Encodes, quantizes and decodes.
    ///
    /// # Shapes
    /// - `images`: `[batch_size, 3, height, width]` in [−1, 1], height and width divisible by f
    /// - `reconstruction`: `[batch_size, 3, height, width]`
    /// - `quantizer.indices`: `[batch_size, height / f, width / f]`
    pub fn forward(&self, images: Tensor<B, 4>) -> VqVaeOutput<B> {
        let quantizer = self.quantizer.forward(self.encoder.forward(images));
        let reconstruction = self.decoder.forward(quantizer.quantized.clone());
        VqVaeOutput {
            reconstruction,
            quantizer,
        }
    }

    /// The codes of images.
    ///
    /// # Shapes
    /// - `images`: `[batch_size, 3, height, width]`
    /// - output: `[batch_size, height / f, width / f]`
    pub fn encode(&self, images: Tensor<B, 4>) -> Tensor<B, 3, Int> {
        self.quantizer.forward(self.encoder.forward(images)).indices
    }

    /// Decodes the encoder's latents without rounding them to codes: what the network would
    /// give with an unlimited codebook. A diagnostic of how much quantization costs (the
    /// decoder was trained on codes, so this is an estimate, not a bound).
    ///
    /// # Shapes
    /// - `images`: `[batch_size, 3, height, width]`
    /// - output: `[batch_size, 3, height, width]`
    pub fn reconstruct_unquantized(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        self.decoder
            .forward(self.quantizer.unquantized(self.encoder.forward(images)))
    }

    /// Images from codes (what `vqvae decode` runs).
    ///
    /// # Shapes
    /// - `indices`: `[batch_size, height, width]`
    /// - output: `[batch_size, 3, f · height, f · width]`
    pub fn decode(&self, indices: Tensor<B, 3, Int>) -> Tensor<B, 4> {
        self.decoder.forward(self.quantizer.lookup(indices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelAttention, CodeNorm};
    use crate::tests::TestBackend;

    fn config(attention: ChannelAttention) -> VqVaeConfig {
        let hidden = vec![8, 16];
        VqVaeConfig::new(
            EncoderConfig::new(hidden.clone(), 6)
                .with_norm_groups(4)
                .with_attention(attention),
            VectorQuantizerConfig::new(11, 6).with_norm(CodeNorm::Euclidean),
            DecoderConfig::new(hidden, 6)
                .with_norm_groups(4)
                .with_attention(attention),
        )
    }

    #[test]
    fn shapes_through_every_block() {
        let device = Default::default();
        let daam = ChannelAttention::Daam {
            num_heads: 2,
            num_gaussians: 3,
            num_layers: 1,
        };
        for attention in [daam, ChannelAttention::None] {
            let model = config(attention).init::<TestBackend>(&device);
            let images = Tensor::<TestBackend, 4>::zeros([3, 3, 20, 12], &device);
            let latent = model.encoder.forward(images.clone());
            assert_eq!(latent.dims(), [3, 6, 5, 3]);
            let h = model.encoder.blocks[0].forward(model.encoder.stem.forward(images.clone()));
            assert_eq!(h.dims(), [3, 8, 10, 6]);
            let out = model.forward(images.clone());
            assert_eq!(out.reconstruction.dims(), [3, 3, 20, 12]);
            assert_eq!(out.quantizer.indices.dims(), [3, 5, 3]);
            assert_eq!(model.decode(model.encode(images)).dims(), [3, 3, 20, 12]);
        }
    }

    #[test]
    fn the_ablation_differs_only_by_the_density_blocks() {
        let device = Default::default();
        let with = config(ChannelAttention::Daam {
            num_heads: 4,
            num_gaussians: 3,
            num_layers: 1,
        })
        .init::<TestBackend>(&device);
        let without = config(ChannelAttention::None).init::<TestBackend>(&device);
        // 2 blocks each in encoder and decoder, 2·4·3 parameters per DensityBlock (4 heads ×
        // 3 Gaussians).
        assert_eq!(with.num_params() - without.num_params(), 4 * (2 * 4 * 3));
    }

    #[test]
    #[should_panic(expected = "code_dim differs: encoder 6, quantizer 5, decoder 6")]
    fn mismatched_code_dims_panic() {
        let mut c = config(ChannelAttention::None);
        c.quantizer.code_dim = 5;
        c.init::<TestBackend>(&Default::default());
    }
}
