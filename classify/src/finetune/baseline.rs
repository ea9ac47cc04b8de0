//! One LoRA / LoRA+ run of a replication: load the encoder with its head, adapt it, train it on
//! the run's items and record the result.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use encoders::classification::{
    BeitForImageClassification, ClassificationHeadConfig, HeadTraining,
    LlamaForSequenceClassification, SequenceClassifier, WavLMForSequenceClassification,
};
use encoders::llama::LlamaTokenizer;
use encoders::lora::{LoraConfig, LoraScaling, LoraTarget};
use encoders::ImagePreprocessor;
use serde::{Deserialize, Serialize};

use super::data::RawStore;
use super::inputs::InputBuilder;
use super::method::LoraMethod;
use super::run::{finetune_run, FinetuneData};
use crate::error::{invalid, Error, Result};
use crate::extract::{check_model_type, feature_shape, resolve_max_tokens, DataTask, EncoderKind};
use crate::protocol::{RunPlan, Stores};
use crate::report::write_atomic;
use crate::train::{RunObserver, Task, TrainSettings};

/// What the LoRA baselines of a replication need beyond the stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneOptions {
    /// The encoder architecture of `weights`.
    pub encoder: EncoderKind,
    /// The Hugging Face checkpoint folder.
    pub weights: PathBuf,
    /// The raw dataset the stores were extracted from.
    pub data: PathBuf,
    /// Audio chunk length in samples (as at extraction).
    pub chunk_samples: usize,
    /// Llama token limit (as at extraction).
    pub max_tokens: usize,
    /// α of the adapters.
    pub alpha: f64,
    /// peft's `α/r` with uniform `A`, or the authors' `α` with Gaussian `A`.
    pub scaling: LoraScaling,
    /// Adapted projections.
    pub targets: Vec<LoraTarget>,
    /// LoRA+'s `λ`.
    pub plus_ratio: f64,
    /// Which head parameters train.
    pub head_training: HeadTraining,
}

