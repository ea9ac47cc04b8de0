//! Fused forward and backward of the per-feature multi-head DAAM
//! ([`crate::DensityAdaptiveAttention`]; paper Alg. 1 and 3, authors' `DAAM`/`MultiHeadDAAM`).
//!
//! For each outer index `b`, head `h` (a chunk of `G` positions on the statistics axis) and
//! feature `d` (the inner axis), over the chunk's positions:
//!
//! ```text
//! μ = mean(x)   v = mean(x²) − μ²   var = |v| + 1e-8   s = sqrt(var + 1e-5)
//! y = (x − (μ + δ[h,d])) / s        w = exp(−k y²)      out = x ⊙ w
//! k = 1 / (2 ξ[h,d])  (GaussianForm::Variance)   or   1 / (2 ξ[h,d]²)  (GaussianForm::StdDev)
//! ```
//!
//! Backward, with `g = ∂L/∂out` and `a = ∂L/∂y = g x w (−2 k y)`:
//!
//! ```text
//! ∂L/∂k = Σ g x w (−y²)       ∂L/∂δ = −Σa / s       ∂L/∂s = −Σ(a y) / s
//! ∂L/∂v = ∂L/∂s · sign(v) / (2 s)
//! ∂L/∂x = g w + a / s − Σa / (s G) + ∂L/∂v · 2 (x − μ) / G
//! ```
//! (`sign(0) = 0`, as PyTorch's `abs` backward). Arithmetic runs in `f64` whatever the storage
//! type, so f32 results are the exact answer rounded (the `mean(x²) − μ²` form cancels badly
//! in f32).

use rayon::prelude::*;

use super::simd::multiversion;
use super::{HeadChunks, Real, ViewDims};
use crate::GaussianForm;

/// Added to the absolute variance (authors' code, `IEMOCAP/DAAMv1.py` L115).
pub const VARIANCE_FLOOR: f64 = 1e-8;
/// Added under the square root of the normaliser (authors' `eps`, L121).
pub const NORM_EPS: f64 = 1e-5;

/// Learned parameters and settings of one call.
#[derive(Debug, Clone, Copy)]
pub struct PerFeatureParams<'a, F> {
    /// δ, `[num_heads, inner]`.
    pub mean_offset: &'a [F],
    /// ξ, `[num_heads, inner]`.
    pub scaled_variance: &'a [F],
    /// Heads splitting the statistics axis (must divide it).
    pub num_heads: usize,
    /// 2ξ or 2ξ² in the exponent.
    pub form: GaussianForm,
}

/// Gradients of the parameters, `[num_heads, inner]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct PerFeatureParamGrads<F> {
    /// ∂L/∂δ.
    pub mean_offset: Vec<F>,
    /// ∂L/∂ξ.
    pub scaled_variance: Vec<F>,
}

/// Per-column statistics of one chunk, in f64.
struct ChunkStats {
    mean: Vec<f64>,
    raw_variance: Vec<f64>,
    inv_std: Vec<f64>,
}

#[inline(always)]
fn chunk_stats<F: Real>(x: &[F], inner: usize) -> ChunkStats {
    let rows = x.len() / inner;
    let mut mean = vec![0.0; inner];
    let mut raw_variance = vec![0.0; inner];
    for row in x.chunks_exact(inner) {
        for ((s, q), &v) in mean.iter_mut().zip(raw_variance.iter_mut()).zip(row) {
            let v = v.to_f64_lossy();
            *s += v;
            *q += v * v;
        }
    }
    let n = rows as f64;
    let mut inv_std = vec![0.0; inner];
    for ((m, v), is) in mean
        .iter_mut()
        .zip(raw_variance.iter_mut())
        .zip(inv_std.iter_mut())
    {
        *m /= n;
        *v = *v / n - *m * *m;
        *is = 1.0 / (v.abs() + VARIANCE_FLOOR + NORM_EPS).sqrt();
    }
    ChunkStats {
        mean,
        raw_variance,
        inv_std,
    }
}

/// Per column of a chunk: the Gaussian's centre `μ + δ` and the exponent scale `k`.
#[inline(always)]
fn head_constants<F: Real>(
    stats: &ChunkStats,
    delta: &[F],
    xi: &[F],
    form: GaussianForm,
) -> (Vec<f64>, Vec<f64>) {
    let center = stats
        .mean
        .iter()
        .zip(delta)
        .map(|(&m, &d)| m + d.to_f64_lossy())
        .collect();
    let k = xi
        .iter()
        .map(|&c| exponent_scale(c.to_f64_lossy(), form))
        .collect();
    (center, k)
}

/// `k` of the exponent `exp(−k y²)` for one ξ.
#[inline(always)]
fn exponent_scale(xi: f64, form: GaussianForm) -> f64 {
    match form {
        GaussianForm::Variance => 1.0 / (2.0 * xi),
        GaussianForm::StdDev => 1.0 / (2.0 * xi * xi),
    }
}

