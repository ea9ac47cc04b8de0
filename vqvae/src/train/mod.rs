//! The training loop: data, optimisation, codebook bookkeeping, logs, samples, checkpoints,
//! resumption and interruption.

pub mod checkpoint;
mod codebook_stats;
mod inputs;
mod metrics_log;
mod phases;
mod schedule;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use daam::DaamBackend;
use datasets::{Preprocess, RgbImage};
use rand::{rngs::StdRng, RngExt, SeedableRng};

pub use codebook_stats::{code_counts, CodebookStats};
pub use metrics_log::MetricsLog;
pub use schedule::{LrDecay, LrSchedule};

use crate::config::RunConfig;
use crate::data::{load_all_until, to_tensor, ImageSource, Prefetcher};
use crate::error::{Error, Result};
use crate::eval::{evaluate, reconstruct_all, Evaluation};
use crate::grid::save_grid;
use checkpoint::{Listing, RunSources, TrainState};
use inputs::{check_run_outside_inputs, validation_notes};
use phases::Phases;

/// Validation images scored at the end of a run.
pub const FINAL_EVAL_IMAGES: usize = 64;

/// Where a run reads and writes, and how it may be stopped.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Training images (recursively); `None` trains on the embedded procedural set, or, when
    /// resuming, on the run's own (`sources.json`).
    pub data: Option<PathBuf>,
    /// Validation images; `None` holds `data.holdout` images out of the training set, or, when
    /// resuming, uses the run's own.
    pub val: Option<PathBuf>,
    /// The run folder (checkpoints, logs, samples).
    pub out: PathBuf,
    /// Continue from the run folder's latest checkpoint.
    pub resume: bool,
    /// Set (e.g. by Ctrl-C) to save a checkpoint and return after the current step.
    pub stop: Arc<AtomicBool>,
}

/// What one step reports to the observer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Steps completed, this one included.
    pub step: u64,
    /// Steps the run will take.
    pub total_steps: u64,
    /// Epoch of the step.
    pub epoch: u64,
    /// Total loss.
    pub loss: f64,
    /// Reconstruction MSE (images in [−1, 1]).
    pub reconstruction: f64,
    /// Codebook loss.
    pub codebook: f64,
    /// Commitment loss (β included).
    pub commitment: f64,
    /// Fraction of codes used over the usage window.
    pub usage: f64,
    /// Perplexity of the code distribution over the window.
    pub perplexity: f64,
    /// Training throughput of this step.
    pub images_per_second: f64,
    /// Unreadable images skipped so far.
    pub skipped_images: u64,
    /// Codes restarted from latents so far (`model.dead_code_after`).
    pub restarted_codes: u64,
    /// Learning rate of the step.
    pub learning_rate: f64,
}

