//! The Llama decoder stack (`modeling_llama.LlamaModel`): token embedding, pre-norm decoder
//! layers with causal grouped-query attention and SwiGLU, and the final RMSNorm.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Embedding, RmsNorm};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, ElementConversion, Int, Tensor};

use crate::attention::MASKED;
use crate::error::{Error, Result};
use crate::llama::attention::GroupedQueryAttention;
use crate::llama::config::LlamaConfig;
use crate::llama::mlp::SwiGlu;
use crate::llama::rope::RotaryTables;
use crate::output::HiddenStates;
use crate::weights::Weights;

/// One pre-norm decoder layer (`LlamaDecoderLayer`):
/// `h = x + attn(norm₁(x))`, `out = h + mlp(norm₂(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// `input_layernorm`, the RMSNorm before attention; weight `[d_model]`.
    pub attention_norm: RmsNorm<B>,
    /// `self_attn`.
    pub attention: GroupedQueryAttention<B>,
    /// `post_attention_layernorm`, the RMSNorm before the MLP; weight `[d_model]`.
    pub mlp_norm: RmsNorm<B>,
    /// `mlp`.
    pub mlp: SwiGlu<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// Loads `layers.{index}.*`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::Shape`], [`Error::Dtype`].
    pub fn load(
        weights: &Weights,
        index: usize,
        config: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let prefix = format!("layers.{index}");
        let norm = |name: &str| {
            rms_norm(
                weights,
                &format!("{prefix}.{name}"),
                config.hidden_size,
                config.rms_norm_eps,
                device,
            )
        };
        Ok(Self {
            attention_norm: norm("input_layernorm")?,
            attention: GroupedQueryAttention::load(
                weights,
                &format!("{prefix}.self_attn"),
                config,
                device,
            )?,
            mlp_norm: norm("post_attention_layernorm")?,
            mlp: SwiGlu::load(weights, &format!("{prefix}.mlp"), config, device)?,
        })
    }

    /// The layer's output.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - `bias`: `[batch_size, 1, seq_length, seq_length]`, see [`attention_bias`]
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let attended = self
            .attention
            .forward(self.attention_norm.forward(x.clone()), rope, bias);
        let x = x + attended;
        let transformed = self.mlp.forward(self.mlp_norm.forward(x.clone()));
        x + transformed
    }
}

/// A Llama-2 decoder without its language-model head, for hidden-state extraction.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// `embed_tokens`: weight `[vocab_size, d_model]`.
    pub embedding: Embedding<B>,
    /// `layers.0 ..= layers.{L-1}`.
    pub layers: Vec<DecoderLayer<B>>,
    /// `norm`, the final RMSNorm; weight `[d_model]`.
    pub norm: RmsNorm<B>,
    /// The RoPE base θ.
    pub rope_theta: f64,
    /// The width of one attention head.
    pub head_dim: usize,
    /// The number of token embeddings; input ids must lie in `0..vocab_size`.
    pub vocab_size: usize,
    /// The longest accepted input (`max_position_embeddings`).
    pub max_seq_length: usize,
}

