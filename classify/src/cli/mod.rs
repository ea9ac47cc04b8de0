//! Command-line interface: argument parsing and dispatch to the library.

pub mod device;
mod extract;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use classify::extract::{chunk_samples, resolve_max_tokens, DEFAULT_MAX_TOKENS};
use classify::finetune::{FinetuneOptions, LoraMethod};
use classify::head::{authors_counts, DatHeadConfig, HeadKind, ParamCount};
use classify::interpret::interpret;
use classify::protocol::{plan_runs, Stores};
use classify::replicate::{
    precision_conflict, read_run_head, replicate, ReplicateOptions, ReplicationRecord, StoresCheck,
};
use classify::synthetic::SyntheticSpec;
use classify::train::{
    load_head, EpochRecord, Precision, Protocol, RunObserver, Task, TrainSettings,
};
use device::{dispatch, dispatch_autodiff, Device};
use encoders::classification::HeadTraining;
use encoders::lora::{LoraScaling, LoraTarget};
use indicatif::{ProgressBar, ProgressStyle};

/// DAT heads over frozen-encoder layer embeddings: the paper's replication (Table 2) and
/// Importance Factor maps.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every head's parameter count for a configuration, and the authors' counts.
    Heads(HeadsArgs),
    /// Train every method over every fold or seed of a task and write the Table-2 report.
    Replicate(ReplicateArgs),
    /// Importance Factor heatmap, layer contributions and parameter ranges of a trained run,
    /// and optionally the high/low-IF layer ablation.
    Report(ReportArgs),
    /// Check an embedding store (or the `train/` and `test/` stores of a folder) and list
    /// every problem found, then the warnings (exit status 1 for problems only).
    Validate(ValidateArgs),
    /// Write a generated embedding store (class signal in chosen layers) to try the tools.
    Synth(SynthArgs),
    /// Run a frozen encoder (WavLM, BEiT, Llama-2) from Hugging Face weights on disk over a
    /// dataset and write its per-layer mean-pooled embeddings to a store (resumable).
    Extract(extract::ExtractArgs),
}

#[derive(Args, Debug)]
struct HeadsArgs {
    /// Encoder layers (24 WavLM/BEiT-Large, 40 Llama-2-13B).
    #[arg(long, default_value_t = 24, value_parser = positive)]
    layers: usize,
    /// Embedding width (1024, 5120).
    #[arg(long, default_value_t = 1024, value_parser = positive)]
    d_model: usize,
    /// Classes (4 IEMOCAP/AG News, 100 CIFAR-100).
    #[arg(long, default_value_t = 4, value_parser = positive)]
    classes: usize,
}

