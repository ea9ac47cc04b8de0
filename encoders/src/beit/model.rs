//! The BEiT encoder: patch embedding, CLS token and the LayerScale transformer layers.

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::config::BeitConfig;
use super::relative_position::RelativePositionBias;
use crate::error::{Error, Result};
use crate::kernels::attention::{fused_attention, AttentionBias};
use crate::kernels::{gelu, linear};
use crate::lora::LoraLinear;
use crate::output::HiddenStates;
use crate::weights::{read_config, Weights};

/// One BEiT layer: `x + λ₁·attn(LN(x))`, then `x + λ₂·mlp(LN(x))`.
#[derive(Module, Debug)]
pub struct BeitLayer<B: Backend> {
    /// `layernorm_before`.
    pub norm_before: LayerNorm<B>,
    /// `attention.attention.query` (with bias), LoRA-adaptable.
    pub query: LoraLinear<B>,
    /// `attention.attention.key` (no bias), LoRA-adaptable.
    pub key: LoraLinear<B>,
    /// `attention.attention.value` (with bias), LoRA-adaptable.
    pub value: LoraLinear<B>,
    /// `attention.output.dense`.
    pub out: Linear<B>,
    /// `layernorm_after`.
    pub norm_after: LayerNorm<B>,
    /// `intermediate.dense`.
    pub intermediate: Linear<B>,
    /// `output.dense`.
    pub output: Linear<B>,
    /// `lambda_1` (LayerScale of the attention branch), if the checkpoint has one.
    pub lambda_1: Option<Param<Tensor<B, 1>>>,
    /// `lambda_2` (LayerScale of the feed-forward branch), if the checkpoint has one.
    pub lambda_2: Option<Param<Tensor<B, 1>>>,
    /// This layer's own relative position bias (fine-tuned checkpoints).
    pub relative_position: Option<RelativePositionBias<B>>,
    /// Attention heads.
    pub heads: usize,
}

impl<B: Backend> BeitLayer<B> {
    /// One layer.
    ///
    /// # Shapes
    /// - `x`: `[batch, tokens, d_model]`
    /// - `shared_bias`: `[1, heads, tokens, tokens]` (the shared relative position bias)
    /// - output: `[batch, tokens, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>, shared_bias: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let [_, tokens, d_model] = x.dims();
        let h = self.norm_before.forward(x.clone());
        let q = self.query.forward(h.clone());
        let k = self.key.forward(h.clone());
        let v = self.value.forward(h);
        let bias = match (&self.relative_position, shared_bias) {
            (Some(own), Some(shared)) => Some(own.forward() + shared),
            (Some(own), None) => Some(own.forward()),
            (None, shared) => shared,
        };
        let bias = bias.map(|bias| AttentionBias {
            bias: bias.reshape([self.heads, tokens, tokens]),
            row_scale: None,
        });
        let scale = 1.0 / ((d_model / self.heads) as f64).sqrt();
        let context = fused_attention(q, k, v, self.heads, scale, bias, None);
        let mut branch = linear(&self.out, context);
        if let Some(lambda) = &self.lambda_1 {
            branch = branch * lambda.val().reshape([1, 1, d_model]);
        }
        let x = x + branch;
        let h = self.norm_after.forward(x.clone());
        let mut branch = linear(&self.output, gelu(linear(&self.intermediate, h)));
        if let Some(lambda) = &self.lambda_2 {
            branch = branch * lambda.val().reshape([1, 1, d_model]);
        }
        x + branch
    }
}

/// The BEiT encoder (`BeitModel` without its pooler).
#[derive(Module, Debug)]
pub struct Beit<B: Backend> {
    /// `embeddings.patch_embeddings.projection` as a linear map of flattened patches:
    /// `[channels · patch², d_model]` (exactly the stride-`patch` convolution).
    pub patch_projection: Linear<B>,
    /// `embeddings.cls_token`: `[d_model]`.
    pub cls_token: Param<Tensor<B, 1>>,
    /// `embeddings.position_embeddings` `[tokens, d_model]`, when the checkpoint uses them.
    pub position_embeddings: Option<Param<Tensor<B, 2>>>,
    /// `encoder.relative_position_bias` (checkpoints with a shared table).
    pub shared_relative_position: Option<RelativePositionBias<B>>,
    /// The transformer layers.
    pub layers: Vec<BeitLayer<B>>,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Input image side in pixels.
    pub image_size: usize,
    /// Input channels.
    pub channels: usize,
}

