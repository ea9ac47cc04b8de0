//! `BeitForImageClassification` (transformers 4.46.3): `BeitPooler` then a linear classifier.

use std::path::Path;

use burn::module::{Module, ParamId};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Deserialize;

use super::head_init::{HeadBuilder, InitFields};
use super::{param_ids, ClassificationHeadConfig, HeadTraining, SequenceClassifier};
use crate::beit::{Beit, BeitConfig};
use crate::error::Result;
use crate::lora::{LoraAdaptable, LoraConfig};
use crate::seeded_init::SeededInit;
use crate::weights::{read_config, Weights};

/// The `config.json` field that picks the pooling.
#[derive(Debug, Clone, Deserialize)]
struct PoolingField {
    /// Mean of the patch tokens (true, transformers' default) or the CLS token.
    #[serde(default = "yes")]
    use_mean_pooling: bool,
}

fn yes() -> bool {
    true
}

/// How `BeitModel` pools the last hidden state (`use_mean_pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeitPooling {
    /// `true` (`microsoft/beit-large-patch16-224`): `pooler.layernorm` of the mean of the patch
    /// tokens, CLS excluded.
    MeanPatches,
    /// `false`: the CLS token after `BeitModel`'s final `layernorm`.
    Cls,
}

/// BEiT with transformers' image-classification head.
#[derive(Module, Debug)]
pub struct BeitForImageClassification<B: Backend> {
    /// `beit`: the frozen encoder (LoRA-adaptable).
    pub beit: Beit<B>,
    /// `beit.pooler.layernorm` ([`BeitPooling::MeanPatches`]) or `beit.layernorm`
    /// ([`BeitPooling::Cls`]), weight and bias `[d_model]`; part of the frozen `BeitModel`.
    pub pooler_norm: LayerNorm<B>,
    /// `classifier`: `d_model → num_classes`; weight `[d_model, num_classes]`.
    pub classifier: Linear<B>,
    /// The pooling.
    #[module(skip)]
    pub pooling: BeitPooling,
    /// Which head parameters train (the classifier either way).
    #[module(skip)]
    pub training: HeadTraining,
    /// The head tensors drawn rather than loaded (empty when the checkpoint had the head).
    #[module(skip)]
    pub initialised: Vec<String>,
}

/// The trainable head parameters of a BEiT head: the classifier, `d_model · num_classes +
/// num_classes` (102,500 for BEiT-Large on CIFAR-100), whichever [`HeadTraining`].
pub fn beit_head_param_count(d_model: usize, num_classes: usize) -> usize {
    d_model * num_classes + num_classes
}

impl<B: Backend> BeitForImageClassification<B> {
    /// Loads a BEiT checkpoint folder (a `BeitModel`, or a `BeitForImageClassification` such as
    /// `microsoft/beit-large-patch16-224`) and its head, freezing the encoder. The classifier is
    /// loaded only when it has `num_classes` outputs (the IN-1k head is replaced for CIFAR-100).
    ///
    /// # Errors
    /// As [`Beit::load`].
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
        let beit_config: BeitConfig = read_config(dir)?;
        let pooling = if read_config::<PoolingField>(dir)?.use_mean_pooling {
            BeitPooling::MeanPatches
        } else {
            BeitPooling::Cls
        };
        let weights = Weights::open(dir, &["", "beit."], "embeddings.cls_token")?;
        let beit = Beit::from_weights(&beit_config, &weights, device)?.no_grad();
        let base_prefix = weights.prefix().to_string();
        let weights = weights.with_prefix("");
        let mut head = HeadBuilder {
            weights: &weights,
            std: InitFields::read(dir)?.initializer_range,
            init: SeededInit::new(config.seed),
            initialised: Vec::new(),
            device,
        };
        let d_model = beit_config.hidden_size;
        let norm_name = match pooling {
            BeitPooling::MeanPatches => format!("{base_prefix}pooler.layernorm"),
            BeitPooling::Cls => format!("{base_prefix}layernorm"),
        };
        let pooler_norm = head
            .layer_norm(&norm_name, d_model, beit_config.layer_norm_eps)?
            .no_grad();
        let classifier = head.linear("classifier", d_model, config.num_classes, true)?;
        Ok(Self {
            beit,
            pooler_norm,
            classifier,
            pooling,
            training: config.training,
            initialised: head.initialised,
        })
    }

    /// `BeitPooler`'s output.
    ///
    /// # Shapes
    /// - `last`: `[batch_size, 1 + num_patches, d_model]`, the last layer's output
    /// - output: `[batch_size, d_model]`
    pub fn pool(&self, last: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch_size, tokens, d_model] = last.dims();
        let pooled = match self.pooling {
            BeitPooling::MeanPatches => last.narrow(1, 1, tokens - 1).mean_dim(1),
            // The final norm acts per token, so norm-then-CLS is CLS-then-norm.
            BeitPooling::Cls => last.narrow(1, 0, 1),
        };
        self.pooler_norm
            .forward(pooled.reshape([batch_size, d_model]))
    }
}

impl<B: Backend> SequenceClassifier<B> for BeitForImageClassification<B> {
    /// `[batch_size, channels, image_size, image_size]` pixels, normalised as the checkpoint's
    /// preprocessor does.
    type Input = Tensor<B, 4>;

    /// # Shapes
    /// - `input`: `[batch_size, channels, image_size, image_size]`
    /// - output: `[batch_size, num_classes]`
    fn logits(&self, input: Tensor<B, 4>) -> Result<Tensor<B, 2>> {
        let mut hidden = self.beit.forward(input)?;
        let last = hidden.states.pop().expect("BEiT returns L + 1 states");
        Ok(self.classifier.forward(self.pool(last)))
    }

    fn with_lora(mut self, lora: &LoraConfig, device: &B::Device) -> Self {
        self.beit = self.beit.with_lora(lora, device);
        self
    }

    fn lora_b_ids(&self) -> Vec<ParamId> {
        self.beit.lora_b_ids()
    }

    fn lora_a_ids(&self) -> Vec<ParamId> {
        self.beit.lora_a_ids()
    }

    fn head_ids(&self) -> Vec<ParamId> {
        param_ids(&self.classifier)
    }

    fn trainable_params(&self) -> usize {
        self.beit.lora_param_count() + self.classifier.num_params()
    }

    fn num_classes(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}
