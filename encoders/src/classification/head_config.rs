//! Which head parameters train, the number of classes and the seed of fresh head weights.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// Which parameters of the task head train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HeadTraining {
    /// Every parameter the task class adds to the encoder: WavLM's `projector` and
    /// `classifier`, BEiT's `classifier`, Llama's `score` (BEiT's pooler norm belongs to
    /// `BeitModel` and stays frozen, as the encoder does).
    #[default]
    Whole,
    /// Only parameters whose Hugging Face name contains `classifier`, the authors' rule
    /// (`reference/classify-anchors.md` §5.2): WavLM's `classifier` (its random `projector`
    /// stays frozen), BEiT's `classifier`, and nothing of Llama (its head is `score`, which
    /// stays frozen at its random start). With it the trainable counts are the authors'.
    ClassifierOnly,
}

/// Configuration of a classification head on a loaded encoder.
#[derive(Config, Debug)]
pub struct ClassificationHeadConfig {
    /// The number of classes `num_classes` (IEMOCAP 4, CIFAR-100 100, AG News 4); at least 1.
    pub num_classes: usize,
    /// Which head parameters train. Default [`HeadTraining::Whole`].
    #[config(default = "HeadTraining::Whole")]
    pub training: HeadTraining,
    /// Seed of the head parameters the checkpoint does not provide. Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl ClassificationHeadConfig {
    /// Checks the configuration.
    ///
    /// # Panics
    /// When `num_classes` is 0.
    pub fn validate(&self) {
        assert!(
            self.num_classes >= 1,
            "a classification head needs at least 1 class, got {}",
            self.num_classes
        );
    }
}
