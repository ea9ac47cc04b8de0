//! The number of LoRA parameters of an encoder, from its configuration alone (no weights), so
//! that the counts of Llama-2-13B or WavLM-Large can be checked without loading them.

use super::config::{LoraConfig, LoraTarget};
use crate::beit::BeitConfig;
use crate::llama::LlamaConfig;
use crate::wavlm::WavLMConfig;

/// An encoder configuration seen as the places adapters go: `num_layers` layers, each with a
/// query, key and value projection of known widths.
pub trait LoraSites {
    /// The number of transformer layers `L`.
    fn num_layers(&self) -> usize;

    /// The widths `[d_input, d_output]` of the `target` projection of one layer.
    fn projection_dims(&self, target: LoraTarget) -> [usize; 2];
}

/// `L · Σ_targets r · (d_input + d_output)`: the trainable parameters the adapters of `lora` add
/// to an encoder configured by `sites`.
///
/// The authors' counts (`reference/classify-anchors.md` §5.2), with query and value adapted:
/// WavLM-Large r = 4 gives 24 · 2 · 4 · 2048 = 393,216 (394,244 with the 4-way classifier),
/// Llama-2-13B r = 8 gives 40 · 2 · 8 · 10240 = 6,553,600.
pub fn lora_param_count(sites: &impl LoraSites, lora: &LoraConfig) -> usize {
    let per_layer: usize = lora
        .targets
        .iter()
        .map(|&target| {
            let [d_input, d_output] = sites.projection_dims(target);
            lora.rank * (d_input + d_output)
        })
        .sum();
    sites.num_layers() * per_layer
}

impl LoraSites for BeitConfig {
    fn num_layers(&self) -> usize {
        self.num_hidden_layers
    }

    fn projection_dims(&self, _target: LoraTarget) -> [usize; 2] {
        [self.hidden_size, self.hidden_size]
    }
}

impl LoraSites for WavLMConfig {
    fn num_layers(&self) -> usize {
        self.num_hidden_layers
    }

    fn projection_dims(&self, _target: LoraTarget) -> [usize; 2] {
        [self.hidden_size, self.hidden_size]
    }
}

impl LoraSites for LlamaConfig {
    fn num_layers(&self) -> usize {
        self.num_hidden_layers
    }

    /// Keys and values have `num_key_value_heads` heads (fewer than the queries' under
    /// grouped-query attention).
    fn projection_dims(&self, target: LoraTarget) -> [usize; 2] {
        let heads = match target {
            LoraTarget::Query => self.num_attention_heads,
            LoraTarget::Key | LoraTarget::Value => self.num_key_value_heads(),
        };
        [self.hidden_size, heads * self.head_dim()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::LoraTarget::{Key, Query, Value};

    /// `microsoft/wavlm-large`'s `config.json` (the fields the port reads).
    fn wavlm_large() -> WavLMConfig {
        serde_json::from_str(
            r#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                "intermediate_size": 4096, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
                "feat_extract_norm": "layer", "do_stable_layer_norm": true,
                "conv_dim": [512, 512, 512, 512, 512, 512, 512],
                "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
                "conv_bias": false, "num_conv_pos_embeddings": 128,
                "num_conv_pos_embedding_groups": 16, "num_buckets": 320,
                "max_bucket_distance": 800, "feat_extract_activation": "gelu"}"#,
        )
        .expect("WavLM-Large config")
    }

    /// `microsoft/beit-large-patch16-224`'s `config.json`.
    fn beit_large() -> BeitConfig {
        serde_json::from_str(
            r#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                "intermediate_size": 4096, "image_size": 224, "patch_size": 16,
                "layer_scale_init_value": 0.1, "use_relative_position_bias": true}"#,
        )
        .expect("BEiT-Large config")
    }

    /// `TheBloke/Llama-2-13B-fp16`'s `config.json`.
    fn llama_2_13b() -> LlamaConfig {
        serde_json::from_str(
            r#"{"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
                "num_attention_heads": 40, "num_key_value_heads": 40, "rms_norm_eps": 1e-5,
                "vocab_size": 32000, "max_position_embeddings": 4096}"#,
        )
        .expect("Llama-2-13B config")
    }

    #[test]
    fn wavlm_large_adapters_are_the_authors_counts() {
        let config = wavlm_large();
        assert_eq!(lora_param_count(&config, &LoraConfig::new(4)), 393_216);
        assert_eq!(lora_param_count(&config, &LoraConfig::new(8)), 786_432);
    }

    #[test]
    fn beit_large_adapters_are_the_authors_counts_less_the_classifier() {
        let config = beit_large();
        // 495,716 and 888,932 with the 100-way classifier (102,500).
        assert_eq!(lora_param_count(&config, &LoraConfig::new(4)), 393_216);
        assert_eq!(lora_param_count(&config, &LoraConfig::new(8)), 786_432);
    }

    #[test]
    fn llama_2_13b_adapters_are_the_authors_counts() {
        let config = llama_2_13b();
        assert_eq!(lora_param_count(&config, &LoraConfig::new(8)), 6_553_600);
        assert_eq!(lora_param_count(&config, &LoraConfig::new(4)), 3_276_800);
        assert_eq!(
            lora_param_count(&config, &LoraConfig::new(8)),
            40 * 2 * 5120 * 8 * 2
        );
    }

    #[test]
    fn grouped_key_value_heads_narrow_the_key_and_value_adapters() {
        let mut config = llama_2_13b();
        config.num_key_value_heads = Some(8);
        let lora = LoraConfig::new(2).with_targets(vec![Query, Key, Value]);
        let (d, kv) = (5120, 8 * 128);
        assert_eq!(
            lora_param_count(&config, &lora),
            40 * 2 * ((d + d) + 2 * (d + kv))
        );
    }
}