impl<B: Backend> Beit<B> {
    /// Loads a BEiT checkpoint folder (`config.json` + safetensors), from a bare `BeitModel` or a
    /// `BeitForImageClassification` / `BeitForMaskedImageModeling` checkpoint (prefix `beit.`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for configurations the port does not implement; the
    /// [`Weights`] errors for missing or misshapen tensors.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config: BeitConfig = read_config(dir)?;
        let weights = Weights::open(dir, &["", "beit."], "embeddings.cls_token")?;
        Self::from_weights(&config, &weights, device)
    }

    /// Builds the encoder from a parsed configuration and opened weights.
    ///
    /// # Errors
    /// As [`Beit::load`].
    pub fn from_weights(
        config: &BeitConfig,
        weights: &Weights,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate(&weights.dir().join("config.json"))?;
        let d = config.hidden_size;
        let c = config.num_channels;
        let p = config.patch_size;
        let grid = config.grid();
        let table_rows = (2 * grid - 1) * (2 * grid - 1) + 3;
        let heads = config.num_attention_heads;

        let conv: Tensor<B, 4> = weights.tensor(
            "embeddings.patch_embeddings.projection.weight",
            [d, c, p, p],
            device,
        )?;
        let conv_bias: Tensor<B, 1> =
            weights.tensor("embeddings.patch_embeddings.projection.bias", [d], device)?;
        let patch_projection = Linear {
            weight: Param::from_tensor(conv.reshape([d, c * p * p]).transpose()),
            bias: Some(Param::from_tensor(conv_bias)),
        };
        let cls_token: Tensor<B, 3> = weights.tensor("embeddings.cls_token", [1, 1, d], device)?;
        let position_embeddings = if config.use_absolute_position_embeddings {
            let table: Tensor<B, 3> = weights.tensor(
                "embeddings.position_embeddings",
                [1, config.num_tokens(), d],
                device,
            )?;
            Some(Param::from_tensor(table.reshape([config.num_tokens(), d])))
        } else {
            None
        };
        let shared_relative_position = if config.use_shared_relative_position_bias {
            let table = weights.tensor(
                "encoder.relative_position_bias.relative_position_bias_table",
                [table_rows, heads],
                device,
            )?;
            Some(RelativePositionBias::new(table, grid))
        } else {
            None
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let at = |name: &str| format!("encoder.layer.{i}.{name}");
            let eps = config.layer_norm_eps;
            let relative_position = if config.use_relative_position_bias {
                let table = weights.tensor(
                    &at("attention.attention.relative_position_bias.relative_position_bias_table"),
                    [table_rows, heads],
                    device,
                )?;
                Some(RelativePositionBias::new(table, grid))
            } else {
                None
            };
            let lambda = |name: &str| -> Result<Option<Param<Tensor<B, 1>>>> {
                if config.layer_scale_init_value > 0.0 {
                    Ok(Some(Param::from_tensor(weights.tensor(
                        &at(name),
                        [d],
                        device,
                    )?)))
                } else {
                    Ok(None)
                }
            };
            layers.push(BeitLayer {
                norm_before: weights.layer_norm(&at("layernorm_before"), d, eps, device)?,
                query: weights
                    .linear(&at("attention.attention.query"), d, d, true, device)?
                    .into(),
                key: weights
                    .linear(&at("attention.attention.key"), d, d, false, device)?
                    .into(),
                value: weights
                    .linear(&at("attention.attention.value"), d, d, true, device)?
                    .into(),
                out: weights.linear(&at("attention.output.dense"), d, d, true, device)?,
                norm_after: weights.layer_norm(&at("layernorm_after"), d, eps, device)?,
                intermediate: weights.linear(
                    &at("intermediate.dense"),
                    d,
                    config.intermediate_size,
                    true,
                    device,
                )?,
                output: weights.linear(
                    &at("output.dense"),
                    config.intermediate_size,
                    d,
                    true,
                    device,
                )?,
                lambda_1: lambda("lambda_1")?,
                lambda_2: lambda("lambda_2")?,
                relative_position,
                heads,
            });
        }
        Ok(Self {
            patch_projection,
            cls_token: Param::from_tensor(cls_token.reshape([d])),
            position_embeddings,
            shared_relative_position,
            layers,
            patch_size: p,
            image_size: config.image_size,
            channels: c,
        })
    }

    /// The embedding output: CLS followed by the projected patches in raster order.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, channels, image_size, image_size]`, normalised as the checkpoint's
    ///   preprocessor does
    /// - output: `[batch, 1 + (image_size / patch)², d_model]`
    pub fn embed(&self, pixels: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, channels, height, width] = pixels.dims();
        let p = self.patch_size;
        let (gh, gw) = (height / p, width / p);
        let patches = pixels
            .reshape([batch, channels, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([batch, gh * gw, channels * p * p]);
        let tokens = linear(&self.patch_projection, patches);
        let d = tokens.dims()[2];
        let cls = self
            .cls_token
            .val()
            .reshape([1, 1, d])
            .expand([batch, 1, d]);
        let x = Tensor::cat(vec![cls, tokens], 1);
        match &self.position_embeddings {
            Some(table) => x + table.val().unsqueeze::<3>(),
            None => x,
        }
    }

    /// Every hidden state of a batch of images.
    ///
    /// # Shapes
    /// - `pixels`: `[batch, channels, image_size, image_size]`
    /// - output states: `L + 1` tensors `[batch, tokens, d_model]`
    ///
    /// # Errors
    /// [`Error::Input`] when the images are not `channels × image_size × image_size`.
    pub fn forward(&self, pixels: Tensor<B, 4>) -> Result<HiddenStates<B>> {
        let [_, channels, height, width] = pixels.dims();
        if channels != self.channels || height != self.image_size || width != self.image_size {
            return Err(Error::Input(format!(
                "BEiT expects images of {}×{}×{}, got {channels}×{height}×{width}",
                self.channels, self.image_size, self.image_size
            )));
        }
        let mut x = self.embed(pixels);
        let shared = self
            .shared_relative_position
            .as_ref()
            .map(RelativePositionBias::forward);
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            x = layer.forward(x, shared.clone());
            states.push(x.clone());
        }
        Ok(HiddenStates {
            states,
            valid: None,
        })
    }
}
