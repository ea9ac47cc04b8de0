//! `classify extract`: run a frozen encoder over a task's data and write the per-layer
//! mean-pooled embeddings to an embedding store, resumably.
//!
//! IEMOCAP gives one store (every session; the session is the item's group); CIFAR-100 and AG
//! News give `OUT/train` and `OUT/test`. Items are written a shard at a time. A rerun of the same
//! command after an interruption (Ctrl-C, a kill, a crash) reopens the stores, keeps every shard
//! on disk and computes only the items they lack, so each item ends up in its store exactly once.

mod digest;
mod encoder;
mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::tensor::backend::Backend;
use datasets::embedding_store::MANIFEST_FILE;
use datasets::{EmbeddingStoreWriter, Split, StoreDtype, StoreInfo, CHUNK_SAMPLES_16K};

pub use digest::{data_digest, weights_digest};
pub use encoder::{
    check_chunk, check_model_type, check_pairing, feature_shape, recorded_chunk_samples,
    resolve_max_tokens, EncoderKind, LoadedEncoder, MaxTokens, DEFAULT_MAX_TOKENS,
    LEGACY_LLAMA_POOLING, LEGACY_WAVLM_POOLING,
};
pub use source::{chunk_samples, DataTask, Input, Item, Source, MAX_CHUNK_SECONDS, SAMPLE_RATE};

use crate::error::{invalid, Error, Result};

/// What to extract, from where, to where.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// The encoder architecture of `weights`.
    pub encoder: EncoderKind,
    /// The Hugging Face checkpoint folder (`config.json`, safetensors, tokenizer/preprocessor).
    pub weights: PathBuf,
    /// The dataset.
    pub task: DataTask,
    /// The dataset's root folder.
    pub data: PathBuf,
    /// The store folder (IEMOCAP) or the parent of `train/` and `test/`.
    pub out: PathBuf,
    /// The splits of a split task to extract (ignored for IEMOCAP).
    pub splits: Vec<Split>,
    /// Items per encoder forward pass.
    pub batch_size: usize,
    /// Items per store shard (the unit that survives an interruption).
    pub shard_size: usize,
    /// Stored element type.
    pub dtype: StoreDtype,
    /// Only the first `limit` records of each split (a trial run).
    pub limit: Option<usize>,
    /// WavLM: mask the zero padding of the last chunk and pool over real frames only (the
    /// reference pools over all 249 frames).
    pub mask_padding: bool,
    /// Audio chunk length in samples at 16 kHz (the paper: 80,000, i.e. 5 s).
    pub chunk_samples: usize,
    /// Llama: truncate texts to this many tokens (the paper: 4096).
    pub max_tokens: usize,
    /// A pause after each batch (for testing interruption; `None` normally).
    pub pause: Option<Duration>,
}

/// Progress callbacks of [`extract`].
pub trait ExtractObserver {
    /// A store is about to be filled: `records` source records, `items_present` items already
    /// in it from an earlier run.
    fn start_store(&mut self, store: &Path, records: usize, items_present: usize);
    /// `records` more source records are done.
    fn advance(&mut self, records: usize);
    /// A record could not be read and is left out of the store.
    fn skipped(&mut self, record: &str, error: &Error);
    /// Whether to stop (Ctrl-C): checked between batches.
    fn should_stop(&self) -> bool {
        false
    }
}

/// The outcome for one store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSummary {
    /// The store folder.
    pub path: PathBuf,
    /// Items in the finished store.
    pub items: usize,
    /// Items computed by this run.
    pub computed: usize,
    /// Records left out, with the reason.
    pub skipped: Vec<String>,
}

/// The store folders a task writes under `out`.
pub fn store_dirs(task: DataTask, out: &Path, splits: &[Split]) -> Vec<(PathBuf, Option<Split>)> {
    if task.has_splits() {
        splits
            .iter()
            .map(|&split| (out.join(split.stem()), Some(split)))
            .collect()
    } else {
        vec![(out.to_path_buf(), None)]
    }
}