/// Parses a count that must be at least 1 (a size, a number of items or runs).
fn positive(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TaskArg {
    /// IEMOCAP, leave-one-session-out over the store's groups.
    Iemocap,
    /// CIFAR-100, 5 seeded runs on train/ and test/ stores.
    Cifar100,
    /// AG News, 3 seeded runs on train/ and test/ stores.
    Agnews,
}

impl From<TaskArg> for Task {
    fn from(t: TaskArg) -> Self {
        match t {
            TaskArg::Iemocap => Task::Iemocap,
            TaskArg::Cifar100 => Task::Cifar100,
            TaskArg::Agnews => Task::Agnews,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum PrecisionArg {
    /// Single precision throughout.
    F32,
    /// bfloat16 convolutions and classifier (f32's exponent range: no loss scale).
    Bf16,
    /// float16 convolutions and classifier with a dynamic loss scale.
    F16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::F16 => Precision::F16,
        }
    }
}

#[derive(Args, Debug)]
struct ReplicateArgs {
    /// The task: decides the protocol and the default training settings.
    #[arg(long, value_enum)]
    task: TaskArg,
    /// An embedding store (IEMOCAP: folds over its groups) or a folder holding `train/` and
    /// `test/` stores (CIFAR-100, AG News).
    #[arg(long)]
    embeddings: PathBuf,
    /// Methods, comma-separated: the DAT heads daam-v1, daam-v2, mixture, gq-daam, mha, mha-bn,
    /// gqa; and the encoder fine-tuning baselines lora-r4, lora-r8, loraplus-r4, loraplus-r8
    /// (these need --encoder, --weights and --data).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "daam-v1,daam-v2,mixture,gq-daam,mha,mha-bn"
    )]
    methods: Vec<String>,
    /// Output folder (runs, report.md/csv/json): a new or empty folder, or a replication's
    /// folder to continue where it stopped (on the same store and settings). Not inside
    /// --embeddings.
    #[arg(long, default_value = "outputs/replicate")]
    out: PathBuf,
    /// Epochs per run (default: the task's, 35).
    #[arg(long, value_parser = positive)]
    epochs: Option<usize>,
    /// Items per step (default: 8 IEMOCAP, 32 otherwise).
    #[arg(long, value_parser = positive)]
    batch_size: Option<usize>,
    /// AdamW learning rate (default: 1e-4 IEMOCAP, 1e-5 CIFAR-100, 5e-5 AG News).
    #[arg(long)]
    lr: Option<f64>,
    /// Seeded runs instead of the task's 5 (CIFAR-100) or 3 (AG News); at least 1. Not for
    /// IEMOCAP: its runs are the store's leave-one-session-out folds, one per group.
    #[arg(long, value_parser = positive)]
    runs: Option<usize>,
    /// Base seed (run k uses seed + k, wrapping past 18446744073709551615 to 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Fraction of training items held out to choose the epoch for the second protocol
    /// (0: train on all and report the paper's protocol only).
    #[arg(long)]
    dev_fraction: Option<f64>,
    /// Keep only these encoder layers (0-based, comma-separated).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Precision of the heads' training steps: f32, or mixed precision (bf16, or f16 with a
    /// dynamic loss scale) for the convolutions and classifier from f32 weights, the attention
    /// and loss in f32. Meant for CUDA; on the CPU half precision is slower than f32.
    /// Evaluation and the saved weights are f32.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    precision: PrecisionArg,
    /// LoRA methods: the encoder architecture of --weights.
    #[arg(
        long,
        value_enum,
        help_heading = "LoRA baselines (lora-rN, loraplus-rN)"
    )]
    encoder: Option<extract::EncoderArg>,
    /// LoRA methods: the encoder's Hugging Face checkpoint folder.
    #[arg(long, help_heading = "LoRA baselines (lora-rN, loraplus-rN)")]
    weights: Option<PathBuf>,
    /// LoRA methods: the raw dataset the store was extracted from (its ids are looked up there).
    #[arg(long, help_heading = "LoRA baselines (lora-rN, loraplus-rN)")]
    data: Option<PathBuf>,
    /// LoRA α (a positive number).
    #[arg(
        long,
        default_value_t = 16.0,
        help_heading = "LoRA baselines (lora-rN, loraplus-rN)"
    )]
    lora_alpha: f64,
    /// LoRA scaling convention: peft (α/r, the fair baseline) or paper (α, the authors' code).
    #[arg(
        long,
        value_enum,
        default_value = "peft",
        help_heading = "LoRA baselines (lora-rN, loraplus-rN)"
    )]
    lora_scaling: ScalingArg,
    /// Adapted projections (the authors' code: query and value; the paper's text: query and key).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "query,value",
        help_heading = "LoRA baselines (lora-rN, loraplus-rN)"
    )]
    lora_targets: Vec<TargetArg>,
    /// LoRA+: learning-rate ratio λ of the B matrices (LoRA+ paper: 16; the authors' code: 2.828).
    #[arg(
        long,
        default_value_t = 16.0,
        help_heading = "LoRA baselines (lora-rN, loraplus-rN)"
    )]
    loraplus_ratio: f64,
    /// Train only head parameters named `classifier` (the authors' rule) instead of the whole head.
    #[arg(long, help_heading = "LoRA baselines (lora-rN, loraplus-rN)")]
    classifier_only: bool,
    /// WavLM: audio chunk length in seconds, as at extraction (default 5; at most 60).
    #[arg(long, help_heading = "LoRA baselines (lora-rN, loraplus-rN)")]
    chunk_seconds: Option<f64>,
    /// Llama token limit, as at extraction (default 4096, or the model's
    /// max_position_embeddings when that is smaller).
    #[arg(long, help_heading = "LoRA baselines (lora-rN, loraplus-rN)")]
    max_tokens: Option<usize>,
    /// `cpu`, `cuda` / `cuda:N` (a build with `--features cuda`), or `wgpu` (Vulkan, Metal or
    /// DirectX 12; a build with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// A `classify replicate --out` folder.
    #[arg(long)]
    replication: PathBuf,
    /// The method whose runs to interpret (daam-v1, daam-v2 or gq-daam).
    #[arg(long, default_value = "daam-v1")]
    method: String,
    /// The run (`fold-1`, `seed-1`, ...); default: the first.
    #[arg(long)]
    run: Option<String>,
    /// Also retrain on the K highest- and K lowest-contribution layers and compare (K ≥ 1, and
    /// 2K no more than the layers, so that the two sets do not overlap).
    #[arg(long)]
    ablate: Option<usize>,
    /// Head used for the ablation runs (daam-v2 fits any layer count).
    #[arg(long, default_value = "daam-v2")]
    ablate_method: String,
    /// `cpu`, `cuda` / `cuda:N` (`--features cuda`) or `wgpu` (`--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// The store folder, or a folder holding `train/` and `test/` stores (each is validated).
    store: PathBuf,
}

