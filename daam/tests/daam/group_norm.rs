//! The fused GroupNorm (+ ReLU) against its composed reference, through `Autodiff<Flex>`.

use crate::common::{assert_close, seeded_normal, to_vec, B};
use burn::tensor::Tensor;
use daam::{reference, DaamBackend, GroupNormSettings};

#[test]
fn fused_group_norm_matches_composed() {
    for (relu, normalize, seed) in [(false, true, 1), (true, true, 2), (true, false, 3)] {
        let settings = GroupNormSettings {
            groups: 4,
            eps: 1e-5,
            relu,
            normalize,
        };
        let x = seeded_normal([3, 8, 37], seed)
            .mul_scalar(2.0)
            .add_scalar(0.3)
            .require_grad();
        let gamma = seeded_normal([8], seed + 10)
            .mul_scalar(0.3)
            .add_scalar(1.0)
            .require_grad();
        let beta = seeded_normal([8], seed + 20).mul_scalar(0.2).require_grad();
        let g = seeded_normal([3, 8, 37], seed + 30);
        let fused: Tensor<B, 3> =
            Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(B::group_norm(
                x.clone().into_primitive().tensor(),
                gamma.clone().into_primitive().tensor(),
                beta.clone().into_primitive().tensor(),
                settings,
            )));
        let composed = if normalize {
            reference::group_norm(x.clone(), gamma.clone(), beta.clone(), 4, 1e-5, relu)
        } else {
            reference::affine(x.clone(), gamma.clone(), beta.clone(), relu)
        };
        let what = format!("relu {relu}, normalize {normalize}");
        assert_close(
            &what,
            "output",
            &to_vec(fused.clone()),
            &to_vec(composed.clone()),
            1e-5,
        );
        let grads = (fused * g.clone()).sum().backward();
        let grads_ref = (composed * g).sum().backward();
        let gx = |grads| to_vec(x.grad(grads).unwrap());
        assert_close(&what, "x", &gx(&grads), &gx(&grads_ref), 1e-4);
        let gg = |grads| to_vec(gamma.grad(grads).unwrap());
        assert_close(&what, "γ", &gg(&grads), &gg(&grads_ref), 1e-4);
        let gb = |grads| to_vec(beta.grad(grads).unwrap());
        assert_close(&what, "β", &gb(&grads), &gb(&grads_ref), 1e-4);
    }
}
