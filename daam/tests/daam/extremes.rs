//! Inputs that break naive implementations: constant chunks, huge and tiny magnitudes, chunks
//! of one position. Outputs and every gradient must stay finite.

use crate::common::{to_vec, B};
use burn::tensor::{Distribution, Tensor};
use daam::{DensityAdaptiveAttentionConfig, DensityBlockConfig, MixtureDensityAttentionConfig};

fn inputs() -> Vec<(&'static str, Tensor<B, 3>)> {
    let device = Default::default();
    let normal = || Tensor::<B, 3>::random([2, 8, 6], Distribution::Normal(0.0, 1.0), &device);
    vec![
        ("constant", Tensor::full([2, 8, 6], 3.5, &device)),
        ("zeros", Tensor::zeros([2, 8, 6], &device)),
        ("scale 1e6", normal().mul_scalar(1e6)),
        ("scale 1e-6", normal().mul_scalar(1e-6)),
        ("offset 1e6", normal().add_scalar(1e6)),
    ]
}

fn assert_finite(what: &str, values: Vec<f32>) {
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{what}: non-finite values"
    );
}

#[test]
fn per_feature_stays_finite() {
    for heads in [1, 4, 8] {
        let module = DensityAdaptiveAttentionConfig::new(6)
            .with_num_heads(heads)
            .init::<B>(&Default::default());
        for (name, x) in inputs() {
            let x = x.require_grad();
            let y = module.forward(x.clone());
            let what = format!("{name}, {heads} heads");
            assert_finite(&what, to_vec(y.clone()));
            let grads = y.sum().backward();
            assert_finite(&what, to_vec(x.grad(&grads).unwrap()));
            assert_finite(&what, to_vec(module.mean_offset.grad(&grads).unwrap()));
            assert_finite(&what, to_vec(module.scaled_variance.grad(&grads).unwrap()));
        }
    }
}

#[test]
fn mixture_stays_finite_including_chunks_of_one() {
    // 8 positions: 8 heads give chunks of one; 3 heads give 2, 2, 4.
    for heads in [1, 3, 8] {
        let block = DensityBlockConfig::repeated(
            MixtureDensityAttentionConfig::new(1)
                .with_num_heads(heads)
                .with_num_gaussians(3),
            2,
        )
        .init::<B>(&Default::default());
        for (name, x) in inputs() {
            let x = x.require_grad();
            let y = block.forward(x.clone());
            let what = format!("{name}, {heads} heads");
            assert_finite(&what, to_vec(y.clone()));
            let grads = y.sum().backward();
            assert_finite(&what, to_vec(x.grad(&grads).unwrap()));
            for layer in &block.layers {
                assert_finite(&what, to_vec(layer.mean_offsets.grad(&grads).unwrap()));
                assert_finite(&what, to_vec(layer.c.grad(&grads).unwrap()));
            }
        }
    }
}

#[test]
fn chunk_of_one_passes_through_with_weight_one() {
    let module = MixtureDensityAttentionConfig::new(1)
        .with_num_heads(4)
        .init::<B>(&Default::default());
    let x = Tensor::<B, 3>::random(
        [2, 4, 5],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let out = module.forward_with_weights(x.clone());
    assert!(to_vec(out.weights).iter().all(|&w| w == 1.0));
    assert_eq!(to_vec(out.output), to_vec(x));
}
