//! The DAT decoder: an attention module over the layer axis, then two 3×3 convolutions with
//! the layers as channels and a linear classifier (paper §1.4; `reference/daam-reference.md`
//! §4.1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};
use daam::DaamBackend;

use super::layer_attention::{init_layer_attention, HeadKind, LayerAttention};
use crate::train::cast_params;

/// Configuration of a [`DatHead`].
#[derive(Config, Debug)]
pub struct DatHeadConfig {
    /// The attention in front of the convolutions.
    pub kind: HeadKind,
    /// Encoder layers per item (24 for WavLM/BEiT-Large, 40 for Llama-2-13B), the conv
    /// channels.
    pub num_layers: usize,
    /// Width of each layer's embedding (1024, 5120).
    pub d_model: usize,
    /// Classes of the task.
    pub num_classes: usize,
    /// Channels of the hidden convolution (authors: 512).
    #[config(default = 512)]
    pub conv_channels: usize,
}

/// Attention → reshape each layer's vector to a 2-D grid → Conv2d(L → 512, 3×3, pad 1) → ReLU
/// → Conv2d(512 → L, 3×3, pad 1) → ReLU → flatten → Linear(L·W → classes).
///
/// Convolution and classifier weights start Xavier-uniform, as the paper says; the attention
/// keeps its own initialisation.
#[derive(Module, Debug)]
pub struct DatHead<B: Backend> {
    /// The attention over layers.
    pub attention: LayerAttention<B>,
    /// `num_layers → conv_channels`, 3×3.
    pub conv1: Conv2d<B>,
    /// `conv_channels → num_layers`, 3×3.
    pub conv2: Conv2d<B>,
    /// `num_layers · width → num_classes`.
    pub fc: Linear<B>,
    /// The `[height, width]` grid each layer's vector is folded into.
    pub grid: [usize; 2],
    /// Encoder layers expected.
    pub num_layers: usize,
    /// Embedding width expected.
    pub d_model: usize,
}

/// Logits and, for DAAM heads, the density weights of the batch.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// `[batch_size, num_classes]`.
    pub logits: Tensor<B, 2>,
    /// `[batch_size, num_layers, d_model]`, for heads with density weights.
    pub weights: Option<Tensor<B, 3>>,
}

/// The most nearly square `[height, width]` with `height · width = n` and `height ≤ width`
/// (1024 → 32×32 and 5120 → 64×80, the authors' grids).
pub fn grid_for(n: usize) -> [usize; 2] {
    let mut height = (n as f64).sqrt() as usize;
    while height > 1 && !n.is_multiple_of(height) {
        height -= 1;
    }
    let height = height.max(1);
    [height, n / height]
}

impl DatHeadConfig {
    /// Checks that the configuration builds a head: positive sizes and a layer count and
    /// width the attention fits ([`HeadKind::fits`]); the reason names the field.
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [
            ("num_layers", self.num_layers),
            ("d_model", self.d_model),
            ("num_classes", self.num_classes),
            ("conv_channels", self.conv_channels),
        ] {
            if value == 0 {
                return Err(format!("{field} must be positive, got 0"));
            }
        }
        self.kind.fits(self.num_layers, self.d_model)
    }

    /// Builds the head.
    ///
    /// # Panics
    /// If a size is zero, or the layer count does not fit the attention's heads.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DatHead<B> {
        assert!(
            self.num_layers > 0 && self.d_model > 0 && self.num_classes > 0,
            "DatHead sizes must be positive: {} layers, d_model {}, {} classes",
            self.num_layers,
            self.d_model,
            self.num_classes
        );
        let width = self.kind.output_width(self.d_model);
        let xavier = Initializer::XavierUniform { gain: 1.0 };
        let conv = |from, to| {
            Conv2dConfig::new([from, to], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_initializer(xavier.clone())
                .init(device)
        };
        DatHead {
            attention: init_layer_attention(self.kind, self.num_layers, self.d_model, device),
            conv1: conv(self.num_layers, self.conv_channels),
            conv2: conv(self.conv_channels, self.num_layers),
            fc: LinearConfig::new(self.num_layers * width, self.num_classes)
                .with_initializer(xavier)
                .init(device),
            grid: grid_for(width),
            num_layers: self.num_layers,
            d_model: self.d_model,
        }
    }
}

impl<B: DaamBackend> DatHead<B> {
    /// Class logits and density weights.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_layers, d_model]`
    /// - logits: `[batch_size, num_classes]`
    ///
    /// # Panics
    /// If `x` does not have the head's layer count and width.
    pub fn forward_with_weights(&self, x: Tensor<B, 3>) -> HeadOutput<B> {
        self.forward_with_weights_in(x, None)
    }

