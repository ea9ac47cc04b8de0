//! WavLM's hyper-parameters, read from a checkpoint's `config.json` (transformers'
//! `WavLMConfig`; only the fields the encoder uses).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The normalisation of the convolutional feature encoder (`feat_extract_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureNorm {
    /// `"group"` (WavLM Base): a per-channel `GroupNorm` over time after the first convolution
    /// only.
    Group,
    /// `"layer"` (WavLM Large): a `LayerNorm` over channels at every frame after every
    /// convolution.
    Layer,
}

/// Where the transformer layers normalise (`do_stable_layer_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerNormPlacement {
    /// `do_stable_layer_norm: true` (WavLM Large): `x + attn(norm(x))`, `x + ff(norm(x))`, and
    /// `encoder.layer_norm` after the last layer.
    Pre,
    /// `do_stable_layer_norm: false` (WavLM Base): `norm(x + attn(x))`, `norm(x + ff(x))`, and
    /// `encoder.layer_norm` before the first layer.
    Post,
}

/// The `config.json` fields of a Hugging Face WavLM checkpoint that the port reads. Every field
/// is required: `save_pretrained` writes them all.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WavLMConfig {
    /// Transformer width `d_model` (1024 in WavLM Large, 768 in Base).
    pub hidden_size: usize,
    /// Number of transformer layers `L` (24 in Large, 12 in Base).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (16 in Large, 12 in Base).
    pub num_attention_heads: usize,
    /// Hidden width of the feed-forward blocks (4096 in Large).
    pub intermediate_size: usize,
    /// ε of the transformer's and the feature projection's layer norms (1e-5). The feature
    /// encoder's own norms use PyTorch's default 1e-5 whatever this says, as transformers does.
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only `"gelu"` (exact, erf-based) is implemented.
    pub hidden_act: String,
    /// Normalisation of the convolutional feature encoder.
    pub feat_extract_norm: FeatureNorm,
    /// Pre-norm ("stable") transformer layers when true, post-norm when false.
    pub do_stable_layer_norm: bool,
    /// Output channels of each feature-encoder convolution (`[512; 7]` in WavLM).
    pub conv_dim: Vec<usize>,
    /// Kernel sizes of the feature-encoder convolutions, in samples / frames
    /// (`[10, 3, 3, 3, 3, 2, 2]`).
    pub conv_kernel: Vec<usize>,
    /// Strides of the feature-encoder convolutions (`[5, 2, 2, 2, 2, 2, 2]`: 20 ms frames at
    /// 16 kHz).
    pub conv_stride: Vec<usize>,
    /// Whether the feature-encoder convolutions have a bias (false in WavLM).
    pub conv_bias: bool,
    /// Kernel size `K` of the positional convolution (128).
    pub num_conv_pos_embeddings: usize,
    /// Groups of the positional convolution (16).
    pub num_conv_pos_embedding_groups: usize,
    /// Number of relative-position buckets, both directions together (320).
    pub num_buckets: usize,
    /// Distance, in frames, at which the log-spaced buckets saturate (800).
    pub max_bucket_distance: usize,
    /// Activation of the feature encoder and the positional convolution; only `"gelu"`.
    pub feat_extract_activation: String,
}

