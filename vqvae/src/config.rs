//! Run configuration: presets, TOML overrides, and the model/quantizer settings they produce.

use std::path::Path;

use datasets::Crop;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{
    ChannelAttention, CodeNorm, CodebookUpdate, DecoderConfig, EncoderConfig,
    VectorQuantizerConfig, VqVaeConfig,
};
use crate::train::LrSchedule;

/// Largest width, code dimension (channels) a configuration may ask for.
pub const MAX_CHANNELS: usize = 1 << 16;
/// Largest codebook a configuration may ask for.
pub const MAX_CODES: usize = 1 << 20;
/// Most down-sampling blocks (the factor is `2^blocks`).
pub const MAX_BLOCKS: usize = 10;
/// Smallest training image side: SSIM's 7×7 window, which validation computes, must fit.
pub const MIN_IMAGE_SIZE: u32 = datasets::image_quality::SSIM_WINDOW as u32;
/// Largest training image side and resize side.
pub const MAX_IMAGE_SIZE: u32 = 4096;
/// Most image-decoding threads.
pub const MAX_WORKERS: usize = 256;
/// Most values in one weight tensor (a convolution's or the codebook): 1 GiB of f32. Widths and
/// codebooks inside their own limits can still multiply to more than any machine holds (a
/// 65536-wide 3×3 convolution has 38.7 G weights).
pub const MAX_TENSOR_VALUES: usize = 1 << 28;
/// Most memory the validation images may take (they are decoded once and kept, as f32).
pub const MAX_VALIDATION_BYTES: usize = 4 << 30;

/// Checks that `count` validation images at a `side`² validation side fit
/// [`MAX_VALIDATION_BYTES`] (they are decoded once and kept, as f32); the error names `what`
/// they come from (`--val DIR`, `data.holdout (N)`).
pub fn check_validation_memory(
    count: usize,
    side: u32,
    what: &str,
) -> std::result::Result<(), String> {
    let side = side as usize;
    let bytes = count.saturating_mul(side * side * 3 * 4);
    if bytes > MAX_VALIDATION_BYTES {
        return Err(format!(
            "{count} validation images ({what}) at a {side}² validation side would take \
             {:.1} GiB of memory; at most {} GiB: use fewer validation images or a smaller \
             --resize",
            bytes as f64 / f64::from(1u32 << 30),
            MAX_VALIDATION_BYTES >> 30
        ));
    }
    Ok(())
}

/// Named starting points for a run; every field can be overridden from TOML or the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// The authors' setting: widths [128, 256, 512], 1024 codes × 256, 256² images, batch 32,
    /// Adam 3e-4, 176 epochs (blog "Advanced Applications").
    Paper,
    /// Sized for a 2-core CPU: the same shape of network at widths [32, 64, 128], 512 codes × 64,
    /// 64² crops (f = 8 → 8² codes).
    Small,
    /// For tests: two blocks of widths [8, 16], 16² images, a few dozen steps.
    Tiny,
}

/// Which quantizer a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantizerKind {
    /// Plain VQ: codebook loss + commitment, straight-through.
    Vq,
    /// EMA codebook updates (decay `ema_decay`), commitment only.
    Ema,
    /// l2-normalised codes (cosine lookup), gradient updates; pair with a low `code_dim`.
    L2,
}

fn default_true() -> bool {
    true
}

/// The network and its quantizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Widths of the down-sampling blocks (the up-sampling blocks mirror them).
    pub hidden: Vec<usize>,
    /// Channels of the latent, i.e. the code dimension.
    pub code_dim: usize,
    /// Codebook size.
    pub num_codes: usize,
    /// GroupNorm groups (must divide every width).
    pub norm_groups: usize,
    /// GroupNorm after each down-/up-sampling convolution, as the authors' write-up (default
    /// true). `false` keeps only a per-channel affine map and the ReLU there, so a tile's mean
    /// colour is not normalised away on the main path; the residual blocks keep their GroupNorms.
    #[serde(default = "default_true")]
    pub sampling_norm: bool,
    /// Channel attention in the residual blocks (`{ kind = "none" }` for the ablation).
    pub attention: ChannelAttention,
    /// Commitment weight β.
    pub commitment: f64,
    /// Quantizer variant.
    pub quantizer: QuantizerKind,
    /// EMA decay, used by [`QuantizerKind::Ema`].
    pub ema_decay: f64,
    /// Restart codes unused for this many steps from latents of the current batch; 0 disables.
    pub dead_code_after: u64,
}

