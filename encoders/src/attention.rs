//! Scaled dot-product attention with an additive bias (BEiT and WavLM relative position biases,
//! Llama's causal mask) and a key-padding mask, and the head split/merge reshapes.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The additive value used for masked logits: finite, so that a fully masked row gives a uniform
/// distribution rather than NaN (as PyTorch's `finfo(dtype).min` masks do).
pub const MASKED: f32 = -1.0e9;

/// `softmax(q·kᵀ·scale + bias + mask)·v`.
///
/// # Shapes
/// - `query`: `[batch, heads, t_query, d_head]`
/// - `key`, `value`: `[batch, heads, t_key, d_head]`
/// - `bias`: broadcastable to `[batch, heads, t_query, t_key]` (e.g. `[1, heads, t, t]`)
/// - `key_valid`: `[batch, t_key]`, 1.0 for real positions and 0.0 for padding
/// - output: `[batch, heads, t_query, d_head]`
pub fn attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    scale: f64,
    bias: Option<Tensor<B, 4>>,
    key_valid: Option<Tensor<B, 2>>,
) -> Tensor<B, 4> {
    let mut scores = query.matmul(key.swap_dims(2, 3)).mul_scalar(scale);
    if let Some(bias) = bias {
        scores = scores + bias;
    }
    if let Some(valid) = key_valid {
        let [batch, t_key] = valid.dims();
        // Filled, not added: `(1 − valid)·MASKED` would be `0·(−inf)` = NaN in f16.
        let padding = valid
            .lower_elem(0.5)
            .reshape([batch, 1, 1, t_key])
            .expand(scores.dims());
        scores = scores.mask_fill(padding, MASKED);
    }
    softmax(scores, 3).matmul(value)
}

/// Splits the feature axis into heads.
///
/// # Shapes
/// - `x`: `[batch, time, heads · d_head]`
/// - output: `[batch, heads, time, d_head]`
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [batch, time, d_model] = x.dims();
    x.reshape([batch, time, heads, d_model / heads])
        .swap_dims(1, 2)
}

/// Merges the heads back into the feature axis.
///
/// # Shapes
/// - `x`: `[batch, heads, time, d_head]`
/// - output: `[batch, time, heads · d_head]`
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    let [batch, heads, time, d_head] = x.dims();
    x.swap_dims(1, 2).reshape([batch, time, heads * d_head])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn padding_mask_equals_attention_over_the_valid_keys_only() {
        let device = Default::default();
        let q = Tensor::<B, 4>::random([1, 2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<B, 4>::random([1, 2, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<B, 4>::random([1, 2, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let valid = Tensor::<B, 2>::from_floats([[1.0, 1.0, 1.0, 0.0, 0.0]], &device);
        let masked = attention(q.clone(), k.clone(), v.clone(), 0.5, None, Some(valid));
        let cut = attention(
            q,
            k.slice([0..1, 0..2, 0..3]),
            v.slice([0..1, 0..2, 0..3]),
            0.5,
            None,
            None,
        );
        masked
            .into_data()
            .assert_approx_eq::<f32>(&cut.into_data(), Tolerance::absolute(1e-6));
    }

    #[test]
    fn split_then_merge_is_the_identity() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let y = merge_heads(split_heads(x.clone(), 4));
        x.into_data().assert_eq(&y.into_data(), true);
    }
}
