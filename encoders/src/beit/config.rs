//! The fields of a BEiT `config.json` the port reads.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// A BEiT checkpoint's configuration (Hugging Face `BeitConfig` field names).
#[derive(Debug, Clone, Deserialize)]
pub struct BeitConfig {
    /// Token width `D` (1024 for BEiT-Large).
    pub hidden_size: usize,
    /// Number of transformer layers `L` (24 for BEiT-Large).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (16 for BEiT-Large).
    pub num_attention_heads: usize,
    /// Width of the feed-forward hidden layer (4096 for BEiT-Large).
    pub intermediate_size: usize,
    /// Input image side in pixels (224).
    pub image_size: usize,
    /// Patch side in pixels (16).
    pub patch_size: usize,
    /// Input channels (3).
    #[serde(default = "three")]
    pub num_channels: usize,
    /// Layer-norm epsilon (1e-12).
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only `"gelu"` (exact, erf) is supported.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// LayerScale initial value; `> 0` means the checkpoint has `lambda_1`/`lambda_2`.
    #[serde(default)]
    pub layer_scale_init_value: f64,
    /// A relative position bias table in every layer.
    #[serde(default)]
    pub use_relative_position_bias: bool,
    /// One relative position bias table shared by all layers.
    #[serde(default)]
    pub use_shared_relative_position_bias: bool,
    /// Learned absolute position embeddings added to the tokens.
    #[serde(default)]
    pub use_absolute_position_embeddings: bool,
}

fn three() -> usize {
    3
}

fn layer_norm_eps() -> f64 {
    1e-12
}

fn gelu() -> String {
    "gelu".into()
}

impl BeitConfig {
    /// Checks that the port implements this configuration; `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an activation other than `gelu`, a size of 0, a width the
    /// heads do not divide, an image side the patch side does not divide, or a layer-norm
    /// epsilon that is not a positive finite number.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let unsupported = |message: String| {
            Err(Error::Unsupported {
                path: path.to_path_buf(),
                message,
            })
        };
        if self.hidden_act != "gelu" {
            return unsupported(format!("hidden_act `{}` (only `gelu`)", self.hidden_act));
        }
        let sizes = [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("num_channels", self.num_channels),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return unsupported(format!("{name} is 0"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return unsupported("hidden_size is not a multiple of num_attention_heads".into());
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return unsupported("image_size is not a multiple of patch_size".into());
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return unsupported(format!(
                "layer_norm_eps is {}: it must be a positive finite number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: one per patch plus CLS.
    pub fn num_tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