#[derive(Args, Debug)]
struct SynthArgs {
    /// Output folder: a store, or `train/` and `test/` stores with --split.
    #[arg(long)]
    out: PathBuf,
    /// Items (per split).
    #[arg(long, default_value_t = 400, value_parser = positive)]
    count: usize,
    /// Layers per item.
    #[arg(long, default_value_t = 24, value_parser = positive)]
    layers: usize,
    /// Features per layer.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    d_model: usize,
    /// Classes.
    #[arg(long, default_value_t = 4, value_parser = positive)]
    classes: usize,
    /// Groups (sessions) the items are spread over.
    #[arg(long, default_value_t = 5, value_parser = positive)]
    groups: usize,
    /// Layers carrying the class signal (0-based, comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,9,10")]
    signal_layers: Vec<usize>,
    /// Write `train/` and `test/` stores (for the seeded protocols) instead of one store.
    #[arg(long)]
    split: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Parses the command line and runs it.
/// Audio chunk length without `--chunk-seconds` (the paper's 5 s).
const DEFAULT_CHUNK_SECONDS: f64 = 5.0;

/// Refuses `--chunk-seconds` and `--mask-padding` for an encoder other than WavLM and
/// `--max-tokens` for one other than Llama: the others do not read them, and a user who gave
/// one expects it to change the result.
fn only_for_the_encoder_that_reads_it(
    encoder: classify::extract::EncoderKind,
    chunk_seconds: Option<f64>,
    max_tokens: Option<usize>,
    mask_padding: bool,
) -> Result<()> {
    use classify::extract::EncoderKind;
    for (option, given, reader) in [
        (
            "--chunk-seconds",
            chunk_seconds.is_some(),
            EncoderKind::Wavlm,
        ),
        ("--mask-padding", mask_padding, EncoderKind::Wavlm),
        ("--max-tokens", max_tokens.is_some(), EncoderKind::Llama),
    ] {
        if given && encoder != reader {
            bail!(
                "{option} applies to --encoder {} only; --encoder {} does not read it",
                reader.name(),
                encoder.name()
            );
        }
    }
    Ok(())
}

/// A run stopped by Ctrl-C or SIGTERM after keeping its finished work; `main` prints the
/// message and exits with status 130 (128 + SIGINT), so that `classify extract … && classify
/// replicate …` stops there instead of going on with partial results.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted(message))` when `result` is [`classify::Error::Interrupted`], else `result`.
fn stop_on_interrupt<T>(
    result: classify::Result<T>,
    message: impl FnOnce() -> String,
) -> Result<classify::Result<T>> {
    match result {
        Err(classify::Error::Interrupted) => Err(Interrupted(message()).into()),
        other => Ok(other),
    }
}

pub fn run() -> Result<()> {
    match Cli::parse().command {
        Command::Heads(args) => heads(&args),
        Command::Replicate(args) => {
            dispatch_autodiff!(args.device, |B, dev| replicate_cmd::<B>(&args, &dev))
        }
        Command::Report(args) => dispatch!(args.device, |B, dev| report_cmd::<B>(&args, &dev)),
        Command::Validate(args) => validate(&args),
        Command::Synth(args) => synth(&args),
        Command::Extract(args) => extract::run(&args),
    }
}

/// Splits method names into DAT heads and LoRA baselines.
fn parse_methods(names: &[String]) -> Result<(Vec<HeadKind>, Vec<LoraMethod>)> {
    let (mut heads, mut loras) = (Vec::new(), Vec::new());
    for name in names {
        let name = name.trim();
        if let Some(kind) = HeadKind::from_name(name) {
            heads.push(kind);
        } else if let Some(method) = LoraMethod::from_name(name) {
            loras.push(method);
        } else {
            let all: Vec<_> = HeadKind::ALL.iter().map(|k| k.name()).collect();
            bail!(
                "unknown method `{name}`: choose from {}, or lora-rN / loraplus-rN (N the rank)",
                all.join(", ")
            );
        }
    }
    Ok((heads, loras))
}

/// The LoRA baselines' encoder and data, required when a LoRA method is asked for.
fn finetune_options(
    args: &ReplicateArgs,
    lora_methods: &[LoraMethod],
) -> Result<Option<FinetuneOptions>> {
    if lora_methods.is_empty() {
        // They configure the LoRA baselines only; given without one, they were ignored.
        let given: Vec<&str> = [
            ("--encoder", args.encoder.is_some()),
            ("--weights", args.weights.is_some()),
            ("--data", args.data.is_some()),
            ("--chunk-seconds", args.chunk_seconds.is_some()),
            ("--max-tokens", args.max_tokens.is_some()),
        ]
        .into_iter()
        .filter_map(|(option, given)| given.then_some(option))
        .collect();
        if !given.is_empty() {
            bail!(
                "{} configure the LoRA baselines (lora-rN, loraplus-rN), and --methods names \
                 none: add one, or leave {} out",
                given.join(", "),
                if given.len() == 1 { "it" } else { "them" }
            );
        }
        return Ok(None);
    }
    let (Some(encoder), Some(weights), Some(data)) = (args.encoder, &args.weights, &args.data)
    else {
        bail!(
            "{} fine-tune the encoder: give --encoder, --weights (its Hugging Face folder) and \
             --data (the raw dataset the store was extracted from)",
            lora_methods
                .iter()
                .map(LoraMethod::name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    only_for_the_encoder_that_reads_it(encoder.kind(), args.chunk_seconds, args.max_tokens, false)?;
    // Left out, the chunk length and token limit are the store's (its ids name those chunks);
    // given, `FinetuneOptions::check` refuses values other than the store's.
    let (recorded_chunk, recorded_tokens) =
        classify::finetune::recorded_input_settings(&args.embeddings, args.task.into())?;
    let max_tokens = match (args.max_tokens, recorded_tokens) {
        (None, Some(recorded)) => recorded,
        (asked, _) => {
            let resolved = resolve_max_tokens(encoder.kind(), weights, asked)?;
            if resolved.clamped_to_model {
                eprintln!(
                    "--max-tokens: {DEFAULT_MAX_TOKENS} by default, clamped to the model's \
                     max_position_embeddings = {}",
                    resolved.value
                );
            }
            resolved.value
        }
    };
    let chunk_samples = match (args.chunk_seconds, recorded_chunk) {
        (None, Some(recorded)) => recorded,
        (asked, _) => chunk_samples(asked.unwrap_or(DEFAULT_CHUNK_SECONDS))?,
    };
    Ok(Some(FinetuneOptions {
        encoder: encoder.kind(),
        weights: weights.clone(),
        data: data.clone(),
        chunk_samples,
        max_tokens,
        alpha: args.lora_alpha,
        scaling: match args.lora_scaling {
            ScalingArg::Peft => LoraScaling::Peft,
            ScalingArg::Paper => LoraScaling::Paper,
        },
        targets: args
            .lora_targets
            .iter()
            .map(|t| match t {
                TargetArg::Query => LoraTarget::Query,
                TargetArg::Key => LoraTarget::Key,
                TargetArg::Value => LoraTarget::Value,
            })
            .collect(),
        plus_ratio: args.loraplus_ratio,
        head_training: if args.classifier_only {
            HeadTraining::ClassifierOnly
        } else {
            HeadTraining::Whole
        },
    }))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScalingArg {
    /// peft: scale α/r, A uniform ±1/√d_in.
    Peft,
    /// The authors' code: scale α, A ~ N(0, 1/r).
    Paper,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum TargetArg {
    /// The query projection.
    Query,
    /// The key projection.
    Key,
    /// The value projection.
    Value,
}

fn heads(args: &HeadsArgs) -> Result<()> {
    // Counts that overflow are refused before the table starts (they wrapped to nonsense).
    for kind in HeadKind::ALL {
        let config = DatHeadConfig::new(kind, args.layers, args.d_model, args.classes);
        if config.check().is_ok() && ParamCount::checked_of_config(&config).is_none() {
            bail!(
                "--layers {} × --d-model {}, --classes {}: the {} head would have more than \
                 {} parameters (the count overflows): choose smaller sizes",
                args.layers,
                args.d_model,
                args.classes,
                kind.name(),
                usize::MAX
            );
        }
    }
    println!(
        "Heads for {} layers × {} features, {} classes\n",
        args.layers, args.d_model, args.classes
    );
    println!("| head | attention | convs | fc | total | without fc |\n|---|---|---|---|---|---|");
    let mut unfit = Vec::new();
    for kind in HeadKind::ALL {
        let config = DatHeadConfig::new(kind, args.layers, args.d_model, args.classes);
        if let Err(reason) = config.check() {
            println!("| {} | – | – | – | – | – |", kind.name());
            unfit.push(reason);
            continue;
        }
        let c = ParamCount::of_config(&config);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            kind.name(),
            c.attention,
            c.convs,
            c.fc,
            c.total(),
            c.without_fc()
        );
    }
    for reason in &unfit {
        println!("\n– does not fit: {reason}");
    }
    println!("\nThe authors' reported counts (reference §8) against ours:\n");
    println!("| source | head | L×D, classes | counts | reported | ours | note |\n|---|---|---|---|---|---|---|");
    for row in authors_counts() {
        println!(
            "| {} | {} | {}×{}, {} | {:?} | {} | {} | {} |",
            row.source,
            row.kind.name(),
            row.num_layers,
            row.d_model,
            row.num_classes,
            row.counted,
            row.reported,
            row.ours(),
            row.difference.unwrap_or(if row.ours() == row.reported {
                "equal"
            } else {
                "DIFFERS"
            })
        );
    }
    Ok(())
}

/// Progress bars for replication runs; Ctrl-C stops after the current step.
struct Bars {
    bar: Option<ProgressBar>,
    stop: Arc<AtomicBool>,
    label: String,
}

impl RunObserver for Bars {
    fn on_run_start(&mut self, method: &str, run: &str, index: usize, total: usize) {
        self.label = format!("[{index}/{total}] {method} {run}");
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} epoch {msg} {bar:25.cyan/blue} {pos}/{len} steps ({eta})",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(self.label.clone());
            self.bar = Some(bar);
        } else {
            eprintln!("{}", self.label);
        }
    }

    fn on_step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_length(steps as u64);
            bar.set_position(step as u64);
            bar.set_message(format!("{epoch} loss {loss:.4}"));
        }
    }

    fn on_epoch(&mut self, r: &EpochRecord) {
        // No dev split (a fold too small to carve one, or --dev-fraction 0): NaN in the CSV.
        let dev = if r.dev_accuracy.is_nan() {
            "– (no dev split)".to_string()
        } else {
            format!("{:.2}%", 100.0 * r.dev_accuracy)
        };
        let line = format!(
            "{} epoch {}: loss {:.4}, val acc {:.2}% (UA {:.2}%), dev acc {dev}, {:.1}s",
            self.label,
            r.epoch,
            r.train_loss,
            100.0 * r.val_accuracy,
            100.0 * r.val_unweighted_accuracy,
            r.seconds
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn on_message(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn bars() -> Bars {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second handler cannot be installed; ignore that case (tests call run() once).
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    Bars {
        bar: None,
        stop,
        label: String::new(),
    }
}

fn settings_for(task: Task, args: &ReplicateArgs) -> TrainSettings {
    let mut s = task.defaults();
    if let Some(v) = args.epochs {
        s.epochs = v;
    }
    if let Some(v) = args.batch_size {
        s.batch_size = v;
    }
    if let Some(v) = args.lr {
        s.learning_rate = v;
    }
    if let Some(v) = args.seed {
        s.seed = v;
    }
    if let Some(v) = args.dev_fraction {
        s.dev_fraction = v;
    }
    s.precision = args.precision.into();
    s
}

fn replicate_cmd<B>(args: &ReplicateArgs, device: &B::Device) -> Result<()>
where
    B: burn::tensor::backend::AutodiffBackend + daam::DaamBackend,
    B::InnerBackend: daam::DaamBackend,
{
    let task: Task = args.task.into();
    let settings = settings_for(task, args);
    if let Err(message) = settings.validate() {
        bail!("invalid settings: {message}");
    }
    refuse_unfinished_synth(&args.embeddings)?;
    let (methods, lora_methods) = parse_methods(&args.methods)?;
    // Before the LoRA options are checked, so this is the error a user sees first.
    if let Some(message) = precision_conflict(settings.precision, &lora_methods) {
        bail!(message);
    }
    if settings.precision != Precision::F32 && matches!(args.device, Device::Wgpu) {
        bail!(
            "--precision {} needs --device cuda or cpu: the wgpu backend computes in f32 only \
             (WGSL has no bf16)",
            settings.precision.name()
        );
    }
    if settings.precision != Precision::F32 && matches!(args.device, Device::Cpu) {
        eprintln!(
            "note: --precision {} on the CPU backend computes the half-precision part without \
             its fused f32 kernels: slower than f32 here; it is meant for --device cuda",
            settings.precision.name()
        );
    }
    let options = ReplicateOptions {
        task,
        embeddings: args.embeddings.clone(),
        methods,
        out: args.out.clone(),
        settings,
        runs: args.runs,
        layers: args.layers.clone(),
        finetune: finetune_options(args, &lora_methods)?,
        lora_methods,
    };
    let mut observer = bars();
    let result = replicate::<B>(&options, device, &mut observer);
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    let report = stop_on_interrupt(result, || {
        format!(
            "interrupted: finished runs are kept in {}; rerun the same command to continue",
            args.out.display()
        )
    })?
    .with_context(|| format!("replicating {}", task.name()))?;
    println!("{}", report.markdown());
    println!("report: {}/report.{{md,csv,json}}", args.out.display());
    Ok(())
}

fn report_cmd<B: daam::DaamBackend>(args: &ReportArgs, device: &B::Device) -> Result<()> {
    let record = ReplicationRecord::read(&args.replication)?;
    let stores = Stores::open(&record.embeddings, record.task.protocol()).with_context(|| {
        format!(
            "opening the replication's stores {}",
            record.embeddings.display()
        )
    })?;
    if let StoresCheck::Changed(changes) = record.compare_stores(&stores.fingerprint()) {
        bail!(
            "{}: the replication's runs were trained on {} as it was then, and it now holds \
             other data ({}): its heads cannot be interpreted or ablated on it",
            args.replication.join("replicate.json").display(),
            record.embeddings.display(),
            changes.join("; ")
        );
    }
    let num_layers = record
        .layers
        .as_ref()
        .map_or(stores.train.num_layers(), Vec::len);
    // The ablation's settings are checked before the Importance Factor report is computed.
    let ablation = args
        .ablate
        .map(|k| ablation_head(args, k, num_layers, stores.train.d_model()))
        .transpose()?;
    let plans = plan_runs(
        &stores,
        record.task.protocol(),
        &record.settings,
        record.runs,
    );
    let plan = match &args.run {
        Some(label) => plans
            .iter()
            .find(|p| &p.label == label)
            .with_context(|| format!("no run `{label}` in this replication"))?,
        None => plans.first().context("the replication has no runs")?,
    };
    if !record.methods.iter().any(|m| m.name() == args.method) {
        let heads: Vec<&str> = record.methods.iter().map(|m| m.name()).collect();
        if record.lora_methods.iter().any(|m| m.name() == args.method) {
            bail!(
                "--method {}: a fine-tuned encoder baseline has no DAT head to interpret; the \
                 replication's heads: {}",
                args.method,
                heads.join(", ")
            );
        }
        bail!(
            "--method {}: not a method of the replication in {}; its heads: {}",
            args.method,
            args.replication.display(),
            heads.join(", ")
        );
    }
    let run_dir = args
        .replication
        .join("runs")
        .join(&args.method)
        .join(&plan.label);
    if !run_dir.join("head.json").exists() {
        bail!(
            "run {} of {} has not started (no {}): rerun the replication's command to train \
             it, or give --run with a finished run",
            plan.label,
            args.method,
            run_dir.join("head.json").display()
        );
    }
    if !run_dir.join("result.json").exists() {
        eprintln!(
            "note: run {} of {} has not finished (no result.json): interpreting the best model \
             it saved so far",
            plan.label, args.method
        );
    }
    let head = read_run_head(&run_dir, &args.method, num_layers, &stores)?;
    let model = load_head::<B>(&head, &run_dir.join("model.bin"), device)?;
    let interpretation = interpret(
        &model,
        stores.val_store(),
        &plan.val,
        record.layers.as_deref(),
        &format!("run {} of {}", plan.label, args.method),
        device,
    )?;
    let out = run_dir.join("interpretation");
    let title = format!(
        "{} {} {}: Importance Factor",
        record.task.name(),
        args.method,
        plan.label
    );
    interpretation.write(&out, &title)?;
    println!(
        "wrote {}/{{importance.png, layer_contribution.png, interpretation.json}}",
        out.display()
    );
    let contribution = &interpretation.importance.layer_contribution;
    println!("layers by contribution (0-based: %):");
    for &l in interpretation.layers_by_contribution.iter().take(10) {
        println!("  layer {l}: {:.2}%", contribution[l]);
    }
    if let Some(r) = &interpretation.ranges {
        println!(
            "learned ranges: δ ∈ [{:.4}, {:.4}], ξ ∈ [{:.4}, {:.4}]",
            r.mean_offset.min, r.mean_offset.max, r.scaled_variance.min, r.scaled_variance.max
        );
    }
    if let Some((k, kind)) = ablation {
        ablate(args, &record, &interpretation, &plan.label, k, kind)?;
    }
    Ok(())
}

/// Checks `--ablate K` and `--ablate-method` against the run's `num_layers` layers of
/// `d_model` features: K ≥ 1, the K highest and K lowest layers apart (2K ≤ layers), a DAT
/// head that fits K layers.
fn ablation_head(
    args: &ReportArgs,
    k: usize,
    num_layers: usize,
    d_model: usize,
) -> Result<(usize, HeadKind)> {
    if k == 0 {
        bail!("--ablate 0: the ablation retrains on K ≥ 1 layers");
    }
    if 2 * k > num_layers {
        bail!(
            "--ablate {k}: the {k} highest- and {k} lowest-contribution layers of {num_layers} \
             would overlap; give --ablate {} or less",
            num_layers / 2
        );
    }
    let kind = HeadKind::from_name(args.ablate_method.trim()).with_context(|| {
        format!(
            "--ablate-method `{}`: the ablation retrains a DAT head on chosen store layers; \
             choose one of {}",
            args.ablate_method,
            HeadKind::ALL.map(HeadKind::name).join(", ")
        )
    })?;
    if let Err(reason) = kind.fits(k, d_model) {
        bail!(
            "--ablate {k} with --ablate-method {}: {reason}",
            kind.name()
        );
    }
    Ok((k, kind))
}

/// Retrains `kind` on the `k` highest- and `k` lowest-contribution layers of run `run`'s
/// Importance Factor, under `REPLICATION/ablation/RUN/` (one folder per run interpreted: each
/// run's IF picks its own layers).
fn ablate(
    args: &ReportArgs,
    record: &ReplicationRecord,
    interpretation: &classify::interpret::Interpretation,
    run: &str,
    k: usize,
    kind: HeadKind,
) -> Result<()> {
    let (high, low) = interpretation.extreme_layers(k);
    let method = vec![kind];
    let mut rows = Vec::new();
    for (name, layers) in [("high-if", &high), ("low-if", &low)] {
        let options = ReplicateOptions {
            task: record.task,
            embeddings: record.embeddings.clone(),
            methods: method.clone(),
            out: args
                .replication
                .join("ablation")
                .join(run)
                .join(format!("{name}-{k}")),
            settings: record.settings.clone(),
            // Folds come from the store's groups; a count recorded for them by an older
            // classify (which ignored it) would now be refused.
            runs: record
                .runs
                .filter(|_| record.task.protocol() != Protocol::GroupFolds),
            layers: Some(layers.clone()),
            lora_methods: Vec::new(),
            finetune: None,
        };
        let mut observer = bars();
        let result = dispatch_autodiff!(args.device, |B, dev| {
            anyhow::Ok(replicate::<B>(&options, &dev, &mut observer))
        })?;
        if let Some(bar) = observer.bar.take() {
            bar.finish_and_clear();
        }
        let report = stop_on_interrupt(result, || {
            format!(
                "interrupted: the finished ablation runs are kept in {}; rerun the same \
                 command to continue",
                options.out.display()
            )
        })??;
        let row = report
            .rows
            .first()
            .context("the ablation produced no runs")?;
        rows.push((name, layers.clone(), row.best_on_val, row.chosen_on_dev));
    }
    let mut md = format!(
        "# Importance Factor ablation ({} runs of {}, {k} layers)\n\n| layers | which | accuracy, best on val (%) | accuracy, chosen on dev (%) |\n|---|---|---|---|\n",
        record.task.name(),
        args.ablate_method
    );
    for (name, layers, val, dev) in &rows {
        md.push_str(&format!(
            "| {name} | {layers:?} | {:.1} ± {:.2} | {:.1} ± {:.2} |\n",
            100.0 * val.0,
            100.0 * val.1,
            100.0 * dev.0,
            100.0 * dev.1
        ));
    }
    let path = args
        .replication
        .join("ablation")
        .join(run)
        .join(format!("ablation-{k}.md"));
    classify::report::write_atomic(&path, md.as_bytes())?;
    println!("{md}\nwrote {}", path.display());
    Ok(())
}

/// Refuses a store folder an interrupted `classify synth` left, saying so (the store reader
/// would only say that manifest.json is missing).
fn refuse_unfinished_synth(dir: &Path) -> Result<()> {
    if let Some(staging) = classify::synthetic::interrupted_staging(dir) {
        bail!(
            "{} holds an unfinished generated store: `classify synth` was interrupted while \
             writing {} (no manifest.json was written); run the same `classify synth` command \
             again, it starts over",
            dir.display(),
            staging.display()
        );
    }
    Ok(())
}

fn validate(args: &ValidateArgs) -> Result<()> {
    refuse_unfinished_synth(&args.store)?;
    let reports = datasets::validate_stores(&args.store)
        .with_context(|| format!("validating {}", args.store.display()))?;
    if reports.iter().any(|report| report.dir != args.store) {
        let dirs: Vec<String> = reports
            .iter()
            .map(|report| report.dir.display().to_string())
            .collect();
        let missing: Vec<String> = ["train", "test"]
            .iter()
            .map(|split| args.store.join(split))
            .filter(|dir| reports.iter().all(|report| &report.dir != dir))
            .map(|dir| {
                format!(
                    " (no store in {}: the seeded runs need both)",
                    dir.display()
                )
            })
            .collect();
        println!(
            "{} holds no manifest.json but the {} {}{}: validating {}",
            args.store.display(),
            if dirs.len() == 1 { "store" } else { "stores" },
            dirs.join(" and "),
            missing.concat(),
            if dirs.len() == 1 { "it" } else { "each" }
        );
    }
    for report in &reports {
        println!("{report}");
    }
    let bad: Vec<String> = reports
        .iter()
        .filter(|report| !report.is_ok())
        .map(|report| report.dir.display().to_string())
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} {} problems (listed above)",
            bad.join(" and "),
            if bad.len() == 1 { "has" } else { "have" }
        );
    }
    Ok(())
}

fn synth(args: &SynthArgs) -> Result<()> {
    let spec = SyntheticSpec {
        count: args.count,
        num_layers: args.layers,
        d_model: args.d_model,
        num_classes: args.classes,
        num_groups: args.groups,
        signal_layers: args.signal_layers.clone(),
        strength: 0.5,
        seed: args.seed,
    };
    if let Some(&bad) = spec.signal_layers.iter().find(|&&l| l >= spec.num_layers) {
        bail!(
            "--signal-layers names layer {bad}, but there are {} layers",
            spec.num_layers
        );
    }
    if let Some(refusal) = daam::paths::file_in_place_of_folder(&args.out) {
        bail!("--out: {refusal}");
    }
    if args.split {
        let test = SyntheticSpec {
            count: (args.count / 4).max(spec.num_classes),
            seed: args.seed ^ 0x7E57,
            ..spec.clone()
        };
        // Both stores are checked before either is written.
        for (spec, split) in [(&spec, "train"), (&test, "test")] {
            spec.check()?;
            classify::synthetic::refuse_existing_store(&args.out.join(split))?;
        }
        spec.write(&args.out.join("train"), "train")?;
        test.write(&args.out.join("test"), "test")?;
        println!("wrote {0}/train and {0}/test", args.out.display());
    } else {
        spec.write(&args.out, "all")?;
        println!("wrote {}", args.out.display());
    }
    Ok(())
}
