//! Fused forward and backward of one multi-head mixture layer
//! ([`crate::MixtureDensityAttention`]; paper App. B Alg. 2, authors' `DensityAdaptiveAttention`).
//!
//! For each outer index, head `h` (a chunk of `n` positions on the statistics axis, the last head
//! taking the remainder) and inner index, over the chunk's positions:
//!
//! ```text
//! μ = mean(x)   V = Σ(x − μ)² / (n − 1) + ε   (V = ε when n = 1)   z = x − μ
//! ℓ = −Σ_i p_i (z − m_i)² / (2V)   with p_i = 1 / c_i²
//! mix = softmax_axis(ℓ)            out = x ⊙ mix
//! ```
//!
//! Backward, with `g = ∂L/∂out`, `e = ∂L/∂ℓ = mix (g x − Σ mix g x)` (softmax backward),
//! `P = Σ p_i`, `M = Σ p_i m_i`, `Q = Σ p_i (z − m_i)²`:
//!
//! ```text
//! ∂L/∂z = −e (P z − M) / V      ∂L/∂V = Σ e Q / (2V²)
//! ∂L/∂x = g mix + ∂L/∂z − mean(∂L/∂z) + ∂L/∂V · 2z / (n − 1)
//! ∂L/∂m_i = Σ e p_i (z − m_i) / V      ∂L/∂c_i = Σ e (z − m_i)² / (V c_i³)
//! ```
//!
//! Arithmetic runs in `f64` whatever the storage type, so f32 results are the exact answer
//! rounded (the softmax backward and `∂L/∂z − mean(∂L/∂z)` cancel in f32).

use rayon::prelude::*;

use super::simd::multiversion;
use super::{HeadChunks, Real, ViewDims};

/// Columns of the inner axis processed together (keeps a chunk block in L1/L2).
const BLOCK: usize = 256;

/// Learned parameters and settings of one call.
#[derive(Debug, Clone, Copy)]
pub struct MixtureParams<'a, F> {
    /// Mean offsets m, `[num_heads, num_gaussians]`.
    pub mean_offsets: &'a [F],
    /// Scales c, `[num_heads, num_gaussians]`.
    pub c: &'a [F],
    /// Heads splitting the statistics axis.
    pub num_heads: usize,
    /// Gaussians per head.
    pub num_gaussians: usize,
    /// ε added to the variance.
    pub eps: f64,
}

/// Gradients of the parameters, `[num_heads, num_gaussians]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureParamGrads<F> {
    /// ∂L/∂m.
    pub mean_offsets: Vec<F>,
    /// ∂L/∂c.
    pub c: Vec<F>,
}

fn check<F>(x: &[F], dims: ViewDims, params: &MixtureParams<'_, F>) {
    assert_eq!(x.len(), dims.len(), "input length does not match its dims");
    assert!(
        params.num_heads >= 1 && params.num_heads <= dims.axis,
        "num_heads ({}) must be between 1 and the norm axis length ({})",
        params.num_heads,
        dims.axis
    );
    let expected = params.num_heads * params.num_gaussians;
    assert_eq!(params.mean_offsets.len(), expected, "mean_offsets length");
    assert_eq!(params.c.len(), expected, "c length");
}

/// Column mean and `1 / V` of a block of a chunk.
#[inline(always)]
fn block_stats<F: Real>(
    x: &[F],
    rows: usize,
    inner: usize,
    cols: core::ops::Range<usize>,
    eps: f64,
    mean: &mut [f64; BLOCK],
    inv_var: &mut [f64; BLOCK],
) {
    let width = cols.len();
    mean[..width].fill(0.0);
    inv_var[..width].fill(0.0);
    for row in x.chunks_exact(inner) {
        for (m, &v) in mean.iter_mut().zip(&row[cols.clone()]) {
            *m += v.to_f64_lossy();
        }
    }
    for m in mean[..width].iter_mut() {
        *m /= rows as f64;
    }
    if rows > 1 {
        for row in x.chunks_exact(inner) {
            for ((s, &m), &v) in inv_var.iter_mut().zip(mean.iter()).zip(&row[cols.clone()]) {
                let z = v.to_f64_lossy() - m;
                *s += z * z;
            }
        }
    }
    // A chunk of one position has no spread: its variance is defined as ε (not NaN).
    let denom = rows.saturating_sub(1).max(1) as f64;
    for s in inv_var[..width].iter_mut() {
        *s = 1.0 / (*s / denom + eps);
    }
}

