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

fn chunk_stats<F: Real>(x: &[F], rows: usize, inner: usize) -> ChunkStats {
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
    for ((m, v), is) in mean.iter_mut().zip(raw_variance.iter_mut()).zip(inv_std.iter_mut()) {
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
    assert_eq!(params.scaled_variance.len(), expected, "scaled_variance length");
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
    let out_pieces = chunks.split_mut(out, dims);
    let weight_pieces = chunks.split_mut(weights, dims);
    out_pieces
        .into_par_iter()
        .zip(weight_pieces)
        .for_each(|((o, h, out), (_, _, w))| {
            let start = chunks.offset(o, h, dims);
            let rows = chunks.span(h).1;
            let x = &x[start..start + rows * inner];
            let stats = chunk_stats(x, rows, inner);
            let delta = &params.mean_offset[h * inner..(h + 1) * inner];
            let xi = &params.scaled_variance[h * inner..(h + 1) * inner];
            let center: Vec<f64> = (0..inner)
                .map(|d| stats.mean[d] + delta[d].to_f64_lossy())
                .collect();
            let k: Vec<f64> = xi
                .iter()
                .map(|&c| exponent_scale(c.to_f64_lossy(), params.form))
                .collect();
            for ((x_row, out_row), w_row) in x
                .chunks_exact(inner)
                .zip(out.chunks_exact_mut(inner))
                .zip(w.chunks_exact_mut(inner))
            {
                for d in 0..inner {
                    let v = x_row[d].to_f64_lossy();
                    let y = (v - center[d]) * stats.inv_std[d];
                    let weight = (-(k[d] * y * y)).exp();
                    w_row[d] = F::of(weight);
                    out_row[d] = F::of(v * weight);
                }
            }
        });
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
    let mut partial_delta = vec![0.0f64; dims.outer * num_heads * inner];
    let mut partial_xi = vec![0.0f64; dims.outer * num_heads * inner];
    chunks
        .split_mut(grad_x, dims)
        .into_par_iter()
        .zip(partial_delta.par_chunks_mut(inner))
        .zip(partial_xi.par_chunks_mut(inner))
        .for_each(|(((o, h, grad_x), d_delta), d_xi)| {
            let start = chunks.offset(o, h, dims);
            let rows = chunks.span(h).1;
            let range = start..start + rows * inner;
            let (x, w, g) = (&x[range.clone()], &weights[range.clone()], &grad_out[range]);
            let stats = chunk_stats(x, rows, inner);
            let delta = &params.mean_offset[h * inner..(h + 1) * inner];
            let center: Vec<f64> = (0..inner)
                .map(|d| stats.mean[d] + delta[d].to_f64_lossy())
                .collect();
            let xi = &params.scaled_variance[h * inner..(h + 1) * inner];
            let k: Vec<f64> = xi
                .iter()
                .map(|&c| exponent_scale(c.to_f64_lossy(), params.form))
                .collect();
            // ∂L/∂y at one element.
            let a_of = |d: usize, v: f64, w: f64, g: f64| {
                let y = (v - center[d]) * stats.inv_std[d];
                (y, -(2.0 * k[d] * y) * g * v * w)
            };
            // Pass 1: reductions over the chunk.
            let mut sum_a = vec![0.0; inner];
            let mut sum_ay = vec![0.0; inner];
            let mut d_k = vec![0.0; inner];
            for ((x_row, w_row), g_row) in x
                .chunks_exact(inner)
                .zip(w.chunks_exact(inner))
                .zip(g.chunks_exact(inner))
            {
                for d in 0..inner {
                    let (v, wv, gv) = (
                        x_row[d].to_f64_lossy(),
                        w_row[d].to_f64_lossy(),
                        g_row[d].to_f64_lossy(),
                    );
                    let (y, a) = a_of(d, v, wv, gv);
                    sum_a[d] += a;
                    sum_ay[d] += a * y;
                    d_k[d] -= gv * v * wv * y * y;
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
                coef_mean[d] = -sum_a[d] * inv_s / n;
                coef_var[d] = d_v * 2.0 / n;
                d_delta[d] = -sum_a[d] * inv_s;
                d_xi[d] = d_k[d] * exponent_scale_grad(xi[d].to_f64_lossy(), params.form);
            }
            // Pass 2: ∂L/∂x.
            for (((x_row, w_row), g_row), gx_row) in x
                .chunks_exact(inner)
                .zip(w.chunks_exact(inner))
                .zip(g.chunks_exact(inner))
                .zip(grad_x.chunks_exact_mut(inner))
            {
                for d in 0..inner {
                    let (v, wv, gv) = (
                        x_row[d].to_f64_lossy(),
                        w_row[d].to_f64_lossy(),
                        g_row[d].to_f64_lossy(),
                    );
                    let (_, a) = a_of(d, v, wv, gv);
                    gx_row[d] = F::of(
                        gv * wv
                            + a * stats.inv_std[d]
                            + coef_mean[d]
                            + coef_var[d] * (v - stats.mean[d]),
                    );
                }
            }
        });
    PerFeatureParamGrads {
        mean_offset: reduce_outer(&partial_delta, dims.outer, num_heads * inner),
        scaled_variance: reduce_outer(&partial_xi, dims.outer, num_heads * inner),
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

/// Sums `outer` consecutive blocks of `width` values.
fn reduce_outer<F: Real>(partials: &[f64], outer: usize, width: usize) -> Vec<F> {
    let mut total = vec![0.0f64; width];
    for block in partials.chunks_exact(width).take(outer) {
        for (t, &p) in total.iter_mut().zip(block) {
            *t += p;
        }
    }
    total.into_iter().map(F::of).collect()
}
