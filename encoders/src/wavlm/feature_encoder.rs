//! WavLM's convolutional feature encoder (waveform → 20 ms frames) and the feature projection
//! to the transformer width (transformers' `WavLMFeatureEncoder`, `WavLM*ConvLayer`,
//! `WavLMFeatureProjection`).

use burn::module::{Module, Param};
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, Linear};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use super::config::{FeatureNorm, WavLMConfig};
use crate::conv1d::conv1d;
use crate::error::Result;
use crate::kernels::conv::{strided_conv_stack, FrameNorm, StridedConv};
use crate::kernels::linear;
use crate::weights::Weights;

/// ε of the convolution layers' norms: PyTorch's default, not `layer_norm_eps` (transformers
/// builds them as `nn.LayerNorm(dim)` / `nn.GroupNorm(dim, dim)`).
pub const CONV_NORM_EPS: f64 = 1e-5;

/// The normalisation after one convolution.
#[derive(Module, Debug)]
pub enum ConvNorm<B: Backend> {
    /// `LayerNorm` over channels at every frame (`feat_extract_norm: "layer"`).
    Layer(LayerNorm<B>),
    /// `GroupNorm` with one group per channel, over time (`feat_extract_norm: "group"`, first
    /// layer only).
    Group(GroupNorm<B>),
}

/// One strided convolution, its optional norm, and GELU.
#[derive(Module, Debug)]
pub struct ConvLayer<B: Backend> {
    /// Kernel, `[channels_out, channels_in, kernel_size]`.
    pub weight: Param<Tensor<B, 3>>,
    /// Bias, `[channels_out]` (none in WavLM: `conv_bias: false`).
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Normalisation between the convolution and the activation.
    pub norm: Option<ConvNorm<B>>,
    /// Stride in input steps.
    pub stride: usize,
}

impl<B: Backend> ConvLayer<B> {
    /// Convolution, norm, exact GELU.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, channels_in, time_in]`
    /// - output: `[batch_size, channels_out, ⌊(time_in − kernel_size) / stride⌋ + 1]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let options = ConvOptions::new([self.stride], [0], [1], 1);
        let x = conv1d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            options,
        );
        // GELU is elementwise: applying it to the layer norm's fresh frames-first output, before
        // swapping back, lets the backend work in place on contiguous memory.
        match &self.norm {
            None => gelu(x),
            Some(ConvNorm::Layer(norm)) => gelu(norm.forward(x.swap_dims(1, 2))).swap_dims(1, 2),
            Some(ConvNorm::Group(norm)) => gelu(norm.forward(x)),
        }
    }
}

/// The stack of convolutions over the raw waveform.
#[derive(Module, Debug)]
pub struct FeatureEncoder<B: Backend> {
    /// `feature_extractor.conv_layers.{i}`.
    pub layers: Vec<ConvLayer<B>>,
}

impl<B: Backend> FeatureEncoder<B> {
    /// Loads `feature_extractor.conv_layers.*`.
    ///
    /// # Errors
    /// As [`Weights::tensor`].
    pub fn load(weights: &Weights, config: &WavLMConfig, device: &B::Device) -> Result<Self> {
        let mut layers = Vec::with_capacity(config.conv_dim.len());
        let mut channels_in = 1;
        for (i, ((&channels, &kernel), &stride)) in config
            .conv_dim
            .iter()
            .zip(&config.conv_kernel)
            .zip(&config.conv_stride)
            .enumerate()
        {
            let prefix = format!("feature_extractor.conv_layers.{i}");
            let weight = weights.tensor(
                &format!("{prefix}.conv.weight"),
                [channels, channels_in, kernel],
                device,
            )?;
            let bias = if config.conv_bias {
                Some(Param::from_tensor(weights.tensor(
                    &format!("{prefix}.conv.bias"),
                    [channels],
                    device,
                )?))
            } else {
                None
            };
            let norm_prefix = format!("{prefix}.layer_norm");
            let norm = match (config.feat_extract_norm, i) {
                (FeatureNorm::Layer, _) => Some(ConvNorm::Layer(weights.layer_norm(
                    &norm_prefix,
                    channels,
                    CONV_NORM_EPS,
                    device,
                )?)),
                (FeatureNorm::Group, 0) => {
                    // Weights::layer_norm reads the same `.weight` / `.bias` pair.
                    let affine: LayerNorm<B> =
                        weights.layer_norm(&norm_prefix, channels, CONV_NORM_EPS, device)?;
                    let mut norm = GroupNormConfig::new(channels, channels)
                        .with_epsilon(CONV_NORM_EPS)
                        .init(device);
                    norm.gamma = Some(affine.gamma);
                    norm.beta = affine.beta;
                    Some(ConvNorm::Group(norm))
                }
                (FeatureNorm::Group, _) => None,
            };
            layers.push(ConvLayer {
                weight: Param::from_tensor(weight),
                bias,
                norm,
                stride,
            });
            channels_in = channels;
        }
        Ok(Self { layers })
    }

