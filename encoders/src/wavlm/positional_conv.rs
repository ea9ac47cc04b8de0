//! WavLM's convolutional positional embedding: a wide grouped convolution over time with a
//! weight-normalised kernel, cropped to the input length, then GELU (transformers'
//! `WavLMPositionalConvEmbedding` and `WavLMSamePadLayer`).

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use super::config::WavLMConfig;
use crate::conv1d::conv1d;
use crate::error::Result;
use crate::kernels::grouped_conv::same_grouped_conv_gelu;
use crate::weights::Weights;

/// Where the positional convolution lives.
const PREFIX: &str = "encoder.pos_conv_embed.conv";

/// The two spellings of the weight-norm parameters: `torch.nn.utils.parametrizations.weight_norm`
/// (transformers ≥ 4.3x with torch ≥ 2.1) and the older `torch.nn.utils.weight_norm`, as
/// (magnitude g, direction v).
const WEIGHT_NORM_NAMES: [(&str, &str); 2] = [
    (
        "parametrizations.weight.original0",
        "parametrizations.weight.original1",
    ),
    ("weight_g", "weight_v"),
];

/// The effective kernel of a weight-normalised convolution with `dim=2`:
/// `g · v / ‖v‖`, the norm taken over output and input channels at each kernel position (as
/// `torch._weight_norm(v, g, 2)`).
///
/// # Shapes
/// - `magnitude` (g): `[1, 1, kernel_size]`
/// - `direction` (v): `[channels_out, channels_in, kernel_size]`
/// - output: `[channels_out, channels_in, kernel_size]`
pub fn weight_norm<B: Backend>(magnitude: Tensor<B, 3>, direction: Tensor<B, 3>) -> Tensor<B, 3> {
    let norm = direction.clone().square().sum_dim(0).sum_dim(1).sqrt(); // [1, 1, kernel_size]
    direction * (magnitude / norm)
}

/// The positional convolution `d_model → d_model`, kernel `K`, padding `K / 2`, `num_groups`
/// groups.
#[derive(Module, Debug)]
pub struct PositionalConvEmbedding<B: Backend> {
    /// The weight-normalised kernel, precomputed at load: `[d_model, d_model / num_groups, K]`.
    pub weight: Param<Tensor<B, 3>>,
    /// Bias, `[d_model]`.
    pub bias: Param<Tensor<B, 1>>,
    /// Convolution groups (`num_conv_pos_embedding_groups`, 16 in WavLM).
    pub num_groups: usize,
}

impl<B: Backend> PositionalConvEmbedding<B> {
    /// Loads `encoder.pos_conv_embed.conv.*`, with the weight norm stored either as
    /// `parametrizations.weight.original0/1` or as `weight_g` / `weight_v`.
    ///
    /// # Errors
    /// [`crate::Error::MissingTensor`] naming `…parametrizations.weight.original0` when neither
    /// spelling is present; otherwise as [`Weights::tensor`].
    pub fn load(weights: &Weights, config: &WavLMConfig, device: &B::Device) -> Result<Self> {
        let d_model = config.hidden_size;
        let num_groups = config.num_conv_pos_embedding_groups;
        let kernel = config.num_conv_pos_embeddings;
        let (g, v) = WEIGHT_NORM_NAMES
            .into_iter()
            .find(|(g, _)| weights.contains(&format!("{PREFIX}.{g}")))
            .unwrap_or(WEIGHT_NORM_NAMES[0]);
        let magnitude = weights.tensor(&format!("{PREFIX}.{g}"), [1, 1, kernel], device)?;
        let direction = weights.tensor(
            &format!("{PREFIX}.{v}"),
            [d_model, d_model / num_groups, kernel],
            device,
        )?;
        let bias = weights.tensor(&format!("{PREFIX}.bias"), [d_model], device)?;
        Ok(Self {
            weight: Param::from_tensor(weight_norm(magnitude, direction)),
            bias: Param::from_tensor(bias),
            num_groups,
        })
    }

    /// The positional embedding, to be added to `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = match same_grouped_conv_gelu(x, self.weight.val(), self.bias.val(), self.num_groups)
        {
            Ok(embedding) => return embedding,
            Err(x) => x,
        };
        let [batch_size, seq_length, d_model] = x.dims();
        let [_, _, kernel] = self.weight.dims();
        let options = ConvOptions::new([1], [kernel / 2], [1], self.num_groups);
        let y = conv1d(
            x.swap_dims(1, 2),
            self.weight.val(),
            Some(self.bias.val()),
            options,
        ); // [batch_size, d_model, seq_length + 1 − K mod 2]
           // WavLMSamePadLayer: an even kernel gives one frame too many; drop the last one.
        let y = y.slice([0..batch_size, 0..d_model, 0..seq_length]);
        gelu(y).swap_dims(1, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn weight_norm_gives_each_kernel_position_the_magnitude_g() {
        let device = Default::default();
        let g = Tensor::<B, 3>::from_floats([[[0.5, 2.0, 3.0]]], &device);
        let v = Tensor::<B, 3>::random([4, 2, 3], Distribution::Normal(0.0, 1.0), &device);
        let w = weight_norm(g.clone(), v);
        let norms = w.square().sum_dim(0).sum_dim(1).sqrt();
        norms
            .into_data()
            .assert_approx_eq::<f32>(&g.into_data(), Tolerance::absolute(1e-5));
    }

    #[test]
    fn output_keeps_the_length_for_odd_and_even_kernels() {
        let device = Default::default();
        for kernel in [4, 5] {
            let conv = PositionalConvEmbedding::<B> {
                weight: Param::from_tensor(Tensor::random(
                    [6, 3, kernel],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                )),
                bias: Param::from_tensor(Tensor::zeros([6], &device)),
                num_groups: 2,
            };
            let x = Tensor::<B, 3>::random([2, 7, 6], Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(conv.forward(x).dims(), [2, 7, 6], "kernel {kernel}");
        }
    }
}