/// Optimisation and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// Images per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Passes over the training images.
    pub epochs: u64,
    /// Stop after this many steps even if epochs remain; 0 means no limit.
    pub max_steps: u64,
    /// Seed of the model init, data order, crops, flips and code restarts.
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Write an original-vs-reconstruction grid every this many steps.
    pub sample_every: u64,
    /// Checkpoints kept on disk (older ones are deleted); 0 is taken as 1, the latest.
    pub keep_checkpoints: usize,
    /// Window, in steps, of the codebook usage and perplexity statistics.
    pub usage_window: u64,
    /// Warm-up and decay of the learning rate (`[train.schedule]`); absent: constant.
    #[serde(default)]
    pub schedule: LrSchedule,
}

/// Where images come from and how they become samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Side of the square training images.
    pub image_size: u32,
    /// Shorter side, in pixels, that images are resized to before the `image_size` training
    /// crop is taken; validation images are the centre square of this side. Absent:
    /// `image_size` (crops span the image's full shorter side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<u32>,
    /// Memory, in MiB, for decoded training images kept (already resized) between epochs, so
    /// each file is decoded once; 0 decodes every time.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: usize,
    /// Crop of training images (validation images are centre-cropped).
    pub crop: Crop,
    /// Random horizontal flips of training images.
    pub flip: bool,
    /// Images held out of a `--data` folder for validation when no `--val` is given.
    pub holdout: usize,
    /// Images of the embedded procedural set used when no `--data` is given.
    pub procedural_images: usize,
    /// Decoding threads (0: one per core).
    pub workers: usize,
}

/// Everything a run needs; stored as `config.json` beside its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset it started from (informational).
    pub preset: Preset,
    /// Network and quantizer.
    pub model: ModelSettings,
    /// Optimisation.
    pub train: TrainSettings,
    /// Data.
    pub data: DataSettings,
}

impl Preset {
    /// The name `--preset` and `config.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Small => "small",
            Self::Tiny => "tiny",
        }
    }

    /// The full configuration of this preset.
    pub fn config(self) -> RunConfig {
        let data = |image_size, holdout, procedural_images| DataSettings {
            image_size,
            resize: None,
            cache_mb: default_cache_mb(),
            crop: Crop::Random,
            flip: true,
            holdout,
            procedural_images,
            workers: 0,
        };
        match self {
            Preset::Paper => RunConfig {
                preset: self,
                model: ModelSettings {
                    hidden: vec![128, 256, 512],
                    code_dim: 256,
                    num_codes: 1024,
                    norm_groups: 32,
                    sampling_norm: true,
                    attention: ChannelAttention::PAPER,
                    commitment: 0.25,
                    quantizer: QuantizerKind::Vq,
                    ema_decay: 0.99,
                    dead_code_after: 0,
                },
                train: TrainSettings {
                    batch_size: 32,
                    learning_rate: 3e-4,
                    epochs: 176,
                    max_steps: 0,
                    seed: 0,
                    checkpoint_every: 2000,
                    sample_every: 500,
                    keep_checkpoints: 3,
                    usage_window: 100,
                    schedule: LrSchedule::default(),
                },
                data: data(256, 500, 2048),
            },
            Preset::Small => RunConfig {
                preset: self,
                model: ModelSettings {
                    hidden: vec![32, 64, 128],
                    code_dim: 64,
                    num_codes: 512,
                    norm_groups: 16,
                    // Measured on photographs (README): keeping each tile's mean colour on the
                    // main path gained 1.1 dB over the authors' layout in fewer steps.
                    sampling_norm: false,
                    attention: ChannelAttention::PAPER,
                    commitment: 0.25,
                    quantizer: QuantizerKind::Vq,
                    ema_decay: 0.99,
                    dead_code_after: 50,
                },
                train: TrainSettings {
                    batch_size: 16,
                    learning_rate: 1e-3,
                    epochs: 1000,
                    max_steps: 1500,
                    seed: 0,
                    checkpoint_every: 250,
                    sample_every: 100,
                    keep_checkpoints: 2,
                    usage_window: 50,
                    schedule: LrSchedule::default(),
                },
                data: data(64, 2, 256),
            },
            Preset::Tiny => RunConfig {
                preset: self,
                model: ModelSettings {
                    hidden: vec![8, 16],
                    code_dim: 8,
                    num_codes: 32,
                    norm_groups: 4,
                    sampling_norm: true,
                    attention: ChannelAttention::Daam {
                        num_heads: 2,
                        num_gaussians: 2,
                        num_layers: 1,
                    },
                    commitment: 0.25,
                    quantizer: QuantizerKind::Vq,
                    ema_decay: 0.9,
                    dead_code_after: 0,
                },
                train: TrainSettings {
                    batch_size: 4,
                    learning_rate: 3e-3,
                    epochs: 1000,
                    max_steps: 40,
                    seed: 0,
                    checkpoint_every: 20,
                    sample_every: 20,
                    keep_checkpoints: 2,
                    usage_window: 10,
                    schedule: LrSchedule::default(),
                },
                data: data(16, 1, 8),
            },
        }
    }
}

