//! The frozen encoders `classify extract` runs, behind one interface: a batch of items in, the
//! per-layer mean-pooled features out.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use encoders::beit::Beit;
use encoders::llama::LlamaTokenizer;
use encoders::{ImagePreprocessor, Llama, WavLM};
use serde::Deserialize;

use super::source::{DataTask, Input, Item};
use crate::error::{invalid, Error, Result};

/// Which encoder architecture a checkpoint folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// WavLM (`microsoft/wavlm-large`), 16 kHz audio.
    Wavlm,
    /// BEiT (`microsoft/beit-large-patch16-224`), images.
    Beit,
    /// Llama-2 (`TheBloke/Llama-2-13B-fp16`), text.
    Llama,
}

impl EncoderKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wavlm => "wavlm",
            Self::Beit => "beit",
            Self::Llama => "llama",
        }
    }

    /// The encoder that reads `task`'s records (WavLM audio, BEiT images, Llama text).
    pub fn for_task(task: DataTask) -> Self {
        match task {
            DataTask::Iemocap => Self::Wavlm,
            DataTask::Cifar100 => Self::Beit,
            DataTask::AgNews => Self::Llama,
        }
    }

    /// What the encoder reads: `audio`, `images` or `text`.
    pub fn modality(self) -> &'static str {
        match self {
            Self::Wavlm => "audio",
            Self::Beit => "images",
            Self::Llama => "text",
        }
    }
}

/// Checks that `encoder` reads `task`'s records, before anything is loaded or written.
///
/// # Errors
/// [`Error::InvalidSetting`] naming both and the encoder to use.
pub fn check_pairing(encoder: EncoderKind, task: DataTask) -> Result<()> {
    let wanted = EncoderKind::for_task(task);
    if encoder == wanted {
        return Ok(());
    }
    Err(invalid(
        "--encoder",
        format!(
            "--encoder {} reads {}; --task {} is {}: use --encoder {}",
            encoder.name(),
            encoder.modality(),
            task.name(),
            task.modality(),
            wanted.name()
        ),
    ))
}

/// Most bytes one clip's attention scores may take (`frames² · heads · 4`): 2 GiB. WavLM-Large
/// (50 frames a second, 16 heads) reaches it at about 116 s, past the 60 s cap.
pub const MAX_ATTENTION_BYTES: u64 = 2 << 30;

/// Checks that a WavLM chunk of `chunk_samples` fits the memory its attention takes with the
/// checkpoint in `weights`; other encoders pass.
///
/// # Errors
/// [`Error::InvalidSetting`] for `--chunk-seconds`, naming the frames, the bytes and the longest
/// chunk that fits; a clip shorter than the feature encoder's receptive field; the config's
/// read errors.
pub fn check_chunk(encoder: EncoderKind, weights: &Path, chunk_samples: usize) -> Result<()> {
    if encoder != EncoderKind::Wavlm {
        return Ok(());
    }
    let config: encoders::wavlm::WavLMConfig = encoders::read_config(weights)?;
    // Before the frame count, which divides by each stride.
    config.validate(&weights.join("config.json"))?;
    let seconds = |samples: usize| samples as f64 / 16_000.0;
    let frames = config.frames(chunk_samples) as u64;
    if frames == 0 {
        return Err(invalid(
            "--chunk-seconds",
            format!(
                "{} s is shorter than the model's receptive field ({} samples, {} s)",
                seconds(chunk_samples),
                config.receptive_field(),
                seconds(config.receptive_field())
            ),
        ));
    }
    let heads = config.num_attention_heads as u64;
    let bytes = frames * frames * heads * 4;
    if bytes > MAX_ATTENTION_BYTES {
        let per_second = frames as f64 / seconds(chunk_samples);
        let fits = ((MAX_ATTENTION_BYTES / (heads * 4)) as f64).sqrt() / per_second;
        return Err(invalid(
            "--chunk-seconds",
            format!(
                "{} s is {frames} frames for this WavLM ({}): its attention scores alone take \
                 {:.1} GiB per clip; at most {:.1} s fits in {} GiB",
                seconds(chunk_samples),
                weights.join("config.json").display(),
                bytes as f64 / f64::from(1u32 << 30),
                fits.floor().max(0.0),
                MAX_ATTENTION_BYTES >> 30
            ),
        ));
    }
    Ok(())
}

/// The Llama token limit when none is asked for (the paper's 4096).
pub const DEFAULT_MAX_TOKENS: usize = 4096;

/// The token limit of a run: `requested`, or [`DEFAULT_MAX_TOKENS`] clamped to the model's
/// `max_position_embeddings` (`config.json`) when none is asked for. Only Llama reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxTokens {
    /// The limit to use.
    pub value: usize,
    /// The model's `max_position_embeddings` when the default was clamped to it.
    pub clamped_to_model: bool,
}

