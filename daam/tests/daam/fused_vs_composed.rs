//! The fused ops against their composed tensor-op references (`daam::reference`), both
//! differentiated through `Autodiff<Flex>`, on shapes the fixtures do not cover.
//!
//! Tolerance 2e-3: the composed reference runs in f32, and `mean(x²) − μ²` over three positions
//! cancels badly whenever a feature's three values nearly coincide (the 1/sqrt(var) then
//! amplifies the rounding; we measured up to 1.1e-3 on these seeds). The fused kernels compute in
//! f64 and match float64 fixtures to < 1e-5 (`fixtures.rs`); this test covers shapes, heads and
//! axes, where a wrong term shows as an O(1) error.

use crate::common::{assert_close, seeded_normal, to_vec, B};
use burn::tensor::Tensor;
use daam::{
    reference, DensityAdaptiveAttentionConfig, GaussianForm, MixtureDensityAttentionConfig,
};

const TOLERANCE: f64 = 2e-3;

/// Seeds per test, so each test sees the same data whatever runs beside it.
struct Seeds(u64);

impl Seeds {
    fn normal<const D: usize>(&mut self, shape: [usize; D]) -> Tensor<B, D> {
        self.0 += 1;
        seeded_normal(shape, self.0)
    }
}

#[test]
fn per_feature_matches_composed() {
    let mut seeds = Seeds(100);
    for (shape, heads, form) in [
        ([3, 10, 7], 5, GaussianForm::Variance),
        ([1, 9, 300], 3, GaussianForm::StdDev),
        ([4, 4, 2], 1, GaussianForm::Variance),
    ] {
        let mut module = DensityAdaptiveAttentionConfig::new(shape[2])
            .with_num_heads(heads)
            .with_form(form)
            .init::<B>(&Default::default());
        module.mean_offset = module.mean_offset.map(|_| {
            seeds
                .normal([heads, shape[2]])
                .mul_scalar(0.1)
                .require_grad()
        });
        let x = seeds.normal(shape).require_grad();
        let g = seeds.normal(shape);
        let fused = module.forward(x.clone());
        let grads = (fused.clone() * g.clone()).sum().backward();
        let (composed, _) = reference::density_adaptive_attention(
            x.clone(),
            module.mean_offset.val(),
            module.scaled_variance.val(),
            heads,
            form,
        );
        let grads_ref = (composed.clone() * g).sum().backward();
        let what = format!("{shape:?} H={heads} {form:?}");
        assert_close(
            &what,
            "output",
            &to_vec(fused),
            &to_vec(composed),
            TOLERANCE,
        );
        let gx = |grads| to_vec(x.grad(grads).unwrap());
        assert_close(&what, "grad_x", &gx(&grads), &gx(&grads_ref), TOLERANCE);
        let gd = |grads| to_vec(module.mean_offset.grad(grads).unwrap());
        assert_close(&what, "grad δ", &gd(&grads), &gd(&grads_ref), TOLERANCE);
        let gs = |grads| to_vec(module.scaled_variance.grad(grads).unwrap());
        assert_close(&what, "grad ξ", &gs(&grads), &gs(&grads_ref), TOLERANCE);
    }
}

#[test]
fn mixture_matches_composed_on_every_axis() {
    let mut seeds = Seeds(200);
    let shape = [3, 5, 6, 4];
    for axis in 0..4 {
        let heads = 2;
        let mut module = MixtureDensityAttentionConfig::new(axis)
            .with_num_heads(heads)
            .with_num_gaussians(3)
            .init::<B>(&Default::default());
        // Non-zero offsets: with m = 0 a chunk of two is symmetric and ∂L/∂c vanishes exactly,
        // leaving only rounding noise to compare.
        module.mean_offsets = module
            .mean_offsets
            .map(|_| seeds.normal([heads, 3]).mul_scalar(0.3).require_grad());
        let x = seeds.normal(shape).require_grad();
        let g = seeds.normal(shape);
        let fused = module.forward(x.clone());
        let grads = (fused.clone() * g.clone()).sum().backward();
        // The reference works on [outer, axis, inner]: permute the axis there by reshaping.
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let view = x.clone().reshape([outer, shape[axis], inner]);
        let (composed, _) = reference::mixture_density_attention(
            view,
            module.mean_offsets.val(),
            module.c.val(),
            heads,
            module.eps,
        );
        let composed = composed.reshape(shape);
        let grads_ref = (composed.clone() * g).sum().backward();
        let what = format!("axis {axis}");
        assert_close(
            &what,
            "output",
            &to_vec(fused),
            &to_vec(composed),
            TOLERANCE,
        );
        let gx = |grads| to_vec(x.grad(grads).unwrap());
        assert_close(&what, "grad_x", &gx(&grads), &gx(&grads_ref), TOLERANCE);
        let gm = |grads| to_vec(module.mean_offsets.grad(grads).unwrap());
        assert_close(&what, "grad m", &gm(&grads), &gm(&grads_ref), TOLERANCE);
        let gc = |grads| to_vec(module.c.grad(grads).unwrap());
        assert_close(&what, "grad c", &gc(&grads), &gc(&grads_ref), TOLERANCE);
    }
}
