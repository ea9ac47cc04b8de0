//! The WavLM encoder: waveform → frames → transformer layers, with every hidden state
//! (transformers' `WavLMModel` with `WavLMEncoderStableLayerNorm` or `WavLMEncoder`).

use std::path::Path;

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::config::{LayerNormPlacement, WavLMConfig};
use super::encoder_layer::EncoderLayer;
use super::feature_encoder::{FeatureEncoder, FeatureProjection};
use super::positional_conv::PositionalConvEmbedding;
use super::relative_position::RelativePositionBias;
use crate::error::{Error, Result};
use crate::output::HiddenStates;
use crate::weights::{read_config, Weights};

/// Parameter-name prefixes tried: a bare `WavLMModel`, then a `WavLMForSequenceClassification`
/// (or `WavLMForCTC`, ...) checkpoint.
const PREFIXES: [&str; 2] = ["", "wavlm."];

/// A tensor every WavLM checkpoint has, to pick the prefix.
const PROBE: &str = "feature_projection.projection.weight";

/// The frame-level padding mask: 1.0 for the first `lengths[b]` frames of clip `b`, 0.0 after
/// (transformers' `_get_feature_vector_attention_mask`), row-major `[batch_size, seq_length]`.
pub fn frame_mask(lengths: &[usize], seq_length: usize) -> Vec<f32> {
    lengths
        .iter()
        .flat_map(|&n| (0..seq_length).map(move |t| if t < n { 1.0 } else { 0.0 }))
        .collect()
}

/// WavLM loaded from a Hugging Face checkpoint.
#[derive(Module, Debug)]
pub struct WavLM<B: Backend> {
    /// `feature_extractor`: the convolutions over the waveform.
    pub feature_encoder: FeatureEncoder<B>,
    /// `feature_projection`: frame features → `d_model`.
    pub feature_projection: FeatureProjection<B>,
    /// `encoder.pos_conv_embed`.
    pub positional_conv: PositionalConvEmbedding<B>,
    /// `encoder.layers.0.attention.rel_attn_embed`: the relative position bias every layer
    /// gates.
    pub relative_position_bias: RelativePositionBias<B>,
    /// `encoder.layers`.
    pub layers: Vec<EncoderLayer<B>>,
    /// `encoder.layer_norm`: after the last layer (pre-norm) or before the first (post-norm).
    pub layer_norm: LayerNorm<B>,
    /// The checkpoint's hyper-parameters.
    #[module(skip)]
    pub config: WavLMConfig,
}

