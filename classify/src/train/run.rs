//! One training run of a head: AdamW over seeded mini-batches, evaluation on the validation
//! (and dev) items after every epoch, the plateau schedule, a per-epoch metrics CSV and the
//! best-validation-epoch weights.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::{AdamWConfig, Optimizer};
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use daam::record::{CheckedBinFileRecorder, RecordFault};
use daam::DaamBackend;
use datasets::EmbeddingStore;
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{io_error, Error, Result};
use crate::head::{DatHead, DatHeadConfig};

use super::precision::MixedPrecision;
use super::settings::TrainSettings;

/// The recorder of saved heads.
pub type HeadRecorder = CheckedBinFileRecorder<FullPrecisionSettings>;

/// The items a run trains and evaluates on.
#[derive(Debug, Clone)]
pub struct RunData<'a> {
    /// Store of the training (and dev) items.
    pub train: &'a EmbeddingStore,
    /// Items of `train` the head is fitted on.
    pub train_indices: Vec<usize>,
    /// Items of `train` held out to choose an epoch (may be empty).
    pub dev_indices: Vec<usize>,
    /// Store of the validation items (the same store as `train` for group folds).
    pub val: &'a EmbeddingStore,
    /// Items of `val` the run is scored on.
    pub val_indices: Vec<usize>,
    /// Encoder layers kept, in order (the Importance Factor ablation); `None` keeps all.
    pub layers: Option<Vec<usize>>,
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps.
    pub train_loss: f64,
    /// Learning rate used during the epoch.
    pub learning_rate: f64,
    /// Accuracy on the validation items (WA for IEMOCAP).
    pub val_accuracy: f64,
    /// Mean per-class recall on the validation items (UA).
    pub val_unweighted_accuracy: f64,
    /// Accuracy on the dev items (`NaN` without a dev split).
    pub dev_accuracy: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
}

/// The CSV header of [`EpochRecord`]s.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,learning_rate,val_accuracy,val_unweighted_accuracy,dev_accuracy,seconds";

impl EpochRecord {
    pub(crate) fn csv_row(&self) -> String {
        format!(
            "{},{},{},{},{},{},{}",
            self.epoch,
            self.train_loss,
            self.learning_rate,
            self.val_accuracy,
            self.val_unweighted_accuracy,
            self.dev_accuracy,
            self.seconds
        )
    }
}

/// Reads a metrics CSV written by [`train_run`].
///
/// # Errors
/// [`Error::Io`] when unreadable, [`Error::Metrics`] naming the line when malformed.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let bad = |line: usize, message: String| Error::Metrics {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == METRICS_HEADER => {}
        other => {
            return Err(bad(
                1,
                format!("expected the header `{METRICS_HEADER}`, found {other:?}"),
            ))
        }
    }
    let mut records = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 7 {
            return Err(bad(n, format!("expected 7 fields, found {}", fields.len())));
        }
        let f = |k: usize| {
            fields[k]
                .parse::<f64>()
                .map_err(|e| bad(n, format!("field {k} `{}`: {e}", fields[k])))
        };
        let epoch = fields[0]
            .parse::<usize>()
            .map_err(|e| bad(n, format!("epoch `{}`: {e}", fields[0])))?;
        records.push(EpochRecord {
            epoch,
            train_loss: f(1)?,
            learning_rate: f(2)?,
            val_accuracy: f(3)?,
            val_unweighted_accuracy: f(4)?,
            dev_accuracy: f(5)?,
            seconds: f(6)?,
        });
    }
    Ok(records)
}

