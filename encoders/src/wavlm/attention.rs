//! WavLM's self-attention with a gated relative position bias (Chen et al. 2022, "WavLM", §2.2;
//! transformers' `WavLMAttention.forward` and `torch_multi_head_self_attention`).
//!
//! The shared bias `d` of every (query, key) pair is scaled per query and head by a gate computed
//! from the attention input `x` itself (not its query projection): with the head slice `x_h` of
//! `x` and `gate_proj` mapping `head_dim → 8`, the update gate `u = σ(Σ₄ gate_proj(x_h)[0..4])`,
//! the reset gate `r = σ(Σ₄ gate_proj(x_h)[4..8])`, and the gated bias is
//! `(u · (r · w − 1) + 2) · d = d + u·r·w·d + (1 − u)·d` with the learned per-head scale `w`.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::split_heads;
use crate::error::Result;
use crate::kernels::attention::{fused_attention, AttentionBias};
use crate::kernels::linear;
use crate::lora::LoraLinear;
use crate::weights::Weights;

/// Outputs of `gru_rel_pos_linear`: two gates × four summed projections.
const GATE_OUTPUTS: usize = 8;

/// Multi-head self-attention whose additive bias is the gated relative position bias.
#[derive(Module, Debug)]
pub struct GatedRelativeAttention<B: Backend> {
    /// `q_proj`, `d_model → d_model`, LoRA-adaptable.
    pub q_proj: LoraLinear<B>,
    /// `k_proj`, `d_model → d_model`, LoRA-adaptable.
    pub k_proj: LoraLinear<B>,
    /// `v_proj`, `d_model → d_model`, LoRA-adaptable.
    pub v_proj: LoraLinear<B>,
    /// `out_proj`, `d_model → d_model`.
    pub out_proj: Linear<B>,
    /// The gate projection (`gru_rel_pos_linear`), `head_dim → 8`, applied to each head's slice of
    /// the input.
    pub gate_proj: Linear<B>,
    /// The reset-gate scale w (`gru_rel_pos_const`), `[1, num_heads, 1, 1]`.
    pub reset_scale: Param<Tensor<B, 4>>,
    /// Number of heads.
    pub num_heads: usize,
}

impl<B: Backend> GatedRelativeAttention<B> {
    /// Loads `{prefix}.{q,k,v,out}_proj`, `{prefix}.gru_rel_pos_linear` and
    /// `{prefix}.gru_rel_pos_const`.
    ///
    /// # Errors
    /// As [`Weights::tensor`].
    pub fn load(
        weights: &Weights,
        prefix: &str,
        d_model: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let linear = |name: &str, d_in, d_out| {
            weights.linear::<B>(&format!("{prefix}.{name}"), d_in, d_out, true, device)
        };
        let head_dim = d_model / num_heads;
        Ok(Self {
            q_proj: linear("q_proj", d_model, d_model)?.into(),
            k_proj: linear("k_proj", d_model, d_model)?.into(),
            v_proj: linear("v_proj", d_model, d_model)?.into(),
            out_proj: linear("out_proj", d_model, d_model)?,
            gate_proj: linear("gru_rel_pos_linear", head_dim, GATE_OUTPUTS)?,
            reset_scale: Param::from_tensor(weights.tensor(
                &format!("{prefix}.gru_rel_pos_const"),
                [1, num_heads, 1, 1],
                device,
            )?),
            num_heads,
        })
    }

    /// The per-query, per-head factor `u · (r · w − 1) + 2` that scales the position bias.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, num_heads, seq_length, 1]`
    pub fn gate(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch_size, seq_length, _] = x.dims();
        let heads = split_heads(x, self.num_heads); // [batch_size, num_heads, seq_length, head_dim]
        let projected = self
            .gate_proj
            .forward(heads)
            .reshape([batch_size, self.num_heads, seq_length, 2, GATE_OUTPUTS / 2])
            .sum_dim(4)
            .reshape([batch_size, self.num_heads, seq_length, 2]);
        let gates = sigmoid(projected);
        let update = gates.clone().narrow(3, 0, 1); // [batch_size, num_heads, seq_length, 1]
        let reset = gates.narrow(3, 1, 1);
        update * (reset * self.reset_scale.val()).sub_scalar(1.0) + 2.0
    }

    /// Self-attention with the gated bias and, optionally, padded keys masked out.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - `position_bias`: `[1, num_heads, seq_length, seq_length]`, ungated
    /// - `key_valid`: `[batch_size, seq_length]`, 1.0 at real frames, 0.0 at padding
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        position_bias: Tensor<B, 4>,
        key_valid: Option<Tensor<B, 2>>,
    ) -> Tensor<B, 3> {
        let [batch_size, seq_length, d_model] = x.dims();
        let head_dim = d_model / self.num_heads;
        // The gate scales each (query, head) row of the shared bias; the kernel applies it
        // while writing the bias, so the gated `[batch, heads, seq, seq]` bias is never built.
        let gate = self
            .gate(x.clone())
            .reshape([batch_size, self.num_heads, seq_length]);
        let bias = AttentionBias {
            bias: position_bias.reshape([self.num_heads, seq_length, seq_length]),
            row_scale: Some(gate),
        };
        let query = self.q_proj.forward(x.clone());
        let key = self.k_proj.forward(x.clone());
        let value = self.v_proj.forward(x);
        let scale = (head_dim as f64).powf(-0.5);
        let context = fused_attention(
            query,
            key,
            value,
            self.num_heads,
            scale,
            Some(bias),
            key_valid,
        );
        linear(&self.out_proj, context) // [batch_size, seq_length, d_model]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn gate_is_update_times_scaled_reset_minus_one_plus_two() {
        let device = Default::default();
        let (num_heads, head_dim) = (3, 2);
        let attention = GatedRelativeAttention::<B> {
            q_proj: LinearConfig::new(6, 6).init(&device).into(),
            k_proj: LinearConfig::new(6, 6).init(&device).into(),
            v_proj: LinearConfig::new(6, 6).init(&device).into(),
            out_proj: LinearConfig::new(6, 6).init(&device),
            gate_proj: LinearConfig::new(head_dim, 8).init(&device),
            reset_scale: Param::from_tensor(Tensor::random(
                [1, num_heads, 1, 1],
                Distribution::Normal(0.0, 1.0),
                &device,
            )),
            num_heads,
        };
        let x = Tensor::<B, 3>::random([2, 5, 6], Distribution::Normal(0.0, 1.0), &device);
        let gate = attention.gate(x.clone());
        assert_eq!(gate.dims(), [2, 3, 5, 1]);
        // Written out for head 1 of batch 1, frame 4.
        let slice = x.slice([1..2, 4..5, 2..4]).reshape([1, 2]);
        let p = attention.gate_proj.forward(slice); // [1, 8]
        let u = sigmoid(p.clone().narrow(1, 0, 4).sum_dim(1));
        let r = sigmoid(p.narrow(1, 4, 4).sum_dim(1));
        let w = attention
            .reset_scale
            .val()
            .slice([0..1, 1..2])
            .reshape([1, 1]);
        let expected = u * (r * w).sub_scalar(1.0) + 2.0;
        let actual = gate.slice([1..2, 1..2, 4..5]).reshape([1, 1]);
        actual
            .into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));
    }
}
