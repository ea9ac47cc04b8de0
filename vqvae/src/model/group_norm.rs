//! GroupNorm followed by ReLU, as one fused op ([`daam::DaamBackend::group_norm`]).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use daam::{DaamBackend, GroupNormSettings};

/// `ReLU(GroupNorm(x))` with a per-channel affine map (γ = 1, β = 0 at init) and ε = 1e-5, as
/// PyTorch's and burn's `GroupNorm`. Every GroupNorm of the network is followed by a ReLU, and
/// composed from broadcasting ops on burn 0.21's Flex backend it dominated a training step:
/// fused, its forward and backward are one pass each.
#[derive(Module, Debug)]
pub struct GroupNormRelu<B: Backend> {
    /// γ, `[channels]`.
    pub gamma: Param<Tensor<B, 1>>,
    /// β, `[channels]`.
    pub beta: Param<Tensor<B, 1>>,
    /// Groups (divide the channels); 0: no normalisation, only the affine map and the ReLU
    /// ([`GroupNormRelu::affine`]).
    pub groups: usize,
}

/// ε of the variance.
const EPS: f64 = 1e-5;

impl<B: Backend> GroupNormRelu<B> {
    /// A fresh layer.
    ///
    /// # Panics
    /// If `groups` does not divide `channels`.
    pub fn new(groups: usize, channels: usize, device: &B::Device) -> Self {
        assert!(
            groups > 0 && channels.is_multiple_of(groups),
            "norm_groups ({groups}) must divide the channel count ({channels})"
        );
        Self {
            gamma: Param::from_tensor(Tensor::ones([channels], device)),
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            groups,
        }
    }

    /// `ReLU(γ ⊙ x + β)` without the normalisation: what a down- or up-sampling block applies
    /// when its GroupNorm is switched off, so each input's mean level passes through. Same
    /// parameters as [`GroupNormRelu::new`], so checkpoints keep one layout.
    pub fn affine(channels: usize, device: &B::Device) -> Self {
        Self {
            groups: 0,
            ..Self::new(1, channels, device)
        }
    }
}

impl<B: DaamBackend> GroupNormRelu<B> {
    /// # Shapes
    /// - `x`: `[batch_size, channels, height, width]`
    /// - output: `[batch_size, channels, height, width]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [batch_size, channels, height, width] = x.dims();
        let x = x.reshape([batch_size, channels, height * width]);
        let out = B::group_norm(
            x.into_primitive().tensor(),
            self.gamma.val().into_primitive().tensor(),
            self.beta.val().into_primitive().tensor(),
            GroupNormSettings {
                // The affine mode is per channel: one group each, for the kernel's parallelism.
                groups: if self.groups == 0 {
                    channels
                } else {
                    self.groups
                },
                eps: EPS,
                relu: true,
                normalize: self.groups != 0,
            },
        );
        Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(out))
            .reshape([batch_size, channels, height, width])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::nn::GroupNormConfig;
    use burn::tensor::activation::relu;

    #[test]
    fn the_affine_variant_keeps_the_mean_level() {
        let device = Default::default();
        let mut layer = GroupNormRelu::<TestBackend>::affine(2, &device);
        layer.gamma = Param::from_tensor(Tensor::from_floats([2.0, -1.0], &device));
        layer.beta = Param::from_tensor(Tensor::from_floats([0.5, 0.25], &device));
        // A flat input: GroupNorm would map it to β; the affine variant keeps its level.
        let x = Tensor::<TestBackend, 4>::from_floats([[[[3.0, 3.0]], [[-1.0, 2.0]]]], &device);
        let y = layer.forward(x).into_data().to_vec::<f32>().unwrap();
        assert_eq!(y, vec![6.5, 6.5, 1.25, 0.0]);
    }

    #[test]
    fn matches_burns_group_norm_then_relu() {
        let device = Default::default();
        let x = Tensor::<TestBackend, 4>::random(
            [2, 8, 5, 3],
            burn::tensor::Distribution::Normal(0.5, 2.0),
            &device,
        );
        let ours = GroupNormRelu::<TestBackend>::new(4, 8, &device).forward(x.clone());
        let burns = relu(
            GroupNormConfig::new(4, 8)
                .init::<TestBackend>(&device)
                .forward(x),
        );
        ours.into_data()
            .assert_approx_eq::<f32>(&burns.into_data(), burn::tensor::Tolerance::default());
    }
}