impl<B: Backend> Llama<B> {
    /// Loads a checkpoint folder: `config.json` and `model.safetensors` or a sharded
    /// `model.safetensors.index.json`, of a `LlamaModel` (bare names) or of a
    /// `LlamaForCausalLM` / `LlamaForSequenceClassification` (names under `model.`; the heads are
    /// not read).
    ///
    /// Each tensor is converted to the backend's float type as it is loaded (`Tensor::from_data`),
    /// so an f16 checkpoint is never held as a whole in f32 beside the model.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] / [`Error::WeightFile`] / [`Error::NoWeights`] for
    /// unreadable files, [`Error::Unsupported`] for configurations the port does not implement
    /// (see [`LlamaConfig::validate`]), [`Error::MissingTensor`] / [`Error::Shape`] /
    /// [`Error::Dtype`] for weights that do not fit the configuration.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = LlamaConfig::read(dir)?;
        let weights = Weights::open(dir, &["", "model."], "embed_tokens.weight")?;
        Self::from_weights(&config, &weights, device)
    }

    /// Builds the model from opened weights and a validated configuration.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::Shape`], [`Error::Dtype`].
    pub fn from_weights(
        config: &LlamaConfig,
        weights: &Weights,
        device: &B::Device,
    ) -> Result<Self> {
        let d_model = config.hidden_size;
        let embedding = Embedding {
            weight: Param::from_tensor(weights.tensor(
                "embed_tokens.weight",
                [config.vocab_size, d_model],
                device,
            )?),
        };
        let layers = (0..config.num_hidden_layers)
            .map(|index| DecoderLayer::load(weights, index, config, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embedding,
            layers,
            norm: rms_norm(weights, "norm", d_model, config.rms_norm_eps, device)?,
            rope_theta: config.theta(),
            head_dim: config.head_dim(),
            vocab_size: config.vocab_size,
            max_seq_length: config.max_position_embeddings,
        })
    }

    /// Every hidden state of a batch of token sequences, in transformers 4.46.3's
    /// `output_hidden_states` order (see the [module docs](crate::llama)).
    ///
    /// Positions are `0..seq_length` in every row, as HF assigns them when no `position_ids` are
    /// given; so padding must be on the right for a padded row to equal the row run alone.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch_size, seq_length]`, token ids in `0..vocab_size`
    /// - `attention_mask`: `[batch_size, seq_length]`, 1.0 at real tokens and 0.0 at padding;
    ///   `None` when nothing is padded
    /// - output: `L + 1` states `[batch_size, seq_length, d_model]`, with `valid` set to the mask
    ///
    /// # Errors
    /// [`Error::Input`] for an empty batch, a sequence longer than `max_position_embeddings`, a
    /// mask of another shape than the ids, or an id outside the vocabulary.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        attention_mask: Option<Tensor<B, 2>>,
    ) -> Result<HiddenStates<B>> {
        let [batch_size, seq_length] = input_ids.dims();
        self.check_input(&input_ids, attention_mask.as_ref())?;
        let device = input_ids.device();
        let rope = RotaryTables::new(seq_length, self.head_dim, self.rope_theta, &device);
        let bias = attention_bias(batch_size, seq_length, attention_mask.clone(), &device);

        let mut x = self.embedding.forward(input_ids); // [batch_size, seq_length, d_model]
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(x.clone());
            x = layer.forward(x, &rope, bias.clone());
        }
        // The last entry is the final layer's output after `norm` (`last_hidden_state`).
        states.push(self.norm.forward(x));
        Ok(HiddenStates {
            states,
            valid: attention_mask,
        })
    }

    fn check_input(
        &self,
        input_ids: &Tensor<B, 2, Int>,
        mask: Option<&Tensor<B, 2>>,
    ) -> Result<()> {
        let [batch_size, seq_length] = input_ids.dims();
        if batch_size == 0 || seq_length == 0 {
            return Err(Error::Input(format!(
                "Llama input_ids are empty: [batch_size, seq_length] = [{batch_size}, {seq_length}]"
            )));
        }
        if seq_length > self.max_seq_length {
            return Err(Error::Input(format!(
                "Llama input of {seq_length} tokens is longer than max_position_embeddings = {}",
                self.max_seq_length
            )));
        }
        if let Some(mask) = mask {
            if mask.dims() != [batch_size, seq_length] {
                return Err(Error::Input(format!(
                    "Llama attention_mask has shape {:?}, input_ids {:?}",
                    mask.dims(),
                    [batch_size, seq_length]
                )));
            }
        }
        let low: i64 = input_ids.clone().min().into_scalar().elem();
        let high: i64 = input_ids.clone().max().into_scalar().elem();
        if low < 0 || high >= self.vocab_size as i64 {
            return Err(Error::Input(format!(
                "Llama input_ids span {low}..={high}, outside the vocabulary 0..{}",
                self.vocab_size
            )));
        }
        Ok(())
    }

    /// The number of decoder layers `L`.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}

