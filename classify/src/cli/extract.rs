//! `classify extract`: arguments, progress bars and Ctrl-C for the embedding extraction.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use burn::tensor::backend::Backend;
use clap::{Args, ValueEnum};
use classify::extract::{
    chunk_samples, extract, resolve_max_tokens, DataTask, EncoderKind, ExtractObserver,
    ExtractOptions, StoreSummary, DEFAULT_MAX_TOKENS,
};
use classify::Error;
use datasets::{Split, StoreDtype};
use indicatif::{ProgressBar, ProgressStyle};

use super::device::Device;
use super::DEFAULT_CHUNK_SECONDS;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum EncoderArg {
    /// WavLM (microsoft/wavlm-large): IEMOCAP audio.
    Wavlm,
    /// BEiT (microsoft/beit-large-patch16-224): CIFAR-100 images.
    Beit,
    /// Llama-2 (TheBloke/Llama-2-13B-fp16): AG News texts.
    Llama,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DataArg {
    /// IEMOCAP_full_release/: one store, sessions as groups, 5-s chunks.
    Iemocap,
    /// cifar-100-binary/: train/ and test/ stores.
    Cifar100,
    /// ag_news_csv/: train/ and test/ stores.
    Agnews,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum SplitArg {
    /// Both splits.
    Both,
    /// The training split only.
    Train,
    /// The test split only.
    Test,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub(crate) enum PrecisionArg {
    /// Single precision (CPU and CUDA).
    F32,
    /// Half precision weights and compute (CUDA only): Llama-2-13B's 26 GB fit a 40 GB+ GPU.
    F16,
    /// bfloat16 weights and compute (CUDA only).
    Bf16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DtypeArg {
    /// Half precision (half the disk; the heads train in f32 either way).
    F16,
    /// Single precision.
    F32,
}

/// Arguments of `classify extract`.
#[derive(Args, Debug)]
pub(crate) struct ExtractArgs {
    /// The encoder architecture of --weights.
    #[arg(long, value_enum)]
    encoder: EncoderArg,
    /// A Hugging Face checkpoint folder on disk: config.json and model.safetensors (or a sharded
    /// model.safetensors.index.json); tokenizer.json for Llama; preprocessor_config.json for
    /// BEiT if present.
    #[arg(long)]
    weights: PathBuf,
    /// The dataset.
    #[arg(long, value_enum)]
    task: DataArg,
    /// The dataset's folder (IEMOCAP_full_release/, cifar-100-binary/, ag_news_csv/).
    #[arg(long)]
    data: PathBuf,
    /// The store (IEMOCAP) or the folder for train/ and test/ stores. Rerunning the same command
    /// after an interruption completes it.
    #[arg(long)]
    out: PathBuf,
    /// Which splits of CIFAR-100 / AG News to extract.
    #[arg(long, value_enum, default_value = "both")]
    split: SplitArg,
    /// Items per forward pass (at least 1).
    #[arg(long, default_value_t = 8, value_parser = super::positive)]
    batch_size: usize,
    /// Items per store shard: the unit of progress kept when the run is interrupted (at least 1).
    #[arg(long, default_value_t = 256, value_parser = super::positive)]
    shard_size: usize,
    /// Stored element type.
    #[arg(long, value_enum, default_value = "f16")]
    dtype: DtypeArg,
    /// Only the first N records of each split (a trial run; at least 1).
    #[arg(long, value_parser = super::positive)]
    limit: Option<usize>,
    /// WavLM: mask the zero padding of each utterance's last chunk and pool over real frames
    /// (the paper's code pools over all frames, padding included).
    #[arg(long)]
    mask_padding: bool,
    /// WavLM: audio chunk length in seconds (at 16 kHz; default 5, the paper's); each
    /// utterance is cut into chunks, the last zero-padded. At least the model's receptive
    /// field, at most 60 s (WavLM's attention memory grows with the square of the chunk length).
    #[arg(long)]
    chunk_seconds: Option<f64>,
    /// Llama: truncate texts to this many tokens (default 4096, or the model's
    /// max_position_embeddings when that is smaller; no more than it).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// `cpu`, `cuda` / `cuda:N` (a build with `--features cuda`), or `wgpu` (Vulkan, Metal or
    /// DirectX 12; a build with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: Device,
    /// Compute precision of the encoder. f16/bf16 keep half-precision checkpoints in their dtype
    /// on the GPU; reductions of the pooling run in that precision too.
    #[arg(long, value_enum, default_value = "f32")]
    precision: PrecisionArg,
    /// Milliseconds to pause after each batch (to test interruption).
    #[arg(long, hide = true)]
    pause_ms: Option<u64>,
}

impl EncoderArg {
    /// The library's encoder kind.
    pub(crate) fn kind(self) -> EncoderKind {
        match self {
            Self::Wavlm => EncoderKind::Wavlm,
            Self::Beit => EncoderKind::Beit,
            Self::Llama => EncoderKind::Llama,
        }
    }
}

impl ExtractArgs {
    /// The library's options, with the chunk length in samples and the token limit resolved.
    fn options(&self, chunk_samples: usize, max_tokens: usize) -> ExtractOptions {
        ExtractOptions {
            encoder: self.encoder.kind(),
            weights: self.weights.clone(),
            task: match self.task {
                DataArg::Iemocap => DataTask::Iemocap,
                DataArg::Cifar100 => DataTask::Cifar100,
                DataArg::Agnews => DataTask::AgNews,
            },
            data: self.data.clone(),
            out: self.out.clone(),
            splits: match self.split {
                SplitArg::Both => vec![Split::Train, Split::Test],
                SplitArg::Train => vec![Split::Train],
                SplitArg::Test => vec![Split::Test],
            },
            batch_size: self.batch_size,
            shard_size: self.shard_size,
            dtype: match self.dtype {
                DtypeArg::F16 => StoreDtype::F16,
                DtypeArg::F32 => StoreDtype::F32,
            },
            limit: self.limit,
            mask_padding: self.mask_padding,
            max_tokens,
            chunk_samples,
            pause: self.pause_ms.map(Duration::from_millis),
        }
    }
}

/// A progress bar per store; Ctrl-C stops after the current batch.
struct Progress {
    bar: Option<ProgressBar>,
    stop: Arc<AtomicBool>,
}

impl Progress {
    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl ExtractObserver for Progress {
    fn start_store(&mut self, store: &Path, records: usize, items_present: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let line = format!(
            "{}: {records} records, {items_present} items already in the store",
            store.display()
        );
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(records as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bar:30.cyan/blue} {pos}/{len} records {per_sec} ({eta})",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(store.display().to_string());
            bar.println(line);
            self.bar = Some(bar);
        } else {
            eprintln!("{line}");
        }
    }

    fn advance(&mut self, records: usize) {
        if let Some(bar) = &self.bar {
            bar.inc(records as u64);
        }
    }

    fn skipped(&mut self, record: &str, error: &Error) {
        self.say(&format!(
            "skipped {record}: {}",
            datasets::error::with_causes(error)
        ));
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `classify extract` on the backend `--device` and `--precision` select.
pub(crate) fn run(args: &ExtractArgs) -> Result<()> {
    if args.precision == PrecisionArg::F32 {
        return crate::cli::device::dispatch!(args.device, |B, dev| extract_cmd::<B>(args, &dev));
    }
    let Device::Cuda(index) = args.device else {
        anyhow::bail!(
            "--precision {:?} needs --device cuda: the CPU backend computes in f32",
            args.precision
        );
    };
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::{bf16, f16};
        let dev = daam::device::cuda_device(index).map_err(anyhow::Error::msg)?;
        eprintln!("{}", daam::device::cuda_notice());
        match args.precision {
            PrecisionArg::F16 => extract_cmd::<daam::device::Cuda<f16>>(args, &dev),
            _ => extract_cmd::<daam::device::Cuda<bf16>>(args, &dev),
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = index;
        anyhow::bail!(
            "this classify was built without CUDA support: rebuild with \
             `cargo build --release --features cuda`"
        )
    }
}

/// Runs `classify extract` on backend `B`.
pub(crate) fn extract_cmd<B: Backend>(args: &ExtractArgs, device: &B::Device) -> Result<()> {
    super::only_for_the_encoder_that_reads_it(
        args.encoder.kind(),
        args.chunk_seconds,
        args.max_tokens,
        args.mask_padding,
    )?;
    let chunk_samples = chunk_samples(args.chunk_seconds.unwrap_or(DEFAULT_CHUNK_SECONDS))?;
    classify::extract::check_chunk(args.encoder.kind(), &args.weights, chunk_samples)?;
    let max_tokens = resolve_max_tokens(args.encoder.kind(), &args.weights, args.max_tokens)?;
    if max_tokens.clamped_to_model {
        eprintln!(
            "--max-tokens: {DEFAULT_MAX_TOKENS} by default, clamped to the model's \
             max_position_embeddings = {}",
            max_tokens.value
        );
    }
    let options = args.options(chunk_samples, max_tokens.value);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    let mut progress = Progress { bar: None, stop };
    let started = std::time::Instant::now();
    let result = extract::<B>(&options, device, &mut progress);
    if let Some(bar) = progress.bar.take() {
        bar.finish_and_clear();
    }
    let summaries = super::stop_on_interrupt(result, || {
        "interrupted: the shards written so far are kept; rerun the same command to continue"
            .to_string()
    })?
    .context("extraction failed")?;
    let seconds = started.elapsed().as_secs_f64();
    let computed: usize = summaries.iter().map(|s| s.computed).sum();
    for StoreSummary {
        path,
        items,
        computed,
        skipped,
    } in &summaries
    {
        println!(
            "{}: {items} items ({computed} computed now, {} records skipped)",
            path.display(),
            skipped.len()
        );
        for line in skipped {
            println!("  skipped {line}");
        }
    }
    println!(
        "{computed} items in {seconds:.1} s ({:.2} items/s)",
        computed as f64 / seconds.max(1e-9)
    );
    Ok(())
}
