//! One WavLM transformer layer: gated relative-position attention and a GELU feed-forward block,
//! each with a residual, normalised before (WavLM Large, `WavLMEncoderLayerStableLayerNorm`) or
//! after (WavLM Base, `WavLMEncoderLayer`) the residual. Dropout is inactive at inference.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::attention::GatedRelativeAttention;
use super::config::{LayerNormPlacement, WavLMConfig};
use crate::error::Result;
use crate::kernels::{gelu, linear};
use crate::weights::Weights;

/// `Linear(d_model → intermediate) → GELU → Linear(intermediate → d_model)`.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// `intermediate_dense`, `d_model → intermediate_size`.
    pub intermediate_dense: Linear<B>,
    /// `output_dense`, `intermediate_size → d_model`.
    pub output_dense: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    /// The feed-forward block.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let hidden = gelu(linear(&self.intermediate_dense, x)); // [batch_size, seq_length, ffn]
        linear(&self.output_dense, hidden)
    }
}

/// One transformer layer.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// `attention`.
    pub attention: GatedRelativeAttention<B>,
    /// `layer_norm`: before the attention (pre-norm) or after its residual (post-norm).
    pub layer_norm: LayerNorm<B>,
    /// `feed_forward`.
    pub feed_forward: FeedForward<B>,
    /// `final_layer_norm`: before the feed-forward block (pre-norm) or after its residual
    /// (post-norm).
    pub final_layer_norm: LayerNorm<B>,
    /// Where the norms sit.
    #[module(skip)]
    pub placement: LayerNormPlacement,
}

impl<B: Backend> EncoderLayer<B> {
    /// Loads `encoder.layers.{index}.*` (the relative-position table of layer 0 is loaded by the
    /// model, which shares its bias with every layer).
    ///
    /// # Errors
    /// As [`Weights::tensor`].
    pub fn load(
        weights: &Weights,
        config: &WavLMConfig,
        index: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let prefix = format!("encoder.layers.{index}");
        let d_model = config.hidden_size;
        let eps = config.layer_norm_eps;
        let dense = |name: &str, d_in, d_out| {
            weights.linear::<B>(
                &format!("{prefix}.feed_forward.{name}"),
                d_in,
                d_out,
                true,
                device,
            )
        };
        Ok(Self {
            attention: GatedRelativeAttention::load(
                weights,
                &format!("{prefix}.attention"),
                d_model,
                config.num_attention_heads,
                device,
            )?,
            layer_norm: weights.layer_norm(
                &format!("{prefix}.layer_norm"),
                d_model,
                eps,
                device,
            )?,
            feed_forward: FeedForward {
                intermediate_dense: dense("intermediate_dense", d_model, config.intermediate_size)?,
                output_dense: dense("output_dense", config.intermediate_size, d_model)?,
            },
            final_layer_norm: weights.layer_norm(
                &format!("{prefix}.final_layer_norm"),
                d_model,
                eps,
                device,
            )?,
            placement: config.layer_norm_placement(),
        })
    }

    /// The layer's output.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - `position_bias`: `[1, num_heads, seq_length, seq_length]`, the shared ungated bias
    /// - `key_valid`: `[batch_size, seq_length]`, 1.0 at real frames, 0.0 at padding
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        position_bias: Tensor<B, 4>,
        key_valid: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        match self.placement {
            LayerNormPlacement::Pre => {
                let normed = self.layer_norm.forward(x.clone());
                let x = x + self.attention.forward(normed, position_bias, key_valid);
                let normed = self.final_layer_norm.forward(x.clone());
                x + self.feed_forward.forward(normed)
            }
            LayerNormPlacement::Post => {
                let attended = self.attention.forward(x.clone(), position_bias, key_valid);
                let x = self.layer_norm.forward(x + attended);
                let x = x.clone() + self.feed_forward.forward(x);
                self.final_layer_norm.forward(x)
            }
        }
    }
}