/// Hooks a caller uses to show progress and stop a run.
pub trait RunObserver {
    /// Before a run of a replication starts (`index` of `total`, 1-based).
    fn on_run_start(&mut self, _method: &str, _run: &str, _index: usize, _total: usize) {}
    /// A line worth showing (a skipped run, a resumed replication).
    fn on_message(&mut self, _message: &str) {}
    /// After each optimisation step.
    fn on_step(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f64) {}
    /// After each epoch.
    fn on_epoch(&mut self, _record: &EpochRecord) {}
    /// Polled between steps; `true` stops the run with [`Error::Interrupted`].
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that does nothing.
pub struct Silent;
impl RunObserver for Silent {}

/// Features and labels of `indices` as tensors, keeping `layers`.
///
/// # Shapes
/// - features: `[indices.len(), kept layers, d_model]`
/// - labels: `[indices.len()]`
pub fn batch_tensors<B: Backend>(
    store: &EmbeddingStore,
    indices: &[usize],
    layers: Option<&[usize]>,
    device: &B::Device,
) -> (Tensor<B, 3>, Tensor<B, 1, Int>) {
    let (l, d) = (store.num_layers(), store.d_model());
    let all = store.gather(indices);
    let (data, kept) = match layers {
        None => (all, l),
        Some(layers) => {
            let mut data = Vec::with_capacity(indices.len() * layers.len() * d);
            for item in all.chunks_exact(l * d) {
                for &layer in layers {
                    data.extend_from_slice(&item[layer * d..(layer + 1) * d]);
                }
            }
            (data, layers.len())
        }
    };
    let labels: Vec<i64> = indices
        .iter()
        .map(|&i| i64::from(store.labels()[i]))
        .collect();
    (
        Tensor::from_data(TensorData::new(data, [indices.len(), kept, d]), device),
        Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
    )
}

/// Accuracy (WA) and mean per-class recall (UA).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Correct / total.
    pub weighted: f64,
    /// Mean over classes present of correct-in-class / in-class.
    pub unweighted: f64,
}

/// Predicted classes of `indices`, and how many of them came from logits that are not all
/// finite (a diverged head: its argmax means nothing).
pub fn predict<B: DaamBackend>(
    model: &DatHead<B>,
    store: &EmbeddingStore,
    indices: &[usize],
    layers: Option<&[usize]>,
    device: &B::Device,
) -> (Vec<usize>, usize) {
    let mut predictions = Vec::with_capacity(indices.len());
    let mut non_finite = 0;
    for chunk in indices.chunks(64) {
        let (x, _) = batch_tensors::<B>(store, chunk, layers, device);
        let logits = model.forward(x);
        non_finite += non_finite_rows(&logits);
        let classes = logits.argmax(1).into_data();
        predictions.extend(
            classes
                .convert::<i64>()
                .to_vec::<i64>()
                .expect("int data")
                .into_iter()
                .map(|c| c as usize),
        );
    }
    (predictions, non_finite)
}

/// How many rows (items) of `logits` hold a value that is not finite.
///
/// # Shapes
/// - `logits`: `[items, classes]`
pub(crate) fn non_finite_rows<B: Backend>(logits: &Tensor<B, 2>) -> usize {
    let bad = logits.clone().is_nan().bool_or(logits.clone().is_inf());
    bad.any_dim(1).int().sum().into_scalar().elem::<i64>() as usize
}

/// [`Error::Diverged`] for the run in `dir` when `bad` of the `total` validation and dev items
/// evaluated after `epoch` had outputs that are not finite: every loss of the epoch can be
/// finite and the last update still leave the model broken (NaN or infinite weights, or
/// outputs that overflow), and its accuracies would be the argmax of NaN, recorded as a result.
pub(crate) fn check_outputs_finite(
    dir: &Path,
    epoch: usize,
    bad: usize,
    total: usize,
) -> Result<()> {
    if bad == 0 {
        return Ok(());
    }
    Err(Error::Diverged {
        what: dir.display().to_string(),
        epoch,
        message: format!(
            "its outputs for {bad} of the {total} validation and dev items are not finite"
        ),
    })
}

/// WA and UA of `predictions` against `labels`.
pub fn accuracy(predictions: &[usize], labels: &[usize], num_classes: usize) -> Accuracy {
    assert_eq!(predictions.len(), labels.len(), "predictions and labels");
    if labels.is_empty() {
        return Accuracy {
            weighted: f64::NAN,
            unweighted: f64::NAN,
        };
    }
    let mut per_class = vec![(0usize, 0usize); num_classes];
    for (&p, &y) in predictions.iter().zip(labels) {
        per_class[y].1 += 1;
        if p == y {
            per_class[y].0 += 1;
        }
    }
    let correct: usize = per_class.iter().map(|c| c.0).sum();
    let present: Vec<f64> = per_class
        .iter()
        .filter(|c| c.1 > 0)
        .map(|c| c.0 as f64 / c.1 as f64)
        .collect();
    Accuracy {
        weighted: correct as f64 / labels.len() as f64,
        unweighted: present.iter().sum::<f64>() / present.len() as f64,
    }
}

