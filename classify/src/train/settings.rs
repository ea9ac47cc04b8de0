//! Training settings and the per-task defaults of the authors' code
//! (`reference/daam-reference.md` §4.2, `reference/classify-anchors.md` §8).

use serde::{Deserialize, Serialize};

use super::loss::LossKind;
use super::precision::Precision;

/// The paper's three tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Speech emotion recognition, WavLM-Large embeddings, 4 classes, leave-one-session-out.
    Iemocap,
    /// Image classification, BEiT-Large embeddings, 100 classes, 5 seeded runs.
    Cifar100,
    /// News topic classification, Llama-2-13B embeddings, 4 classes, 3 seeded runs.
    Agnews,
}

impl Task {
    /// The task's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::Iemocap => "iemocap",
            Task::Cifar100 => "cifar100",
            Task::Agnews => "agnews",
        }
    }

    /// How the task is evaluated: folds over the store's groups, or seeded runs on fixed splits.
    pub fn protocol(self) -> Protocol {
        match self {
            Task::Iemocap => Protocol::GroupFolds,
            Task::Cifar100 => Protocol::Seeds { runs: 5 },
            Task::Agnews => Protocol::Seeds { runs: 3 },
        }
    }

    /// The authors' training settings for the task: AdamW (β 0.9/0.999, ε 1e-8, weight decay
    /// 0.01), 35 epochs, ReduceLROnPlateau on validation accuracy (factor 0.1, patience 10);
    /// IEMOCAP lr 1e-4, batch 8, focal loss; CIFAR-100 lr 1e-5, batch 32, cross-entropy;
    /// AG News lr 5e-5, batch 32, cross-entropy.
    pub fn defaults(self) -> TrainSettings {
        let base = TrainSettings {
            epochs: 35,
            batch_size: 32,
            learning_rate: 1e-4,
            weight_decay: 0.01,
            loss: LossKind::CrossEntropy,
            seed: 0,
            plateau_patience: 10,
            plateau_factor: 0.1,
            dev_fraction: 0.1,
            precision: Precision::F32,
        };
        match self {
            Task::Iemocap => TrainSettings {
                batch_size: 8,
                loss: LossKind::AUTHORS_FOCAL,
                ..base
            },
            Task::Cifar100 => TrainSettings {
                learning_rate: 1e-5,
                ..base
            },
            Task::Agnews => TrainSettings {
                learning_rate: 5e-5,
                ..base
            },
        }
    }
}

/// How runs are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// One fold per distinct group of a single store (IEMOCAP sessions): train on the other
    /// groups, validate on that one.
    GroupFolds,
    /// `runs` seeded runs on a `train/` and a `test/` store (the official splits).
    Seeds {
        /// Number of runs.
        runs: usize,
    },
}

/// Everything a training run needs besides the data and the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Passes over the training items.
    pub epochs: usize,
    /// Items per step.
    pub batch_size: usize,
    /// AdamW learning rate at the start.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (PyTorch's default 0.01, as the authors' code).
    pub weight_decay: f64,
    /// The loss.
    pub loss: LossKind,
    /// Seed of the initialisation, the data order and the dev split.
    pub seed: u64,
    /// Epochs without a better validation accuracy before the learning rate is multiplied by
    /// `plateau_factor` (the authors' `ReduceLROnPlateau('max', 0.1, patience=10)`).
    pub plateau_patience: usize,
    /// Learning-rate factor on a plateau.
    pub plateau_factor: f64,
    /// Fraction of the training items held out as a dev split for the second protocol (epoch
    /// chosen on dev); 0 trains on every training item and reports the paper's protocol only.
    pub dev_fraction: f64,
    /// Precision of the training steps (`f32`; `bf16`/`f16` mixed precision, meant for CUDA).
    /// Evaluation and the saved weights are `f32` either way.
    #[serde(default)]
    pub precision: Precision,
}

/// Most epochs a run may ask for (the per-epoch metrics are kept in memory).
pub const MAX_EPOCHS: usize = 100_000;

impl TrainSettings {
    /// Checks ranges, naming the field. Floats must be finite: a NaN compares false with
    /// every bound, so `learning_rate <= 0.0` alone lets it through.
    pub fn validate(&self) -> Result<(), String> {
        if self.epochs > MAX_EPOCHS {
            return Err(format!(
                "epochs ({}) must be at most {MAX_EPOCHS}",
                self.epochs
            ));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(format!(
                "epochs ({}) and batch_size ({}) must be positive",
                self.epochs, self.batch_size
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "learning_rate must be a positive finite number, got {}",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "weight_decay must be a finite number ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.plateau_factor > 0.0 && self.plateau_factor <= 1.0) {
            return Err(format!(
                "plateau_factor must be in (0, 1], got {}",
                self.plateau_factor
            ));
        }
        if !(0.0..0.9).contains(&self.dev_fraction) {
            return Err(format!(
                "dev_fraction ({}) must be in [0, 0.9)",
                self.dev_fraction
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_default_is_valid() {
        for task in [Task::Iemocap, Task::Cifar100, Task::Agnews] {
            assert_eq!(task.defaults().validate(), Ok(()), "{}", task.name());
        }
    }

    /// `--epochs 18446744073709551615` overflowed a capacity, 10⁹ aborted allocating 56 GB.
    #[test]
    fn epochs_are_bounded() {
        let base = Task::Iemocap.defaults();
        for (epochs, ok) in [
            (MAX_EPOCHS, true),
            (MAX_EPOCHS + 1, false),
            (usize::MAX, false),
        ] {
            let result = TrainSettings {
                epochs,
                ..base.clone()
            }
            .validate();
            assert_eq!(result.is_ok(), ok, "{epochs}: {result:?}");
        }
    }

    #[test]
    fn non_finite_and_out_of_range_floats_are_refused() {
        let base = Task::Iemocap.defaults();
        for lr in [f64::NAN, f64::INFINITY, 0.0, -1e-4] {
            let message = TrainSettings {
                learning_rate: lr,
                ..base.clone()
            }
            .validate()
            .unwrap_err();
            assert!(
                message.contains("learning_rate must be a positive finite number"),
                "{lr}: {message}"
            );
        }
        for decay in [f64::NAN, f64::INFINITY, -0.01] {
            let settings = TrainSettings {
                weight_decay: decay,
                ..base.clone()
            };
            assert!(settings.validate().unwrap_err().contains("weight_decay"));
        }
        for factor in [f64::NAN, 0.0, 1.5] {
            let settings = TrainSettings {
                plateau_factor: factor,
                ..base.clone()
            };
            assert!(settings.validate().unwrap_err().contains("plateau_factor"));
        }
        let settings = TrainSettings {
            dev_fraction: f64::NAN,
            ..base
        };
        assert!(settings.validate().unwrap_err().contains("dev_fraction"));
    }
}
