//! `Autodiff<B>`: one graph node per call, its backward delegating to `B`'s backward method,
//! whose composed default writes the gradients out (no autodiff pass); only a convolution
//! through burn's own op on a backend without kernels for the inputs
//! ([`DaamBackend::fused_kernels`]) is composed from burn's tracked convolution instead.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;

use super::{
    composed, AttentionGrads, AttentionSettings, ConvGrads, ConvSettings, DaamBackend,
    DensityGrads, DensityOutput, GroupNormGrads, GroupNormSettings,
};
use crate::conv_gemm::ComposedConv;
use crate::GaussianForm;

/// Which fused op a node belongs to, with its settings.
#[derive(Debug, Clone, Copy)]
enum Kind {
    PerFeature {
        num_heads: usize,
        form: GaussianForm,
    },
    Mixture {
        num_heads: usize,
        eps: f64,
    },
}

/// Saved for the backward pass: input, both parameters, and the weights where the backward
/// reads them (the per-feature op; the mixture's backward recomputes its weights).
#[derive(Debug, Clone)]
struct Saved<B: DaamBackend> {
    kind: Kind,
    x: FloatTensor<B>,
    weights: Option<FloatTensor<B>>,
    mean_offset: FloatTensor<B>,
    scale: FloatTensor<B>,
}

#[derive(Debug)]
struct DensityBackward;

impl<B: DaamBackend> Backward<B, 3> for DensityBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_mean, node_scale] = ops.parents;
        let grad_out = grads.consume::<B>(&ops.node);
        let Saved {
            kind,
            x,
            weights,
            mean_offset,
            scale,
        } = ops.state;
        let DensityGrads {
            x: grad_x,
            mean_offset: grad_mean,
            scale: grad_scale,
        } = match kind {
            Kind::PerFeature { num_heads, form } => B::density_adaptive_attention_backward(
                x,
                weights.expect("the per-feature op saves its weights"),
                mean_offset,
                scale,
                num_heads,
                form,
                grad_out,
            ),
            Kind::Mixture { num_heads, eps } => B::mixture_density_attention_backward(
                x,
                mean_offset,
                scale,
                num_heads,
                eps,
                grad_out,
            ),
        };
        for (node, grad) in [
            (node_x, grad_x),
            (node_mean, grad_mean),
            (node_scale, grad_scale),
        ] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs `B`'s forward and records the node.
fn tracked<B: DaamBackend, C: CheckpointStrategy>(
    kind: Kind,
    x: FloatTensor<Autodiff<B, C>>,
    mean_offset: FloatTensor<Autodiff<B, C>>,
    scale: FloatTensor<Autodiff<B, C>>,
) -> DensityOutput<Autodiff<B, C>> {
    let inner = match kind {
        Kind::PerFeature { num_heads, form } => B::density_adaptive_attention(
            x.primitive.clone(),
            mean_offset.primitive.clone(),
            scale.primitive.clone(),
            num_heads,
            form,
        ),
        Kind::Mixture { num_heads, eps } => B::mixture_density_attention(
            x.primitive.clone(),
            mean_offset.primitive.clone(),
            scale.primitive.clone(),
            num_heads,
            eps,
        ),
    };
    let weights = <Autodiff<B, C> as AutodiffBackend>::from_inner(inner.weights.clone());
    let output = match DensityBackward
        .prepare::<C>([x.node.clone(), mean_offset.node.clone(), scale.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            Saved {
                kind,
                x: x.primitive,
                weights: matches!(kind, Kind::PerFeature { .. }).then_some(inner.weights),
                mean_offset: mean_offset.primitive,
                scale: scale.primitive,
            },
            inner.output,
        ),
        OpsKind::UnTracked(prep) => prep.finish(inner.output),
    };
    DensityOutput { output, weights }
}

/// Saved for GroupNorm's backward pass.
#[derive(Debug, Clone)]
struct SavedNorm<B: DaamBackend> {
    settings: GroupNormSettings,
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
}

#[derive(Debug)]
struct GroupNormBackward;

