//! The decoder: the encoder mirrored with transposed convolutions.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use daam::DaamBackend;

use super::group_norm::GroupNormRelu;
use super::residual_block::{conv3x3, sampling_norm, DaamResidualBlock, DaamResidualBlockConfig};
use super::ChannelAttention;

/// Transposed 4×4 convolution (stride 2, padding 1: exact doubling) → GroupNorm → ReLU → DAAM
/// residual block.
#[derive(Module, Debug)]
pub struct UpSampleBlock<B: Backend> {
    /// The transposed convolution.
    pub conv: ConvTranspose2d<B>,
    /// GroupNorm + ReLU after it (an affine map + ReLU when `sampling_norm` is off).
    pub norm: GroupNormRelu<B>,
    /// The residual block.
    pub residual: DaamResidualBlock<B>,
}

impl<B: DaamBackend> UpSampleBlock<B> {
    /// # Shapes
    /// - `x`: `[batch_size, channels_in, height, width]`
    /// - output: `[batch_size, channels_out, 2 · height, 2 · width]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self
            .norm
            .forward(daam::conv_transpose2d_module(&self.conv, x));
        self.residual.forward(h)
    }
}

/// Configuration of a [`Decoder`]; `hidden` is the encoder's, read in reverse.
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Image channels. Default 3.
    #[config(default = 3)]
    pub out_channels: usize,
    /// The encoder's widths (e.g. [128, 256, 512]).
    pub hidden: Vec<usize>,
    /// Channels of the latent.
    pub code_dim: usize,
    /// GroupNorm groups. Default 32.
    #[config(default = 32)]
    pub norm_groups: usize,
    /// GroupNorm after each transposed convolution (the authors' layout). Off: only a per-channel
    /// affine map and the ReLU there, so each input's mean colour is not normalised away on
    /// the main path (the residual blocks keep their GroupNorms). Default true.
    #[config(default = true)]
    pub sampling_norm: bool,
    /// Channel attention of the residual blocks.
    #[config(default = "ChannelAttention::PAPER")]
    pub attention: ChannelAttention,
    /// Seed of the attention's scale init (block `i` uses `seed + i`, wrapping).
    #[config(default = 100)]
    pub seed: u64,
}

/// `conv3×3(code_dim → hidden[last])`, then an `UpSampleBlock` per width in reverse (outputs
/// `hidden[n−2], …, hidden[0], hidden[0]`), then `conv3×3(→ 3)`. Outputs are not squashed: the
/// loss sees raw values, images are clamped to [−1, 1] when written.
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// 3×3 convolution from the code dimension.
    pub stem: Conv2d<B>,
    /// The up-sampling blocks.
    pub blocks: Vec<UpSampleBlock<B>>,
    /// 3×3 convolution to image channels.
    pub to_image: Conv2d<B>,
}

impl DecoderConfig {
    /// Builds the decoder.
    ///
    /// # Panics
    /// If `hidden` is empty or `norm_groups` does not divide a width.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Decoder<B> {
        assert!(
            !self.hidden.is_empty(),
            "the decoder needs at least one hidden width"
        );
        let n = self.hidden.len();
        let mut c_in = self.hidden[n - 1];
        let blocks = (0..n)
            .map(|i| {
                // Mirror of the encoder: block i undoes encoder block n−1−i.
                let c_out = if i + 1 < n {
                    self.hidden[n - 2 - i]
                } else {
                    self.hidden[0]
                };
                let block = UpSampleBlock {
                    conv: ConvTranspose2dConfig::new([c_in, c_out], [4, 4])
                        .with_stride([2, 2])
                        .with_padding([1, 1])
                        .init(device),
                    norm: sampling_norm(self.sampling_norm, self.norm_groups, c_out, device),
                    residual: DaamResidualBlockConfig::new(c_out)
                        .with_norm_groups(self.norm_groups)
                        .with_attention(self.attention)
                        .with_seed(self.seed.wrapping_add(i as u64))
                        .init(device),
                };
                c_in = c_out;
                block
            })
            .collect();
        Decoder {
            stem: conv3x3(self.code_dim, self.hidden[n - 1], device),
            blocks,
            to_image: conv3x3(self.hidden[0], self.out_channels, device),
        }
    }
}

impl<B: DaamBackend> Decoder<B> {
    /// # Shapes
    /// - `latent`: `[batch_size, code_dim, height, width]`
    /// - output: `[batch_size, 3, f · height, f · width]`
    pub fn forward(&self, latent: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = daam::conv2d_module(&self.stem, latent);
        let h = self.blocks.iter().fold(h, |h, block| block.forward(h));
        daam::conv2d_module(&self.to_image, h)
    }
}
