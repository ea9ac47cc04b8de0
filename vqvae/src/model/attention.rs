//! Which channel attention the residual blocks carry: the with/without-DAAM ablation switch.

use serde::{Deserialize, Serialize};

/// Channel attention after each residual block (blog "Advanced Applications": DAAM on the
/// channel axis, `norm_axis = 1`, 4 heads × 3 Gaussians).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum ChannelAttention {
    /// A `DensityBlock` on the channel axis.
    Daam {
        /// Heads splitting the channels.
        num_heads: usize,
        /// Gaussians per head.
        num_gaussians: usize,
        /// Mixture layers in the block (each with its residual).
        num_layers: usize,
    },
    /// No attention: the same network without the DensityBlock (`--attention none`).
    None,
}

impl ChannelAttention {
    /// The authors' setting: 4 heads × 3 Gaussians, one layer.
    pub const PAPER: Self = Self::Daam {
        num_heads: 4,
        num_gaussians: 3,
        num_layers: 1,
    };
}
