//! Command-line arguments and dispatch to the library, on the backend `--device` names.

mod device;
mod progress;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use daam::DaamBackend;
use vqvae::config::{Preset, QuantizerKind, RunConfig};
use vqvae::model::ChannelAttention;
use vqvae::train::{checkpoint, LrDecay, TrainOptions};

use device::Device;

/// A VQ-VAE with Density Adaptive Attention (DAAM) residual blocks: train it on any image
/// folder (or the embedded procedural images), reconstruct and decode images, and compare
/// models with and without DAAM.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model; checkpoints, metrics.csv and sample grids go to --out.
    Train(TrainArgs),
    /// Reconstruct images with a trained model and score them (PSNR/SSIM on 8-bit images).
    Reconstruct(ReconstructArgs),
    /// Turn exported codes back into images (identical to `reconstruct`'s output).
    Decode(DecodeArgs),
    /// Reconstruct the same images with several models: table, grids and an HTML report.
    Compare(CompareArgs),
}

/// Preset names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PresetArg {
    /// The authors' setting (256², widths 128/256/512, 1024 codes × 256, batch 32, 176 epochs).
    Paper,
    /// CPU-sized: widths 32/64/128, 512 codes × 64, 64² crops, no GroupNorm after the
    /// sampling convolutions (--sampling-norm false).
    Small,
    /// Test-sized: a few dozen steps on 16² images.
    Tiny,
}

/// Channel attention on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AttentionArg {
    /// DAAM DensityBlock on the channel axis (4 heads × 3 Gaussians unless configured).
    Daam,
    /// The same network without it (the ablation).
    None,
}

/// Quantizer on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum QuantizerArg {
    /// Codebook loss + commitment, straight-through.
    Vq,
    /// EMA codebook updates.
    Ema,
    /// l2-normalised codes (sets code_dim 8 unless --code-dim is given).
    L2,
}

/// Learning-rate decay on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LrDecayArg {
    /// Constant after the warm-up.
    None,
    /// Half a cosine down to --final-lr-fraction × --lr at the last step.
    Cosine,
    /// A straight line down to --final-lr-fraction × --lr at the last step.
    Linear,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Folder of training images (.png, .jpg, .jpeg; other files are not read), searched
    /// recursively (COCO train2017/ works as is). Without it, trains on an embedded, seeded set
    /// of procedural images.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder of validation images (.png, .jpg, .jpeg). Without it, `data.holdout` images are
    /// held out.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Starting configuration [default: small]. With --resume the run's stored one is used: a
    /// different preset is refused.
    #[arg(long, value_enum)]
    preset: Option<PresetArg>,
    /// TOML file overriding any preset field, e.g. `[train]\nlearning_rate = 1e-4`. With
    /// --resume it overrides the run's stored configuration (where --resume allows changes).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Channel attention in the residual blocks.
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// Quantizer variant.
    #[arg(long, value_enum)]
    quantizer: Option<QuantizerArg>,
    /// Code dimension.
    #[arg(long)]
    code_dim: Option<usize>,
    /// Codebook size.
    #[arg(long)]
    num_codes: Option<usize>,
    /// GroupNorm after each down-/up-sampling convolution, as the authors' layout (`true`: the
    /// `paper` and `tiny` default); `false` (the `small` default) keeps only an affine map and
    /// the ReLU there, so each tile's mean colour survives the main path.
    #[arg(long)]
    sampling_norm: Option<bool>,
    /// Images per step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Steps of linear learning-rate warm-up (0: none).
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// Learning-rate decay over the end of the run; it ends at the run's last step (set by
    /// --epochs / --max-steps). Default: none (constant).
    #[arg(long, value_enum)]
    lr_decay: Option<LrDecayArg>,
    /// Step at which the decay begins (default: right after the warm-up). With --resume and a
    /// larger --max-steps, this continues a finished run with a decay phase.
    #[arg(long)]
    decay_start: Option<u64>,
    /// Learning rate at the last step, as a fraction of --lr (default 0).
    #[arg(long)]
    final_lr_fraction: Option<f64>,
    /// Passes over the training images.
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop after this many steps (0: no limit).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Side of the square training images.
    #[arg(long)]
    image_size: Option<u32>,
    /// Resize images so their shorter side is this many pixels, then take the --image-size
    /// training crop from them (random crops of photographs); validation uses the centre
    /// square of this side. Default: the image size (crops span the full shorter side).
    #[arg(long)]
    resize: Option<u32>,
    /// MiB of decoded, resized training images kept in memory between epochs (0: decode every
    /// time).
    #[arg(long)]
    cache_mb: Option<usize>,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder for checkpoints, logs and samples.
    #[arg(long, default_value = "checkpoints/run")]
    out: PathBuf,
    /// Continue the run in --out from its latest checkpoint: its stored configuration is used
    /// (only --epochs, --max-steps, --lr and the learning-rate schedule may change), and its
    /// --data/--val folders unless given again.
    #[arg(long)]
    resume: bool,
    /// `cpu`, `cuda` / `cuda:N` (a build with `--features cuda`), or `wgpu` (Vulkan, Metal or
    /// DirectX 12; a build with `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