    /// Class logits and density weights, with the convolutions and the classifier computed in
    /// `compute` (`bf16`/`f16` for mixed-precision training; `None`: the weights' own dtype).
    /// The attention over layers, the logits and the weights stay in the input's dtype; the
    /// casts are tracked, so gradients reach the weights in their own dtype.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_layers, d_model]`
    /// - logits: `[batch_size, num_classes]`
    ///
    /// # Panics
    /// If `x` does not have the head's layer count and width.
    pub fn forward_with_weights_in(
        &self,
        x: Tensor<B, 3>,
        compute: Option<FloatDType>,
    ) -> HeadOutput<B> {
        let [batch_size, num_layers, d_model] = x.dims();
        assert_eq!(
            [num_layers, d_model],
            [self.num_layers, self.d_model],
            "DatHead expects [batch_size, {}, {}] embeddings, got [{batch_size}, {num_layers}, \
             {d_model}]",
            self.num_layers,
            self.d_model
        );
        let input_dtype = x.dtype();
        let (attended, weights) = self.attention.forward_with_weights(x);
        let [height, width] = self.grid;
        let grid = attended.reshape([batch_size, num_layers, height, width]);
        let logits = match compute {
            None => Self::convolve(&self.conv1, &self.conv2, &self.fc, grid),
            Some(dtype) => Self::convolve(
                &cast_params(&self.conv1, dtype),
                &cast_params(&self.conv2, dtype),
                &cast_params(&self.fc, dtype),
                grid.cast(dtype),
            )
            .cast(FloatDType::from(input_dtype)),
        };
        HeadOutput { logits, weights }
    }

    /// The convolutions and the classifier.
    ///
    /// # Shapes
    /// - `grid`: `[batch_size, num_layers, height, width]`
    /// - output: `[batch_size, num_classes]`
    fn convolve(
        conv1: &Conv2d<B>,
        conv2: &Conv2d<B>,
        fc: &Linear<B>,
        grid: Tensor<B, 4>,
    ) -> Tensor<B, 2> {
        let [batch_size, num_layers, height, width] = grid.dims();
        let hidden = daam::conv2d_relu_module(conv1, grid); // [batch_size, conv_channels, height, width]
        let folded = daam::conv2d_relu_module(conv2, hidden); // [batch_size, num_layers, height, width]
        fc.forward(folded.reshape([batch_size, num_layers * height * width]))
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_layers, d_model]`
    /// - output: `[batch_size, num_classes]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
        self.forward_with_weights(x).logits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::tensor::Distribution;

    #[test]
    fn grids_match_the_authors() {
        assert_eq!(grid_for(1024), [32, 32]);
        assert_eq!(grid_for(5120), [64, 80]);
        assert_eq!(grid_for(512), [16, 32]);
        assert_eq!(grid_for(7), [1, 7]);
        assert_eq!(grid_for(12), [3, 4]);
    }

    #[test]
    fn every_head_maps_embeddings_to_logits() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 3>::random([3, 8, 16], Distribution::Normal(0., 1.), &device);
        for kind in HeadKind::ALL {
            let head = DatHeadConfig::new(kind, 8, 16, 5)
                .with_conv_channels(6)
                .init::<TestBackend>(&device);
            let out = head.forward_with_weights(x.clone());
            assert_eq!(out.logits.dims(), [3, 5], "{}", kind.name());
            assert_eq!(
                out.weights.is_some(),
                kind.has_density_weights(),
                "{}",
                kind.name()
            );
            let values = out.logits.into_data().to_vec::<f32>().unwrap();
            assert!(values.iter().all(|v| v.is_finite()), "{}", kind.name());
        }
    }

    #[test]
    fn check_names_the_field_or_the_fit() {
        assert_eq!(
            DatHeadConfig::new(HeadKind::DaamV1, 8, 16, 4).check(),
            Ok(())
        );
        let zero = |config: DatHeadConfig| config.check().unwrap_err();
        assert_eq!(
            zero(DatHeadConfig::new(HeadKind::DaamV2, 0, 16, 4)),
            "num_layers must be positive, got 0"
        );
        assert_eq!(
            zero(DatHeadConfig::new(HeadKind::DaamV2, 8, 0, 4)),
            "d_model must be positive, got 0"
        );
        assert_eq!(
            zero(DatHeadConfig::new(HeadKind::DaamV2, 8, 16, 0)),
            "num_classes must be positive, got 0"
        );
        assert_eq!(
            zero(DatHeadConfig::new(HeadKind::DaamV2, 8, 16, 4).with_conv_channels(0)),
            "conv_channels must be positive, got 0"
        );
        assert!(zero(DatHeadConfig::new(HeadKind::DaamV1, 5, 16, 4)).contains("not divisible by 8"));
        assert!(zero(DatHeadConfig::new(HeadKind::Mha, 8, 12, 4)).contains("d_model 12"));
    }

    #[test]
    #[should_panic = "DatHead expects [batch_size, 8, 16] embeddings, got [2, 8, 12]"]
    fn wrong_width_panics() {
        let device = Default::default();
        let head = DatHeadConfig::new(HeadKind::DaamV2, 8, 16, 3).init::<TestBackend>(&device);
        head.forward(Tensor::zeros([2, 8, 12], &device));
    }
}
