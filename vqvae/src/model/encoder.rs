//! The encoder: a stem convolution, one [`DownSampleBlock`] per hidden width, a 1×1 projection
//! to the code dimension.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use daam::DaamBackend;

use super::group_norm::GroupNormRelu;
use super::residual_block::{conv3x3, sampling_norm, DaamResidualBlock, DaamResidualBlockConfig};
use super::ChannelAttention;

/// Strided 4×4 convolution (stride 2, padding 1: exact halving) → GroupNorm → ReLU → DAAM
/// residual block.
#[derive(Module, Debug)]
pub struct DownSampleBlock<B: Backend> {
    /// The strided convolution.
    pub conv: Conv2d<B>,
    /// GroupNorm + ReLU after it (an affine map + ReLU when `sampling_norm` is off).
    pub norm: GroupNormRelu<B>,
    /// The residual block.
    pub residual: DaamResidualBlock<B>,
}

impl<B: DaamBackend> DownSampleBlock<B> {
    /// # Shapes
    /// - `x`: `[batch_size, channels_in, height, width]`
    /// - output: `[batch_size, channels_out, height / 2, width / 2]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self.norm.forward(daam::conv2d_module(&self.conv, x));
        self.residual.forward(h)
    }
}

/// Configuration of an [`Encoder`].
#[derive(Config, Debug)]
pub struct EncoderConfig {
    /// Image channels. Default 3.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Width of each down-sampling block; the stem has the first width. Paper [128, 256, 512].
    pub hidden: Vec<usize>,
    /// Channels of the latent (the code dimension). Paper 256.
    pub code_dim: usize,
    /// GroupNorm groups. Default 32.
    #[config(default = 32)]
    pub norm_groups: usize,
    /// GroupNorm after each strided convolution (the authors' layout). Off: only a per-channel
    /// affine map and the ReLU there, so each input's mean colour is not normalised away on
    /// the main path (the residual blocks keep their GroupNorms). Default true.
    #[config(default = true)]
    pub sampling_norm: bool,
    /// Channel attention of the residual blocks.
    #[config(default = "ChannelAttention::PAPER")]
    pub attention: ChannelAttention,
    /// Seed of the attention's scale init (block `i` uses `seed + i`, wrapping).
    #[config(default = 0)]
    pub seed: u64,
}

/// `conv3×3(in → hidden[0])`, then `DownSampleBlock` per width, then `conv1×1(→ code_dim)`:
/// a `2^len(hidden)` down-sampling factor (8 for the paper's 256² → 32²).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// Stem 3×3 convolution.
    pub stem: Conv2d<B>,
    /// The down-sampling blocks.
    pub blocks: Vec<DownSampleBlock<B>>,
    /// 1×1 projection to the code dimension.
    pub to_code: Conv2d<B>,
}

impl EncoderConfig {
    /// Builds the encoder.
    ///
    /// # Panics
    /// If `hidden` is empty or `norm_groups` does not divide a width.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Encoder<B> {
        assert!(
            !self.hidden.is_empty(),
            "the encoder needs at least one hidden width"
        );
        let mut c_in = self.hidden[0];
        let blocks = self
            .hidden
            .iter()
            .enumerate()
            .map(|(i, &c_out)| {
                let block = DownSampleBlock {
                    conv: Conv2dConfig::new([c_in, c_out], [4, 4])
                        .with_stride([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
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
        Encoder {
            stem: conv3x3(self.in_channels, self.hidden[0], device),
            blocks,
            to_code: Conv2dConfig::new([c_in, self.code_dim], [1, 1]).init(device),
        }
    }
}

impl<B: DaamBackend> Encoder<B> {
    /// # Shapes
    /// - `images`: `[batch_size, 3, height, width]`, values in [−1, 1]
    /// - output: `[batch_size, code_dim, height / f, width / f]`, `f = 2^num_blocks`
    pub fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = daam::conv2d_module(&self.stem, images);
        let h = self.blocks.iter().fold(h, |h, block| block.forward(h));
        daam::conv2d_module(&self.to_code, h)
    }
}