/// `∂k/∂ξ` for one ξ.
#[inline(always)]
fn exponent_scale_grad(xi: f64, form: GaussianForm) -> f64 {
    match form {
        GaussianForm::Variance => -1.0 / (2.0 * xi * xi),
        GaussianForm::StdDev => -1.0 / (xi * xi * xi),
    }
}

fn check<F>(x: &[F], dims: ViewDims, params: &PerFeatureParams<'_, F>) {
    assert_eq!(x.len(), dims.len(), "input length does not match its dims");
    assert_eq!(
        dims.axis % params.num_heads,
        0,
        "num_heads ({}) must divide the sequence length ({})",
        params.num_heads,
        dims.axis
    );
    let expected = params.num_heads * dims.inner;
    assert_eq!(params.mean_offset.len(), expected, "mean_offset length");
    assert_eq!(
        params.scaled_variance.len(),
        expected,
        "scaled_variance length"
    );
}

/// Forward pass: writes `out = x ⊙ w` and `weights = w`, both `[outer, axis, inner]`.
pub fn forward<F: Real>(
    x: &[F],
    dims: ViewDims,
    params: &PerFeatureParams<'_, F>,
    out: &mut [F],
    weights: &mut [F],
) {
    check(x, dims, params);
    let chunks = HeadChunks {
        axis: dims.axis,
        num_heads: params.num_heads,
    };
    let inner = dims.inner;
    chunks
        .split_mut(out, dims)
        .into_par_iter()
        .zip(chunks.split_mut(weights, dims))
        .for_each(|((o, h, out), (_, _, w))| {
            let start = chunks.offset(o, h, dims);
            let x = &x[start..start + out.len()];
            let heads = h * inner..(h + 1) * inner;
            let delta = &params.mean_offset[heads.clone()];
            let xi = &params.scaled_variance[heads];
            forward_chunk(x, out, w, delta, xi, params.form);
        });
}

multiversion!(fn forward_chunk<F>(
    x: &[F],
    out: &mut [F],
    w: &mut [F],
    delta: &[F],
    xi: &[F],
    form: GaussianForm,
) => forward_chunk_body);

/// One `(outer, head)` chunk, `[rows, inner]`.
#[inline(always)]
fn forward_chunk_body<F: Real>(
    x: &[F],
    out: &mut [F],
    w: &mut [F],
    delta: &[F],
    xi: &[F],
    form: GaussianForm,
) {
    let inner = delta.len();
    let stats = chunk_stats(x, inner);
    let (center, k) = head_constants(&stats, delta, xi, form);
    for ((x_row, out_row), w_row) in x
        .chunks_exact(inner)
        .zip(out.chunks_exact_mut(inner))
        .zip(w.chunks_exact_mut(inner))
    {
        for ((((&v, o), wv), (&c, &is)), &k) in x_row
            .iter()
            .zip(out_row.iter_mut())
            .zip(w_row.iter_mut())
            .zip(center.iter().zip(&stats.inv_std))
            .zip(&k)
        {
            let v = v.to_f64_lossy();
            let y = (v - c) * is;
            let weight = <F as Real>::exp(-(k * y * y));
            *wv = F::of(weight);
            *o = F::of(v * weight);
        }
    }
}

/// Backward pass: writes `grad_x` (`[outer, axis, inner]`) and returns the parameter gradients.
/// `weights` is the `w` the forward produced; `grad_out` is `∂L/∂out`.
pub fn backward<F: Real>(
    x: &[F],
    weights: &[F],
    grad_out: &[F],
    dims: ViewDims,
    params: &PerFeatureParams<'_, F>,
    grad_x: &mut [F],
) -> PerFeatureParamGrads<F> {
    check(x, dims, params);
    let chunks = HeadChunks {
        axis: dims.axis,
        num_heads: params.num_heads,
    };
    let inner = dims.inner;
    let num_heads = params.num_heads;
    // Group the (outer, head) chunks by head: each task owns one head's parameter gradients
    // and walks its chunks in order, so no per-chunk partial buffers are needed.
    let mut by_head: Vec<Vec<(usize, &mut [F])>> = (0..num_heads).map(|_| Vec::new()).collect();
    for (o, h, piece) in chunks.split_mut(grad_x, dims) {
        by_head[h].push((o, piece));
    }
    let grads: Vec<(Vec<f64>, Vec<f64>)> = by_head
        .into_par_iter()
        .enumerate()
        .map(|(h, pieces)| {
            let heads = h * inner..(h + 1) * inner;
            let mut d_delta = vec![0.0f64; inner];
            let mut d_xi = vec![0.0f64; inner];
            for (o, grad_x) in pieces {
                let start = chunks.offset(o, h, dims);
                let range = start..start + grad_x.len();
                backward_chunk(
                    &x[range.clone()],
                    &weights[range.clone()],
                    &grad_out[range],
                    &params.mean_offset[heads.clone()],
                    &params.scaled_variance[heads.clone()],
                    params.form,
                    grad_x,
                    &mut d_delta,
                    &mut d_xi,
                );
            }
            (d_delta, d_xi)
        })
        .collect();
    let (delta, xi): (Vec<_>, Vec<_>) = grads.into_iter().unzip();
    let flatten = |v: Vec<Vec<f64>>| v.into_iter().flatten().map(F::of).collect();
    PerFeatureParamGrads {
        mean_offset: flatten(delta),
        scaled_variance: flatten(xi),
    }
}

