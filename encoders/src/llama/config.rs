//! The subset of Hugging Face's `LlamaConfig` (`config.json`) that the Llama-2 architecture reads,
//! validated against what this port implements.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::weights::read_config;

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_hidden_act() -> String {
    "silu".into()
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

/// A Llama checkpoint's `config.json`, as transformers 4.46.3's `LlamaConfig` reads it.
///
/// Fields the port does not use (`architectures`, `bos_token_id`, `pretraining_tp`, ...) are
/// ignored; `pretraining_tp > 1` only splits the same matrix products into slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// `d_model`, the width of the residual stream (Llama-2-13B: 5120).
    pub hidden_size: usize,
    /// The inner width of the SwiGLU MLP (Llama-2-13B: 13824).
    pub intermediate_size: usize,
    /// The number of decoder layers `L` (Llama-2-13B: 40).
    pub num_hidden_layers: usize,
    /// The number of query heads (Llama-2-13B: 40).
    pub num_attention_heads: usize,
    /// The number of key/value heads; fewer than `num_attention_heads` means grouped-query
    /// attention. `None` (absent or `null`) means one per query head, as in Llama-2-7B/13B.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// The ε added to the mean square in every RMSNorm (Llama-2: 1e-5; HF default 1e-6).
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// The RoPE base θ: frequency `i` of a head is `θ^(−2i / head_dim)` (default 10000).
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// The number of token embeddings (Llama-2: 32000).
    pub vocab_size: usize,
    /// The longest sequence the model was trained on (Llama-2: 4096); longer inputs are
    /// rejected by [`crate::llama::Llama::forward`].
    pub max_position_embeddings: usize,
    /// The MLP gate activation; only `"silu"` (SwiGLU) is implemented.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// RoPE scaling (`linear`, `dynamic`, `llama3`, `yarn`, ...); must be `null` (Llama-2) or
    /// of `rope_type` `"default"`.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 writes RoPE settings here (`{"rope_type": "default", "rope_theta":
    /// 10000.0}`) instead of `rope_theta` / `rope_scaling`; its `rope_theta` wins when present.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    /// Whether the q/k/v/o projections have biases (default false).
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether the gate/up/down projections have biases (default false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// The width of one head; `None` means `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
}

impl LlamaConfig {
    /// Reads `dir/config.json` and checks it with [`LlamaConfig::validate`].
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] for an unreadable or malformed file,
    /// [`Error::Unsupported`] as [`LlamaConfig::validate`].
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config: Self = read_config(dir)?;
        config.validate(&dir.join("config.json"))?;
        Ok(config)
    }

    /// Checks that the port implements this configuration; `path` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for `rope_scaling` other than `null`, an activation other than
    /// `silu`, zero sizes, an odd `head_dim`, or query heads not a multiple of the key/value
    /// heads.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let unsupported = |message: String| {
            Err(Error::Unsupported {
                path: path.to_path_buf(),
                message,
            })
        };
        for (name, value) in [
            ("rope_scaling", &self.rope_scaling),
            ("rope_parameters", &self.rope_parameters),
        ] {
            if let Some(value) = value {
                if !is_plain_rope(value) {
                    return unsupported(format!(
                        "{name} = {value}: only unscaled RoPE (null or rope_type \"default\", \
                         Llama-2) is implemented"
                    ));
                }
            }
        }
        if self.hidden_act != "silu" {
            return unsupported(format!(
                "hidden_act = {:?}: only \"silu\" (SwiGLU) is implemented",
                self.hidden_act
            ));
        }
        let sizes = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads()),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, size)| *size == 0) {
            return unsupported(format!("{name} is 0"));
        }
        let head_dim = self.head_dim();
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return unsupported(format!(
                "head_dim = {head_dim} (hidden_size {} / num_attention_heads {}): rotary \
                 embeddings need an even, non-zero head width",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads())
        {
            return unsupported(format!(
                "num_attention_heads = {} is not a multiple of num_key_value_heads = {}",
                self.num_attention_heads,
                self.num_key_value_heads()
            ));
        }
        // θ ≤ 1 makes every rotation frequency 1 or more: no positional signal beyond a few
        // tokens; 0 divides by zero.
        for (name, value, least) in [
            ("rms_norm_eps", self.rms_norm_eps, 0.0),
            ("rope_theta", self.theta(), 1.0),
        ] {
            if !(value.is_finite() && value > least) {
                return unsupported(format!(
                    "{name} is {value}: it must be a finite number above {least}"
                ));
            }
        }
        Ok(())
    }

    /// The number of key/value heads (`num_attention_heads` when the file does not say).
    pub fn num_key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// The RoPE base θ: `rope_parameters.rope_theta` (transformers ≥ 5) or `rope_theta`.
    pub fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(self.rope_theta)
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
}

/// `null`, or an object whose `rope_type` (older: `type`) is `"default"`: plain RoPE.
fn is_plain_rope(value: &serde_json::Value) -> bool {
    value.is_null()
        || value
            .get("rope_type")
            .or_else(|| value.get("type"))
            .and_then(serde_json::Value::as_str)
            == Some("default")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> LlamaConfig {
        let text = format!(
            r#"{{"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                "num_attention_heads": 4, "vocab_size": 287, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-5{extra}}}"#
        );
        serde_json::from_str(&text).expect("config")
    }

    #[test]
    fn defaults_follow_transformers() {
        let config = parse("");
        assert_eq!(config.num_key_value_heads(), 4);
        assert_eq!(config.head_dim(), 8);
        assert_eq!(config.rope_theta, 10_000.0);
        assert_eq!(config.hidden_act, "silu");
        assert!(!config.attention_bias && !config.mlp_bias);
        config.validate(Path::new("config.json")).expect("valid");
    }

    #[test]
    fn rope_scaling_is_unsupported() {
        let config = parse(r#", "rope_scaling": {"type": "linear", "factor": 2.0}"#);
        let err = config.validate(Path::new("config.json")).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { message, .. } if message.contains("rope_scaling")),
            "{err}"
        );
        parse(r#", "rope_scaling": null"#)
            .validate(Path::new("config.json"))
            .expect("null scaling is plain RoPE");
    }

    #[test]
    fn reads_transformers_5_rope_parameters() {
        let config = parse(r#", "rope_parameters": {"rope_type": "default", "rope_theta": 5e5}"#);
        config.validate(Path::new("config.json")).expect("plain");
        assert_eq!(config.theta(), 5e5);
        assert_eq!(parse("").theta(), 10_000.0);
        let scaled = parse(r#", "rope_parameters": {"rope_type": "llama3", "factor": 8.0}"#);
        let err = scaled.validate(Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("rope_parameters"), "{err}");
    }

    #[test]
    fn heads_must_group_evenly() {
        let config = parse(r#", "num_key_value_heads": 3"#);
        let err = config.validate(Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("not a multiple"), "{err}");
    }

    #[test]
    fn other_activations_are_unsupported() {
        let config = parse(r#", "hidden_act": "gelu""#);
        assert!(matches!(
            config.validate(Path::new("config.json")),
            Err(Error::Unsupported { .. })
        ));
    }
}
