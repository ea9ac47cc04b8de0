//! `WavLMForSequenceClassification` (transformers 4.46.3, `use_weighted_layer_sum = false`): the
//! last hidden state projected to `classifier_proj_size`, averaged over the real frames, then
//! classified.

use std::path::Path;

use burn::module::{Module, ParamId};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Deserialize;

use super::head_init::{HeadBuilder, InitFields};
use super::pooling::masked_mean;
use super::{param_ids, ClassificationHeadConfig, HeadTraining, SequenceClassifier};
use crate::error::{Error, Result};
use crate::lora::{LoraAdaptable, LoraConfig};
use crate::seeded_init::SeededInit;
use crate::wavlm::WavLM;
use crate::weights::{read_config, Weights};

/// The `config.json` fields of the head.
#[derive(Debug, Clone, Deserialize)]
struct HeadFields {
    /// The projector's width (transformers default 256).
    #[serde(default = "classifier_proj_size")]
    classifier_proj_size: usize,
    /// A learned softmax-weighted sum of all hidden states instead of the last one.
    #[serde(default)]
    use_weighted_layer_sum: bool,
}

fn classifier_proj_size() -> usize {
    256
}

/// A batch of waveforms.
#[derive(Debug, Clone)]
pub struct AudioBatch<B: Backend> {
    /// `[batch_size, samples]`: 16 kHz waveforms, zero-padded on the right.
    pub input_values: Tensor<B, 2>,
    /// `[batch_size, samples]`: 1.0 at real samples, 0.0 at padding; `None` when nothing is
    /// padded.
    pub attention_mask: Option<Tensor<B, 2>>,
}

/// WavLM with transformers' sequence-classification head.
#[derive(Module, Debug)]
pub struct WavLMForSequenceClassification<B: Backend> {
    /// `wavlm`: the frozen encoder (LoRA-adaptable).
    pub wavlm: WavLM<B>,
    /// `projector`: `d_model → classifier_proj_size`, applied to every frame; weight
    /// `[d_model, classifier_proj_size]`.
    pub projector: Linear<B>,
    /// `classifier`: `classifier_proj_size → num_classes`; weight
    /// `[classifier_proj_size, num_classes]`.
    pub classifier: Linear<B>,
    /// Which head parameters train.
    #[module(skip)]
    pub training: HeadTraining,
    /// The head tensors drawn rather than loaded (empty when the checkpoint had the head).
    #[module(skip)]
    pub initialised: Vec<String>,
}

/// The trainable head parameters of a WavLM head of these widths: `projector` and `classifier`
/// ([`HeadTraining::Whole`]) or the `classifier` alone ([`HeadTraining::ClassifierOnly`]: 1028
/// for WavLM-Large with 4 classes, the authors' 394,244 less the r = 4 adapters).
pub fn wavlm_head_param_count(
    d_model: usize,
    classifier_proj_size: usize,
    num_classes: usize,
    training: HeadTraining,
) -> usize {
    let classifier = classifier_proj_size * num_classes + num_classes;
    match training {
        HeadTraining::Whole => d_model * classifier_proj_size + classifier_proj_size + classifier,
        HeadTraining::ClassifierOnly => classifier,
    }
}

impl<B: Backend> WavLMForSequenceClassification<B> {
    /// Loads a WavLM checkpoint folder (a bare `WavLMModel` or a
    /// `WavLMForSequenceClassification`) and its head, freezing the encoder.
    ///
    /// # Errors
    /// As [`WavLM::load`]; [`Error::Unsupported`] for `use_weighted_layer_sum: true`.
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
        let fields: HeadFields = read_config(dir)?;
        if fields.use_weighted_layer_sum {
            return Err(Error::Unsupported {
                path: dir.join("config.json"),
                message: "use_weighted_layer_sum = true (only the last hidden state is pooled)"
                    .into(),
            });
        }
        let wavlm = WavLM::load(dir, device)?.no_grad();
        let weights = Weights::open(dir, &["", "wavlm."], "feature_projection.projection.weight")?
            .with_prefix("");
        let mut head = HeadBuilder {
            weights: &weights,
            std: InitFields::read(dir)?.initializer_range,
            init: SeededInit::new(config.seed),
            initialised: Vec::new(),
            device,
        };
        let (d_model, width) = (wavlm.config.hidden_size, fields.classifier_proj_size);
        let projector = head.linear("projector", d_model, width, true)?;
        let classifier = head.linear("classifier", width, config.num_classes, true)?;
        let projector = match config.training {
            HeadTraining::Whole => projector,
            HeadTraining::ClassifierOnly => projector.no_grad(),
        };
        Ok(Self {
            wavlm,
            projector,
            classifier,
            training: config.training,
            initialised: head.initialised,
        })
    }
}

impl<B: Backend> SequenceClassifier<B> for WavLMForSequenceClassification<B> {
    type Input = AudioBatch<B>;

    /// # Shapes
    /// - `input.input_values`, `input.attention_mask`: `[batch_size, samples]`
    /// - output: `[batch_size, num_classes]`
    fn logits(&self, input: AudioBatch<B>) -> Result<Tensor<B, 2>> {
        let mut hidden = self
            .wavlm
            .forward(input.input_values, input.attention_mask)?;
        let last = hidden.states.pop().expect("WavLM returns L + 1 states");
        let projected = self.projector.forward(last); // [batch_size, seq_length, proj]
        let pooled = masked_mean(projected, hidden.valid); // [batch_size, proj]
        Ok(self.classifier.forward(pooled))
    }

    fn with_lora(mut self, lora: &LoraConfig, device: &B::Device) -> Self {
        self.wavlm = self.wavlm.with_lora(lora, device);
        self
    }

    fn lora_b_ids(&self) -> Vec<ParamId> {
        self.wavlm.lora_b_ids()
    }

    fn lora_a_ids(&self) -> Vec<ParamId> {
        self.wavlm.lora_a_ids()
    }

    fn head_ids(&self) -> Vec<ParamId> {
        let mut ids = param_ids(&self.classifier);
        if self.training == HeadTraining::Whole {
            ids.extend(param_ids(&self.projector));
        }
        ids
    }

    fn trainable_params(&self) -> usize {
        let projector = match self.training {
            HeadTraining::Whole => self.projector.num_params(),
            HeadTraining::ClassifierOnly => 0,
        };
        self.wavlm.lora_param_count() + projector + self.classifier.num_params()
    }

    fn num_classes(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}
