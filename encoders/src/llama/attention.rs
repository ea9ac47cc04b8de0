//! Llama's causal self-attention with rotary positions and grouped key/value heads
//! (`modeling_llama.LlamaAttention`, eager implementation).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::attention::{attention, merge_heads, split_heads};
use crate::error::Result;
use crate::kernels::linear;
use crate::llama::config::LlamaConfig;
use crate::llama::rope::RotaryTables;
use crate::lora::LoraLinear;
use crate::weights::Weights;

/// Self-attention with `num_heads` query heads sharing `num_key_value_heads` key/value heads.
#[derive(Module, Debug)]
pub struct GroupedQueryAttention<B: Backend> {
    /// `q_proj`: `d_model → num_heads · head_dim`, LoRA-adaptable.
    pub query: LoraLinear<B>,
    /// `k_proj`: `d_model → num_key_value_heads · head_dim`, LoRA-adaptable.
    pub key: LoraLinear<B>,
    /// `v_proj`: `d_model → num_key_value_heads · head_dim`, LoRA-adaptable.
    pub value: LoraLinear<B>,
    /// `o_proj`: `num_heads · head_dim → d_model`.
    pub output: Linear<B>,
    /// The number of query heads.
    pub num_heads: usize,
    /// The number of key/value heads; each serves `num_heads / num_key_value_heads` query heads.
    pub num_key_value_heads: usize,
    /// The width of one head.
    pub head_dim: usize,
}

impl<B: Backend> GroupedQueryAttention<B> {
    /// Loads `{prefix}.{q,k,v,o}_proj` (with biases when `config.attention_bias`).
    ///
    /// # Errors
    /// [`crate::Error::MissingTensor`], [`crate::Error::Shape`], [`crate::Error::Dtype`].
    pub fn load(
        weights: &Weights,
        prefix: &str,
        config: &LlamaConfig,
        device: &B::Device,
    ) -> Result<Self> {
        let d_model = config.hidden_size;
        let head_dim = config.head_dim();
        let num_heads = config.num_attention_heads;
        let num_key_value_heads = config.num_key_value_heads();
        let bias = config.attention_bias;
        let projection = |name: &str, d_input, d_output| {
            weights.linear::<B>(&format!("{prefix}.{name}"), d_input, d_output, bias, device)
        };
        Ok(Self {
            query: projection("q_proj", d_model, num_heads * head_dim)?.into(),
            key: projection("k_proj", d_model, num_key_value_heads * head_dim)?.into(),
            value: projection("v_proj", d_model, num_key_value_heads * head_dim)?.into(),
            output: projection("o_proj", num_heads * head_dim, d_model)?,
            num_heads,
            num_key_value_heads,
            head_dim,
        })
    }

    /// Attention of every position over the positions the additive `bias` leaves open.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - `bias`: `[batch_size, 1, seq_length, seq_length]`, 0 where a query may attend to a key
    ///   and [`crate::attention::MASKED`] elsewhere (causal and padding mask)
    /// - output: `[batch_size, seq_length, d_model]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RotaryTables<B>,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        let groups = self.num_heads / self.num_key_value_heads;
        let query = split_heads(self.query.forward(x.clone()), self.num_heads);
        let key = split_heads(self.key.forward(x.clone()), self.num_key_value_heads);
        let value = split_heads(self.value.forward(x), self.num_key_value_heads);
        let query = rope.apply(query); // [batch_size, num_heads, seq_length, head_dim]
        let key = repeat_key_value(rope.apply(key), groups);
        let value = repeat_key_value(value, groups);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let context = attention(query, key, value, scale, Some(bias), None);
        linear(&self.output, merge_heads(context)) // [batch_size, seq_length, d_model]
    }
}

/// Repeats each key/value head for the `groups` query heads it serves: output head `h` is input
/// head `h / groups` (`modeling_llama.repeat_kv`, i.e. `repeat_interleave` on the head axis).
///
/// # Shapes
/// - `x`: `[batch_size, num_key_value_heads, seq_length, head_dim]`
/// - output: `[batch_size, num_key_value_heads · groups, seq_length, head_dim]`
pub fn repeat_key_value<B: Backend>(x: Tensor<B, 4>, groups: usize) -> Tensor<B, 4> {
    if groups == 1 {
        return x;
    }
    let [batch_size, num_key_value_heads, seq_length, head_dim] = x.dims();
    x.unsqueeze_dim::<5>(2).repeat_dim(2, groups).reshape([
        batch_size,
        num_key_value_heads * groups,
        seq_length,
        head_dim,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn repeated_head_h_is_input_head_h_over_groups() {
        let device = Default::default();
        let (batch, kv_heads, seq, head_dim, groups) = (2, 3, 5, 4, 2);
        let x = Tensor::<B, 4>::random(
            [batch, kv_heads, seq, head_dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y = repeat_key_value(x.clone(), groups);
        assert_eq!(y.dims(), [batch, kv_heads * groups, seq, head_dim]);
        for head in 0..kv_heads * groups {
            let expected = x.clone().narrow(1, head / groups, 1);
            y.clone()
                .narrow(1, head, 1)
                .into_data()
                .assert_eq(&expected.into_data(), true);
        }
    }

    #[test]
    fn one_group_is_the_identity() {
        let device = Default::default();
        let x = Tensor::<B, 4>::random([1, 2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        repeat_key_value(x.clone(), 1)
            .into_data()
            .assert_approx_eq::<f32>(&x.into_data(), Tolerance::absolute(0.0));
    }
}
