//! Llama's SwiGLU feed-forward block (`modeling_llama.LlamaMLP`).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::kernels::linear;
use crate::llama::config::LlamaConfig;
use crate::weights::Weights;

/// `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    /// `gate_proj`: `d_model → intermediate_size`, the SiLU-activated branch.
    pub gate: Linear<B>,
    /// `up_proj`: `d_model → intermediate_size`, the linear branch.
    pub up: Linear<B>,
    /// `down_proj`: `intermediate_size → d_model`.
    pub down: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    /// Loads `{prefix}.{gate,up,down}_proj` (with biases when `config.mlp_bias`).
    ///
    /// # Errors
    /// [`crate::Error::MissingTensor`], [`crate::Error::Shape`], [`crate::Error::Dtype`].
    pub fn load(
        weights: &Weights,
        prefix: &str,
        config: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let (d_model, d_inner) = (config.hidden_size, config.intermediate_size);
        let projection = |name: &str, d_input, d_output| {
            weights.linear::<B>(
                &format!("{prefix}.{name}"),
                d_input,
                d_output,
                config.mlp_bias,
                device,
            )
        };
        Ok(Self {
            gate: projection("gate_proj", d_model, d_inner)?,
            up: projection("up_proj", d_model, d_inner)?,
            down: projection("down_proj", d_inner, d_model)?,
        })
    }

    /// The feed-forward transform of every position.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gated = silu(linear(&self.gate, x.clone())) * linear(&self.up, x);
        linear(&self.down, gated)
    }
}