impl<B: Backend> WavLM<B> {
    /// Loads `config.json` and `model.safetensors` (or a sharded index) from `dir`.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Json`] for an unreadable or incomplete `config.json`,
    /// [`Error::Unsupported`] for a configuration the port does not implement (see
    /// [`WavLMConfig::validate`]), and the [`Weights`] errors ([`Error::MissingTensor`] naming
    /// the tensor, [`Error::Shape`], ...).
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config: WavLMConfig = read_config(dir)?;
        config.validate(&dir.join("config.json"))?;
        let weights = Weights::open(dir, &PREFIXES, PROBE)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| EncoderLayer::load(&weights, &config, i, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            feature_encoder: FeatureEncoder::load(&weights, &config, device)?,
            feature_projection: FeatureProjection::load(&weights, &config, device)?,
            positional_conv: PositionalConvEmbedding::load(&weights, &config, device)?,
            relative_position_bias: RelativePositionBias::load(
                &weights,
                "encoder.layers.0.attention.rel_attn_embed",
                config.num_buckets,
                config.num_attention_heads,
                config.max_bucket_distance,
                device,
            )?,
            layers,
            layer_norm: weights.layer_norm(
                "encoder.layer_norm",
                config.hidden_size,
                config.layer_norm_eps,
                device,
            )?,
            config,
        })
    }

    /// The number of frames of a `samples`-long clip (0 when shorter than the receptive field;
    /// 249 for 5 s at 16 kHz in WavLM Large).
    pub fn frames(&self, samples: usize) -> usize {
        self.config.frames(samples)
    }

    /// Every hidden state of a batch of waveforms (16 kHz, as the checkpoint's feature extractor
    /// normalised them).
    ///
    /// With `attention_mask`, clip `b` has `Σ_t attention_mask[b, t]` real samples (its leading
    /// ones, as transformers reads the mask); its frames past the convolution length of that
    /// count are padding: zeroed before the positional convolution, masked out as attention keys,
    /// and marked 0.0 in [`HiddenStates::valid`]. The padded samples still enter the feature
    /// encoder, as in transformers.
    ///
    /// # Shapes
    /// - `input_values`: `[batch_size, samples]`
    /// - `attention_mask`: `[batch_size, samples]`, 1.0 at real samples, 0.0 at padding
    /// - output states: `num_layers + 1` tensors `[batch_size, seq_length, d_model]` with
    ///   `seq_length = self.frames(samples)`; `valid`: `[batch_size, seq_length]`
    ///
    /// # Errors
    /// [`Error::Input`] when the mask's shape differs from the input's, when the clip (or a
    /// clip's real part) is shorter than the receptive field, or when a mask row sums to more
    /// than `samples`.
    pub fn forward(
        &self,
        input_values: Tensor<B, 2>,
        attention_mask: Option<Tensor<B, 2>>,
    ) -> Result<HiddenStates<B>> {
        let [batch_size, samples] = input_values.dims();
        let seq_length = self.frames(samples);
        if seq_length == 0 {
            return Err(Error::Input(format!(
                "WavLM: a clip of {samples} samples is shorter than the receptive field of {} \
                 samples",
                self.config.receptive_field()
            )));
        }
        let valid = attention_mask
            .map(|mask| self.valid_frames(mask, [batch_size, samples], seq_length))
            .transpose()?;

        let features = self.feature_encoder.forward(input_values); // [batch, seq, channels]
        let mut hidden = self.feature_projection.forward(features); // [batch, seq, d_model]
        if let Some(valid) = &valid {
            hidden = hidden * valid.clone().unsqueeze_dim(2);
        }
        hidden = hidden.clone() + self.positional_conv.forward(hidden);
        let position_bias = self.relative_position_bias.forward(seq_length);

        let placement = self.config.layer_norm_placement();
        if placement == LayerNormPlacement::Post {
            hidden = self.layer_norm.forward(hidden);
        }
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(hidden.clone());
            hidden = layer.forward(hidden, position_bias.clone(), valid.clone());
        }
        if placement == LayerNormPlacement::Pre {
            hidden = self.layer_norm.forward(hidden);
        }
        states.push(hidden);
        Ok(HiddenStates { states, valid })
    }

    /// The frame mask of a sample mask (one small host read of the row sums).
    fn valid_frames(
        &self,
        mask: Tensor<B, 2>,
        input_dims: [usize; 2],
        seq_length: usize,
    ) -> Result<Tensor<B, 2>> {
        let [batch_size, samples] = input_dims;
        if mask.dims() != input_dims {
            return Err(Error::Input(format!(
                "WavLM: attention_mask has shape {:?}, input_values {input_dims:?}",
                mask.dims()
            )));
        }
        let device = mask.device();
        let sums: Vec<f32> = mask
            .sum_dim(1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Input(format!("WavLM: unreadable attention_mask: {e:?}")))?;
        let mut lengths = Vec::with_capacity(batch_size);
        for (b, sum) in sums.into_iter().enumerate() {
            let real = sum.round();
            if !(0.0..=samples as f32).contains(&real) {
                return Err(Error::Input(format!(
                    "WavLM: attention_mask row {b} sums to {sum}, outside 0..={samples}"
                )));
            }
            let frames = self.frames(real as usize);
            if frames == 0 {
                return Err(Error::Input(format!(
                    "WavLM: clip {b} has {real} real samples, fewer than the receptive field of \
                     {} samples",
                    self.config.receptive_field()
                )));
            }
            lengths.push(frames);
        }
        Ok(Tensor::from_data(
            TensorData::new(frame_mask(&lengths, seq_length), [batch_size, seq_length]),
            &device,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_mask_marks_the_leading_frames() {
        assert_eq!(
            frame_mask(&[3, 1], 4),
            vec![1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]
        );
    }
}