#[derive(Args, Debug)]
struct ReconstructArgs {
    /// A run folder (its latest checkpoint) or one of its `step-*` folders.
    #[arg(long)]
    checkpoint: PathBuf,
    /// An image file (any format the decoder reads) or a folder of images (.png, .jpg, .jpeg,
    /// recursively).
    #[arg(long)]
    input: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "outputs/reconstruct")]
    out: PathBuf,
    /// Square size inputs are resized and centre-cropped to (default: the model's validation
    /// size, its `data.resize` or else its training image size).
    #[arg(long)]
    size: Option<u32>,
    /// Side of the square tiles inputs are reconstructed in, each tile on its own (default:
    /// the training image size when it divides --size; --tile equal to --size: whole images).
    /// Must divide --size and be a multiple of the down-sampling factor.
    #[arg(long)]
    tile: Option<u32>,
    /// Also write the code indices to codes.json (for `vqvae decode`).
    #[arg(long)]
    export_codes: bool,
    /// `cpu`, `cuda` / `cuda:N` (`--features cuda`) or `wgpu` (`--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

#[derive(Args, Debug)]
struct DecodeArgs {
    /// The checkpoint the codes were exported with.
    #[arg(long)]
    checkpoint: PathBuf,
    /// A codes.json written by `vqvae reconstruct --export-codes`.
    #[arg(long)]
    codes: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "outputs/decode")]
    out: PathBuf,
    /// `cpu`, `cuda` / `cuda:N` (`--features cuda`) or `wgpu` (`--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Models to compare (repeat the flag); a run folder or a `step-*` folder each.
    #[arg(long = "checkpoint", required = true)]
    checkpoints: Vec<PathBuf>,
    /// Labels for the models, in the same order (default: run folder and attention).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// An image file (any format the decoder reads) or a folder of images (.png, .jpg, .jpeg,
    /// recursively).
    #[arg(long)]
    input: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "outputs/compare")]
    out: PathBuf,
    /// Square size inputs are resized and centre-cropped to (default: the first model's).
    #[arg(long)]
    size: Option<u32>,
    /// Side of the square tiles inputs are reconstructed in, each tile on its own (default:
    /// the training image size when it divides --size; --tile equal to --size: whole images).
    /// Must divide --size and be a multiple of the down-sampling factor.
    #[arg(long)]
    tile: Option<u32>,
    /// Add the bicubic floor: each image downscaled by the first model's factor and back up.
    #[arg(long)]
    bicubic_floor: bool,
    /// Add each model decoded from its unquantized latents (no rounding to codes): how much
    /// of the error the codebook causes.
    #[arg(long)]
    unquantized: bool,
    /// `cpu`, `cuda` / `cuda:N` (`--features cuda`) or `wgpu` (`--features wgpu`).
    #[arg(long, default_value = "cpu")]
    device: Device,
}

/// Parses the arguments and runs the command.
/// Exit status of a training run stopped by Ctrl-C or SIGTERM after saving its checkpoint
/// (128 + SIGINT, the shell's convention), so that `vqvae train … && next` does not go on.
pub const INTERRUPTED: u8 = 130;

/// Runs the command line; the exit status on success ([`INTERRUPTED`] for a stopped run).
pub fn run() -> Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let done = |r: Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match cli.command {
        Command::Train(args) => {
            let device = args.device;
            device::dispatch_autodiff!(device, |B, dev| train::<B>(&args, &dev))
        }
        Command::Reconstruct(args) => {
            let device = args.device;
            done(device::dispatch!(device, |B, dev| reconstruct::<B>(
                &args, &dev
            )))
        }
        Command::Decode(args) => {
            let device = args.device;
            done(device::dispatch!(device, |B, dev| decode::<B>(&args, &dev)))
        }
        Command::Compare(args) => {
            let device = args.device;
            done(device::dispatch!(device, |B, dev| compare::<B>(
                &args, &dev
            )))
        }
    }
}

