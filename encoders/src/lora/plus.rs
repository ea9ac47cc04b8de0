//! LoRA+ (Hayou et al. 2024): the `B` matrices learn at `λ` times the learning rate of
//! everything else (the `A` matrices and any trainable head).
//!
//! burn's optimisers take one learning rate per step, so the gradients are split by parameter
//! id into the `B` group and the rest, and the optimiser steps twice: once per group. Optimiser
//! state (AdamW's moments and step count) is kept per parameter id, so one optimiser serves both
//! groups and the result equals two parameter groups in PyTorch.
//!
//! `λ`: the LoRA+ paper recommends 2⁴ = 16 ([`LORA_PLUS_RATIO`]); the DAAM authors' code uses
//! 2.828 ([`PAPER_LORA_PLUS_RATIO`]) and puts only `A` and `B` in its optimiser, so its head is
//! never trained (`reference/classify-anchors.md` §5.2). peft's `create_loraplus_optimizer`
//! has no default ratio.

use burn::module::{AutodiffModule, ParamId};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};

/// The LoRA+ paper's recommended learning-rate ratio `λ = 2⁴`.
pub const LORA_PLUS_RATIO: f64 = 16.0;

/// The ratio of the DAAM authors' LoRA+ runs (`LoRA-experiments/peft/*/loraplus`).
pub const PAPER_LORA_PLUS_RATIO: f64 = 2.828;

/// Gradients split into LoRA+'s two learning-rate groups.
#[derive(Debug)]
pub struct SplitGradients {
    /// The gradients of the `B` matrices, stepped at `λ · lr`.
    pub lora_b: GradientsParams,
    /// Every other gradient (the `A` matrices, a trainable head), stepped at `lr`.
    pub rest: GradientsParams,
}

/// Moves the gradients of the parameters in `lora_b` (the ids of
/// [`crate::lora::LoraAdaptable::lora_b_ids`]) out of `grads`.
///
/// `B` is the backend the gradients live on: the *inner* backend of the autodiff backend
/// (`GradientsParams::from_grads` stores them there). Ids without a gradient are skipped.
pub fn split_grads<B: Backend>(mut grads: GradientsParams, lora_b: &[ParamId]) -> SplitGradients {
    let mut selected = GradientsParams::new();
    for &id in lora_b {
        if let Some(grad) = grads.remove::<B, 2>(id) {
            selected.register::<B, 2>(id, grad);
        }
    }
    SplitGradients {
        lora_b: selected,
        rest: grads,
    }
}

/// One LoRA+ update: `optimizer` steps the `B` matrices at `ratio · lr` and every other
/// parameter with a gradient at `lr`.
pub fn step_lora_plus<B, M, O>(
    optimizer: &mut O,
    model: M,
    grads: GradientsParams,
    lora_b: &[ParamId],
    lr: f64,
    ratio: f64,
) -> M
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
{
    let SplitGradients { lora_b, rest } = split_grads::<B::InnerBackend>(grads, lora_b);
    let model = optimizer.step(lr, model, rest);
    optimizer.step(lr * ratio, model, lora_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::{LoraConfig, LoraLinear};
    use crate::seeded_init::SeededInit;
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, Param};
    use burn::nn::LinearConfig;
    use burn::optim::SgdConfig;
    use burn::tensor::{Distribution, Tensor, Tolerance};

    type A = Autodiff<Flex>;

    /// A frozen projection with an adapter whose `B` is nonzero, so that `A` gets a gradient.
    fn adapted() -> LoraLinear<A> {
        let device = Default::default();
        let base = LinearConfig::new(6, 4).init::<A>(&device).no_grad();
        let mut adapter = LoraConfig::new(2).init_adapter(6, 4, &mut SeededInit::new(1), &device);
        adapter.lora_b = Param::from_tensor(Tensor::random(
            [2, 4],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        LoraLinear::from(base).with_adapter(adapter)
    }

    fn gradients(layer: &LoraLinear<A>) -> GradientsParams {
        let x = Tensor::<A, 2>::random([5, 6], Distribution::Normal(0.0, 1.0), &Default::default());
        let loss = layer.forward(x).square().sum();
        GradientsParams::from_grads(loss.backward(), layer)
    }

    #[test]
    fn split_moves_exactly_the_b_gradients() {
        let layer = adapted();
        let adapter = layer.adapter.as_ref().expect("adapter");
        let grads = gradients(&layer);
        assert_eq!(
            grads.len(),
            2,
            "only A and B have gradients; the base is frozen"
        );
        let split = split_grads::<Flex>(grads, &[adapter.lora_b.id]);
        assert_eq!(split.lora_b.len(), 1);
        assert_eq!(split.rest.len(), 1);
        assert!(split.lora_b.get::<Flex, 2>(adapter.lora_b.id).is_some());
        assert!(split.rest.get::<Flex, 2>(adapter.lora_a.id).is_some());
    }

    #[test]
    fn b_moves_ratio_times_further_than_a_under_sgd() {
        let layer = adapted();
        let grads = gradients(&layer);
        let adapter = layer.adapter.as_ref().expect("adapter");
        let (a_id, b_id) = (adapter.lora_a.id, adapter.lora_b.id);
        let grad_a = grads.get::<Flex, 2>(a_id).expect("grad A");
        let grad_b = grads.get::<Flex, 2>(b_id).expect("grad B");
        let (a0, b0) = (adapter.lora_a.val().inner(), adapter.lora_b.val().inner());
        let base0 = layer.base.weight.val().inner();

        let mut optimizer = SgdConfig::new().init::<A, LoraLinear<A>>();
        let (lr, ratio) = (0.1, 3.0);
        let layer = step_lora_plus(&mut optimizer, layer, grads, &[b_id], lr, ratio);
        let adapter = layer.adapter.as_ref().expect("adapter");
        let tolerance = Tolerance::absolute(1e-6);
        adapter
            .lora_a
            .val()
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&(a0 - grad_a.mul_scalar(lr)).into_data(), tolerance);
        adapter
            .lora_b
            .val()
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&(b0 - grad_b.mul_scalar(lr * ratio)).into_data(), tolerance);
        layer
            .base
            .weight
            .val()
            .inner()
            .into_data()
            .assert_eq(&base0.into_data(), true);
    }
}