/// Merges `overlay` into `base`, table by table (overlay values win).
fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_table() && value.is_table() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn default_cache_mb() -> usize {
    1024
}

impl DataSettings {
    /// Shorter side images are resized to before cropping (`resize`, else `image_size`).
    pub fn resize_side(&self) -> u32 {
        self.resize.unwrap_or(self.image_size)
    }
}

impl RunConfig {
    /// `preset`'s configuration with the TOML file at `path` laid over it (any subset of the
    /// fields, e.g. `[train]\nlearning_rate = 1e-4`).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Config`] when it is not valid TOML
    /// or names an unknown field or a wrong type.
    pub fn from_toml_over(preset: Preset, path: &Path) -> Result<Self> {
        preset.config().overlay_toml(path)
    }

    /// This configuration with the fields a TOML file sets replaced (as
    /// [`RunConfig::from_toml_over`], over this configuration instead of a preset's).
    ///
    /// # Errors
    /// As [`RunConfig::from_toml_over`].
    pub fn overlay_toml(self, path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let overlay: toml::Value = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut base = toml::Value::try_from(self).expect("configs serialise");
        merge(&mut base, overlay);
        let config: RunConfig = base
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        config.validate().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Checks what the types cannot: divisibility and ranges. Returns the first problem.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let m = &self.model;
        if m.hidden.is_empty() {
            return Err("model.hidden must list at least one width".into());
        }
        if let Some(w) = m.hidden.iter().find(|&&w| w == 0 || w > MAX_CHANNELS) {
            return Err(format!(
                "model.hidden widths must be between 1 and {MAX_CHANNELS} (got {w})"
            ));
        }
        if m.hidden.len() > MAX_BLOCKS {
            return Err(format!(
                "model.hidden lists {} widths; at most {MAX_BLOCKS} down-sampling blocks",
                m.hidden.len()
            ));
        }
        if let Some(w) = m
            .hidden
            .iter()
            .find(|&&w| m.norm_groups == 0 || w % m.norm_groups != 0)
        {
            return Err(format!(
                "model.norm_groups ({}) must divide every width (got {w})",
                m.norm_groups
            ));
        }
        if m.code_dim == 0 || m.code_dim > MAX_CHANNELS {
            return Err(format!(
                "model.code_dim ({}) must be between 1 and {MAX_CHANNELS}",
                m.code_dim
            ));
        }
        if m.num_codes == 0 || m.num_codes > MAX_CODES {
            return Err(format!(
                "model.num_codes ({}) must be between 1 and {MAX_CODES}",
                m.num_codes
            ));
        }
        // The largest weights: a 4×4 sampling convolution between adjacent widths (RGB in
        // front), a 3×3 residual convolution within a width, the codebook.
        let widths: Vec<usize> = std::iter::once(3).chain(m.hidden.iter().copied()).collect();
        let mut tensors: Vec<(usize, String)> = widths
            .windows(2)
            .map(|p| {
                (
                    p[0] * p[1] * 16,
                    format!("{}→{} 4×4 convolution", p[0], p[1]),
                )
            })
            .chain(
                m.hidden
                    .iter()
                    .map(|&w| (w * w * 9, format!("{w}→{w} 3×3 convolution"))),
            )
            .collect();
        tensors.push((
            m.num_codes * m.code_dim,
            format!("{}×{} codebook", m.num_codes, m.code_dim),
        ));
        if let Some((values, what)) = tensors.into_iter().max_by_key(|(v, _)| *v) {
            if values > MAX_TENSOR_VALUES {
                return Err(format!(
                    "model.hidden / code_dim / num_codes make a {what} of {values} weights; at \
                     most {MAX_TENSOR_VALUES} (1 GiB of f32) in one tensor"
                ));
            }
        }
        if let ChannelAttention::Daam {
            num_heads,
            num_gaussians,
            num_layers,
        } = m.attention
        {
            if let Some(w) = m.hidden.iter().find(|&&w| num_heads == 0 || num_heads > w) {
                return Err(format!(
                    "model.attention.num_heads ({num_heads}) must be between 1 and every width \
                     (got {w})"
                ));
            }
            if num_gaussians == 0 || num_layers == 0 {
                return Err(format!(
                    "model.attention.num_gaussians ({num_gaussians}) and num_layers \
                     ({num_layers}) must be positive (for no attention: kind = \"none\")"
                ));
            }
        }
        if !(m.commitment.is_finite() && m.commitment >= 0.0) {
            return Err(format!(
                "model.commitment ({}) must be a finite number ≥ 0",
                m.commitment
            ));
        }
        if !(0.0..1.0).contains(&m.ema_decay) {
            return Err(format!(
                "model.ema_decay ({}) must be in [0, 1)",
                m.ema_decay
            ));
        }
        let f = 1u32 << m.hidden.len();
        let d = &self.data;
        if d.image_size == 0 || !d.image_size.is_multiple_of(f) {
            return Err(format!(
                "data.image_size ({}) must be a positive multiple of the down-sampling factor ({f})",
                d.image_size
            ));
        }
        if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&d.image_size) {
            return Err(format!(
                "data.image_size ({}) must be between {MIN_IMAGE_SIZE} (SSIM's window, which \
                 validation computes) and {MAX_IMAGE_SIZE}",
                d.image_size
            ));
        }
        if let Some(resize) = d.resize {
            if resize < d.image_size || resize % f != 0 || resize > MAX_IMAGE_SIZE {
                return Err(format!(
                    "data.resize ({resize}) must be at least data.image_size ({}), at most \
                     {MAX_IMAGE_SIZE} and a multiple of the down-sampling factor ({f})",
                    d.image_size
                ));
            }
        }
        if d.workers > MAX_WORKERS {
            return Err(format!(
                "data.workers ({}) must be at most {MAX_WORKERS} (0: one per core)",
                d.workers
            ));
        }
        if d.procedural_images == 0 {
            return Err("data.procedural_images must be positive".into());
        }