/// The configuration a `train` invocation asks for.
fn run_config(args: &TrainArgs) -> Result<RunConfig> {
    let preset = match args.preset.unwrap_or(PresetArg::Small) {
        PresetArg::Paper => Preset::Paper,
        PresetArg::Small => Preset::Small,
        PresetArg::Tiny => Preset::Tiny,
    };
    let stored = args.out.join("config.json");
    let mut config = if args.resume && stored.is_file() {
        let config = checkpoint::read_config(&args.out)?;
        if args.preset.is_some() && config.preset != preset {
            bail!(
                "{} was trained with --preset {}, not {}: --resume continues the stored \
                 configuration (leave --preset out)",
                args.out.display(),
                config.preset.name(),
                preset.name()
            );
        }
        match &args.config {
            Some(path) => config.overlay_toml(path)?,
            None => config,
        }
    } else {
        match &args.config {
            Some(path) => RunConfig::from_toml_over(preset, path)?,
            None => preset.config(),
        }
    };
    if let Some(a) = args.attention {
        config.model.attention = match (a, config.model.attention) {
            (AttentionArg::None, _) => ChannelAttention::None,
            (AttentionArg::Daam, current @ ChannelAttention::Daam { .. }) => current,
            (AttentionArg::Daam, ChannelAttention::None) => ChannelAttention::PAPER,
        };
    }
    if let Some(q) = args.quantizer {
        config.model.quantizer = match q {
            QuantizerArg::Vq => QuantizerKind::Vq,
            QuantizerArg::Ema => QuantizerKind::Ema,
            QuantizerArg::L2 => {
                if args.code_dim.is_none() {
                    config.model.code_dim = 8;
                }
                QuantizerKind::L2
            }
        };
    }
    fn set<T: Copy>(field: &mut T, value: Option<T>) {
        if let Some(v) = value {
            *field = v;
        }
    }
    let mut c = config;
    set(&mut c.model.code_dim, args.code_dim);
    set(&mut c.model.num_codes, args.num_codes);
    set(&mut c.model.sampling_norm, args.sampling_norm);
    set(&mut c.train.batch_size, args.batch_size);
    set(&mut c.train.learning_rate, args.lr);
    set(&mut c.train.epochs, args.epochs);
    set(&mut c.train.schedule.warmup_steps, args.warmup_steps);
    set(&mut c.train.schedule.decay_start, args.decay_start);
    set(&mut c.train.schedule.final_fraction, args.final_lr_fraction);
    if let Some(decay) = args.lr_decay {
        c.train.schedule.decay = match decay {
            LrDecayArg::None => LrDecay::None,
            LrDecayArg::Cosine => LrDecay::Cosine,
            LrDecayArg::Linear => LrDecay::Linear,
        };
    }
    set(&mut c.train.max_steps, args.max_steps);
    set(&mut c.data.image_size, args.image_size);
    if args.resize.is_some() {
        c.data.resize = args.resize;
    }
    set(&mut c.data.cache_mb, args.cache_mb);
    set(&mut c.train.seed, args.seed);
    if let Err(message) = c.validate() {
        bail!("invalid configuration: {message}");
    }
    Ok(c)
}