/// Runs the extraction and returns one summary per store.
///
/// Everything that can be checked without the encoder (the options, the encoder's
/// `config.json`, every split's records) is checked before a store is created.
///
/// # Errors
/// [`Error::InvalidSetting`] for options out of range, an encoder that does not read the task's
/// records, or a split without records; reader, encoder and store errors, naming the file or
/// record; [`Error::Store`] when an existing store was written with other settings or the
/// encoder produced a non-finite value; [`Error::Interrupted`] when the observer asked to stop
/// (everything computed is flushed first).
pub fn extract<B: Backend>(
    options: &ExtractOptions,
    device: &B::Device,
    observer: &mut dyn ExtractObserver,
) -> Result<Vec<StoreSummary>> {
    check_pairing(options.encoder, options.task)?;
    for (setting, value) in [
        ("--batch-size", options.batch_size),
        ("--shard-size", options.shard_size),
        ("--chunk-seconds (in samples)", options.chunk_samples),
    ] {
        if value == 0 {
            return Err(invalid(setting, "must be positive, got 0"));
        }
    }
    let (num_layers, d_model) = feature_shape(&options.weights)?;
    check_model_type(options.encoder, &options.weights)?;
    resolve_max_tokens(options.encoder, &options.weights, Some(options.max_tokens))?;
    // Every split's records first: a missing or empty split is refused before any store is
    // started.
    let mut sources = Vec::new();
    for (dir, split) in store_dirs(options.task, &options.out, &options.splits) {
        let source = Source::open(
            options.task,
            &options.data,
            split,
            options.limit,
            options.chunk_samples,
        )?;
        if source.is_empty() {
            return Err(invalid(
                "--data",
                format!(
                    "{}: the {} split of {} has no records (nothing to extract)",
                    options.data.display(),
                    source.split,
                    options.task.name()
                ),
            ));
        }
        sources.push((dir, source));
    }
    let encoder = LoadedEncoder::<B>::load(
        options.encoder,
        &options.weights,
        options.mask_padding,
        options.max_tokens,
        device,
    )?;
    let encoder_name = options
        .weights
        .canonicalize()
        .unwrap_or_else(|_| options.weights.clone())
        .file_name()
        .map_or_else(
            || options.encoder.name().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
    let _lock = crate::error::lock_out(&options.out, "the embedding store")?;
    let pooling = encoder.pooling(options.chunk_samples, options.max_tokens);
    let weights = weights_digest(&options.weights)?;
    // Stores started before the pooling named its settings were made with the default ones
    // (the only ones there were then).
    let default_max_tokens = resolve_max_tokens(options.encoder, &options.weights, None)?.value;
    let legacy = encoder.legacy_pooling().map(|old| Legacy {
        pooling: old,
        meant: encoder.pooling(CHUNK_SAMPLES_16K, default_max_tokens),
        chunk_samples: (options.encoder == EncoderKind::Wavlm).then_some(CHUNK_SAMPLES_16K),
        max_tokens: (options.encoder == EncoderKind::Llama).then_some(default_max_tokens),
    });
    let info = |source: &Source| StoreInfo {
        encoder: encoder_name.clone(),
        dataset: options.task.name().to_string(),
        split: source.split.clone(),
        num_layers,
        d_model,
        dtype: options.dtype,
        pooling: pooling.clone(),
        class_names: source.class_names.clone(),
        chunk_samples: (options.encoder == EncoderKind::Wavlm).then_some(options.chunk_samples),
        max_tokens: (options.encoder == EncoderKind::Llama).then_some(options.max_tokens),
        weights_digest: Some(weights.clone()),
        source_digest: Some(source.digest.clone()),
    };
    // Stores from an earlier run are reopened and checked first, every split, so that a
    // mismatch is refused before a new store is started or an item computed.
    let mut writers = Vec::new();
    for (dir, source) in &sources {
        writers.push(if dir.join(MANIFEST_FILE).is_file() {
            let writer = reopen_writer(dir, &info(source), legacy.as_ref())?;
            if options.limit.is_none() {
                check_same_data(dir, &writer, source, &options.data)?;
            }
            Some(writer)
        } else {
            None
        });
    }
    let mut summaries = Vec::new();
    for ((dir, source), writer) in sources.iter().zip(writers) {
        let writer = match writer {
            Some(writer) => writer,
            None => EmbeddingStoreWriter::create(dir, info(source), options.shard_size)?,
        };
        summaries.push(fill_store(
            options, &encoder, source, writer, dir, device, observer,
        )?);
    }
    Ok(summaries)
}

/// Refuses a store holding an item `source` does not have: it was extracted from other data
/// (a rerun would have kept those items and reported the store complete).
fn check_same_data(
    dir: &Path,
    writer: &EmbeddingStoreWriter,
    source: &Source,
    data: &Path,
) -> Result<()> {
    let unknown: Vec<&str> = writer
        .ids()
        .iter()
        .zip(source.locate_all(writer.ids()))
        .filter(|(_, found)| found.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    if let Some(first) = unknown.first() {
        return Err(Error::Store {
            path: dir.to_path_buf(),
            message: format!(
                "{} of its {} items ({first}{}) are not in {}: the store was extracted from \
                 other data; choose another --out or remove it",
                unknown.len(),
                writer.len(),
                if unknown.len() > 1 { ", …" } else { "" },
                data.display()
            ),
        });
    }
    Ok(())
}

/// The pooling description an encoder wrote before the manifest recorded its settings, and
/// what such a store holds: the default settings, the only ones there were then.
struct Legacy {
    pooling: &'static str,
    meant: String,
    chunk_samples: Option<usize>,
    max_tokens: Option<usize>,
}

/// Reopens the store an earlier run left, refusing one written with other settings.
fn reopen_writer(
    dir: &Path,
    info: &StoreInfo,
    legacy: Option<&Legacy>,
) -> Result<EmbeddingStoreWriter> {
    let writer = EmbeddingStoreWriter::resume(dir)?;
    let mut found = writer.info().clone();
    if let Some(legacy) = legacy.filter(|l| found.pooling == l.pooling) {
        found.pooling = legacy.meant.clone();
        found.chunk_samples = legacy.chunk_samples;
        found.max_tokens = legacy.max_tokens;
    }
    // Stores from before the digests were recorded are taken on their names.
    for (stored, now) in [
        (&mut found.weights_digest, &info.weights_digest),
        (&mut found.source_digest, &info.source_digest),
    ] {
        if stored.is_none() {
            stored.clone_from(now);
        }
    }
    // The same weights in a renamed folder are the same encoder.
    if found.weights_digest.is_some() && found.weights_digest == info.weights_digest {
        found.encoder.clone_from(&info.encoder);
    }
    let found = &found;
    if found != info {
        // Each setting that differs, as `what: stored → now`.
        let change = |what: &str, stored: String, now: String| {
            (stored != now).then(|| format!("{what}: {stored} → {now}"))
        };
        let differs = [
            change(
                "encoder (the weights folder's name)",
                found.encoder.clone(),
                info.encoder.clone(),
            ),
            change("dataset", found.dataset.clone(), info.dataset.clone()),
            change("split", found.split.clone(), info.split.clone()),
            change(
                "layers × width",
                format!("{} × {}", found.num_layers, found.d_model),
                format!("{} × {}", info.num_layers, info.d_model),
            ),
            change("dtype", found.dtype.to_string(), info.dtype.to_string()),
            change("pooling", found.pooling.clone(), info.pooling.clone()),
            change(
                "chunk_samples",
                format!("{:?}", found.chunk_samples),
                format!("{:?}", info.chunk_samples),
            ),
            change(
                "max_tokens",
                format!("{:?}", found.max_tokens),
                format!("{:?}", info.max_tokens),
            ),
            (found.class_names != info.class_names).then(|| "class names".to_string()),
            (found.weights_digest != info.weights_digest).then(|| {
                "the checkpoint's files (another model in a folder of the same name)".to_string()
            }),
            (found.source_digest != info.source_digest).then(|| {
                "the data (the --data split's files or records differ from the ones the store \
                 was extracted from)"
                    .to_string()
            }),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        return Err(Error::Store {
            path: dir.to_path_buf(),
            message: format!(
                "this store was written with other settings ({differs}); choose another --out \
                 or remove it"
            ),
        });
    }
    Ok(writer)
}

fn fill_store<B: Backend>(
    options: &ExtractOptions,
    encoder: &LoadedEncoder<B>,
    source: &Source,
    mut writer: EmbeddingStoreWriter,
    dir: &Path,
    device: &B::Device,
    observer: &mut dyn ExtractObserver,
) -> Result<StoreSummary> {
    observer.start_store(dir, source.len(), writer.len());
    let mut batch: Vec<Item> = Vec::new();
    let mut pending_records = 0;
    let mut computed = 0;
    let mut skipped = Vec::new();
    let batch_size = options.batch_size;
    for index in 0..source.len() {
        if source
            .known_id(index)
            .is_some_and(|id| writer.contains(&id))
        {
            observer.advance(1);
            continue;
        }
        match source.read(index) {
            Ok(items) => batch.extend(items.into_iter().filter(|item| !writer.contains(&item.id))),
            Err(error) => {
                let record = source.describe(index);
                observer.skipped(&record, &error);
                skipped.push(format!(
                    "{record}: {}",
                    datasets::error::with_causes(&error)
                ));
            }
        }
        pending_records += 1;
        while batch.len() >= batch_size {
            let rest = batch.split_off(batch_size);
            computed += run_batch(encoder, &batch, &mut writer, dir, device)?;
            batch = rest;
            observer.advance(std::mem::take(&mut pending_records));
            if let Some(pause) = options.pause {
                std::thread::sleep(pause);
            }
            if observer.should_stop() {
                writer.flush()?;
                return Err(Error::Interrupted);
            }
        }
    }
    if !batch.is_empty() {
        computed += run_batch(encoder, &batch, &mut writer, dir, device)?;
    }
    observer.advance(pending_records);
    let manifest = writer.finish()?;
    Ok(StoreSummary {
        path: dir.to_path_buf(),
        items: manifest.count,
        computed,
        skipped,
    })
}

fn run_batch<B: Backend>(
    encoder: &LoadedEncoder<B>,
    batch: &[Item],
    writer: &mut EmbeddingStoreWriter,
    dir: &Path,
    device: &B::Device,
) -> Result<usize> {
    let pooled = encoder.pooled(batch, dir, device)?;
    let [_, layers, d_model] = pooled.dims();
    let values = pooled
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Store {
            path: dir.to_path_buf(),
            message: format!("cannot read the encoder output: {e:?}"),
        })?;
    for (item, row) in batch.iter().zip(values.chunks_exact(layers * d_model)) {
        if let Some(bad) = row.iter().position(|v| !v.is_finite()) {
            return Err(Error::Store {
                path: dir.to_path_buf(),
                message: format!(
                    "the encoder gave a non-finite value for item `{}` (layer {}, feature {})",
                    item.id,
                    bad / d_model + 1,
                    bad % d_model
                ),
            });
        }
        writer.push(&item.id, item.label, item.group, row)?;
    }
    Ok(batch.len())
}