impl FinetuneOptions {
    /// Checks the options against the task, the LoRA methods and the stores before anything is
    /// loaded or written: the encoder reads the task's records and is the architecture of
    /// `weights`; α and LoRA+'s λ are positive finite numbers; every rank fits the encoder's
    /// width; the chunk length and token limit are in range.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the option and the values; the encoder config's read
    /// errors.
    pub fn check(&self, task: Task, methods: &[LoraMethod], stores: &Stores) -> Result<()> {
        let data_task = data_task(task);
        let wanted = EncoderKind::for_task(data_task);
        if self.encoder != wanted {
            let info = &stores.train.manifest().info;
            return Err(invalid(
                "--encoder",
                format!(
                    "--encoder {} reads {}; the store {} holds {} {} encoded by `{}` \
                     (manifest.json): use --encoder {}",
                    self.encoder.name(),
                    self.encoder.modality(),
                    stores.train.dir().display(),
                    info.dataset,
                    data_task.modality(),
                    info.encoder,
                    wanted.name()
                ),
            ));
        }
        check_model_type(self.encoder, &self.weights)?;
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(invalid(
                "--lora-alpha",
                format!("must be a positive finite number, got {}", self.alpha),
            ));
        }
        if methods.iter().any(|m| m.plus) && !(self.plus_ratio.is_finite() && self.plus_ratio > 0.0)
        {
            return Err(invalid(
                "--loraplus-ratio",
                format!("must be a positive finite number, got {}", self.plus_ratio),
            ));
        }
        let (_, width) = feature_shape(&self.weights)?;
        for method in methods {
            let config = LoraConfig::new(method.rank)
                .with_alpha(self.alpha)
                .with_targets(self.targets.clone());
            config
                .check()
                .map_err(|reason| invalid("--lora-targets", reason))?;
            if method.rank > width {
                return Err(invalid(
                    "--methods",
                    format!(
                        "{}: rank {} is more than the encoder's width {width} (hidden_size in \
                         {})",
                        method.name(),
                        method.rank,
                        self.weights.join("config.json").display()
                    ),
                ));
            }
        }
        if self.encoder == EncoderKind::Wavlm && self.chunk_samples == 0 {
            return Err(invalid("--chunk-seconds", "must give at least one sample"));
        }
        // The receptive field and attention memory, also of a length taken from the store.
        crate::extract::check_chunk(self.encoder, &self.weights, self.chunk_samples)?;
        resolve_max_tokens(self.encoder, &self.weights, Some(self.max_tokens))?;
        // The store's ids name chunks of the recordings (`<turn>#<k>`): another chunk length
        // would read other audio for them, or none.
        let info = &stores.train.manifest().info;
        let manifest = stores.train.dir().join("manifest.json");
        // Stores from before the settings were recorded hold the defaults.
        let recorded_chunk = crate::extract::recorded_chunk_samples(info);
        let recorded_tokens = match info.max_tokens {
            None if info.pooling == crate::extract::LEGACY_LLAMA_POOLING => {
                Some(resolve_max_tokens(EncoderKind::Llama, &self.weights, None)?.value)
            }
            recorded => recorded,
        };
        if let Some(recorded) = recorded_chunk {
            if self.encoder == EncoderKind::Wavlm && recorded != self.chunk_samples {
                let seconds = |samples: usize| samples as f64 / 16_000.0;
                return Err(invalid(
                    "--chunk-seconds",
                    format!(
                        "{} s, but the store's items are {} s chunks ({}): give --chunk-seconds \
                         {} or leave it out",
                        seconds(self.chunk_samples),
                        seconds(recorded),
                        manifest.display(),
                        seconds(recorded)
                    ),
                ));
            }
        }
        if let Some(recorded) = recorded_tokens {
            if self.encoder == EncoderKind::Llama && recorded != self.max_tokens {
                return Err(invalid(
                    "--max-tokens",
                    format!(
                        "{}, but the store's texts were cut at {recorded} tokens ({}): give \
                         --max-tokens {recorded} or leave it out",
                        self.max_tokens,
                        manifest.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The chunk length (samples at 16 kHz) and token limit the store in `embeddings` was extracted
/// with, as its manifest records them (`embeddings/train/` for the seeded tasks); `None` for
/// a setting it does not record (another modality, a store written before they were recorded,
/// or no readable manifest: opening the stores reports that).
///
/// # Errors
/// [`Error::Store`] naming the manifest when its chunk length is 0 or over
/// [`MAX_CHUNK_SECONDS`](crate::extract::MAX_CHUNK_SECONDS), or its token limit 0.
pub fn recorded_input_settings(
    embeddings: &Path,
    task: Task,
) -> Result<(Option<usize>, Option<usize>)> {
    let dir = match task.protocol() {
        crate::train::Protocol::GroupFolds => embeddings.to_path_buf(),
        crate::train::Protocol::Seeds { .. } => embeddings.join("train"),
    };
    let Ok(manifest) = datasets::embedding_store::Manifest::read(&dir) else {
        return Ok((None, None));
    };
    let chunk = crate::extract::recorded_chunk_samples(&manifest.info);
    let tokens = manifest.info.max_tokens;
    let most = (crate::extract::MAX_CHUNK_SECONDS * 16_000.0) as usize;
    let bad = |message: String| Error::Store {
        path: dir.join("manifest.json"),
        message,
    };
    if let Some(samples) = chunk.filter(|&n| n == 0 || n > most) {
        return Err(bad(format!(
            "chunk_samples {samples} is not a chunk length this tool writes (1 to {most})"
        )));
    }
    if tokens == Some(0) {
        return Err(bad(
            "max_tokens 0 is not a token limit this tool writes".into()
        ));
    }
    Ok((chunk, tokens))
}

/// What a finished LoRA run leaves in `result.json` (its presence marks the run done).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneResult {
    /// Method name (`lora-r4`, ...).
    pub method: String,
    /// Run label.
    pub run: String,
    /// Seed.
    pub seed: u64,
    /// Trainable parameters (adapters and training head parameters).
    pub trainable_params: usize,
    /// Items trained on, held out as dev, validated on.
    pub items: [usize; 3],
    /// Epochs trained.
    pub epochs: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// The dataset a task's stores come from.
pub fn data_task(task: Task) -> DataTask {
    match task {
        Task::Iemocap => DataTask::Iemocap,
        Task::Cifar100 => DataTask::Cifar100,
        Task::Agnews => DataTask::AgNews,
    }
}

/// The raw items behind the stores of a replication: `(train, val)`; `val` is `None` when the
/// validation items come from the training store (folds).
///
/// # Errors
/// As [`RawStore::open`].
pub fn raw_stores<'a>(
    stores: &'a Stores,
    task: Task,
    options: &FinetuneOptions,
) -> Result<(RawStore<'a>, Option<RawStore<'a>>)> {
    let data_task = data_task(task);
    match &stores.test {
        None => Ok((
            RawStore::open(
                &stores.train,
                data_task,
                &options.data,
                None,
                options.chunk_samples,
            )?,
            None,
        )),
        Some(test) => Ok((
            RawStore::open(
                &stores.train,
                data_task,
                &options.data,
                Some(datasets::Split::Train),
                options.chunk_samples,
            )?,
            Some(RawStore::open(
                test,
                data_task,
                &options.data,
                Some(datasets::Split::Test),
                options.chunk_samples,
            )?),
        )),
    }
}

/// Runs `method` on `plan` and writes `metrics.csv` and `result.json` in `dir`.
///
/// # Errors
/// Encoder loading, reading and training errors.
#[allow(clippy::too_many_arguments)]
pub fn run_lora<B: AutodiffBackend>(
    method: LoraMethod,
    plan: &RunPlan,
    raw: &(RawStore<'_>, Option<RawStore<'_>>),
    options: &FinetuneOptions,
    settings: &TrainSettings,
    dir: &Path,
    device: &B::Device,
    observer: &mut dyn RunObserver,
) -> Result<()> {
    let started = std::time::Instant::now();
    let (train, val) = (&raw.0, raw.1.as_ref().unwrap_or(&raw.0));
    let head = ClassificationHeadConfig::new(train.store().class_names().len())
        .with_training(options.head_training)
        .with_seed(plan.seed);
    let lora = LoraConfig::new(method.rank)
        .with_alpha(options.alpha)
        .with_scaling(options.scaling)
        .with_targets(options.targets.clone())
        .with_seed(plan.seed);
    let settings = TrainSettings {
        seed: plan.seed,
        ..settings.clone()
    };
    let data = FinetuneData {
        train,
        train_indices: plan.train.clone(),
        dev_indices: plan.dev.clone(),
        val,
        val_indices: plan.val.clone(),
    };
    let plus = method.plus.then_some(options.plus_ratio);
    B::seed(device, plan.seed);
    let weights = &options.weights;
    let (records, trainable) = match options.encoder {
        EncoderKind::Wavlm => {
            let model = WavLMForSequenceClassification::<B>::load(weights, &head, device)?
                .with_lora(&lora, device);
            let trainable = model.trainable_params();
            let builder = InputBuilder::Audio;
            let records = finetune_run(
                model, &builder, plus, &settings, &data, dir, device, observer,
            )?;
            (records, trainable)
        }
        EncoderKind::Beit => {
            let model = BeitForImageClassification::<B>::load(weights, &head, device)?
                .with_lora(&lora, device);
            let trainable = model.trainable_params();
            let side = model.beit.image_size as u32;
            let builder = InputBuilder::Image(ImagePreprocessor::load(weights, side)?);
            let records = finetune_run(
                model, &builder, plus, &settings, &data, dir, device, observer,
            )?;
            (records, trainable)
        }
        EncoderKind::Llama => {
            let model = LlamaForSequenceClassification::<B>::load(weights, &head, device)?
                .with_lora(&lora, device);
            let trainable = model.trainable_params();
            let tokenizer =
                LlamaTokenizer::from_dir(weights)?.with_max_length(options.max_tokens)?;
            let builder = InputBuilder::Text(Box::new(tokenizer));
            let records = finetune_run(
                model, &builder, plus, &settings, &data, dir, device, observer,
            )?;
            (records, trainable)
        }
    };
    let result = FinetuneResult {
        method: method.name(),
        run: plan.label.clone(),
        seed: plan.seed,
        trainable_params: trainable,
        items: [plan.train.len(), plan.dev.len(), plan.val.len()],
        epochs: records.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = dir.join("result.json");
    let json = serde_json::to_string_pretty(&result).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, json.as_bytes())
}