/// `p_i = 1 / c_i²` of one head.
#[inline(always)]
fn precisions<F: Real>(c: &[F]) -> Vec<f64> {
    c.iter()
        .map(|&c| 1.0 / (c.to_f64_lossy() * c.to_f64_lossy()))
        .collect()
}

/// The mixture of one block, row-major `[rows, BLOCK]` in `mix` (first `width` columns used):
/// `softmax` over rows of `ℓ = −½ Σ_i p_i (x − μ − m_i)² / V`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_mixture<F: Real>(
    x: &[F],
    inner: usize,
    cols: core::ops::Range<usize>,
    mean: &[f64; BLOCK],
    inv_var: &[f64; BLOCK],
    m: &[f64],
    p: &[f64],
    mix: &mut [f64],
) {
    let width = cols.len();
    let mut max = [f64::NEG_INFINITY; BLOCK];
    for (x_row, l_row) in x.chunks_exact(inner).zip(mix.chunks_exact_mut(BLOCK)) {
        let l_row = &mut l_row[..width];
        l_row.fill(0.0);
        for (&m_i, &p_i) in m.iter().zip(p) {
            for ((l, &v), &mu) in l_row.iter_mut().zip(&x_row[cols.clone()]).zip(mean) {
                let t = v.to_f64_lossy() - mu - m_i;
                *l += p_i * t * t;
            }
        }
        for ((l, mx), &iv) in l_row.iter_mut().zip(&mut max).zip(inv_var) {
            *l = -0.5 * *l * iv;
            *mx = mx.max(*l);
        }
    }
    let mut sum = [0.0; BLOCK];
    for l_row in mix.chunks_exact_mut(BLOCK) {
        for ((l, &mx), s) in l_row[..width].iter_mut().zip(&max).zip(&mut sum) {
            *l = <F as Real>::exp(*l - mx);
            *s += *l;
        }
    }
    for l_row in mix.chunks_exact_mut(BLOCK) {
        for (l, &s) in l_row[..width].iter_mut().zip(&sum) {
            *l /= s;
        }
    }
}

/// Forward pass: writes `out = x ⊙ mix` and `weights = mix`, both `[outer, axis, inner]`.
pub fn forward<F: Real>(
    x: &[F],
    dims: ViewDims,
    params: &MixtureParams<'_, F>,
    out: &mut [F],
    weights: &mut [F],
) {
    check(x, dims, params);
    let chunks = HeadChunks {
        axis: dims.axis,
        num_heads: params.num_heads,
    };
    let (inner, ng) = (dims.inner, params.num_gaussians);
    chunks
        .split_mut(out, dims)
        .into_par_iter()
        .zip(chunks.split_mut(weights, dims))
        .for_each(|((o, h, out), (_, _, mix))| {
            let start = chunks.offset(o, h, dims);
            let heads = h * ng..(h + 1) * ng;
            forward_chunk(
                &x[start..start + out.len()],
                out,
                mix,
                &params.mean_offsets[heads.clone()],
                &params.c[heads],
                inner,
                params.eps,
            );
        });
}