multiversion!(fn backward_chunk<F>(
    x: &[F],
    w: &[F],
    g: &[F],
    delta: &[F],
    xi: &[F],
    form: GaussianForm,
    grad_x: &mut [F],
    d_delta: &mut [f64],
    d_xi: &mut [f64],
) => backward_chunk_body);

/// One `(outer, head)` chunk, `[rows, inner]`; writes `grad_x` and adds this chunk's parameter
/// gradients to `d_delta` and `d_xi`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_chunk_body<F: Real>(
    x: &[F],
    w: &[F],
    g: &[F],
    delta: &[F],
    xi: &[F],
    form: GaussianForm,
    grad_x: &mut [F],
    d_delta: &mut [f64],
    d_xi: &mut [f64],
) {
    let inner = delta.len();
    let rows = x.len() / inner;
    let stats = chunk_stats(x, inner);
    let (center, mut minus_two_k) = head_constants(&stats, delta, xi, form);
    // −2k, the factor of ∂L/∂y = −2k y · g x w.
    minus_two_k.iter_mut().for_each(|k| *k *= -2.0);
    // Pass 1: reductions over the chunk.
    let mut sum_a = vec![0.0; inner];
    let mut sum_ay = vec![0.0; inner];
    let mut d_k = vec![0.0; inner];
    for ((x_row, w_row), g_row) in x
        .chunks_exact(inner)
        .zip(w.chunks_exact(inner))
        .zip(g.chunks_exact(inner))
    {
        for (((((&v, &wv), &gv), (&c, &is)), &mk), ((sa, say), dk)) in x_row
            .iter()
            .zip(w_row)
            .zip(g_row)
            .zip(center.iter().zip(&stats.inv_std))
            .zip(&minus_two_k)
            .zip(sum_a.iter_mut().zip(sum_ay.iter_mut()).zip(d_k.iter_mut()))
        {
            let v = v.to_f64_lossy();
            let y = (v - c) * is;
            let gxw = gv.to_f64_lossy() * v * wv.to_f64_lossy();
            let a = mk * y * gxw;
            *sa += a;
            *say += a * y;
            *dk -= gxw * y * y;
        }
    }
    // Per-column coefficients of ∂L/∂x.
    let n = rows as f64;
    let mut coef_mean = vec![0.0; inner];
    let mut coef_var = vec![0.0; inner];
    for d in 0..inner {
        let inv_s = stats.inv_std[d];
        let d_s = -sum_ay[d] * inv_s;
        let d_v = d_s * sign_or_zero(stats.raw_variance[d]) * inv_s / 2.0;
        coef_mean[d] = -sum_a[d] * inv_s / n - d_v * 2.0 / n * stats.mean[d];
        coef_var[d] = d_v * 2.0 / n;
        d_delta[d] -= sum_a[d] * inv_s;
        d_xi[d] += d_k[d] * exponent_scale_grad(xi[d].to_f64_lossy(), form);
    }
    // Pass 2: ∂L/∂x = g w + a/s + coef_mean + coef_var · x.
    for (((x_row, w_row), g_row), gx_row) in x
        .chunks_exact(inner)
        .zip(w.chunks_exact(inner))
        .zip(g.chunks_exact(inner))
        .zip(grad_x.chunks_exact_mut(inner))
    {
        for (((((&v, &wv), &gv), gx), (&c, &is)), ((&mk, &cm), &cv)) in x_row
            .iter()
            .zip(w_row)
            .zip(g_row)
            .zip(gx_row.iter_mut())
            .zip(center.iter().zip(&stats.inv_std))
            .zip(minus_two_k.iter().zip(&coef_mean).zip(&coef_var))
        {
            let v = v.to_f64_lossy();
            let (wv, gv) = (wv.to_f64_lossy(), gv.to_f64_lossy());
            let y = (v - c) * is;
            let a = mk * y * gv * v * wv;
            *gx = F::of(gv * wv + a * is + cm + cv * v);
        }
    }
}

/// `sign(v)` with `sign(0) = 0` (PyTorch's `abs` backward).
#[inline(always)]
fn sign_or_zero(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}