    /// The frame features of a batch of waveforms.
    ///
    /// # Shapes
    /// - `waveform`: `[batch_size, samples]`
    /// - output: `[batch_size, seq_length, channels]` (frames first, ready for the projection)
    pub fn forward(&self, waveform: Tensor<B, 2>) -> Tensor<B, 3> {
        let waveform = match self.frames_first_layers() {
            Some(layers) => match strided_conv_stack(waveform, &layers) {
                Ok(features) => return features,
                Err(waveform) => waveform,
            },
            None => waveform,
        };
        let [batch_size, samples] = waveform.dims();
        let x = waveform.reshape([batch_size, 1, samples]);
        let x = self.layers.iter().fold(x, |x, layer| layer.forward(x));
        x.swap_dims(1, 2)
    }
}

impl<B: Backend> FeatureEncoder<B> {
    /// The layers as the frames-first kernel takes them ([`strided_conv_stack`]), or `None` when
    /// a layer has a group norm (`feat_extract_norm: "group"`), which normalises over time.
    fn frames_first_layers(&self) -> Option<Vec<StridedConv<B>>> {
        self.layers
            .iter()
            .map(|layer| {
                let norm = match &layer.norm {
                    None => None,
                    Some(ConvNorm::Layer(norm)) => Some(FrameNorm {
                        gamma: norm.gamma.val(),
                        beta: norm.beta.as_ref().map(Param::val),
                        epsilon: CONV_NORM_EPS,
                    }),
                    Some(ConvNorm::Group(_)) => return None,
                };
                Some(StridedConv {
                    weight: layer.weight.val(),
                    bias: layer.bias.as_ref().map(Param::val),
                    norm,
                    stride: layer.stride,
                })
            })
            .collect()
    }
}

/// `LayerNorm` then `Linear(channels → d_model)` (dropout is inactive at inference).
#[derive(Module, Debug)]
pub struct FeatureProjection<B: Backend> {
    /// `feature_projection.layer_norm`, over `channels` with `layer_norm_eps`.
    pub layer_norm: LayerNorm<B>,
    /// `feature_projection.projection`, `channels → d_model`.
    pub projection: Linear<B>,
}

impl<B: Backend> FeatureProjection<B> {
    /// Loads `feature_projection.*`.
    ///
    /// # Errors
    /// As [`Weights::tensor`].
    pub fn load(weights: &Weights, config: &WavLMConfig, device: &B::Device) -> Result<Self> {
        let channels = *config.conv_dim.last().unwrap_or(&0);
        Ok(Self {
            layer_norm: weights.layer_norm(
                "feature_projection.layer_norm",
                channels,
                config.layer_norm_eps,
                device,
            )?,
            projection: weights.linear(
                "feature_projection.projection",
                channels,
                config.hidden_size,
                true,
                device,
            )?,
        })
    }

    /// Projects frame features to the transformer width.
    ///
    /// # Shapes
    /// - `features`: `[batch_size, seq_length, channels]`
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(&self, features: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.projection, self.layer_norm.forward(features))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::LayerNormConfig;
    use burn::tensor::module::conv1d;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn layer_norm_conv_normalises_each_frame_over_channels() {
        let device = Default::default();
        let layer = ConvLayer::<B> {
            weight: Param::from_tensor(Tensor::random(
                [5, 3, 4],
                Distribution::Normal(0.0, 1.0),
                &device,
            )),
            bias: None,
            norm: Some(ConvNorm::Layer(LayerNormConfig::new(5).init(&device))),
            stride: 2,
        };
        let x = Tensor::<B, 3>::random([2, 3, 13], Distribution::Normal(0.0, 1.0), &device);
        let y = layer.forward(x.clone());
        assert_eq!(y.dims(), [2, 5, 5]);
        // The per-frame norm over channels, written out.
        let conv = conv1d(
            x,
            layer.weight.val(),
            None,
            ConvOptions::new([2], [0], [1], 1),
        );
        let mean = conv.clone().mean_dim(1);
        let centred = conv - mean;
        let var = centred.clone().square().mean_dim(1);
        let expected = gelu(centred / var.add_scalar(1e-5).sqrt());
        y.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
    }
}