fn train<B>(args: &TrainArgs, device: &B::Device) -> Result<std::process::ExitCode>
where
    B: burn::tensor::backend::AutodiffBackend + DaamBackend,
    B::InnerBackend: DaamBackend,
{
    let config = run_config(args)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interruption: exiting without saving");
                std::process::exit(INTERRUPTED.into());
            }
            eprintln!(
                "\ninterrupted (Ctrl-C or SIGTERM): stopping; a checkpoint is saved after the \
                 current step, nothing before the first (interrupt again to abort)"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let options = TrainOptions {
        data: args.data.clone(),
        val: args.val.clone(),
        out: args.out.clone(),
        resume: args.resume,
        stop,
    };
    let mut observer = progress::Bars::new();
    let outcome = vqvae::train::train::<B>(&config, &options, device, &mut observer)
        .with_context(|| format!("training into {}", args.out.display()))?;
    observer.finish();
    let e = &outcome.evaluation;
    println!(
        "{} after {} steps; checkpoint {}\nvalidation ({} images): PSNR {:.2} dB, SSIM {:.4}, codebook usage {:.1}%",
        if outcome.interrupted { "stopped" } else { "finished" },
        outcome.steps,
        outcome.checkpoint.display(),
        e.images,
        e.psnr,
        e.ssim,
        100.0 * e.usage
    );
    let sample = args.out.join("samples");
    println!(
        "samples: {}  metrics: {}",
        sample.display(),
        args.out.join("metrics.csv").display()
    );
    Ok(if outcome.interrupted {
        std::process::ExitCode::from(INTERRUPTED)
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn reconstruct<B: DaamBackend>(args: &ReconstructArgs, device: &B::Device) -> Result<()> {
    let loaded = vqvae::reconstruct::load::<B>(&args.checkpoint, device)?;
    let e = vqvae::reconstruct::reconstruct(
        &loaded,
        &args.input,
        &args.out,
        args.size,
        args.tile,
        args.export_codes,
        device,
    )
    .with_context(|| format!("reconstructing {}", args.input.display()))?;
    for m in &e.per_image {
        println!("{:>8.2} dB  SSIM {:.4}  {}", m.psnr, m.ssim, m.name);
    }
    println!(
        "mean over {} images: PSNR {:.2} dB, SSIM {:.4}; codebook usage {:.1}%\nwrote {}",
        e.images,
        e.psnr,
        e.ssim,
        100.0 * e.usage,
        args.out.display()
    );
    Ok(())
}

fn decode<B: DaamBackend>(args: &DecodeArgs, device: &B::Device) -> Result<()> {
    let loaded = vqvae::reconstruct::load::<B>(&args.checkpoint, device)?;
    let images = vqvae::reconstruct::decode(&loaded, &args.codes, &args.out, device)
        .with_context(|| format!("decoding {}", args.codes.display()))?;
    println!(
        "decoded {} images into {}",
        images.len(),
        args.out.display()
    );
    Ok(())
}

fn compare<B: DaamBackend>(args: &CompareArgs, device: &B::Device) -> Result<()> {
    if !args.labels.is_empty() && args.labels.len() != args.checkpoints.len() {
        bail!(
            "{} labels for {} checkpoints: give one --label per --checkpoint or none",
            args.labels.len(),
            args.checkpoints.len()
        );
    }
    // Rows are told apart by label (table, CSV, JSON, report).
    for (i, label) in args.labels.iter().enumerate() {
        if label.trim().is_empty() {
            bail!(
                "--label {} is empty: rows are told apart by their labels",
                i + 1
            );
        }
        if label.chars().any(char::is_control) {
            bail!(
                "--label {label:?} has a control character (a line break would split its table \
                 row)"
            );
        }
        if args.labels[..i].iter().any(|l| l.trim() == label.trim()) {
            bail!("--label {label:?} is given twice: rows are told apart by their labels");
        }
    }
    let mut models: Vec<(String, vqvae::reconstruct::LoadedModel<B>)> = Vec::new();
    for (i, path) in args.checkpoints.iter().enumerate() {
        let loaded = vqvae::reconstruct::load::<B>(path, device)?;
        if let Some((label, _)) = models
            .iter()
            .find(|(_, m)| m.checkpoint == loaded.checkpoint)
        {
            eprintln!(
                "note: --checkpoint {} is the checkpoint of {label:?} again",
                path.display()
            );
        }
        let label = match args.labels.get(i) {
            Some(label) => label.clone(),
            None => {
                // Runs of the same name (`a/run`, `b/run`) or one checkpoint twice: the later
                // ones get their position.
                let label = vqvae::compare::default_label(&loaded);
                if models.iter().any(|(l, _)| *l == label) {
                    format!("{label} [{}]", i + 1)
                } else {
                    label
                }
            }
        };
        models.push((label, loaded));
    }
    let results = vqvae::compare::compare(
        &models,
        &args.input,
        &args.out,
        vqvae::compare::CompareOptions {
            size: args.size,
            tile: args.tile,
            bicubic_floor: args.bicubic_floor,
            unquantized: args.unquantized,
        },
        device,
    )
    .with_context(|| format!("comparing on {}", args.input.display()))?;
    print!("{}", vqvae::compare::markdown_table(&results));
    println!("wrote {}/report.html", args.out.display());
    Ok(())
}
