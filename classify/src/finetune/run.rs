//! One fine-tuning run: a LoRA-adapted encoder with its classification head, trained as the
//! DAT heads are (AdamW, seeded mini-batches, the plateau schedule, the same per-epoch
//! `metrics.csv`), so the Table-2 report reads both alike.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use encoders::lora::step_lora_plus;
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

use super::data::RawStore;
use super::inputs::{FromItems, InputBuilder};
use crate::error::{io_error, Error, Result};
use crate::train::{
    accuracy, check_outputs_finite, non_finite_rows, Accuracy, EpochRecord, RunObserver,
    TrainSettings, METRICS_HEADER,
};

/// The items a fine-tuning run trains and evaluates on (positions in the stores, as
/// [`crate::protocol::RunPlan`] gives them).
#[derive(Debug)]
pub struct FinetuneData<'a> {
    /// The training store with its raw items.
    pub train: &'a RawStore<'a>,
    /// Positions of `train` to fit on.
    pub train_indices: Vec<usize>,
    /// Positions of `train` held out to choose an epoch.
    pub dev_indices: Vec<usize>,
    /// The validation store with its raw items (the training store for folds).
    pub val: &'a RawStore<'a>,
    /// Positions of `val` to score.
    pub val_indices: Vec<usize>,
}

/// LoRA+ learning-rate ratio `λ` of the `B` matrices; `None` is plain LoRA.
pub type PlusRatio = Option<f64>;

fn labels_of(store: &RawStore<'_>, indices: &[usize]) -> Vec<usize> {
    indices
        .iter()
        .map(|&i| store.store().labels()[i] as usize)
        .collect()
}

fn evaluate<B: Backend, M: FromItems<B>>(
    model: &M,
    builder: &InputBuilder,
    store: &RawStore<'_>,
    indices: &[usize],
    batch_size: usize,
    device: &B::Device,
) -> Result<(Accuracy, usize)> {
    let mut predictions = Vec::with_capacity(indices.len());
    let mut non_finite = 0;
    for chunk in indices.chunks(batch_size.max(1)) {
        let items = store.items(chunk)?;
        let logits = model.logits(M::input(builder, &items, device)?)?;
        non_finite += non_finite_rows(&logits);
        let classes = logits.argmax(1).into_data().convert::<i64>();
        predictions.extend(
            classes
                .to_vec::<i64>()
                .expect("int data")
                .into_iter()
                .map(|c| c as usize),
        );
    }
    Ok((
        accuracy(
            &predictions,
            &labels_of(store, indices),
            store.store().class_names().len(),
        ),
        non_finite,
    ))
}

/// Trains `model` (already LoRA-adapted, encoder frozen) on `data`, writing `metrics.csv` in
/// `dir` as it goes; returns the epoch records. With `plus`, the adapters' `B` matrices step at
/// `λ · lr` (LoRA+).
///
/// Weights are not saved: a LoRA model's record would hold the whole encoder.
///
/// # Errors
/// Reader and encoder errors, [`Error::NonFiniteLoss`], [`Error::Diverged`] (outputs not
/// finite after an epoch: [`check_outputs_finite`]), [`Error::Interrupted`], I/O failures.
#[allow(clippy::too_many_arguments)]
pub fn finetune_run<B, M>(
    mut model: M,
    builder: &InputBuilder,
    plus: PlusRatio,
    settings: &TrainSettings,
    data: &FinetuneData<'_>,
    dir: &Path,
    device: &B::Device,
    observer: &mut dyn RunObserver,
) -> Result<Vec<EpochRecord>>
where
    B: AutodiffBackend,
    M: FromItems<B> + AutodiffModule<B>,
    M::InnerModule: FromItems<B::InnerBackend>,
{
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let metrics = dir.join("metrics.csv");
    let mut csv = std::fs::File::create(&metrics).map_err(io_error(&metrics))?;
    writeln!(csv, "{METRICS_HEADER}").map_err(io_error(&metrics))?;

    let lora_b = model.lora_b_ids();
    let mut optimizer = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(settings.weight_decay as f32)
        .init::<B, M>();
    let mut rng = StdRng::seed_from_u64(settings.seed ^ 0x10_5EED);
    let mut order = data.train_indices.clone();
    let mut learning_rate = settings.learning_rate;
    let (mut best_val, mut since_best) = (f64::NEG_INFINITY, 0usize);
    let steps = order.len().div_ceil(settings.batch_size.max(1));
    let mut records = Vec::with_capacity(settings.epochs);

    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (step, chunk) in order.chunks(settings.batch_size.max(1)).enumerate() {
            if observer.should_stop() {
                return Err(Error::Interrupted);
            }
            let items = data.train.items(chunk)?;
            let labels: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
            let targets: Tensor<B, 1, Int> =
                Tensor::from_data(TensorData::new(labels, [items.len()]), device);
            let logits = model.logits(M::input(builder, &items, device)?)?;
            let loss = settings.loss.loss(logits, targets);
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
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = match plus {
                Some(ratio) => {
                    step_lora_plus(&mut optimizer, model, grads, &lora_b, learning_rate, ratio)
                }
                None => optimizer.step(learning_rate, model, grads),
            };
            observer.on_step(epoch, step + 1, steps, value);
        }

        let valid = model.valid();
        let batch = settings.batch_size;
        let (val, val_bad) = evaluate(&valid, builder, data.val, &data.val_indices, batch, device)?;
        let (dev, dev_bad) = evaluate(
            &valid,
            builder,
            data.train,
            &data.dev_indices,
            batch,
            device,
        )?;
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
        writeln!(csv, "{}", record.csv_row()).map_err(io_error(&metrics))?;
        csv.flush().map_err(io_error(&metrics))?;
        if val.weighted > best_val {
            best_val = val.weighted;
            since_best = 0;
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
