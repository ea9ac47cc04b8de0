//! burn's `BatchNorm` over `[batch_size, channels, spatial]`, its training-mode normalisation
//! run as daam's fused GroupNorm ([`DaamBackend::group_norm`]).
//!
//! BatchNorm normalises each channel over the batch and spatial axes; that is GroupNorm with
//! one group per channel on the channel-major view `[1, channels, batch_size · spatial]`.
//! burn 0.21's `BatchNorm::forward` composes it from broadcasting ops, which on the Flex
//! backend made the MHA-BN head's normalisation cost more than its attention. The running
//! statistics are updated as burn does (momentum, biased variance); inference uses burn's own
//! forward.

use burn::nn::BatchNorm;
use burn::tensor::{Tensor, TensorPrimitive};
use daam::{DaamBackend, GroupNormSettings};

/// `norm.forward(x)`, with the training-mode normalisation fused.
///
/// # Shapes
/// - `x`: `[batch_size, channels, spatial]`
/// - output: `[batch_size, channels, spatial]`
///
/// # Panics
/// If `x` does not have the norm's channel count.
pub fn batch_norm<B: DaamBackend>(norm: &BatchNorm<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch_size, channels, spatial] = x.dims();
    let [expected] = norm.gamma.dims();
    assert_eq!(
        channels, expected,
        "BatchNorm expects {expected} channels, got {channels}"
    );
    if !B::ad_enabled(&x.device()) {
        return norm.forward(x);
    }
    let channel_major = x
        .swap_dims(0, 1)
        .reshape([1, channels, batch_size * spatial]);
    update_running_stats(norm, channel_major.clone().detach());
    let out = B::group_norm(
        channel_major.into_primitive().tensor(),
        norm.gamma.val().into_primitive().tensor(),
        norm.beta.val().into_primitive().tensor(),
        GroupNormSettings {
            groups: channels,
            eps: norm.epsilon,
            relu: false,
            normalize: true,
        },
    );
    Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(out))
        .reshape([channels, batch_size, spatial])
        .swap_dims(0, 1)
}

/// `running = (1 − momentum) · running + momentum · batch` for the mean and the biased
/// variance of `x` (`[1, channels, n]`, detached), as burn's `BatchNorm` in training.
fn update_running_stats<B: DaamBackend>(norm: &BatchNorm<B>, x: Tensor<B, 3>) {
    let [_, channels, n] = x.dims();
    let x = x.reshape([channels, n]);
    let mean = x.clone().mean_dim(1); // [channels, 1]
    let var = (x - mean.clone()).square().mean_dim(1); // [channels, 1]
    let blend = |running: Tensor<B, 1>, batch: Tensor<B, 2>| {
        running
            .mul_scalar(1.0 - norm.momentum)
            .add(batch.reshape([channels]).mul_scalar(norm.momentum))
            .detach()
    };
    let device = mean.device();
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    norm.running_mean.update(blend(running_mean, mean));
    norm.running_var.update(blend(running_var, var));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::backend::Autodiff;
    use burn::module::{AutodiffModule, Param};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    type B = Autodiff<TestBackend>;

    /// Output, gradients and running statistics equal burn's `BatchNorm` in training, and the
    /// inference forward is burn's.
    #[test]
    fn matches_burns_batch_norm() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([4, 3, 10], Distribution::Normal(0.5, 2.0), &device);
        let g = Tensor::<B, 3>::random([4, 3, 10], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            // A fresh module per run: clones share their running state.
            let mut norm = BatchNormConfig::new(3).init::<B>(&device);
            norm.gamma = Param::from_tensor(Tensor::from_floats([1.5, 0.5, 2.0], &device));
            norm.beta = Param::from_tensor(Tensor::from_floats([0.25, -1.0, 0.0], &device));
            let x = x.clone().detach().require_grad();
            let y = if ours {
                batch_norm(&norm, x.clone())
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            let data = vec![
                y.inner().into_data(),
                x.grad(&grads).unwrap().into_data(),
                norm.gamma.grad(&grads).unwrap().into_data(),
                norm.beta.grad(&grads).unwrap().into_data(),
                norm.running_mean.value_sync().inner().into_data(),
                norm.running_var.value_sync().inner().into_data(),
            ];
            (data, norm.valid())
        };
        let ((ours, valid_ours), (burns, valid_burns)) = (run(true), run(false));
        for (a, b) in ours.iter().zip(&burns) {
            a.assert_approx_eq::<f32>(b, Tolerance::default());
        }
        let x = x.inner();
        batch_norm(&valid_ours, x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&valid_burns.forward(x).into_data(), Tolerance::default());
    }

    #[test]
    #[should_panic = "BatchNorm expects 3 channels, got 5"]
    fn wrong_channels_panic() {
        let device = Default::default();
        let norm = BatchNormConfig::new(3).init::<B>(&device);
        batch_norm(&norm, Tensor::zeros([2, 5, 4], &device));
    }
}
