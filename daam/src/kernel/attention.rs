//! The core of (grouped-query) self-attention, forward and backward, on `[batch, seq, heads ·
//! head_dim]` rows: no head transposes, no broadcasting softmax.
//!
//! Query head `h` attends with key/value head `g = h / (num_heads / num_kv_heads)` (query heads
//! of a group are contiguous; `num_kv_heads = num_heads` is multi-head attention). Per batch
//! item and head, with `s = 1/sqrt(head_dim)`:
//!
//! ```text
//! P = softmax_j(s · Q_h K_gᵀ)          O_h = P V_g
//! ```
//!
//! Backward, with `G = ∂L/∂O_h`:
//!
//! ```text
//! ∂P = G V_gᵀ   ∂S = s · P ⊙ (∂P − rowsum(P ⊙ ∂P))   ∂Q_h = ∂S K_g
//! ∂K_g += ∂Sᵀ Q_h                                  ∂V_g += Pᵀ G
//! ```
//!
//! Every product is one small [`matmul`] reading the heads in place through their row stride
//! (`heads · head_dim`); `P` is recomputed in the backward (`seq × seq` per head: 24 × 24 in the
//! DAT heads). The softmax and the row sums run in f64. Batch items run in parallel.

use rayon::prelude::*;

use super::conv2d::matmul;