fn evaluate<B: DaamBackend>(
    model: &DatHead<B>,
    store: &EmbeddingStore,
    indices: &[usize],
    layers: Option<&[usize]>,
    device: &B::Device,
) -> (Accuracy, usize) {
    let (predictions, non_finite) = predict(model, store, indices, layers, device);
    let labels: Vec<usize> = indices
        .iter()
        .map(|&i| store.labels()[i] as usize)
        .collect();
    (
        accuracy(&predictions, &labels, store.class_names().len()),
        non_finite,
    )
}

/// Files a run writes in its folder.
pub struct RunFiles {
    /// `metrics.csv`: one [`EpochRecord`] per line.
    pub metrics: PathBuf,
    /// `model.bin`: the head at its best validation epoch.
    pub model: PathBuf,
}

impl RunFiles {
    /// The files of the run in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            metrics: dir.join("metrics.csv"),
            model: dir.join("model.bin"),
        }
    }
}

/// Trains a head on `data` as `settings` say, writing `metrics.csv` (one line per epoch, as
/// it goes) and `model.bin` (the weights of the best validation epoch, replaced atomically)
/// in `dir`. Returns the epoch records.
///
/// # Errors
/// I/O failures, [`Error::NonFiniteLoss`], [`Error::Diverged`] (weights or outputs not
/// finite after an epoch), [`Error::Interrupted`] when the observer asks.
///
/// # Panics
/// If the stores' sizes do not fit `head` (callers check them first).
pub fn train_run<B>(
    head: &DatHeadConfig,
    settings: &TrainSettings,
    data: &RunData<'_>,
    dir: &Path,
    device: &B::Device,
    observer: &mut dyn RunObserver,
) -> Result<Vec<EpochRecord>>
where
    B: AutodiffBackend + DaamBackend,
    B::InnerBackend: DaamBackend,
{
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let files = RunFiles::in_dir(dir);
    let mut csv = std::fs::File::create(&files.metrics).map_err(io_error(&files.metrics))?;
    writeln!(csv, "{METRICS_HEADER}").map_err(io_error(&files.metrics))?;

    // Drawn on the CPU, so a seed gives the same head on every device.
    let mut model: DatHead<B> = daam::host_init::init_on_host(
        settings.seed,
        device,
        |cpu| head.init::<burn::backend::Flex>(cpu),
        |dev| head.init(dev),
    );
    B::seed(device, settings.seed);
    let mut optimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(settings.weight_decay as f32)
        .init();
    let layers = data.layers.as_deref();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ 0xDA7_5EED);
    let mut order = data.train_indices.clone();
    let mut learning_rate = settings.learning_rate;
    let (mut best_val, mut since_best) = (f64::NEG_INFINITY, 0usize);
    let mut records = Vec::with_capacity(settings.epochs);
    let steps = order.len().div_ceil(settings.batch_size);
    let compute = settings.precision.compute_dtype();
    let mut amp = MixedPrecision::new(settings.precision);

    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let skipped_before = amp.skipped();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(settings.batch_size).enumerate() {
            if observer.should_stop() {
                return Err(Error::Interrupted);
            }
            let (x, y) = batch_tensors::<B>(data.train, chunk, layers, device);
            let logits = model.forward_with_weights_in(x, compute).logits;
            let loss = settings.loss.loss(logits, y);
            let value = f64::from(loss.clone().into_scalar().elem::<f32>());
            if !value.is_finite() {
                return Err(Error::NonFiniteLoss {
                    what: dir.display().to_string(),
                    epoch,
                    step: step + 1,
                    value: value as f32,
                });
            }
            loss_sum += value;
            let grads =
                amp.gradients(&model, loss)
                    .map_err(|collapsed| Error::LossScaleCollapsed {
                        what: dir.display().to_string(),
                        epoch,
                        step: step + 1,
                        overflows: collapsed.overflows,
                    })?;
            if let Some(grads) = grads {
                model = optimizer.step(learning_rate, model, grads);
            }
            observer.on_step(epoch, step + 1, steps, value);
        }
        let skipped = amp.skipped() - skipped_before;
        if skipped > 0 {
            observer.on_message(&format!(
                "{}: epoch {epoch}: {skipped} f16 step(s) skipped (gradients overflowed), loss \
                 scale now {}",
                dir.display(),
                amp.scale().unwrap_or(1.0)
            ));
        }

        // NaN weights can still give finite outputs on these items (the outputs check below
        // misses them): a head is small enough to check whole.
        let (bad, all) = crate::interpret::non_finite_parameters(&model);
        if bad > 0 {
            return Err(Error::Diverged {
                what: dir.display().to_string(),
                epoch,
                message: format!("{bad} of its {all} parameters are not finite"),
            });
        }
        let valid = model.valid();
        let (val, val_bad) = evaluate(&valid, data.val, &data.val_indices, layers, device);
        let (dev, dev_bad) = evaluate(&valid, data.train, &data.dev_indices, layers, device);
        check_outputs_finite(
            dir,
            epoch,
            val_bad + dev_bad,
            data.val_indices.len() + data.dev_indices.len(),
        )?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / steps.max(1) as f64,
            learning_rate,
            val_accuracy: val.weighted,
            val_unweighted_accuracy: val.unweighted,
            dev_accuracy: dev.weighted,
            seconds: started.elapsed().as_secs_f64(),
        };
        writeln!(csv, "{}", record.csv_row()).map_err(io_error(&files.metrics))?;
        csv.flush().map_err(io_error(&files.metrics))?;
        if val.weighted > best_val {
            best_val = val.weighted;
            since_best = 0;
            save_head(&model, &files.model)?;
        } else {
            since_best += 1;
            if since_best > settings.plateau_patience {
                learning_rate *= settings.plateau_factor;
                since_best = 0;
            }
        }
        observer.on_epoch(&record);
        records.push(record);
    }
    Ok(records)
}