/// Resolves the token limit for `encoder` with the checkpoint in `weights`.
///
/// # Errors
/// [`Error::InvalidSetting`] for `--max-tokens` when `requested` exceeds the model's
/// `max_position_embeddings`, naming both numbers and the file; the config's read errors.
pub fn resolve_max_tokens(
    encoder: EncoderKind,
    weights: &Path,
    requested: Option<usize>,
) -> Result<MaxTokens> {
    let value = requested.unwrap_or(DEFAULT_MAX_TOKENS);
    if encoder != EncoderKind::Llama {
        return Ok(MaxTokens {
            value,
            clamped_to_model: false,
        });
    }
    let shape: Shape = encoders::read_config(weights)?;
    let Some(positions) = shape.max_position_embeddings else {
        return Ok(MaxTokens {
            value,
            clamped_to_model: false,
        });
    };
    match requested {
        Some(asked) if asked > positions => Err(invalid(
            "--max-tokens",
            format!(
                "{asked} is more than the model's max_position_embeddings = {positions} ({}): \
                 give --max-tokens {positions} or less",
                weights.join("config.json").display()
            ),
        )),
        None if value > positions => Ok(MaxTokens {
            value: positions,
            clamped_to_model: true,
        }),
        _ => Ok(MaxTokens {
            value,
            clamped_to_model: false,
        }),
    }
}

/// The `config.json` fields every encoder has.
#[derive(Debug, Deserialize)]
struct Shape {
    hidden_size: usize,
    num_hidden_layers: usize,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
}

/// Checks that the checkpoint in `weights` is a `kind` model (its `config.json` `model_type`).
///
/// # Errors
/// [`Error::Store`] naming the file and both architectures when they differ.
pub fn check_model_type(kind: EncoderKind, weights: &Path) -> Result<()> {
    let shape: Shape = encoders::read_config(weights)?;
    match shape.model_type {
        Some(found) if found != kind.name() => Err(Error::Store {
            path: weights.join("config.json"),
            message: format!(
                "model_type is `{found}`, but --encoder {} was asked for",
                kind.name()
            ),
        }),
        _ => Ok(()),
    }
}

/// The layers × width of a checkpoint's features, from its `config.json`.
///
/// # Errors
/// [`encoders::Error`] naming the file when it is missing or lacks the fields.
pub fn feature_shape(weights: &Path) -> Result<(usize, usize)> {
    let shape: Shape = encoders::read_config(weights)?;
    Ok((shape.num_hidden_layers, shape.hidden_size))
}

/// WavLM stores' pooling descriptions from before the manifest recorded the chunk length
/// (padding included, then real audio only); such stores hold 5-s chunks.
pub const LEGACY_WAVLM_POOLING: [&str; 2] = [
    "mean over all frames of each 5-s chunk, padding included (as the reference)",
    "mean over the frames of real audio",
];

/// Llama stores' pooling description from before the manifest recorded the token limit; such
/// stores hold texts cut at the default limit.
pub const LEGACY_LLAMA_POOLING: &str = "mean over all tokens, BOS included";

/// The chunk length of an audio store: as its manifest records it, or 5 s (80,000 samples) for
/// a WavLM store from before it was recorded; `None` for other stores.
pub fn recorded_chunk_samples(info: &datasets::StoreInfo) -> Option<usize> {
    info.chunk_samples.or_else(|| {
        LEGACY_WAVLM_POOLING
            .contains(&info.pooling.as_str())
            .then_some(datasets::CHUNK_SAMPLES_16K)
    })
}

/// A loaded encoder with its input preparation.
#[derive(Debug)]
pub enum LoadedEncoder<B: Backend> {
    /// WavLM, pooling over every frame (`mask_padding: false`, as the reference) or over the
    /// frames of real audio only.
    Wavlm {
        /// The model.
        model: Box<WavLM<B>>,
        /// Pass the padding as an attention mask and pool over real frames.
        mask_padding: bool,
    },
    /// BEiT with the checkpoint's image preprocessing.
    Beit {
        /// The model.
        model: Box<Beit<B>>,
        /// Resize and normalisation.
        preprocess: ImagePreprocessor,
    },
    /// Llama with its tokenizer.
    Llama {
        /// The model.
        model: Box<Llama<B>>,
        /// `tokenizer.json`, truncating at `max_tokens`.
        tokenizer: Box<LlamaTokenizer>,
    },
}

