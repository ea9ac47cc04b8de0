//! Multi-head attention with a per-head additive bias shared by the batch, optionally scaled per
//! query row (WavLM's gate) and with padded keys masked, from and to the `[batch, time, d_model]`
//! layout of the projections.
//!
//! On Flex, per (batch entry, head) in parallel: the bias rows are written, `scale·q·kᵀ` is
//! accumulated onto them by one `gemm` call reading the heads in place (no split copies), the
//! rows are soft-maxed, and one more call multiplies by `v`; the heads are merged in one pass.
//! burn's composed form broadcasts the `[1, heads, t, t]` bias over the batch, which Flex runs
//! far slower than a same-shape add.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::gemm::{matmul, MatMut, MatRef};
use super::simd::{self, dispatch, exp};
use super::{flex_tensor, from_flex, into_flex, into_flex_optional, kernels_run, values};
use crate::attention::{attention, merge_heads, split_heads, MASKED};

/// The additive attention bias.
#[derive(Debug, Clone)]
pub struct AttentionBias<B: Backend> {
    /// `[num_heads, t_query, t_key]`, the same for every batch entry.
    pub bias: Tensor<B, 3>,
    /// `[batch_size, num_heads, t_query]`: a factor for each bias row (WavLM's gate), or `None`.
    pub row_scale: Option<Tensor<B, 3>>,
}