        let t = &self.train;
        if t.batch_size == 0 {
            return Err("train.batch_size must be positive".into());
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(format!(
                "train.learning_rate ({}) must be a positive finite number",
                t.learning_rate
            ));
        }
        if t.epochs == 0 {
            return Err("train.epochs must be positive".into());
        }
        t.schedule.validate()?;
        Ok(())
    }

    /// The module configuration of the network.
    pub fn model_config(&self) -> VqVaeConfig {
        let m = &self.model;
        let (update, norm) = match m.quantizer {
            QuantizerKind::Vq => (CodebookUpdate::Gradient, CodeNorm::Euclidean),
            QuantizerKind::Ema => (
                CodebookUpdate::Ema { decay: m.ema_decay },
                CodeNorm::Euclidean,
            ),
            QuantizerKind::L2 => (CodebookUpdate::Gradient, CodeNorm::L2),
        };
        let seed = self.train.seed.wrapping_mul(1000);
        VqVaeConfig::new(
            EncoderConfig::new(m.hidden.clone(), m.code_dim)
                .with_norm_groups(m.norm_groups)
                .with_sampling_norm(m.sampling_norm)
                .with_attention(m.attention)
                .with_seed(seed),
            VectorQuantizerConfig::new(m.num_codes, m.code_dim)
                .with_commitment(m.commitment)
                .with_update(update)
                .with_norm(norm),
            DecoderConfig::new(m.hidden.clone(), m.code_dim)
                .with_norm_groups(m.norm_groups)
                .with_sampling_norm(m.sampling_norm)
                .with_attention(m.attention)
                .with_seed(seed.wrapping_add(100)),
        )
    }

    /// The spatial down-sampling factor.
    pub fn downsampling(&self) -> u32 {
        1 << self.model.hidden.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip_through_json() {
        for preset in [Preset::Paper, Preset::Small, Preset::Tiny] {
            let config = preset.config();
            config.validate().unwrap();
            let json = serde_json::to_string(&config).unwrap();
            assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), config);
        }
    }

    #[test]
    fn configs_written_before_sampling_norm_existed_keep_the_authors_layout() {
        let mut json = serde_json::to_value(Preset::Small.config()).unwrap();
        json["model"]
            .as_object_mut()
            .unwrap()
            .remove("sampling_norm");
        let config: RunConfig = serde_json::from_value(json).unwrap();
        assert!(config.model.sampling_norm);
    }

    #[test]
    fn toml_overrides_any_subset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(
            &path,
            "[train]\nlearning_rate = 1e-4\n[model]\nattention = { kind = \"none\" }\n",
        )
        .unwrap();
        let config = RunConfig::from_toml_over(Preset::Small, &path).unwrap();
        assert_eq!(config.train.learning_rate, 1e-4);
        assert_eq!(config.model.attention, ChannelAttention::None);
        assert_eq!(
            config.train.batch_size,
            Preset::Small.config().train.batch_size
        );
    }

    #[test]
    fn validation_images_beyond_4_gib_are_refused() {
        assert!(check_validation_memory(64, 256, "--val v").is_ok());
        // 10⁷ procedural validation images were made before the first step (a hang, then
        // OOM); 30 images at a 4096² side aborted on 6 GB.
        let error = check_validation_memory(10_000_000, 16, "data.holdout (10000000)");
        assert_eq!(
            error.unwrap_err(),
            "10000000 validation images (data.holdout (10000000)) at a 16² validation side \
             would take 28.6 GiB of memory; at most 4 GiB: use fewer validation images or a \
             smaller --resize"
        );
        assert!(check_validation_memory(30, 4096, "--val v").is_err());
    }

    /// Every field a user can set to a size, rate or count the run cannot use is refused up
    /// front with the field named (each of these panicked, aborted or hung the run before).
    #[test]
    fn unusable_values_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        let cases = [
            ("[model]\nnum_codes = 0", "model.num_codes (0)"),
            (
                "[model]\nnum_codes = 1000000000",
                "model.num_codes (1000000000)",
            ),
            ("[model]\ncode_dim = 0", "model.code_dim (0)"),
            // Each inside its own limit, but 256 GiB of weights (aborted the run).
            (
                "[model]\nhidden = [65536]\nnorm_groups = 4",
                "make a 65536→65536 3×3 convolution of 38654705664 weights; at most 268435456",
            ),
            (
                "[model]\ncode_dim = 65536\nnum_codes = 1048576",
                "make a 1048576×65536 codebook of",
            ),
            ("[model]\nhidden = [0, 16]", "model.hidden widths"),
            ("[model]\ncommitment = -1.0", "model.commitment (-1)"),
            ("[model]\ncommitment = nan", "model.commitment (NaN)"),
            (
                "[model]\nattention = { kind = \"daam\", num_heads = 2, num_gaussians = 0, \
                 num_layers = 1 }",
                "num_gaussians (0)",
            ),
            (
                "[model]\nattention = { kind = \"daam\", num_heads = 2, num_gaussians = 2, \
                 num_layers = 0 }",
                "num_layers (0)",
            ),
            (
                "[model]\nattention = { kind = \"daam\", num_heads = 2, num_gaussians = 2, \
                 num_layers = 1, foo = 1 }",
                "foo",
            ),
            (
                "[data]\nimage_size = 4",
                "data.image_size (4) must be between 7",
            ),
            ("[data]\nimage_size = 65536", "data.image_size (65536)"),
            ("[data]\nresize = 65536", "data.resize (65536)"),
            ("[data]\nworkers = 100000", "data.workers (100000)"),
            ("[data]\nprocedural_images = 0", "data.procedural_images"),
            ("[train]\nlearning_rate = nan", "train.learning_rate (NaN)"),
            ("[train]\nlearning_rate = inf", "train.learning_rate (inf)"),
            ("[train]\nepochs = 0", "train.epochs"),
        ];
        for (toml, expected) in cases {
            std::fs::write(&path, toml).unwrap();
            let err = RunConfig::from_toml_over(Preset::Tiny, &path)
                .expect_err(toml)
                .to_string();
            assert!(
                err.contains("run.toml") && err.contains(expected),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn bad_toml_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[train]\nlerning_rate = 1e-4\n").unwrap();
        let err = RunConfig::from_toml_over(Preset::Tiny, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.toml") && err.contains("lerning_rate"),
            "{err}"
        );
        std::fs::write(&path, "[model]\nnorm_groups = 3\n").unwrap();
        let err = RunConfig::from_toml_over(Preset::Tiny, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("norm_groups (3) must divide every width (got 8)"),
            "{err}"
        );
    }
}
