//! WavLM (Chen et al. 2022, "WavLM: Large-Scale Self-Supervised Pre-Training for Full Stack
//! Speech Processing"), ported from transformers 4.46.3's `WavLMModel` for per-layer speech
//! embeddings. Loads `microsoft/wavlm-large` (or `wavlm-base`, `wavlm-base-plus`, and
//! `WavLMForSequenceClassification` checkpoints under the `wavlm.` prefix) from `config.json` and
//! safetensors.
//!
//! The pipeline, at inference (dropout, LayerDrop and SpecAugment inactive):
//! 1. [`FeatureEncoder`]: strided convolutions over the waveform, each followed by a norm and
//!    exact GELU, giving 20 ms frames ([`WavLM::frames`]);
//! 2. [`FeatureProjection`]: `LayerNorm` and `Linear` to `d_model`;
//! 3. with an attention mask, padded frames set to 0, then [`PositionalConvEmbedding`] (a
//!    weight-normalised grouped convolution) added;
//! 4. the transformer layers ([`EncoderLayer`]): [`GatedRelativeAttention`] with the relative
//!    position bias of layer 0's table ([`RelativePositionBias`]) shared by all layers, and a
//!    GELU feed-forward block; pre-norm with a final `encoder.layer_norm` in WavLM Large
//!    (`do_stable_layer_norm`), post-norm with `encoder.layer_norm` before the first layer in
//!    WavLM Base.
//!
//! # Hidden states
//! [`crate::HiddenStates::states`] follows transformers 4.46.3's `output_hidden_states`:
//! - pre-norm (Large): `states[0]` is the input to the first layer (projection + positional
//!   convolution, *before* any layer norm), `states[i]` the raw output of the `i`-th layer for
//!   `0 < i < L`, and `states[L]` the last layer's output *after* `encoder.layer_norm` (equal to
//!   `last_hidden_state`);
//! - post-norm (Base): `states[0]` is the input to the first layer (after `encoder.layer_norm`),
//!   `states[i]` the output of the `i`-th layer; there is no final norm.
//!
//! `valid` is the frame mask when a sample mask was given. States at padded frames are not
//! zeroed (they are what transformers computes there too) and should be ignored.

mod attention;
mod config;
mod encoder_layer;
mod feature_encoder;
mod model;
mod positional_conv;
mod relative_position;

pub use attention::GatedRelativeAttention;
pub use config::{FeatureNorm, LayerNormPlacement, WavLMConfig};
pub use encoder_layer::{EncoderLayer, FeedForward};
pub use feature_encoder::{ConvLayer, ConvNorm, FeatureEncoder, FeatureProjection, CONV_NORM_EPS};
pub use model::{frame_mask, WavLM};
pub use positional_conv::{weight_norm, PositionalConvEmbedding};
pub use relative_position::{bucket_grid, relative_position_bucket, RelativePositionBias};