/// Backward pass: writes `grad_x` (`[outer, axis, inner]`) and returns the parameter gradients.
/// `grad_out` is `∂L/∂out`. The mixture is recomputed in f64 rather than read back from the
/// forward's rounded weights: the softmax backward `mix (g x − Σ mix g x)` cancels.
pub fn backward<F: Real>(
    x: &[F],
    grad_out: &[F],
    dims: ViewDims,
    params: &MixtureParams<'_, F>,
    grad_x: &mut [F],
) -> MixtureParamGrads<F> {
    check(x, dims, params);
    let chunks = HeadChunks {
        axis: dims.axis,
        num_heads: params.num_heads,
    };
    let (inner, ng) = (dims.inner, params.num_gaussians);
    // Per (outer, head): [∂m_0..∂m_N, ∂c_0..∂c_N].
    let partials: Vec<(usize, Vec<f64>)> = chunks
        .split_mut(grad_x, dims)
        .into_par_iter()
        .map(|(o, h, grad_x)| {
            let start = chunks.offset(o, h, dims);
            let range = start..start + grad_x.len();
            let heads = h * ng..(h + 1) * ng;
            let acc = backward_chunk(
                &x[range.clone()],
                &grad_out[range],
                grad_x,
                &params.mean_offsets[heads.clone()],
                &params.c[heads],
                inner,
                params.eps,
            );
            (h, acc)
        })
        .collect();
    let mut mean_offsets = vec![0.0f64; params.num_heads * ng];
    let mut c = vec![0.0f64; params.num_heads * ng];
    for (h, acc) in partials {
        for i in 0..ng {
            mean_offsets[h * ng + i] += acc[i];
            c[h * ng + i] += acc[ng + i];
        }
    }
    MixtureParamGrads {
        mean_offsets: mean_offsets.into_iter().map(F::of).collect(),
        c: c.into_iter().map(F::of).collect(),
    }
}

multiversion!(fn forward_chunk<F>(
    x: &[F],
    out: &mut [F],
    mix: &mut [F],
    mean_offsets: &[F],
    c: &[F],
    inner: usize,
    eps: f64,
) => forward_chunk_body);

/// One `(outer, head)` chunk, `[rows, inner]`.
#[inline(always)]
fn forward_chunk_body<F: Real>(
    x: &[F],
    out: &mut [F],
    mix: &mut [F],
    mean_offsets: &[F],
    c: &[F],
    inner: usize,
    eps: f64,
) {
    let rows = x.len() / inner;
    let m: Vec<f64> = mean_offsets.iter().map(|v| v.to_f64_lossy()).collect();
    let p = precisions(c);
    let mut mean = [0.0; BLOCK];
    let mut inv_var = [0.0; BLOCK];
    // The mixture of the whole block, row-major `[rows, BLOCK]`.
    let mut block = vec![0.0f64; rows * BLOCK];
    for c0 in (0..inner).step_by(BLOCK) {
        let cols = c0..(c0 + BLOCK).min(inner);
        let width = cols.len();
        block_stats(x, rows, inner, cols.clone(), eps, &mut mean, &mut inv_var);
        block_mixture(x, inner, cols, &mean, &inv_var, &m, &p, &mut block);
        for (((x_row, b_row), w_row), out_row) in x
            .chunks_exact(inner)
            .zip(block.chunks_exact(BLOCK))
            .zip(mix.chunks_exact_mut(inner))
            .zip(out.chunks_exact_mut(inner))
        {
            for col in 0..width {
                let weight = b_row[col];
                w_row[c0 + col] = F::of(weight);
                out_row[c0 + col] = F::of(x_row[c0 + col].to_f64_lossy() * weight);
            }
        }
    }
}

multiversion!(fn backward_chunk<F>(
    x: &[F],
    g: &[F],
    grad_x: &mut [F],
    mean_offsets: &[F],
    c: &[F],
    inner: usize,
    eps: f64,
) -> Vec<f64> => backward_chunk_body);

