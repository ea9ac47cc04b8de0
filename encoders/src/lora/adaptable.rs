//! Encoders whose attention projections take LoRA adapters: freezing the pre-trained weights,
//! attaching adapters to the targeted projections of every layer, and listing the adapter
//! parameters (for counting and for LoRA+'s parameter groups).

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;

use super::config::{LoraConfig, LoraTarget};
use super::linear::{LoraAdapter, LoraLinear};
use crate::beit::Beit;
use crate::llama::Llama;
use crate::seeded_init::SeededInit;
use crate::wavlm::WavLM;

/// An encoder with query, key and value projections ([`LoraLinear`]) in every layer.
pub trait LoraAdaptable<B: Backend>: Module<B> + Sized {
    /// Every query, key and value projection, layer by layer (query, key, value within a layer).
    fn projections(&self) -> Vec<(LoraTarget, &LoraLinear<B>)>;

    /// The encoder with every projection replaced by `f(target, projection)`, in the order of
    /// [`LoraAdaptable::projections`].
    fn map_projections<F>(self, f: F) -> Self
    where
        F: FnMut(LoraTarget, LoraLinear<B>) -> LoraLinear<B>;

    /// The encoder with every parameter frozen (`require_grad` off, so no gradient reaches them
    /// on an autodiff backend) and fresh trainable adapters on the projections `config`
    /// targets, in every layer; other projections lose any adapter they had. The adapters start
    /// with `B = 0`, so the output is unchanged until they are trained. `A` is drawn from
    /// `config.seed` in the order of [`LoraAdaptable::projections`].
    ///
    /// # Panics
    /// As [`LoraConfig::validate`].
    fn with_lora(self, config: &LoraConfig, device: &B::Device) -> Self {
        config.validate();
        let mut init = SeededInit::new(config.seed);
        self.no_grad().map_projections(|target, projection| {
            if config.adapts(target) {
                let [d_input, d_output] = projection.dims();
                let adapter = config.init_adapter(d_input, d_output, &mut init, device);
                projection.with_adapter(adapter)
            } else {
                projection.without_adapter()
            }
        })
    }

    /// The adapters, in the order of [`LoraAdaptable::projections`].
    fn adapters(&self) -> Vec<&LoraAdapter<B>> {
        self.projections()
            .into_iter()
            .filter_map(|(_, projection)| projection.adapter.as_ref())
            .collect()
    }

    /// The ids of the `A` matrices.
    fn lora_a_ids(&self) -> Vec<ParamId> {
        self.adapters().iter().map(|a| a.lora_a.id).collect()
    }

    /// The ids of the `B` matrices: LoRA+'s fast group ([`crate::lora::split_grads`]).
    fn lora_b_ids(&self) -> Vec<ParamId> {
        self.adapters().iter().map(|a| a.lora_b.id).collect()
    }

    /// The number of adapter parameters, `Σ r · (d_input + d_output)` (equal to
    /// [`crate::lora::lora_param_count`] of the encoder's configuration).
    fn lora_param_count(&self) -> usize {
        self.adapters().iter().map(|a| a.num_params()).sum()
    }
}

impl<B: Backend> LoraAdaptable<B> for Beit<B> {
    fn projections(&self) -> Vec<(LoraTarget, &LoraLinear<B>)> {
        self.layers
            .iter()
            .flat_map(|layer| {
                [
                    (LoraTarget::Query, &layer.query),
                    (LoraTarget::Key, &layer.key),
                    (LoraTarget::Value, &layer.value),
                ]
            })
            .collect()
    }

    fn map_projections<F>(mut self, mut f: F) -> Self
    where
        F: FnMut(LoraTarget, LoraLinear<B>) -> LoraLinear<B>,
    {
        self.layers = self
            .layers
            .into_iter()
            .map(|mut layer| {
                layer.query = f(LoraTarget::Query, layer.query);
                layer.key = f(LoraTarget::Key, layer.key);
                layer.value = f(LoraTarget::Value, layer.value);
                layer
            })
            .collect();
        self
    }
}

impl<B: Backend> LoraAdaptable<B> for WavLM<B> {
    fn projections(&self) -> Vec<(LoraTarget, &LoraLinear<B>)> {
        self.layers
            .iter()
            .flat_map(|layer| {
                let attention = &layer.attention;
                [
                    (LoraTarget::Query, &attention.q_proj),
                    (LoraTarget::Key, &attention.k_proj),
                    (LoraTarget::Value, &attention.v_proj),
                ]
            })
            .collect()
    }

    fn map_projections<F>(mut self, mut f: F) -> Self
    where
        F: FnMut(LoraTarget, LoraLinear<B>) -> LoraLinear<B>,
    {
        self.layers = self
            .layers
            .into_iter()
            .map(|mut layer| {
                layer.attention.q_proj = f(LoraTarget::Query, layer.attention.q_proj);
                layer.attention.k_proj = f(LoraTarget::Key, layer.attention.k_proj);
                layer.attention.v_proj = f(LoraTarget::Value, layer.attention.v_proj);
                layer
            })
            .collect();
        self
    }
}

impl<B: Backend> LoraAdaptable<B> for Llama<B> {
    fn projections(&self) -> Vec<(LoraTarget, &LoraLinear<B>)> {
        self.layers
            .iter()
            .flat_map(|layer| {
                let attention = &layer.attention;
                [
                    (LoraTarget::Query, &attention.query),
                    (LoraTarget::Key, &attention.key),
                    (LoraTarget::Value, &attention.value),
                ]
            })
            .collect()
    }

    fn map_projections<F>(mut self, mut f: F) -> Self
    where
        F: FnMut(LoraTarget, LoraLinear<B>) -> LoraLinear<B>,
    {
        self.layers = self
            .layers
            .into_iter()
            .map(|mut layer| {
                layer.attention.query = f(LoraTarget::Query, layer.attention.query);
                layer.attention.key = f(LoraTarget::Key, layer.attention.key);
                layer.attention.value = f(LoraTarget::Value, layer.attention.value);
                layer
            })
            .collect();
        self
    }
}
