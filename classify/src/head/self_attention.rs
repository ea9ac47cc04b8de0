//! burn's `MultiHeadAttention` computed with its own parameters: the projections as one 2-D
//! multiply each ([`daam::linear_rows`]), the attention core as one fused op
//! ([`daam::scaled_dot_product_attention`]).
//!
//! `MultiHeadAttention::forward` applies its four `Linear`s to `[batch_size, seq_length,
//! d_model]` directly; burn 0.21 then computes each weight gradient as `batch_size` separate
//! `d_model × d_model` products and sums them, which made the MHA heads' training step several
//! times slower than PyTorch's. The math is the module's (no masks; its dropout is 0 in the DAT
//! heads).

use burn::nn::attention::MultiHeadAttention;
use burn::tensor::Tensor;
use daam::{linear_rows, scaled_dot_product_attention, DaamBackend};

/// Self-attention of `mha` over the sequence axis: `softmax(Q Kᵀ / √d_k) V` per head, heads
/// concatenated, then the output projection.
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_model]`
/// - output: `[batch_size, seq_length, d_model]`
///
/// # Panics
/// If `x`'s width is not the module's `d_model`.
pub fn mha_self_attention<B: DaamBackend>(
    mha: &MultiHeadAttention<B>,
    x: Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [_, _, d_model] = x.dims();
    assert_eq!(
        d_model, mha.d_model,
        "MultiHeadAttention expects d_model {}, got {d_model}",
        mha.d_model
    );
    let query = linear_rows(&mha.query, x.clone()); // [batch_size, seq_length, d_model]
    let key = linear_rows(&mha.key, x.clone());
    let value = linear_rows(&mha.value, x);
    let context = scaled_dot_product_attention(query, key, value, mha.n_heads, mha.n_heads);
    linear_rows(&mha.output, context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::backend::Autodiff;
    use burn::nn::attention::{MhaInput, MultiHeadAttentionConfig};
    use burn::tensor::{Distribution, Tolerance};

    type B = Autodiff<TestBackend>;

    /// Output and every parameter gradient equal burn's `MultiHeadAttention::forward`.
    #[test]
    fn matches_burns_module_and_its_gradients() {
        let device = Default::default();
        let mha = MultiHeadAttentionConfig::new(12, 3)
            .with_dropout(0.0)
            .init::<B>(&device);
        let x = Tensor::<B, 3>::random([2, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<B, 3>::random([2, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let y = if ours {
                mha_self_attention(&mha, x.clone())
            } else {
                mha.forward(MhaInput::self_attn(x.clone())).context
            };
            let grads = (y.clone() * g.clone()).sum().backward();
            let mut out = vec![y.inner().into_data(), x.grad(&grads).unwrap().into_data()];
            for linear in [&mha.query, &mha.key, &mha.value, &mha.output] {
                out.push(linear.weight.grad(&grads).unwrap().into_data());
                out.push(
                    linear
                        .bias
                        .as_ref()
                        .unwrap()
                        .grad(&grads)
                        .unwrap()
                        .into_data(),
                );
            }
            out
        };
        for (a, b) in run(true).iter().zip(&run(false)) {
            a.assert_approx_eq::<f32>(b, Tolerance::default());
        }
    }

    #[test]
    #[should_panic = "MultiHeadAttention expects d_model 12, got 8"]
    fn wrong_width_panics() {
        let device = Default::default();
        let mha = MultiHeadAttentionConfig::new(12, 3).init::<TestBackend>(&device);
        mha_self_attention(&mha, Tensor::zeros([1, 2, 8], &device));
    }
}