impl<B: Backend> LoadedEncoder<B> {
    /// Loads the checkpoint in `dir` as `kind`.
    ///
    /// # Errors
    /// The encoders' load errors, naming the folder, file or tensor.
    pub fn load(
        kind: EncoderKind,
        dir: &Path,
        mask_padding: bool,
        max_tokens: usize,
        device: &B::Device,
    ) -> Result<Self> {
        Ok(match kind {
            EncoderKind::Wavlm => Self::Wavlm {
                model: Box::new(WavLM::load(dir, device)?),
                mask_padding,
            },
            EncoderKind::Beit => {
                let model = Box::new(Beit::load(dir, device)?);
                let preprocess = ImagePreprocessor::load(dir, model.image_size as u32)?;
                Self::Beit { model, preprocess }
            }
            EncoderKind::Llama => Self::Llama {
                model: Box::new(Llama::load(dir, device)?),
                tokenizer: Box::new(LlamaTokenizer::from_dir(dir)?.with_max_length(max_tokens)?),
            },
        })
    }

    /// How the features are pooled, with the settings that change them (the chunk length of
    /// audio, `chunk_samples` at 16 kHz, and the token limit of text), for the store manifest:
    /// a store is only resumed with the same description.
    pub fn pooling(&self, chunk_samples: usize, max_tokens: usize) -> String {
        let seconds = chunk_samples as f64 / f64::from(super::source::SAMPLE_RATE);
        match self {
            Self::Wavlm {
                mask_padding: false,
                ..
            } => format!(
                "mean over all frames of each {seconds}-s chunk ({chunk_samples} samples), \
                 padding included (as the reference)"
            ),
            Self::Wavlm { .. } => format!(
                "mean over the frames of real audio in each {seconds}-s chunk ({chunk_samples} \
                 samples)"
            ),
            Self::Beit { .. } => "mean over all tokens, CLS included".to_string(),
            Self::Llama { .. } => {
                format!("mean over all tokens, BOS included, of the first {max_tokens} at most")
            }
        }
    }

    /// What [`LoadedEncoder::pooling`] gave before it named its settings (stores of that time
    /// were made with the default settings); `None` where the description did not change.
    pub fn legacy_pooling(&self) -> Option<&'static str> {
        match self {
            Self::Wavlm {
                mask_padding: false,
                ..
            } => Some(LEGACY_WAVLM_POOLING[0]),
            Self::Wavlm { .. } => Some(LEGACY_WAVLM_POOLING[1]),
            Self::Beit { .. } => None,
            Self::Llama { .. } => Some(LEGACY_LLAMA_POOLING),
        }
    }

    /// The per-layer mean-pooled features of a batch of items.
    ///
    /// # Shapes
    /// - output: `[items.len(), layers, d_model]`
    ///
    /// # Errors
    /// [`Error::Store`] naming `what` when an item's input does not suit the encoder; the
    /// encoders' input errors.
    pub fn pooled(&self, items: &[Item], what: &Path, device: &B::Device) -> Result<Tensor<B, 3>> {
        let mismatch = |item: &Item| Error::Store {
            path: PathBuf::from(what),
            message: format!("item `{}` is not an input for this encoder", item.id),
        };
        let states = match self {
            Self::Wavlm {
                model,
                mask_padding,
            } => {
                let mut values = Vec::new();
                let mut mask = Vec::new();
                let mut width = None;
                for item in items {
                    let Input::Audio { samples, real } = &item.input else {
                        return Err(mismatch(item));
                    };
                    if *width.get_or_insert(samples.len()) != samples.len() {
                        return Err(mismatch(item));
                    }
                    values.extend_from_slice(samples);
                    mask.extend((0..samples.len()).map(|i| if i < *real { 1.0f32 } else { 0.0 }));
                }
                let shape = [items.len(), width.unwrap_or(0)];
                let input = Tensor::from_data(TensorData::new(values, shape), device);
                let mask =
                    mask_padding.then(|| Tensor::from_data(TensorData::new(mask, shape), device));
                model.forward(input, mask)?
            }
            Self::Beit { model, preprocess } => {
                let images = items
                    .iter()
                    .map(|item| match &item.input {
                        Input::Image(image) => Ok(image.clone()),
                        _ => Err(mismatch(item)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                model.forward(preprocess.batch(&images, device)?)?
            }
            Self::Llama { model, tokenizer } => {
                let texts = items
                    .iter()
                    .map(|item| match &item.input {
                        Input::Text(text) => Ok(text.as_str()),
                        _ => Err(mismatch(item)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let batch = tokenizer.encode_batch(&texts, device)?;
                model.forward(batch.input_ids, Some(batch.attention_mask))?
            }
        };
        Ok(states.pooled_layers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_pairs_with_the_encoder_of_its_records() {
        for task in [DataTask::Iemocap, DataTask::Cifar100, DataTask::AgNews] {
            let encoder = EncoderKind::for_task(task);
            assert_eq!(encoder.modality(), task.modality());
            check_pairing(encoder, task).unwrap();
        }
        let message = check_pairing(EncoderKind::Wavlm, DataTask::AgNews)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "--encoder: --encoder wavlm reads audio; --task agnews is text: use --encoder llama"
        );
    }
}