/// Receives progress; the binary draws progress bars, tests stay silent.
pub trait TrainObserver {
    /// Before the first step.
    fn on_start(&mut self, _start_step: u64, _total_steps: u64) {}
    /// After every step.
    fn on_step(&mut self, _report: &StepReport) {}
    /// A notable event (checkpoint written, sample saved, images skipped, evaluation).
    fn on_event(&mut self, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl TrainObserver for Silent {}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Steps completed.
    pub steps: u64,
    /// The checkpoint written last.
    pub checkpoint: PathBuf,
    /// Whether the run stopped early on request.
    pub interrupted: bool,
    /// Validation metrics of the final model.
    pub evaluation: Evaluation,
}

/// Fields that may differ when resuming (how long to train, the learning rate, how often to
/// log) are blanked out of the comparison.
fn resumable_view(config: &RunConfig) -> RunConfig {
    let mut c = config.clone();
    c.train.learning_rate = 0.0;
    c.train.schedule = LrSchedule::default();
    c.train.epochs = 0;
    c.train.max_steps = 0;
    c.train.checkpoint_every = 0;
    c.train.sample_every = 0;
    c.train.keep_checkpoints = 0;
    c.data.cache_mb = 0;
    c.data.workers = 0;
    c
}

/// Steps the run takes: `epochs` passes, capped by `max_steps` when it is set.
fn total_steps(config: &RunConfig, images: usize) -> u64 {
    let total = images.div_ceil(config.train.batch_size) as u64 * config.train.epochs;
    if config.train.max_steps > 0 {
        total.min(config.train.max_steps)
    } else {
        total
    }
}

/// Trains a VQ-VAE as `config` says.
///
/// # Errors
/// Unreadable data folders, a run folder that already holds a run (without `resume`), a
/// checkpoint from another configuration, I/O failures, and a NaN/Inf loss
/// ([`Error::NonFiniteLoss`], after which the last good checkpoint is left as it was).
pub fn train<B>(
    config: &RunConfig,
    options: &TrainOptions,
    device: &B::Device,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome>
where
    B: AutodiffBackend + DaamBackend,
    B::InnerBackend: DaamBackend,
{
    config.validate().map_err(|message| Error::Config {
        path: options.out.join("config.json"),
        message,
    })?;
    let run = &options.out;
    check_run_outside_inputs(run, options.data.as_deref(), options.val.as_deref())?;
    crate::reconstruct::check_output_folder(run)?;
    let _lock = checkpoint::lock_run(run)?;
    let seed = config.train.seed;
    // A resumed run continues on the folders it was started with unless told otherwise.
    let existing = checkpoint::latest(run)?;
    let stored = if options.resume && existing.is_some() {
        match checkpoint::read_sources(run)? {
            Some(stored) => stored,
            None if options.data.is_some() => RunSources::default(),
            None => {
                return Err(Error::Checkpoint {
                    path: run.join("sources.json"),
                    message: "is missing, so the run's image folders are unknown: pass --data \
                              (and --val) to continue on them, or restore the file (a run on \
                              the built-in images has {\"data\": null, \"val\": null})"
                        .into(),
                });
            }
        }
    } else {
        RunSources::default()
    };
    let mut sources = RunSources {
        data: options.data.clone().or(stored.data.clone()),
        val: options.val.clone().or(stored.val.clone()),
        ..RunSources::default()
    };
    check_run_outside_inputs(run, sources.data.as_deref(), sources.val.as_deref())?;
    for (flag, given, used) in [
        ("--data", &options.data, &sources.data),
        ("--val", &options.val, &sources.val),
    ] {
        if let (None, Some(path)) = (given, used) {
            observer.on_event(&format!("{flag} of the run: {}", path.display()));
        }
    }
    let source = ImageSource::open(sources.data.as_deref(), seed, config.data.procedural_images)?;
    for note in validation_notes(
        &sources,
        &source,
        config.data.holdout,
        config.train.batch_size,
    ) {
        observer.on_event(&format!("note: {note}"));
    }
    sources.data_listing = Listing::of(&source);
    let mut ignored_files = |flag: &str, images: &ImageSource| {
        if let Some(summary) = images.folder().and_then(|f| f.ignored_summary()) {
            observer.on_event(&format!("note: {flag}: {summary}"));
        }
    };
    ignored_files("--data", &source);
    inputs::check_links_outside_run(run, "--data", &source)?;
    let (train_source, val_source) = match &sources.val {
        Some(val) => {
            let val = ImageSource::open(Some(val), seed, 0)?;
            ignored_files("--val", &val);
            inputs::check_links_outside_run(run, "--val", &val)?;
            sources.val_listing = Listing::of(&val);
            (source, val)
        }
        None => source.split(config.data.holdout, seed),
    };
    // A resume on other images draws other batches (the order follows the image list).
    for (flag, then, now) in [
        ("--data", &stored.data_listing, &sources.data_listing),
        ("--val", &stored.val_listing, &sources.val_listing),
    ] {
        if let Some(change) = then
            .as_ref()
            .zip(now.as_ref())
            .and_then(|(a, b)| a.change(b))
        {
            observer.on_event(&format!(
                "note: {flag} now holds {change}: the resumed run's batches (and, without \
                 --val, its held-out images) are not those an uninterrupted run would have had"
            ));
        }
    }
    let size = config.data.image_size;
    let resize = config.data.resize_side();
    let what = match &sources.val {
        Some(val) => format!("--val {}", val.display()),
        None => format!("data.holdout ({})", config.data.holdout),
    };
    crate::config::check_validation_memory(val_source.len(), resize, &what)
        .map_err(Error::Usage)?;
    let train_source = train_source.cached(resize, config.data.cache_mb.saturating_mul(1 << 20));
    // Validation images are the centre square of the view training crops are taken from.
    let Some(crate::data::LoadedImages {
        images: val_images,
        skipped: val_skipped,
    }) = load_all_until(&val_source, resize, &options.stop)
    else {
        return Err(Error::Interrupted {
            during: "loading the validation images".into(),
        });
    };
    for (name, error) in &val_skipped {
        tracing::warn!("skipping unreadable validation image {name}: {error}");
    }
    if val_images.is_empty() {
        return Err(Error::NoImages {
            what: "the validation set".into(),
        });
    }
    let factor = config.downsampling() as usize;
    let eval_tile = crate::tiles::eval_tile(config, resize);
    let preview: Vec<RgbImage> = val_images.iter().take(8).map(|(_, i)| i.clone()).collect();

    // Start fresh or resume.
    let (mut model, mut optimizer, mut state) = {
        let mut optimizer = AdamConfig::new().with_epsilon(1e-8).init();
        match (existing, options.resume) {
            (Some(dir), true) => {
                let stored = checkpoint::read_config(run)?;
                if resumable_view(&stored) != resumable_view(config) {
                    let changed = daam::settings_diff::differences(
                        &resumable_view(&stored),
                        &resumable_view(config),
                    );
                    return Err(Error::Checkpoint {
                        path: run.join("config.json"),
                        message: format!(
                            "the run was trained with a different configuration ({}); --resume \
                             may change only the epochs, the step limit, the learning rate and \
                             its schedule",
                            changed.join("; ")
                        ),
                    });
                }
                let model = checkpoint::load_model::<B>(config, &dir, device)?;
                optimizer =
                    optimizer.load_record(checkpoint::load_optimizer::<B, _>(&dir, device)?);
                let state = checkpoint::read_state(&dir)?;
                observer.on_event(&format!(
                    "resuming from {} (step {})",
                    dir.display(),
                    state.step
                ));
                (model, optimizer, state)
            }
            (Some(dir), false) => {
                return Err(Error::Checkpoint {
                    path: dir,
                    message: "this --out folder already holds a run: pass --resume to continue \
                              it or choose another --out"
                        .into(),
                })
            }
            (None, _) => {
                // Drawn on the CPU, so a seed gives the same model on every device.
                let model_config = config.model_config();
                let model = daam::host_init::init_on_host(
                    seed,
                    device,
                    |cpu| model_config.init::<burn::backend::Flex>(cpu),
                    |dev| model_config.init::<B>(dev),
                );
                B::seed(device, seed);
                let state = TrainState {
                    step: 0,
                    codebook: CodebookStats::new(config.model.num_codes, config.train.usage_window),
                    skipped_images: 0,
                    skipped_files: Default::default(),
                    restarted_codes: 0,
                };
                (model, optimizer, state)
            }
        }
    };
    checkpoint::write_config(run, config)?;
    checkpoint::write_sources(run, &sources)?;
    let mut log = MetricsLog::open(&run.join("metrics.csv"), state.step)?;

    let total_steps = total_steps(config, train_source.len());
    if state.step > 0 && total_steps <= state.step {
        observer.on_event(&format!(
            "nothing to train: the run is at step {} and this configuration stops at step \
             {total_steps} ({} epochs of {} steps, max_steps {}); raise --epochs or --max-steps",
            state.step,
            config.train.epochs,
            train_source.len().div_ceil(config.train.batch_size),
            config.train.max_steps,
        ));
    }
    for note in config.train.schedule.notes(total_steps) {
        observer.on_event(&format!("note: {note}"));
    }
    let preprocess = Preprocess {
        size,
        resize,
        crop: config.data.crop,
        flip: config.data.flip,
    };
    let workers = match config.data.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let prefetch = Prefetcher::start(
        train_source.clone(),
        preprocess,
        config.train.batch_size,
        seed,
        state.step,
        total_steps,
        workers,
    );
    observer.on_start(state.step, total_steps);
    let mut last_checkpoint =
        checkpoint::latest(run)?.map_or("none".to_string(), |p| p.display().to_string());
    let mut interrupted = false;
    let num_codes = config.model.num_codes;

    while let Some(batch) = prefetch.next() {
        let started = Instant::now();
        for (name, error) in &batch.skipped {
            // Once per file: a file unreadable in one epoch is unreadable in every epoch. Known
            // by its canonical path: a resume reads the folders from `sources.json` (absolute),
            // the first run as given (`imgs/bad.png`).
            let file = std::fs::canonicalize(name)
                .map_or_else(|_| name.clone(), |path| path.display().to_string());
            if state.skipped_files.insert(file) {
                observer.on_event(&format!("skipped unreadable image {name}: {error}"));
                state.skipped_images = state.skipped_files.len() as u64;
            } else {
                tracing::debug!("skipping unreadable image {name} again");
            }
        }
        if batch.images.is_empty() {
            state.step = batch.step + 1;
            continue;
        }
        let mut phases = Phases::<B>::new(device);
        let images = to_tensor::<B>(&batch.images, device);
        phases.mark("upload");
        let out = model.forward(images.clone());
        phases.mark("forward");
        let reconstruction = (out.reconstruction - images).powi_scalar(2).mean();
        let loss = reconstruction.clone()
            + out.quantizer.codebook_loss.clone()
            + out.quantizer.commitment_loss.clone();
        let value = scalar(&loss);
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss {
                step: batch.step + 1,
                value,
                last_checkpoint,
            });
        }
        phases.mark("loss read");
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        phases.mark("backward");
        let learning_rate =
            config
                .train
                .schedule
                .rate(config.train.learning_rate, batch.step, total_steps);
        model = optimizer.step(learning_rate, model, grads);
        phases.mark("optimizer");

        // Codebook: EMA update, statistics, dead-code restarts.
        let indices = out.quantizer.indices.clone().flatten::<1>(0, 2);
        let latents = out.quantizer.latents.clone();
        model.quantizer = model.quantizer.ema_update(latents.clone(), indices.clone());
        let flat: Vec<i64> = indices
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("indices");
        state
            .codebook
            .update(batch.step, &code_counts(&flat, num_codes));
        if config.model.dead_code_after > 0 {
            let dead = state
                .codebook
                .dead(batch.step, config.model.dead_code_after);
            if !dead.is_empty() {
                let replacements = random_rows(latents, dead.len(), seed, batch.step);
                model.quantizer = model.quantizer.restart_codes(&dead, replacements);
                state.codebook.revive(batch.step, &dead);
                state.restarted_codes += dead.len() as u64;
            }
        }
        state.step = batch.step + 1;
        phases.mark("codebook");
        phases.report(state.step);

        let report = StepReport {
            step: state.step,
            total_steps,
            epoch: batch.epoch,
            loss: value,
            reconstruction: scalar(&reconstruction),
            codebook: scalar(&out.quantizer.codebook_loss),
            commitment: scalar(&out.quantizer.commitment_loss),
            usage: state.codebook.usage(batch.step),
            perplexity: state.codebook.perplexity(),
            images_per_second: batch.images.len() as f64 / started.elapsed().as_secs_f64(),
            skipped_images: state.skipped_images,
            restarted_codes: state.restarted_codes,
            learning_rate,
        };
        log.append(&report)?;
        observer.on_step(&report);

        let stop = options.stop.load(Ordering::SeqCst);
        let last = state.step == total_steps;
        if state.step % config.train.sample_every.max(1) == 0 || last || stop {
            let path = run
                .join("samples")
                .join(format!("step-{:08}.png", state.step));
            let inner = model.valid();
            let (recon, _) = reconstruct_all(&inner, &preview, eval_tile, factor, device);
            save_grid(&[preview.clone(), recon], &path)?;
            observer.on_event(&format!("sample grid {}", path.display()));
        }
        if state.step % config.train.checkpoint_every.max(1) == 0 || last || stop {
            let dir = checkpoint::save(
                run,
                &model,
                optimizer.to_record(),
                &state,
                config.train.keep_checkpoints,
            )?;
            last_checkpoint = dir.display().to_string();
            observer.on_event(&format!("checkpoint {}", dir.display()));
        }
        if stop && !last {
            interrupted = true;
            break;
        }
    }
    drop(prefetch);
    if state.step == 0 {
        return Err(Error::NoImages {
            what: "the training set".into(),
        });
    }
    // A run resumed at its end writes nothing new: make sure a checkpoint exists.
    let checkpoint = match checkpoint::latest(run)? {
        Some(dir) => dir,
        None => checkpoint::save(
            run,
            &model,
            optimizer.to_record(),
            &state,
            config.train.keep_checkpoints,
        )?,
    };
    // The end-of-run check uses at most FINAL_EVAL_IMAGES validation images (`vqvae reconstruct`
    // scores a whole set).
    let shown = &val_images[..val_images.len().min(FINAL_EVAL_IMAGES)];
    let evaluation = evaluate(&model.valid(), shown, num_codes, eval_tile, factor, device);
    observer.on_event(&format!(
        "validation: PSNR {:.2} dB, SSIM {:.4}, codebook usage {:.1}% over {} images",
        evaluation.psnr,
        evaluation.ssim,
        100.0 * evaluation.usage,
        evaluation.images
    ));
    Ok(TrainOutcome {
        steps: state.step,
        checkpoint,
        interrupted,
        evaluation,
    })
}

/// A one-element tensor's value.
fn scalar<B: burn::tensor::backend::Backend>(t: &Tensor<B, 1>) -> f64 {
    t.clone()
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("scalar")[0]
}

/// `count` rows of `latents` chosen with a generator seeded by `(seed, step)`.
fn random_rows<B: burn::tensor::backend::Backend>(
    latents: Tensor<B, 2>,
    count: usize,
    seed: u64,
    step: u64,
) -> Tensor<B, 2> {
    let [n, _] = latents.dims();
    let mut rng = StdRng::seed_from_u64(seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let rows: Vec<i64> = (0..count).map(|_| rng.random_range(0..n) as i64).collect();
    let device = latents.device();
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [count]), &device);
    latents.select(0, rows)
}