/// The additive attention bias of causal attention over the real tokens: 0 where query `i` may
/// attend to key `j` (`j ≤ i` and `j` is a real token), [`MASKED`] elsewhere
/// (`LlamaModel._prepare_4d_causal_attention_mask_with_cache_position`).
///
/// Built with `mask_fill` rather than by multiplying the mask with [`MASKED`], so that it stays
/// finite-or-`-inf` (never NaN) in f16, where [`MASKED`] overflows to `-inf`.
///
/// # Shapes
/// - `key_valid`: `[batch_size, seq_length]`, 1.0 at real tokens, 0.0 at padding
/// - output: `[batch_size, 1, seq_length, seq_length]`
pub fn attention_bias<B: Backend>(
    batch_size: usize,
    seq_length: usize,
    key_valid: Option<Tensor<B, 2>>,
    device: &B::Device,
) -> Tensor<B, 4> {
    let shape = [batch_size, 1, seq_length, seq_length];
    // `tril_mask` is true strictly above the diagonal: the future keys.
    let future = Tensor::<B, 2, Bool>::tril_mask([seq_length, seq_length], 0, device)
        .reshape([1, 1, seq_length, seq_length])
        .expand(shape);
    let blocked = match key_valid {
        None => future,
        Some(valid) => {
            let padding = valid
                .lower_elem(0.5)
                .reshape([batch_size, 1, 1, seq_length])
                .expand(shape);
            future.bool_or(padding)
        }
    };
    Tensor::<B, 4>::zeros(shape, device).mask_fill(blocked, MASKED)
}

/// An HF `LlamaRMSNorm` as burn's [`RmsNorm`]: `x / sqrt(mean(x²) + ε) · weight`, the mean
/// square taken in f32, which equals HF's `x · rsqrt(mean(x²) + ε) · weight` up to rounding
/// (tested below).
fn rms_norm<B: Backend>(
    weights: &Weights,
    prefix: &str,
    d_model: usize,
    epsilon: f64,
    device: &B::Device,
) -> Result<RmsNorm<B>> {
    Ok(RmsNorm {
        gamma: Param::from_tensor(weights.tensor(
            &format!("{prefix}.weight"),
            [d_model],
            device,
        )?),
        epsilon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type B = Flex;

    #[test]
    fn bias_blocks_future_and_padded_keys() {
        let device = Default::default();
        let valid = Tensor::<B, 2>::from_floats([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], &device);
        let bias = attention_bias(2, 3, Some(valid), &device);
        let m = MASKED;
        let expected = TensorData::from([
            [[[0.0, m, m], [0.0, 0.0, m], [0.0, 0.0, 0.0]]],
            [[[0.0, m, m], [0.0, 0.0, m], [0.0, 0.0, m]]],
        ]);
        bias.into_data().assert_eq(&expected, false);
    }

    #[test]
    fn burn_rms_norm_is_hf_llama_rms_norm() {
        let device = Default::default();
        let (d_model, epsilon) = (7, 1e-5);
        let x = Tensor::<B, 3>::random([2, 3, d_model], Distribution::Normal(0.0, 2.0), &device);
        let weight = Tensor::<B, 1>::random([d_model], Distribution::Normal(1.0, 0.3), &device);
        let norm = RmsNorm {
            gamma: Param::from_tensor(weight.clone()),
            epsilon,
        };
        // HF: hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + eps) * weight.
        let inverse_rms = (x.clone().square().mean_dim(2) + epsilon).sqrt().recip();
        let expected = x.clone() * inverse_rms * weight.reshape([1, 1, d_model]);
        norm.forward(x)
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
    }
}