/// Saves a head's weights to `path` through a temporary file and a rename, so a kill mid-write
/// leaves the previous weights in place.
///
/// # Errors
/// [`Error::Checkpoint`] when the recorder fails, [`Error::Io`] when the rename does.
pub fn save_head<B: Backend>(model: &DatHead<B>, path: &Path) -> Result<()> {
    // The recorder replaces the extension of the name it is given with its own (`.bin`):
    // give it a name without one, which it turns into `model-partial.bin`.
    let tmp = path.with_file_name("model-partial");
    model
        .clone()
        .save_file(tmp.clone(), &HeadRecorder::new())
        .map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let written = tmp.with_extension("bin");
    std::fs::rename(&written, path).map_err(io_error(path))
}

/// Loads a head saved by [`save_head`].
///
/// # Errors
/// [`Error::Checkpoint`] when the file is missing or does not fit `config`.
pub fn load_head<B: Backend>(
    config: &DatHeadConfig,
    path: &Path,
    device: &B::Device,
) -> Result<DatHead<B>> {
    if !path.exists() {
        // burn's error for it read "does not fit this head's configuration (or is corrupt)".
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "the file is missing (the run did not save a model): delete the run's \
                      folder and rerun the replication's command to train it again (a run with \
                      a result.json is kept as done), or give --run with a finished run"
                .into(),
        });
    }
    if !path.is_file() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "is not a file (a folder or another kind of entry): the run's weights are \
                      a model.bin file"
                .into(),
        });
    }
    config
        .init::<B>(device)
        .load_file(path.to_path_buf(), &HeadRecorder::new(), device)
        .map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: RecordFault::of(&e).describe("this head's configuration"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_checkpoint_is_called_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let config = DatHeadConfig::new(crate::head::HeadKind::DaamV2, 2, 4, 2);
        let error = load_head::<crate::tests::TestBackend>(&config, &path, &Default::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "checkpoint {}: the file is missing (the run did not save a model): delete the \
                 run's folder and rerun the replication's command to train it again (a run with \
                 a result.json is kept as done), or give --run with a finished run",
                path.display()
            )
        );
        std::fs::create_dir(&path).unwrap();
        let error = load_head::<crate::tests::TestBackend>(&config, &path, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(error.ends_with("is not a file (a folder or another kind of entry): the run's weights are a model.bin file"), "{error}");
    }

    #[test]
    fn accuracy_weighted_and_unweighted() {
        // Class 0: 3 of 4 right; class 1: 0 of 1; class 2 absent.
        let acc = accuracy(&[0, 0, 0, 1, 0], &[0, 0, 0, 0, 1], 3);
        assert!((acc.weighted - 0.6).abs() < 1e-12);
        assert!((acc.unweighted - 0.375).abs() < 1e-12);
    }
}