impl WavLMConfig {
    /// Checks what the port implements and what the shapes imply.
    ///
    /// # Errors
    /// [`Error::Unsupported`] naming `path` (the `config.json`) for another activation than
    /// `"gelu"`, a width that the heads or the positional-convolution groups do not divide,
    /// convolution lists of different lengths, or too few buckets.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let unsupported = |message: String| {
            Err(Error::Unsupported {
                path: path.to_path_buf(),
                message,
            })
        };
        for (field, value) in [
            ("hidden_act", &self.hidden_act),
            ("feat_extract_activation", &self.feat_extract_activation),
        ] {
            if value != "gelu" {
                return unsupported(format!("{field} = {value:?}; only \"gelu\" is implemented"));
            }
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return unsupported(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let groups = self.num_conv_pos_embedding_groups;
        if groups == 0 || !self.hidden_size.is_multiple_of(groups) {
            return unsupported(format!(
                "hidden_size {} is not divisible by num_conv_pos_embedding_groups {groups}",
                self.hidden_size
            ));
        }
        let n = self.conv_dim.len();
        if n == 0 || self.conv_kernel.len() != n || self.conv_stride.len() != n {
            return unsupported(format!(
                "conv_dim, conv_kernel and conv_stride have {n}, {} and {} entries; they must \
                 have the same, non-zero number",
                self.conv_kernel.len(),
                self.conv_stride.len()
            ));
        }
        if self.conv_kernel.contains(&0) || self.conv_stride.contains(&0) {
            return unsupported("conv_kernel and conv_stride must be positive".into());
        }
        if self.num_buckets < 4 || self.max_bucket_distance <= self.num_buckets / 4 {
            return unsupported(format!(
                "num_buckets {} must be at least 4 and max_bucket_distance {} larger than \
                 num_buckets / 4",
                self.num_buckets, self.max_bucket_distance
            ));
        }
        if self.num_hidden_layers == 0 {
            return unsupported("num_hidden_layers is 0".into());
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return unsupported(format!(
                "layer_norm_eps is {}: it must be a positive finite number",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Width of one attention head, `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Where the transformer layers normalise.
    pub fn layer_norm_placement(&self) -> LayerNormPlacement {
        if self.do_stable_layer_norm {
            LayerNormPlacement::Pre
        } else {
            LayerNormPlacement::Post
        }
    }

    /// The number of frames the feature encoder makes of `samples` samples, 0 when the clip is
    /// shorter than [`WavLMConfig::receptive_field`]: each convolution maps `n` to
    /// `⌊(n − kernel) / stride⌋ + 1` (transformers' `_get_feat_extract_output_lengths`).
    pub fn frames(&self, samples: usize) -> usize {
        self.conv_kernel
            .iter()
            .zip(&self.conv_stride)
            .try_fold(samples, |n, (&kernel, &stride)| {
                n.checked_sub(kernel).map(|rest| rest / stride + 1)
            })
            .unwrap_or(0)
    }

    /// The samples one output frame sees: the shortest clip that gives one frame (400 samples,
    /// 25 ms at 16 kHz, in WavLM).
    pub fn receptive_field(&self) -> usize {
        let mut field = 1;
        let mut step = 1;
        for (&kernel, &stride) in self.conv_kernel.iter().zip(&self.conv_stride) {
            field += (kernel - 1) * step;
            step *= stride;
        }
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn large() -> WavLMConfig {
        WavLMConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            intermediate_size: 4096,
            layer_norm_eps: 1e-5,
            hidden_act: "gelu".into(),
            feat_extract_norm: FeatureNorm::Layer,
            do_stable_layer_norm: true,
            conv_dim: vec![512; 7],
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            conv_bias: false,
            num_conv_pos_embeddings: 128,
            num_conv_pos_embedding_groups: 16,
            num_buckets: 320,
            max_bucket_distance: 800,
            feat_extract_activation: "gelu".into(),
        }
    }

    #[test]
    fn wavlm_large_frames_are_20_ms_with_a_25_ms_receptive_field() {
        let config = large();
        assert_eq!(config.receptive_field(), 400);
        assert_eq!(config.frames(399), 0);
        assert_eq!(config.frames(400), 1);
        // 5 s at 16 kHz: transformers gives 249 frames.
        assert_eq!(config.frames(80_000), 249);
        assert_eq!(config.frames(16_000), 49);
    }

    #[test]
    fn frames_agree_with_the_receptive_field_for_every_length() {
        let config = large();
        for samples in 380..2000 {
            assert_eq!(
                config.frames(samples) == 0,
                samples < config.receptive_field(),
                "{samples}"
            );
        }
    }

    #[test]
    fn other_activations_are_unsupported_naming_the_file() {
        let config = WavLMConfig {
            hidden_act: "relu".into(),
            ..large()
        };
        let err = config.validate(Path::new("ckpt/config.json")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ckpt/config.json") && text.contains("relu"),
            "{text}"
        );
    }

    #[test]
    fn indivisible_heads_are_unsupported_showing_both_numbers() {
        let config = WavLMConfig {
            num_attention_heads: 15,
            ..large()
        };
        let text = config
            .validate(Path::new("config.json"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("1024") && text.contains("15"), "{text}");
    }

    #[test]
    fn feat_extract_norm_parses_lowercase() {
        let norm: FeatureNorm = serde_json::from_str("\"group\"").unwrap();
        assert_eq!(norm, FeatureNorm::Group);
        assert!(serde_json::from_str::<FeatureNorm>("\"batch\"").is_err());
    }
}
