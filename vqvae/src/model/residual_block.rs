//! The DAAM residual block of the encoder's and decoder's sampling blocks.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use daam::{
    DaamBackend, DensityBlock, DensityBlockConfig, MixtureDensityAttentionConfig, ScaleInit,
};

use super::group_norm::GroupNormRelu;
use super::ChannelAttention;

/// Configuration of a [`DaamResidualBlock`].
#[derive(Config, Debug)]
pub struct DaamResidualBlockConfig {
    /// Channels in and out.
    pub channels: usize,
    /// GroupNorm groups (must divide `channels`). Default 32.
    #[config(default = 32)]
    pub norm_groups: usize,
    /// Channel attention after the residual sum.
    #[config(default = "ChannelAttention::PAPER")]
    pub attention: ChannelAttention,
    /// Seed of the attention's log-normal scale init.
    #[config(default = 0)]
    pub seed: u64,
}

/// `h = x + conv3×3(ReLU(GN(conv3×3(ReLU(GN(x))))))`, then `DensityBlock(h)` on the channel axis
/// (which adds its own residual). The blog leaves the block's layout open; this is ours
/// (`reference/daam-reference.md` §7).
#[derive(Module, Debug)]
pub struct DaamResidualBlock<B: Backend> {
    /// First GroupNorm + ReLU.
    pub norm1: GroupNormRelu<B>,
    /// First 3×3 convolution.
    pub conv1: Conv2d<B>,
    /// Second GroupNorm + ReLU.
    pub norm2: GroupNormRelu<B>,
    /// Second 3×3 convolution.
    pub conv2: Conv2d<B>,
    /// Channel attention (`None` for the ablation).
    pub attention: Option<DensityBlock<B>>,
}

/// GroupNorm + ReLU with a check that shows both numbers.
pub(crate) fn group_norm<B: Backend>(
    groups: usize,
    channels: usize,
    device: &B::Device,
) -> GroupNormRelu<B> {
    GroupNormRelu::new(groups, channels, device)
}

/// The layer after a down- or up-sampling convolution: GroupNorm + ReLU with `sampling_norm`,
/// else the affine map + ReLU ([`GroupNormRelu::affine`]).
pub(crate) fn sampling_norm<B: Backend>(
    sampling_norm: bool,
    groups: usize,
    channels: usize,
    device: &B::Device,
) -> GroupNormRelu<B> {
    if sampling_norm {
        group_norm(groups, channels, device)
    } else {
        GroupNormRelu::affine(channels, device)
    }
}

/// A 3×3 convolution with padding 1.
pub(crate) fn conv3x3<B: Backend>(c_in: usize, c_out: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

impl DaamResidualBlockConfig {
    /// Builds the block.
    ///
    /// # Panics
    /// If `norm_groups` does not divide `channels`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DaamResidualBlock<B> {
        let c = self.channels;
        let attention = match self.attention {
            ChannelAttention::Daam {
                num_heads,
                num_gaussians,
                num_layers,
            } => Some(
                DensityBlockConfig::repeated(
                    MixtureDensityAttentionConfig::new(1)
                        .with_num_heads(num_heads)
                        .with_num_gaussians(num_gaussians)
                        .with_scale_init(ScaleInit::LogNormal { seed: self.seed }),
                    num_layers,
                )
                .init(device),
            ),
            ChannelAttention::None => None,
        };
        DaamResidualBlock {
            norm1: group_norm(self.norm_groups, c, device),
            conv1: conv3x3(c, c, device),
            norm2: group_norm(self.norm_groups, c, device),
            conv2: conv3x3(c, c, device),
            attention,
        }
    }
}

impl<B: DaamBackend> DaamResidualBlock<B> {
    /// # Shapes
    /// - `x`: `[batch_size, channels, height, width]`
    /// - output: `[batch_size, channels, height, width]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = daam::conv2d_module(&self.conv1, self.norm1.forward(x.clone()));
        let h = daam::conv2d_module(&self.conv2, self.norm2.forward(h));
        let h = x + h;
        match &self.attention {
            Some(block) => block.forward(h),
            None => h,
        }
    }
}