/// One `(outer, head)` chunk, `[rows, inner]`: writes `grad_x` and returns this chunk's
/// `[∂m_0..∂m_N, ∂c_0..∂c_N]`.
#[inline(always)]
fn backward_chunk_body<F: Real>(
    x: &[F],
    g: &[F],
    grad_x: &mut [F],
    mean_offsets: &[F],
    c: &[F],
    inner: usize,
    eps: f64,
) -> Vec<f64> {
    let rows = x.len() / inner;
    let ng = c.len();
    let m: Vec<f64> = mean_offsets.iter().map(|v| v.to_f64_lossy()).collect();
    let p = precisions(c);
    let total_p: f64 = p.iter().sum();
    let total_pm: f64 = p.iter().zip(&m).map(|(pi, mi)| pi * mi).sum();
    let mut acc = vec![0.0f64; 2 * ng];
    let mut mean = [0.0; BLOCK];
    let mut inv_var = [0.0; BLOCK];
    let mut s = [0.0; BLOCK];
    let mut d_var = [0.0; BLOCK];
    let mut sum_dz = [0.0; BLOCK];
    let mut dm = vec![[0.0; BLOCK]; ng];
    let mut dc = vec![[0.0; BLOCK]; ng];
    // Mixture and ∂L/∂z of the block, row-major `[rows, BLOCK]`.
    let mut mix = vec![0.0f64; rows * BLOCK];
    let mut dz = vec![0.0f64; rows * BLOCK];
    for c0 in (0..inner).step_by(BLOCK) {
        let cols = c0..(c0 + BLOCK).min(inner);
        let width = cols.len();
        block_stats(x, rows, inner, cols.clone(), eps, &mut mean, &mut inv_var);
        block_mixture(x, inner, cols.clone(), &mean, &inv_var, &m, &p, &mut mix);
        s[..width].fill(0.0);
        for ((x_row, w_row), g_row) in x
            .chunks_exact(inner)
            .zip(mix.chunks_exact(BLOCK))
            .zip(g.chunks_exact(inner))
        {
            for col in 0..width {
                let c = c0 + col;
                s[col] += w_row[col] * g_row[c].to_f64_lossy() * x_row[c].to_f64_lossy();
            }
        }
        d_var[..width].fill(0.0);
        sum_dz[..width].fill(0.0);
        for i in 0..ng {
            dm[i][..width].fill(0.0);
            dc[i][..width].fill(0.0);
        }
        for (((x_row, w_row), g_row), dz_row) in x
            .chunks_exact(inner)
            .zip(mix.chunks_exact(BLOCK))
            .zip(g.chunks_exact(inner))
            .zip(dz.chunks_exact_mut(BLOCK))
        {
            for col in 0..width {
                let c = c0 + col;
                let v = x_row[c].to_f64_lossy();
                let z = v - mean[col];
                let e = w_row[col] * (g_row[c].to_f64_lossy() * v - s[col]);
                let dzv = -e * (total_p * z - total_pm) * inv_var[col];
                dz_row[col] = dzv;
                sum_dz[col] += dzv;
                for i in 0..ng {
                    let t = z - m[i];
                    let et = e * t;
                    d_var[col] += p[i] * et * t;
                    dm[i][col] += et;
                    dc[i][col] += et * t;
                }
            }
        }
        for i in 0..ng {
            let (mut sm, mut sc) = (0.0f64, 0.0f64);
            for col in 0..width {
                sm += dm[i][col] * inv_var[col];
                sc += dc[i][col] * inv_var[col];
            }
            let c_i = c[i].to_f64_lossy();
            acc[i] += sm * p[i];
            acc[ng + i] += sc / (c_i * c_i * c_i);
        }
        let n = rows as f64;
        let var_coef = if rows > 1 {
            2.0 / (rows - 1) as f64
        } else {
            0.0
        };
        for ((((x_row, w_row), g_row), gx_row), dz_row) in x
            .chunks_exact(inner)
            .zip(mix.chunks_exact(BLOCK))
            .zip(g.chunks_exact(inner))
            .zip(grad_x.chunks_exact_mut(inner))
            .zip(dz.chunks_exact(BLOCK))
        {
            for col in 0..width {
                let c = c0 + col;
                let z = x_row[c].to_f64_lossy() - mean[col];
                // ∂L/∂V = Σ e Q / (2V²), times ∂V/∂x = 2z / (n − 1).
                let dv = d_var[col] * inv_var[col] * inv_var[col] / 2.0;
                gx_row[c] = F::of(
                    g_row[c].to_f64_lossy() * w_row[col] + dz_row[col] - sum_dz[col] / n
                        + dv * var_coef * z,
                );
            }
        }
    }
    acc
}
