//! Scaled dot-product attention through [`DaamBackend::scaled_dot_product_attention`]: one
//! fused op on Flex ([`crate::kernel::attention`]), [`reference::scaled_dot_product_attention`]
//! elsewhere.
//!
//! Composed from burn ops, the core of the DAT heads' MHA and GQA (head transposes, a
//! broadcasting softmax and their backward on `[32, 8, 24, 24]` scores) cost about as much as
//! one of their `d_model × d_model` projections on Flex; fused it is a few milliseconds.

use burn::tensor::Tensor;

use crate::backend::{float, AttentionSettings, DaamBackend};

/// `softmax(Q Kᵀ / sqrt(head_dim)) V` per head, heads concatenated; query head `h` attends
/// with key/value head `h / (num_heads / num_kv_heads)` (`num_kv_heads = num_heads`: multi-head
/// attention).
///
/// # Shapes
/// - `q`: `[batch_size, seq_length, num_heads · head_dim]`
/// - `k`, `v`: `[batch_size, seq_length, num_kv_heads · head_dim]`
/// - output: `[batch_size, seq_length, num_heads · head_dim]`
///
/// # Panics
/// If the heads do not divide the widths, the key/value heads do not divide the query heads,
/// or the shapes disagree.
pub fn scaled_dot_product_attention<B: DaamBackend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    num_heads: usize,
    num_kv_heads: usize,
) -> Tensor<B, 3> {
    let [batch_size, seq_length, width] = q.dims();
    assert!(
        num_heads > 0 && width % num_heads == 0,
        "attention: {num_heads} heads do not divide the query width {width}"
    );
    assert!(
        num_kv_heads > 0 && num_heads.is_multiple_of(num_kv_heads),
        "attention: {num_kv_heads} key/value heads do not divide {num_heads} query heads"
    );
    let kv_shape = [batch_size, seq_length, width / num_heads * num_kv_heads];
    assert_eq!(k.dims(), kv_shape, "attention: key shape");
    assert_eq!(v.dims(), kv_shape, "attention: value shape");
    float(B::scaled_dot_product_attention(
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
        AttentionSettings {
            num_heads,
            num_kv_heads,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::composed;
    use crate::reference;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, Tolerance};

    type B = Autodiff<Flex>;

    fn inputs(heads: [usize; 2], head_dim: usize) -> [Tensor<B, 3>; 4] {
        let device = Default::default();
        let normal =
            |width| Tensor::<B, 3>::random([3, 5, width], Distribution::Normal(0.0, 1.0), &device);
        [
            normal(heads[0] * head_dim),
            normal(heads[1] * head_dim),
            normal(heads[1] * head_dim),
            normal(heads[0] * head_dim),
        ]
    }

    /// The fused op and the composed reference agree in output and every gradient, for
    /// multi-head and grouped-query heads.
    #[test]
    fn fused_matches_the_reference_and_its_gradients() {
        for heads in [[4, 4], [4, 2], [3, 1]] {
            let [q, k, v, g] = inputs(heads, 6);
            let run = |fused: bool| {
                let [q, k, v] = [&q, &k, &v].map(|t| t.clone().detach().require_grad());
                let out = if fused {
                    scaled_dot_product_attention(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        heads[0],
                        heads[1],
                    )
                } else {
                    reference::scaled_dot_product_attention(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        heads[0],
                        heads[1],
                    )
                };
                let grads = (out.clone() * g.clone()).sum().backward();
                let mut data = vec![out.inner().into_data()];
                for t in [&q, &k, &v] {
                    data.push(t.grad(&grads).unwrap().into_data());
                }
                data
            };
            for (a, b) in run(true).iter().zip(&run(false)) {
                a.assert_approx_eq::<f32>(b, Tolerance::default());
            }
        }
    }

    /// The composed backward (other backends) equals burn's autodiff of the reference.
    #[test]
    fn composed_backward_matches_autodiff() {
        let heads = [4, 2];
        let [q, k, v, g] = inputs(heads, 3);
        let settings = AttentionSettings {
            num_heads: heads[0],
            num_kv_heads: heads[1],
        };
        let prim = |t: &Tensor<B, 3>| t.clone().inner().into_primitive().tensor();
        let grads =
            composed::attention_backward::<Flex>(prim(&q), prim(&k), prim(&v), settings, prim(&g));
        let [q, k, v] = [&q, &k, &v].map(|t| t.clone().require_grad());
        let out = reference::scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), 4, 2);
        let expected = (out * g).sum().backward();
        for (got, t) in [(grads.q, &q), (grads.k, &k), (grads.v, &v)] {
            float::<Flex, 3>(got).into_data().assert_approx_eq::<f32>(
                &t.grad(&expected).unwrap().into_data(),
                Tolerance::default(),
            );
        }
    }

    #[test]
    #[should_panic = "attention: 3 key/value heads do not divide 4 query heads"]
    fn non_dividing_kv_heads_panic() {
        let device = Default::default();
        let t = |w| Tensor::<Flex, 3>::zeros([1, 2, w], &device);
        scaled_dot_product_attention(t(8), t(6), t(6), 4, 3);
    }
}
