//! Sequence-classification heads on the encoders, as Hugging Face's task classes (transformers
//! 4.46.3): the models the paper's LoRA / LoRA+ baselines fine-tune.
//!
//! | class | head | pooled over |
//! |---|---|---|
//! | [`WavLMForSequenceClassification`] | `projector` (`d_model → classifier_proj_size`) then `classifier` | the mean of the projected last hidden state over real frames |
//! | [`BeitForImageClassification`] | `classifier` (`d_model → num_classes`) | the pooler: layer norm of the mean of the patch tokens (CLS excluded) |
//! | [`LlamaForSequenceClassification`] | `score` (`d_model → num_classes`, no bias) | the last real token |
//!
//! The encoder is frozen; [`SequenceClassifier::with_lora`] adds trainable adapters. Head
//! weights come from the checkpoint when it has them with the right shape (a task checkpoint:
//! `classifier.*`, `projector.*`, `score.*` beside `wavlm.*` / `beit.*` / `model.*`); otherwise
//! they are drawn as transformers' `_init_weights` does (`N(0, initializer_range²)` weights,
//! zero biases) from [`ClassificationHeadConfig::seed`], as `from_pretrained(...,
//! ignore_mismatched_sizes=True)` would, and named in the model's `initialised` field.

mod beit;
mod head_config;
mod head_init;
mod llama;
mod pooling;
mod wavlm;

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use beit::{beit_head_param_count, BeitForImageClassification, BeitPooling};
pub use head_config::{ClassificationHeadConfig, HeadTraining};
pub use llama::{llama_head_param_count, LlamaForSequenceClassification};
pub use pooling::{last_positions, masked_mean};
pub use wavlm::{wavlm_head_param_count, AudioBatch, WavLMForSequenceClassification};

use crate::error::Result;
use crate::lora::LoraConfig;

/// A frozen encoder with a classification head, optionally LoRA-adapted: what a LoRA / LoRA+
/// trainer drives.
pub trait SequenceClassifier<B: Backend>: Module<B> + Sized {
    /// A batch of inputs.
    type Input;

    /// The class logits of a batch.
    ///
    /// # Shapes
    /// - output: `[batch_size, num_classes]`
    ///
    /// # Errors
    /// [`crate::Error::Input`] for inputs the encoder rejects.
    fn logits(&self, input: Self::Input) -> Result<Tensor<B, 2>>;

    /// The model with the encoder frozen and adapters on the projections `lora` targets
    /// ([`crate::lora::LoraAdaptable::with_lora`]); the head is untouched.
    fn with_lora(self, lora: &LoraConfig, device: &B::Device) -> Self;

    /// The ids of the adapters' `B` matrices (LoRA+'s fast group, [`crate::lora::split_grads`]).
    fn lora_b_ids(&self) -> Vec<ParamId>;

    /// The ids of the adapters' `A` matrices.
    fn lora_a_ids(&self) -> Vec<ParamId>;

    /// The ids of the head parameters that train (see [`HeadTraining`]).
    fn head_ids(&self) -> Vec<ParamId>;

    /// The number of trainable parameters: the adapters plus the training head parameters.
    fn trainable_params(&self) -> usize;

    /// The number of classes.
    fn num_classes(&self) -> usize;
}

/// The ids of a module's float parameters.
fn param_ids<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Ids {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}
