//! `LlamaForSequenceClassification` (transformers 4.46.3): `score` (no bias) on the last real
//! token's final hidden state.

use std::path::Path;

use burn::module::{Module, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::head_init::{HeadBuilder, InitFields};
use super::pooling::last_positions;
use super::{param_ids, ClassificationHeadConfig, HeadTraining, SequenceClassifier};
use crate::error::{Error, Result};
use crate::llama::{Llama, LlamaConfig, TokenBatch};
use crate::lora::{LoraAdaptable, LoraConfig};
use crate::seeded_init::SeededInit;
use crate::weights::Weights;

/// Llama with transformers' sequence-classification head.
#[derive(Module, Debug)]
pub struct LlamaForSequenceClassification<B: Backend> {
    /// `model`: the frozen decoder (LoRA-adaptable).
    pub model: Llama<B>,
    /// `score`: `d_model → num_classes`, no bias; weight `[d_model, num_classes]`.
    pub score: Linear<B>,
    /// Which head parameters train ([`HeadTraining::ClassifierOnly`] freezes `score`, as the
    /// authors' name rule did).
    #[module(skip)]
    pub training: HeadTraining,
    /// The head tensors drawn rather than loaded (empty when the checkpoint had the head).
    #[module(skip)]
    pub initialised: Vec<String>,
}

/// The trainable head parameters of a Llama head: `score`, `d_model · num_classes`
/// ([`HeadTraining::Whole`]), or none ([`HeadTraining::ClassifierOnly`]: the authors' 6,553,600
/// for Llama-2-13B r = 8 are the adapters alone).
pub fn llama_head_param_count(d_model: usize, num_classes: usize, training: HeadTraining) -> usize {
    match training {
        HeadTraining::Whole => d_model * num_classes,
        HeadTraining::ClassifierOnly => 0,
    }
}

impl<B: Backend> LlamaForSequenceClassification<B> {
    /// Loads a Llama checkpoint folder (`LlamaModel`, `LlamaForCausalLM` or
    /// `LlamaForSequenceClassification`) and its head, freezing the decoder.
    ///
    /// # Errors
    /// As [`Llama::load`].
    ///
    /// # Panics
    /// As [`ClassificationHeadConfig::validate`].
    pub fn load(
        dir: impl AsRef<Path>,
        config: &ClassificationHeadConfig,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate();
        let dir = dir.as_ref();
        let llama_config = LlamaConfig::read(dir)?;
        let weights = Weights::open(dir, &["", "model."], "embed_tokens.weight")?;
        let model = Llama::from_weights(&llama_config, &weights, device)?.no_grad();
        let weights = weights.with_prefix("");
        let mut head = HeadBuilder {
            weights: &weights,
            std: InitFields::read(dir)?.initializer_range,
            init: SeededInit::new(config.seed),
            initialised: Vec::new(),
            device,
        };
        let score = head.linear("score", llama_config.hidden_size, config.num_classes, false)?;
        let score = match config.training {
            HeadTraining::Whole => score,
            HeadTraining::ClassifierOnly => score.no_grad(),
        };
        Ok(Self {
            model,
            score,
            training: config.training,
            initialised: head.initialised,
        })
    }
}

impl<B: Backend> SequenceClassifier<B> for LlamaForSequenceClassification<B> {
    /// A right-padded batch ([`crate::llama::LlamaTokenizer::encode_batch`]).
    type Input = TokenBatch<B>;

    /// The logits at each text's last real token, `lengths[b] − 1`. transformers finds it as the
    /// position before the first `pad_token_id`, which is the same position for right-padded
    /// batches whose texts do not contain the pad id.
    ///
    /// # Shapes
    /// - `input.input_ids`, `input.attention_mask`: `[batch_size, seq_length]`
    /// - output: `[batch_size, num_classes]`
    ///
    /// # Errors
    /// As [`Llama::forward`]; [`Error::Input`] when `lengths` does not fit the batch.
    fn logits(&self, input: TokenBatch<B>) -> Result<Tensor<B, 2>> {
        let [batch_size, _] = input.input_ids.dims();
        if input.lengths.len() != batch_size {
            return Err(Error::Input(format!(
                "Llama: {} lengths for a batch of {batch_size}",
                input.lengths.len()
            )));
        }
        let mut hidden = self
            .model
            .forward(input.input_ids, Some(input.attention_mask))?;
        let last = hidden.states.pop().expect("Llama returns L + 1 states");
        let pooled = last_positions(last, &input.lengths)?; // [batch_size, d_model]
        Ok(self.score.forward(pooled))
    }

    fn with_lora(mut self, lora: &LoraConfig, device: &B::Device) -> Self {
        self.model = self.model.with_lora(lora, device);
        self
    }

    fn lora_b_ids(&self) -> Vec<ParamId> {
        self.model.lora_b_ids()
    }

    fn lora_a_ids(&self) -> Vec<ParamId> {
        self.model.lora_a_ids()
    }

    fn head_ids(&self) -> Vec<ParamId> {
        match self.training {
            HeadTraining::Whole => param_ids(&self.score),
            HeadTraining::ClassifierOnly => Vec::new(),
        }
    }

    fn trainable_params(&self) -> usize {
        let score = match self.training {
            HeadTraining::Whole => self.score.num_params(),
            HeadTraining::ClassifierOnly => 0,
        };
        self.model.lora_param_count() + score
    }

    fn num_classes(&self) -> usize {
        self.score.weight.dims()[1]
    }
}