/// Sizes of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Batch items.
    pub batch: usize,
    /// Sequence length.
    pub seq_length: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (divide `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttentionDims {
    /// Floats of `q` (and of the output): `batch · seq · heads · head_dim`.
    pub fn q_len(&self) -> usize {
        self.batch * self.seq_length * self.num_heads * self.head_dim
    }

    /// Floats of `k` and of `v`: `batch · seq · kv_heads · head_dim`.
    pub fn kv_len(&self) -> usize {
        self.batch * self.seq_length * self.num_kv_heads * self.head_dim
    }

    fn check(&self, q: &[f32], k: &[f32], v: &[f32]) {
        assert!(
            self.num_kv_heads > 0 && self.num_heads.is_multiple_of(self.num_kv_heads),
            "attention: {} key/value heads do not divide {} query heads",
            self.num_kv_heads,
            self.num_heads
        );
        assert_eq!(q.len(), self.q_len(), "attention: query of {self:?}");
        assert_eq!(k.len(), self.kv_len(), "attention: key of {self:?}");
        assert_eq!(v.len(), self.kv_len(), "attention: value of {self:?}");
    }

    /// The key/value head of query head `h`.
    fn kv_head(&self, h: usize) -> usize {
        h / (self.num_heads / self.num_kv_heads)
    }

    /// Row strides of the query-shaped and the key/value-shaped tensors.
    fn strides(&self) -> (usize, usize) {
        (
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
        )
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }
}

/// Gradients of one call, laid out as the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionGrads {
    /// `∂L/∂q`.
    pub q: Vec<f32>,
    /// `∂L/∂k`.
    pub k: Vec<f32>,
    /// `∂L/∂v`.
    pub v: Vec<f32>,
}

/// `P = softmax(s · Q_h K_gᵀ)` (`[seq, seq]`) of query head `h` for one item's rows; `exps`
/// is a `seq`-long scratch row.
fn probabilities(
    q: &[f32],
    k: &[f32],
    d: &AttentionDims,
    h: usize,
    p: &mut [f32],
    exps: &mut [f64],
) {
    let (l, dk) = (d.seq_length, d.head_dim);
    let (q_stride, kv_stride) = d.strides();
    // S [l, l] = Q_h [l, dk] · K_gᵀ [dk, l]
    matmul(
        [l, l, dk],
        p,
        (l, 1),
        &q[h * dk..],
        (q_stride, 1),
        &k[d.kv_head(h) * dk..],
        (1, kv_stride),
        false,
        false,
    );
    let scale = d.scale();
    for row in p.chunks_exact_mut(l) {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        for (e, &s) in exps.iter_mut().zip(row.iter()) {
            *e = ((f64::from(s) - max) * scale).exp();
        }
        let sum: f64 = exps.iter().sum();
        for (p, e) in row.iter_mut().zip(exps.iter()) {
            *p = (e / sum) as f32;
        }
    }
}

/// One batch item's output rows.
fn forward_item(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: &AttentionDims,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let (l, dk) = (d.seq_length, d.head_dim);
    let (q_stride, kv_stride) = d.strides();
    let Scratch { p, exps, .. } = scratch;
    for h in 0..d.num_heads {
        probabilities(q, k, d, h, p, exps);
        // O_h [l, dk] = P [l, l] · V_g [l, dk]
        matmul(
            [l, dk, l],
            &mut out[h * dk..],
            (q_stride, 1),
            p,
            (l, 1),
            &v[d.kv_head(h) * dk..],
            (kv_stride, 1),
            false,
            false,
        );
    }
}

/// Forward pass: writes `out` (laid out as `q`).
///
/// # Panics
/// If the lengths do not fit `d` or the key/value heads do not divide the query heads.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims, out: &mut [f32]) {
    d.check(q, k, v);
    assert_eq!(out.len(), d.q_len(), "attention: output of {d:?}");
    let l = d.seq_length;
    let (q_stride, kv_stride) = d.strides();
    let (q_item, kv_item) = (l * q_stride, l * kv_stride);
    out.par_chunks_mut(q_item)
        .zip(q.par_chunks(q_item))
        .zip(k.par_chunks(kv_item).zip(v.par_chunks(kv_item)))
        .for_each_init(
            || Scratch::new(l),
            |scratch, ((out, q), (k, v))| forward_item(q, k, v, d, scratch, out),
        );
}

/// Per-worker scratch: `P` and `∂P` (then `∂S`), `[seq, seq]` each, and one f64 row.
struct Scratch {
    p: Vec<f32>,
    ds: Vec<f32>,
    exps: Vec<f64>,
}

impl Scratch {
    fn new(seq_length: usize) -> Self {
        Scratch {
            p: vec![0.0; seq_length * seq_length],
            ds: vec![0.0; seq_length * seq_length],
            exps: vec![0.0; seq_length],
        }
    }
}

/// One batch item's inputs and gradients.
struct Item<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    grad_out: &'a [f32],
    grad_q: &'a mut [f32],
    grad_k: &'a mut [f32],
    grad_v: &'a mut [f32],
}

/// One batch item's `∂q`, `∂k`, `∂v` rows.
fn backward_item(item: Item<'_>, d: &AttentionDims, scratch: &mut Scratch) {
    let (l, dk) = (d.seq_length, d.head_dim);
    let (q_stride, kv_stride) = d.strides();
    let Scratch { p, ds, exps } = scratch;
    let Item {
        q,
        k,
        v,
        grad_out,
        grad_q,
        grad_k,
        grad_v,
    } = item;
    let scale = d.scale();
    for h in 0..d.num_heads {
        let g = d.kv_head(h);
        probabilities(q, k, d, h, p, exps);
        // ∂P [l, l] = G [l, dk] · V_gᵀ [dk, l]
        matmul(
            [l, l, dk],
            ds,
            (l, 1),
            &grad_out[h * dk..],
            (q_stride, 1),
            &v[g * dk..],
            (1, kv_stride),
            false,
            false,
        );
        // ∂S = s · P ⊙ (∂P − rowsum(P ⊙ ∂P))
        for (prow, row) in p.chunks_exact(l).zip(ds.chunks_exact_mut(l)) {
            let weighted: f64 = prow
                .iter()
                .zip(row.iter())
                .map(|(&p, &dp)| f64::from(p) * f64::from(dp))
                .sum();
            for (s, &pij) in row.iter_mut().zip(prow) {
                *s = (scale * f64::from(pij) * (f64::from(*s) - weighted)) as f32;
            }
        }
        // ∂Q_h [l, dk] = ∂S [l, l] · K_g [l, dk]
        matmul(
            [l, dk, l],
            &mut grad_q[h * dk..],
            (q_stride, 1),
            ds,
            (l, 1),
            &k[g * dk..],
            (kv_stride, 1),
            false,
            false,
        );
        // ∂K_g [l, dk] += ∂Sᵀ [l, l] · Q_h [l, dk]
        matmul(
            [l, dk, l],
            &mut grad_k[g * dk..],
            (kv_stride, 1),
            ds,
            (1, l),
            &q[h * dk..],
            (q_stride, 1),
            true,
            false,
        );
        // ∂V_g [l, dk] += Pᵀ [l, l] · G [l, dk]
        matmul(
            [l, dk, l],
            &mut grad_v[g * dk..],
            (kv_stride, 1),
            p,
            (1, l),
            &grad_out[h * dk..],
            (q_stride, 1),
            true,
            false,
        );
    }
}

/// Backward pass for `grad_out = ∂L/∂out`.
///
/// # Panics
/// As [`forward`].
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    grad_out: &[f32],
    d: &AttentionDims,
) -> AttentionGrads {
    d.check(q, k, v);
    assert_eq!(grad_out.len(), d.q_len(), "attention: grad_out of {d:?}");
    let l = d.seq_length;
    let (q_stride, kv_stride) = d.strides();
    let (q_item, kv_item) = (l * q_stride, l * kv_stride);
    let mut grads = AttentionGrads {
        q: vec![0.0; q.len()],
        k: vec![0.0; k.len()],
        v: vec![0.0; v.len()],
    };
    grads
        .q
        .par_chunks_mut(q_item)
        .zip(grads.k.par_chunks_mut(kv_item))
        .zip(grads.v.par_chunks_mut(kv_item))
        .zip(q.par_chunks(q_item).zip(grad_out.par_chunks(q_item)))
        .zip(k.par_chunks(kv_item).zip(v.par_chunks(kv_item)))
        .for_each_init(
            || Scratch::new(l),
            |scratch, ((((grad_q, grad_k), grad_v), (q, grad_out)), (k, v))| {
                let item = Item {
                    q,
                    k,
                    v,
                    grad_out,
                    grad_q,
                    grad_k,
                    grad_v,
                };
                backward_item(item, d, scratch)
            },
        );
    grads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        (0..n as u64)
            .map(|i| {
                let z = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed).wrapping_mul(0xBF58_476D);
                ((z >> 20) % 2000) as f64 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The definition, head by head, in f64.
    fn naive(q: &[f64], k: &[f64], v: &[f64], d: &AttentionDims) -> Vec<f64> {
        let (l, dk, hq, hk) = (d.seq_length, d.head_dim, d.num_heads, d.num_kv_heads);
        let mut out = vec![0.0; d.q_len()];
        for b in 0..d.batch {
            for h in 0..hq {
                let g = h / (hq / hk);
                for i in 0..l {
                    let scores: Vec<f64> = (0..l)
                        .map(|j| {
                            (0..dk)
                                .map(|e| {
                                    q[((b * l + i) * hq + h) * dk + e]
                                        * k[((b * l + j) * hk + g) * dk + e]
                                })
                                .sum::<f64>()
                                / (dk as f64).sqrt()
                        })
                        .collect();
                    let total: f64 = scores.iter().map(|s| s.exp()).sum();
                    for j in 0..l {
                        let pij = scores[j].exp() / total;
                        for e in 0..dk {
                            out[((b * l + i) * hq + h) * dk + e] +=
                                pij * v[((b * l + j) * hk + g) * dk + e];
                        }
                    }
                }
            }
        }
        out
    }

    fn cases() -> Vec<AttentionDims> {
        let d = |batch, seq_length, num_heads, num_kv_heads, head_dim| AttentionDims {
            batch,
            seq_length,
            num_heads,
            num_kv_heads,
            head_dim,
        };
        vec![
            d(2, 5, 3, 3, 4),
            d(3, 4, 4, 2, 11),
            d(1, 7, 2, 1, 9),
            d(2, 1, 2, 2, 3),
        ]
    }

    fn f32s(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }

    #[test]
    fn forward_matches_the_definition() {
        for d in cases() {
            let (q, k, v) = (
                values(d.q_len(), 1),
                values(d.kv_len(), 2),
                values(d.kv_len(), 3),
            );
            let mut out = vec![0.0f32; d.q_len()];
            forward(&f32s(&q), &f32s(&k), &f32s(&v), &d, &mut out);
            for (a, e) in out.iter().zip(naive(&q, &k, &v, &d)) {
                assert!((f64::from(*a) - e).abs() < 1e-5, "{d:?}: {a} vs {e}");
            }
        }
    }

    /// Central differences of `L = Σ g ⊙ attention(q, k, v)` on the f64 definition; the f32
    /// kernel within f32 rounding.
    #[test]
    fn backward_matches_finite_differences_of_the_definition() {
        const H: f64 = 1e-6;
        for d in cases() {
            let (q, k, v) = (
                values(d.q_len(), 4),
                values(d.kv_len(), 5),
                values(d.kv_len(), 6),
            );
            let g = values(d.q_len(), 7);
            let grads = backward(&f32s(&q), &f32s(&k), &f32s(&v), &f32s(&g), &d);
            let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
                naive(q, k, v, &d).iter().zip(&g).map(|(o, g)| o * g).sum()
            };
            let numeric = |which: usize, i: usize| {
                let mut args = [q.clone(), k.clone(), v.clone()];
                args[which][i] += H;
                let up = loss(&args[0], &args[1], &args[2]);
                args[which][i] -= 2.0 * H;
                let down = loss(&args[0], &args[1], &args[2]);
                (up - down) / (2.0 * H)
            };
            for (which, analytic) in [&grads.q, &grads.k, &grads.v].into_iter().enumerate() {
                for (i, &a) in analytic.iter().enumerate() {
                    let n = numeric(which, i);
                    assert!(
                        (f64::from(a) - n).abs() < 1e-4 * (1.0 + n.abs()),
                        "{d:?} input {which} [{i}]: {a} vs {n}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic = "attention: 3 key/value heads do not divide 4 query heads"]
    fn non_dividing_kv_heads_panic() {
        let d = AttentionDims {
            batch: 1,
            seq_length: 2,
            num_heads: 4,
            num_kv_heads: 3,
            head_dim: 2,
        };
        let mut out = vec![0.0; d.q_len()];
        forward(&[0.0; 16], &[0.0; 12], &[0.0; 12], &d, &mut out);
    }
}