impl<B: DaamBackend> Backward<B, 3> for GroupNormBackward {
    type State = SavedNorm<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad_out = grads.consume::<B>(&ops.node);
        let SavedNorm {
            settings,
            x,
            gamma,
            beta,
        } = ops.state;
        let GroupNormGrads { x, gamma, beta } =
            B::group_norm_backward(x, gamma, beta, settings, grad_out);
        for (node, grad) in [(node_x, x), (node_gamma, gamma), (node_beta, beta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// How a convolution node computes, forward and backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvRoute {
    /// `B`'s fused kernels: [`DaamBackend::fused_conv2d`] and its backward.
    Fused,
    /// Matrix products of `B`'s tensor ops ([`crate::conv_gemm`]), the gradients written out:
    /// one node keeps `x` and the weight, where autodiff over the composed ops would keep the
    /// unfolded input.
    Gemm,
    /// `B`'s implicit-GEMM kernel at stride 1, matrix products otherwise
    /// ([`ComposedConv::Implicit`]), the gradients written out as for `Gemm`.
    Implicit,
}

impl ConvRoute {
    /// The composed convolution of a non-fused route.
    fn composed(self) -> ComposedConv {
        match self {
            Self::Implicit => ComposedConv::Implicit,
            Self::Gemm | Self::Fused => ComposedConv::Gemm,
        }
    }
}

/// Saved for the convolution's backward pass; the output only under a fused ReLU (its mask).
#[derive(Debug, Clone)]
struct SavedConv<B: DaamBackend> {
    route: ConvRoute,
    settings: ConvSettings,
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    output: Option<FloatTensor<B>>,
}

#[derive(Debug)]
struct ConvBackward;

impl<B: DaamBackend> Backward<B, 3> for ConvBackward {
    type State = SavedConv<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad_out = grads.consume::<B>(&ops.node);
        let SavedConv {
            route,
            settings,
            x,
            weight,
            bias,
            output,
        } = ops.state;
        let ConvGrads { x, weight, bias } = match route {
            ConvRoute::Fused => {
                B::fused_conv2d_backward(x, weight, bias, output, settings, grad_out)
            }
            ConvRoute::Gemm | ConvRoute::Implicit => composed::conv2d_backward::<B>(
                x,
                weight,
                bias,
                output,
                settings,
                grad_out,
                route.composed(),
            ),
        };
        for (node, grad) in [(node_x, x), (node_weight, weight), (node_bias, bias)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Saved for the attention's backward pass (the probabilities are recomputed).
#[derive(Debug, Clone)]
struct SavedAttention<B: DaamBackend> {
    settings: AttentionSettings,
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: DaamBackend> Backward<B, 3> for AttentionBackward {
    type State = SavedAttention<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let grad_out = grads.consume::<B>(&ops.node);
        let SavedAttention { settings, q, k, v } = ops.state;
        let AttentionGrads { q, k, v } =
            B::scaled_dot_product_attention_backward(q, k, v, settings, grad_out);
        for (node, grad) in [(node_q, q), (node_k, k), (node_v, v)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs a convolution on `B` by `route` and records one node for it.
fn conv_node<B: DaamBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
    settings: ConvSettings,
    route: ConvRoute,
) -> FloatTensor<Autodiff<B, C>> {
    let (inner_x, inner_weight, inner_bias) = (
        x.primitive.clone(),
        weight.primitive.clone(),
        bias.primitive.clone(),
    );
    let output = match route {
        ConvRoute::Fused => B::fused_conv2d(inner_x, inner_weight, inner_bias, settings),
        ConvRoute::Gemm | ConvRoute::Implicit => composed::conv2d_forward::<B>(
            inner_x,
            inner_weight,
            inner_bias,
            settings,
            route.composed(),
        ),
    };
    match ConvBackward
        .prepare::<C>([x.node.clone(), weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            SavedConv {
                route,
                settings,
                x: x.primitive,
                weight: weight.primitive,
                bias: bias.primitive,
                output: settings.relu.then(|| output.clone()),
            },
            output,
        ),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

impl<B: DaamBackend, C: CheckpointStrategy> DaamBackend for Autodiff<B, C> {
    fn composed_conv() -> ComposedConv {
        B::composed_conv()
    }

    fn lookup_grad_by_product() -> bool {
        B::lookup_grad_by_product()
    }

    fn scaled_dot_product_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        settings: AttentionSettings,
    ) -> FloatTensor<Self> {
        // One node whatever `B` is: the composed default's backward is written out.
        let output = B::scaled_dot_product_attention(
            q.primitive.clone(),
            k.primitive.clone(),
            v.primitive.clone(),
            settings,
        );
        match AttentionBackward
            .prepare::<C>([q.node.clone(), k.node.clone(), v.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                SavedAttention {
                    settings,
                    q: q.primitive,
                    k: k.primitive,
                    v: v.primitive,
                },
                output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn fused_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        settings: ConvSettings,
    ) -> FloatTensor<Self> {
        let route = if B::fused_kernels(&[&x.primitive, &weight.primitive, &bias.primitive]) {
            ConvRoute::Fused
        } else {
            match B::composed_conv() {
                ComposedConv::Gemm => ConvRoute::Gemm,
                ComposedConv::Implicit => ConvRoute::Implicit,
                ComposedConv::Backend => {
                    // burn's own convolution, differentiated by burn.
                    return composed::conv2d_forward::<Self>(
                        x,
                        weight,
                        bias,
                        settings,
                        ComposedConv::Backend,
                    );
                }
            }
        };
        conv_node::<B, C>(x, weight, bias, settings, route)
    }

    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        settings: GroupNormSettings,
    ) -> FloatTensor<Self> {
        // One node whatever `B` is: the composed default's backward is written out (no autodiff
        // pass of its own), and keeps `x` where burn's autodiff over the composed ops would
        // keep the centred, normalised and output tensors.
        let output = B::group_norm(
            x.primitive.clone(),
            gamma.primitive.clone(),
            beta.primitive.clone(),
            settings,
        );
        match GroupNormBackward
            .prepare::<C>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                SavedNorm {
                    settings,
                    x: x.primitive,
                    gamma: gamma.primitive,
                    beta: beta.primitive,
                },
                output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    fn density_adaptive_attention(
        x: FloatTensor<Self>,
        mean_offset: FloatTensor<Self>,
        scaled_variance: FloatTensor<Self>,
        num_heads: usize,
        form: GaussianForm,
    ) -> DensityOutput<Self> {
        // One node whatever `B` is: the composed default's backward is written out.
        tracked::<B, C>(
            Kind::PerFeature { num_heads, form },
            x,
            mean_offset,
            scaled_variance,
        )
    }

    fn mixture_density_attention(
        x: FloatTensor<Self>,
        mean_offsets: FloatTensor<Self>,
        c: FloatTensor<Self>,
        num_heads: usize,
        eps: f64,
    ) -> DensityOutput<Self> {
        // One node whatever `B` is: the composed default's backward is written out.
        tracked::<B, C>(Kind::Mixture { num_heads, eps }, x, mean_offsets, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::float;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::Flex;
    use burn::tensor::activation::relu;
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Distribution, Tensor, Tolerance};

    type A = Autodiff<Flex>;

    /// A tracked standard-normal tensor of `dims`.
    fn random4(device: &burn::tensor::Device<A>, dims: [usize; 4]) -> Tensor<A, 4> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), device).require_grad()
    }

    /// A tracked standard-normal vector of `len`.
    fn random1(device: &burn::tensor::Device<A>, len: usize) -> Tensor<A, 1> {
        Tensor::random([len], Distribution::Normal(0.0, 1.0), device).require_grad()
    }

    /// Two gemm-route nodes in a row, a convolution with its ReLU then a transposed
    /// convolution (the first node's written-out backward runs inside burn's backward pass,
    /// where an autodiff pass of its own would wait on the graph's lock forever), agree with
    /// burn's convolutions in output and every gradient.
    #[test]
    fn gemm_route_nodes_match_burn() {
        let device = Default::default();
        let (x, w1, b1, w2, b2) = (
            random4(&device, [2, 3, 7, 6]),
            random4(&device, [5, 3, 3, 3]),
            random1(&device, 5),
            random4(&device, [5, 4, 4, 4]),
            random1(&device, 4),
        );
        let down = ConvSettings {
            stride: [2, 2],
            padding: [1, 1],
            transposed: None,
            relu: true,
        };
        let up = ConvSettings {
            stride: [2, 2],
            padding: [1, 1],
            transposed: Some([1, 0]),
            relu: false,
        };
        let node = |x: Tensor<A, 4>, w: &Tensor<A, 4>, b: &Tensor<A, 1>, s: ConvSettings| {
            float::<A, 4>(conv_node::<Flex, NoCheckpointing>(
                x.into_primitive().tensor(),
                w.clone().into_primitive().tensor(),
                b.clone().into_primitive().tensor(),
                s,
                ConvRoute::Gemm,
            ))
        };
        let ours = node(node(x.clone(), &w1, &b1, down), &w2, &b2, up);
        let hidden = relu(conv2d(
            x.clone(),
            w1.clone(),
            Some(b1.clone()),
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        ));
        let reference = conv_transpose2d(
            hidden,
            w2.clone(),
            Some(b2.clone()),
            ConvTransposeOptions::new([2, 2], [1, 1], [1, 0], [1, 1], 1),
        );
        assert_eq!(ours.dims(), [2, 4, 9, 6]);
        let tol = Tolerance::<f32>::default();
        ours.clone()
            .into_data()
            .assert_approx_eq(&reference.clone().into_data(), tol);
        let probe = Tensor::<A, 4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe).sum().backward();
        for (name, t) in [("x", &x), ("w1", &w1), ("w2", &w2)] {
            let (a, b) = (t.grad(&g_ours), t.grad(&g_ref));
            assert!(a.is_some(), "∂{name} missing");
            a.unwrap()
                .into_data()
                .assert_approx_eq(&b.expect("reference").into_data(), tol);
        }
        for (name, t) in [("b1", &b1), ("b2", &b2)] {
            let (a, b) = (t.grad(&g_ours), t.grad(&g_ref));
            assert!(a.is_some(), "∂{name} missing");
            a.unwrap()
                .into_data()
                .assert_approx_eq(&b.expect("reference").into_data(), tol);
        }
    }

    /// Convolutions on the implicit route (Flex has no implicit kernel: the backend's
    /// defaults, matrix products, composed by `conv_implicit` with the bias gradient summed by
    /// the route itself) and on the gemm route, a 3×3 with its ReLU, a 1×1, a strided 4×4 (its
    /// data gradient by phases) and a transposed 4×4 with an output padding (its forward by
    /// phases), agree with burn's convolutions in output and every gradient.
    #[test]
    fn implicit_route_nodes_match_burn() {
        let device = Default::default();
        let (x, w1, b1, w2, b2, w3, b3, w4, b4) = (
            random4(&device, [2, 3, 7, 6]),
            random4(&device, [5, 3, 3, 3]),
            random1(&device, 5),
            random4(&device, [4, 5, 1, 1]),
            random1(&device, 4),
            random4(&device, [2, 4, 4, 4]),
            random1(&device, 2),
            random4(&device, [2, 3, 4, 4]),
            random1(&device, 3),
        );
        let settings = |stride, padding, relu| ConvSettings {
            stride,
            padding,
            transposed: None,
            relu,
        };
        // A transposed convolution with an output padding on one axis, as the up-sampling
        // blocks' (4×4, stride 2) but for it.
        let transposed = ConvSettings {
            transposed: Some([1, 0]),
            ..settings([2, 2], [1, 1], false)
        };
        let tol = Tolerance::<f32>::default();
        for route in [ConvRoute::Implicit, ConvRoute::Gemm] {
            let node = |x: Tensor<A, 4>, w: &Tensor<A, 4>, b: &Tensor<A, 1>, s: ConvSettings| {
                float::<A, 4>(conv_node::<Flex, NoCheckpointing>(
                    x.into_primitive().tensor(),
                    w.clone().into_primitive().tensor(),
                    b.clone().into_primitive().tensor(),
                    s,
                    route,
                ))
            };
            let h = node(x.clone(), &w1, &b1, settings([1, 1], [1, 1], true));
            let h = node(h, &w2, &b2, settings([1, 1], [0, 0], false));
            let h = node(h, &w3, &b3, settings([2, 2], [1, 1], false));
            let ours = node(h, &w4, &b4, transposed);
            let options = |stride, padding| ConvOptions::new(stride, padding, [1, 1], 1);
            let h = relu(conv2d(
                x.clone(),
                w1.clone(),
                Some(b1.clone()),
                options([1, 1], [1, 1]),
            ));
            let h = conv2d(h, w2.clone(), Some(b2.clone()), options([1, 1], [0, 0]));
            let h = conv2d(h, w3.clone(), Some(b3.clone()), options([2, 2], [1, 1]));
            let reference = conv_transpose2d(
                h,
                w4.clone(),
                Some(b4.clone()),
                ConvTransposeOptions::new([2, 2], [1, 1], [1, 0], [1, 1], 1),
            );
            assert_eq!(ours.dims(), [2, 3, 7, 6]);
            ours.clone()
                .into_data()
                .assert_approx_eq(&reference.clone().into_data(), tol);
            let probe =
                Tensor::<A, 4>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_ours = (ours * probe.clone()).sum().backward();
            let g_ref = (reference * probe).sum().backward();
            for (name, t) in [
                ("x", &x),
                ("w1", &w1),
                ("w2", &w2),
                ("w3", &w3),
                ("w4", &w4),
            ] {
                let a = t.grad(&g_ours).unwrap_or_else(|| panic!("∂{name} missing"));
                a.into_data()
                    .assert_approx_eq(&t.grad(&g_ref).expect("reference").into_data(), tol);
            }
            for (name, t) in [("b1", &b1), ("b2", &b2), ("b3", &b3), ("b4", &b4)] {
                let a = t.grad(&g_ours).unwrap_or_else(|| panic!("∂{name} missing"));
                a.into_data()
                    .assert_approx_eq(&t.grad(&g_ref).expect("reference").into_data(), tol);
            }
        }
    }
}