#[inline(always)]
fn softmax_rows_body(scores: &mut [f32], row_len: usize) {
    for row in scores.chunks_exact_mut(row_len) {
        let max = simd::max(row);
        for v in row.iter_mut() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / simd::sum_map(row, |v| v);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

dispatch!(fn softmax_rows(scores: &mut [f32], row_len: usize) => softmax_rows_body);

/// The dimensions of one fused attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    heads: usize,
    t_query: usize,
    t_key: usize,
    head_dim: usize,
}

impl Dims {
    fn d_model(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// The Flex kernel on row-major values; returns `[batch, t_query, d_model]`.
#[allow(clippy::too_many_arguments)]
fn attention_values(
    query: &[f32],
    key: &[f32],
    value: &[f32],
    d: Dims,
    scale: f32,
    bias: Option<&[f32]>,
    row_scale: Option<&[f32]>,
    key_valid: Option<&[f32]>,
) -> Vec<f32> {
    let d_model = d.d_model();
    let head_block = d.t_query * d.head_dim;
    let mut heads = vec![0.0; d.batch * d.heads * head_block]; // [batch, heads, t_query, head_dim]
    heads
        .par_chunks_mut(head_block)
        .enumerate()
        .for_each(|(task, out)| {
            let (b, h) = (task / d.heads, task % d.heads);
            let mut scores = vec![0.0; d.t_query * d.t_key];
            if let Some(bias) = bias {
                let rows = &bias[h * d.t_query * d.t_key..(h + 1) * d.t_query * d.t_key];
                match row_scale {
                    None => scores.copy_from_slice(rows),
                    Some(g) => {
                        let g = &g[task * d.t_query..(task + 1) * d.t_query];
                        for ((dst, src), &f) in scores
                            .chunks_exact_mut(d.t_key)
                            .zip(rows.chunks_exact(d.t_key))
                            .zip(g)
                        {
                            dst.iter_mut().zip(src).for_each(|(o, &s)| *o = f * s);
                        }
                    }
                }
            }
            matmul(
                MatMut::row_major(&mut scores, d.t_query, d.t_key),
                bias.is_some(),
                MatRef::new(
                    query,
                    b * d.t_query * d_model + h * d.head_dim,
                    [d.t_query, d.head_dim],
                    [d_model, 1],
                ),
                MatRef::new(
                    key,
                    b * d.t_key * d_model + h * d.head_dim,
                    [d.head_dim, d.t_key],
                    [1, d_model],
                ),
                scale,
                false,
            );
            if let Some(valid) = key_valid {
                let valid = &valid[b * d.t_key..(b + 1) * d.t_key];
                for row in scores.chunks_exact_mut(d.t_key) {
                    for (s, &v) in row.iter_mut().zip(valid) {
                        if v < 0.5 {
                            *s = MASKED;
                        }
                    }
                }
            }
            softmax_rows(&mut scores, d.t_key);
            matmul(
                MatMut::row_major(out, d.t_query, d.head_dim),
                false,
                MatRef::row_major(&scores, d.t_query, d.t_key),
                MatRef::new(
                    value,
                    b * d.t_key * d_model + h * d.head_dim,
                    [d.t_key, d.head_dim],
                    [d_model, 1],
                ),
                1.0,
                false,
            );
        });
    let mut merged = vec![0.0; d.batch * d.t_query * d_model];
    merged
        .par_chunks_mut(d.t_query * d_model)
        .enumerate()
        .for_each(|(b, out)| {
            for h in 0..d.heads {
                let head = &heads[(b * d.heads + h) * head_block..][..head_block];
                for (row, src) in out
                    .chunks_exact_mut(d_model)
                    .zip(head.chunks_exact(d.head_dim))
                {
                    row[h * d.head_dim..(h + 1) * d.head_dim].copy_from_slice(src);
                }
            }
        });
    merged
}

/// `softmax(scale·q·kᵀ + bias)·v` per head, the heads split from and merged back into the
/// feature axis; padded keys (`key_valid` 0.0) get the logit [`MASKED`].
///
/// # Shapes
/// - `query`: `[batch_size, t_query, d_model]`; `key`, `value`: `[batch_size, t_key, d_model]`
/// - `bias.bias`: `[num_heads, t_query, t_key]`; `bias.row_scale`: `[batch_size, num_heads,
///   t_query]`
/// - `key_valid`: `[batch_size, t_key]`
/// - output: `[batch_size, t_query, d_model]`
///
/// # Panics
/// When `d_model` is not a multiple of `num_heads` or the shapes disagree.
pub fn fused_attention<B: Backend>(
    query: Tensor<B, 3>,
    key: Tensor<B, 3>,
    value: Tensor<B, 3>,
    num_heads: usize,
    scale: f64,
    bias: Option<AttentionBias<B>>,
    key_valid: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    let [batch, t_query, d_model] = query.dims();
    let [_, t_key, _] = key.dims();
    assert!(
        num_heads > 0 && d_model % num_heads == 0,
        "attention: d_model {d_model} is not a multiple of num_heads {num_heads}"
    );
    assert_eq!(
        key.dims(),
        value.dims(),
        "attention: key {:?} and value {:?} differ",
        key.dims(),
        value.dims()
    );
    if let Some(b) = &bias {
        assert_eq!(
            b.bias.dims(),
            [num_heads, t_query, t_key],
            "attention bias [num_heads, t_query, t_key]"
        );
        if let Some(g) = &b.row_scale {
            assert_eq!(
                g.dims(),
                [batch, num_heads, t_query],
                "attention row scale [batch_size, num_heads, t_query]"
            );
        }
    }
    if !kernels_run::<B>() {
        return composed(query, key, value, num_heads, scale, bias, key_valid);
    }
    let dims = Dims {
        batch,
        heads: num_heads,
        t_query,
        t_key,
        head_dim: d_model / num_heads,
    };
    let flex = |t: Tensor<B, 3>| into_flex(t).ok();
    let (Some(q), Some(k), Some(v)) = (flex(query.clone()), flex(key.clone()), flex(value.clone()))
    else {
        return composed(query, key, value, num_heads, scale, bias, key_valid);
    };
    let flex_inputs = (
        into_flex_optional(bias.as_ref().map(|b| b.bias.clone())),
        into_flex_optional(bias.as_ref().and_then(|b| b.row_scale.clone())),
        into_flex_optional(key_valid.clone()),
    );
    let (Some(bias_flex), Some(row_flex), Some(valid_flex)) = flex_inputs else {
        return composed(query, key, value, num_heads, scale, bias, key_valid);
    };
    let bias_values = bias_flex.as_ref().map(values);
    let row_values = row_flex.as_ref().map(values);
    let valid_values = valid_flex.as_ref().map(values);
    let out = attention_values(
        &values(&q),
        &values(&k),
        &values(&v),
        dims,
        scale as f32,
        bias_values.as_deref(),
        row_values.as_deref(),
        valid_values.as_deref(),
    );
    from_flex(flex_tensor(out, &[batch, t_query, d_model]))
}

/// The same in burn tensor ops (every backend but Flex).
fn composed<B: Backend>(
    query: Tensor<B, 3>,
    key: Tensor<B, 3>,
    value: Tensor<B, 3>,
    num_heads: usize,
    scale: f64,
    bias: Option<AttentionBias<B>>,
    key_valid: Option<Tensor<B, 2>>,
) -> Tensor<B, 3> {
    let bias = bias.map(|b| {
        let bias = b.bias.unsqueeze::<4>(); // [1, num_heads, t_query, t_key]
        match b.row_scale {
            None => bias,
            Some(g) => g.unsqueeze_dim::<4>(3) * bias, // [batch, num_heads, t_query, t_key]
        }
    });
    let context = attention(
        split_heads(query, num_heads),
        split_heads(key, num_heads),
        split_heads(value, num_heads),
        scale,
        bias,
        key_valid,
    );
    merge_heads(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_tensor;
    use burn::backend::Flex;
    use burn::tensor::Tolerance;

    fn random<const D: usize>(seed: u64, shape: [usize; D]) -> Tensor<Flex, D> {
        test_tensor(shape, seed)
    }

    #[test]
    fn flex_kernel_matches_the_composed_ops_with_gate_and_padding() {
        let (batch, t_query, t_key, heads, d_model) = (3, 5, 7, 2, 6);
        let q = random(1, [batch, t_query, d_model]);
        let k = random(2, [batch, t_key, d_model]);
        let v = random(3, [batch, t_key, d_model]);
        let bias = AttentionBias {
            bias: random(4, [heads, t_query, t_key]),
            row_scale: Some(random(5, [batch, heads, t_query])),
        };
        let valid = Tensor::<Flex, 2>::from_floats(
            [
                [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            ],
            &Default::default(),
        );
        for (bias, valid) in [
            (None, None),
            (Some(bias.clone()), None),
            (
                Some(AttentionBias {
                    bias: bias.bias.clone(),
                    row_scale: None,
                }),
                Some(valid.clone()),
            ),
            (Some(bias), Some(valid)),
        ] {
            let expected = composed(
                q.clone(),
                k.clone(),
                v.clone(),
                heads,
                0.4,
                bias.clone(),
                valid.clone(),
            );
            let fused = fused_attention(q.clone(), k.clone(), v.clone(), heads, 0.4, bias, valid);
            fused
                .into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }

    #[test]
    #[should_panic = "not a multiple of num_heads"]
    fn heads_must_divide_d_model() {
        let x = random(6, [1, 2, 6]);
        let _ = fused_attention(x.clone(), x.clone(), x, 4, 1.0, None, None);
    }
}
