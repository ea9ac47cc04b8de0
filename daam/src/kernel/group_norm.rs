//! Fused GroupNorm with an optional ReLU, forward and backward: the convolutional blocks of
//! the DAAM VQ-VAE spend most of their time here when it is composed from broadcasting ops.
//!
//! The input is seen as `[batch, channels, spatial]`; channel `c` belongs to group
//! `c / (channels / groups)`. Per batch item and group, over its `n = channels/groups · spatial`
//! elements:
//!
//! ```text
//! μ = mean(x)   σ² = mean((x − μ)²)   x̂ = (x − μ) / sqrt(σ² + ε)
//! y = γ_c x̂ + β_c                     out = y, or max(y, 0) with ReLU
//! ```
//!
//! Backward, with `g = ∂L/∂out` (zeroed where `y ≤ 0` under ReLU) and `d = g γ_c`:
//!
//! ```text
//! ∂L/∂β_c = Σ g   ∂L/∂γ_c = Σ g x̂   ∂L/∂x = (d − mean(d) − x̂ · mean(d x̂)) / sqrt(σ² + ε)
//! ```
//!
//! Without normalisation (`normalize = false`: the affine map alone) μ = 0 and
//! 1/sqrt(σ² + ε) = 1 and the two means of the backward are dropped: `∂L/∂x = g γ_c`.
//!
//! Sums are accumulated in f64; element-wise arithmetic runs in the storage type's precision
//! via f64 (GroupNorm has no cancellation comparable to DAAM's).

use rayon::prelude::*;

use super::simd::multiversion;
use super::Real;

/// Shape and settings of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNormDims {
    /// Batch size.
    pub batch: usize,
    /// Channels (a multiple of `groups`).
    pub channels: usize,
    /// Elements per channel (height · width).
    pub spatial: usize,
    /// Groups.
    pub groups: usize,
    /// ε added to the variance.
    pub eps: f64,
    /// Whether a ReLU follows.
    pub relu: bool,
    /// Whether to normalise (`false`: the affine map and the ReLU only).
    pub normalize: bool,
}

impl GroupNormDims {
    fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    fn group_len(&self) -> usize {
        self.channels / self.groups * self.spatial
    }
}

/// Gradients of the affine parameters, `[channels]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNormParamGrads<F> {
    /// ∂L/∂γ.
    pub gamma: Vec<F>,
    /// ∂L/∂β.
    pub beta: Vec<F>,
}

fn check<F>(x: &[F], gamma: &[F], beta: &[F], dims: &GroupNormDims) {
    assert_eq!(x.len(), dims.len(), "input length does not match its dims");
    assert!(
        dims.groups > 0 && dims.channels.is_multiple_of(dims.groups),
        "groups ({}) must divide channels ({})",
        dims.groups,
        dims.channels
    );
    assert_eq!(gamma.len(), dims.channels, "gamma length");
    assert_eq!(beta.len(), dims.channels, "beta length");
}

/// `(mean, 1 / sqrt(var + eps))` of one group's elements; `(0, 1)` without normalisation.
#[inline(always)]
fn stats<F: Real>(x: &[F], eps: f64, normalize: bool) -> (f64, f64) {
    if !normalize {
        return (0.0, 1.0);
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to_f64_lossy()).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|v| {
            let d = v.to_f64_lossy() - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Forward pass into `out` (`[batch, channels, spatial]`).
pub fn forward<F: Real>(x: &[F], gamma: &[F], beta: &[F], dims: &GroupNormDims, out: &mut [F]) {
    check(x, gamma, beta, dims);
    let (group_len, per_group) = (dims.group_len(), dims.channels / dims.groups);
    out.par_chunks_mut(group_len)
        .zip(x.par_chunks(group_len))
        .enumerate()
        .for_each(|(i, (out, x))| {
            let c0 = (i % dims.groups) * per_group;
            forward_group(
                x,
                out,
                &gamma[c0..c0 + per_group],
                &beta[c0..c0 + per_group],
                dims.spatial,
                dims.eps,
                dims.relu,
                dims.normalize,
            );
        });
}

multiversion!(fn forward_group<F>(
    x: &[F],
    out: &mut [F],
    gamma: &[F],
    beta: &[F],
    spatial: usize,
    eps: f64,
    relu: bool,
    normalize: bool,
) => forward_group_body);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_group_body<F: Real>(
    x: &[F],
    out: &mut [F],
    gamma: &[F],
    beta: &[F],
    spatial: usize,
    eps: f64,
    relu: bool,
    normalize: bool,
) {
    let (mean, inv_std) = stats(x, eps, normalize);
    for ((x, out), (&g, &b)) in x
        .chunks_exact(spatial)
        .zip(out.chunks_exact_mut(spatial))
        .zip(gamma.iter().zip(beta))
    {
        let scale = g.to_f64_lossy() * inv_std;
        let shift = b.to_f64_lossy() - mean * scale;
        for (o, &v) in out.iter_mut().zip(x) {
            let y = v.to_f64_lossy() * scale + shift;
            *o = F::of(if relu { y.max(0.0) } else { y });
        }
    }
}

/// Backward pass: writes `grad_x` and returns the affine gradients.
pub fn backward<F: Real>(
    x: &[F],
    gamma: &[F],
    beta: &[F],
    grad_out: &[F],
    dims: &GroupNormDims,
    grad_x: &mut [F],
) -> GroupNormParamGrads<F> {
    check(x, gamma, beta, dims);
    let (group_len, per_group) = (dims.group_len(), dims.channels / dims.groups);
    let partials: Vec<(Vec<f64>, Vec<f64>)> = grad_x
        .par_chunks_mut(group_len)
        .zip(x.par_chunks(group_len))
        .zip(grad_out.par_chunks(group_len))
        .enumerate()
        .map(|(i, ((grad_x, x), g))| {
            let c0 = (i % dims.groups) * per_group;
            backward_group(
                x,
                g,
                grad_x,
                &gamma[c0..c0 + per_group],
                &beta[c0..c0 + per_group],
                dims.spatial,
                dims.eps,
                dims.relu,
                dims.normalize,
            )
        })
        .collect();
    let mut d_gamma = vec![0.0f64; dims.channels];
    let mut d_beta = vec![0.0f64; dims.channels];
    for (i, (dg, db)) in partials.iter().enumerate() {
        let c0 = (i % dims.groups) * per_group;
        for k in 0..per_group {
            d_gamma[c0 + k] += dg[k];
            d_beta[c0 + k] += db[k];
        }
    }
    GroupNormParamGrads {
        gamma: d_gamma.into_iter().map(F::of).collect(),
        beta: d_beta.into_iter().map(F::of).collect(),
    }
}

multiversion!(fn backward_group<F>(
    x: &[F],
    g: &[F],
    grad_x: &mut [F],
    gamma: &[F],
    beta: &[F],
    spatial: usize,
    eps: f64,
    relu: bool,
    normalize: bool,
) -> (Vec<f64>, Vec<f64>) => backward_group_body);

/// One group: writes `grad_x`, returns this group's `(∂γ, ∂β)` per channel.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_group_body<F: Real>(
    x: &[F],
    g: &[F],
    grad_x: &mut [F],
    gamma: &[F],
    beta: &[F],
    spatial: usize,
    eps: f64,
    relu: bool,
    normalize: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mean, inv_std) = stats(x, eps, normalize);
    let per_group = gamma.len();
    let (mut d_gamma, mut d_beta) = (vec![0.0; per_group], vec![0.0; per_group]);
    // Pass 1: Σ d and Σ d x̂ over the group, and the per-channel affine gradients.
    let (mut sum_d, mut sum_dx) = (0.0f64, 0.0f64);
    for (c, (x, g)) in x
        .chunks_exact(spatial)
        .zip(g.chunks_exact(spatial))
        .enumerate()
    {
        let (gm, bt) = (gamma[c].to_f64_lossy(), beta[c].to_f64_lossy());
        let (mut sg, mut sgx) = (0.0f64, 0.0f64);
        for (&v, &gv) in x.iter().zip(g) {
            let xhat = (v.to_f64_lossy() - mean) * inv_std;
            let mut gv = gv.to_f64_lossy();
            if relu && gm * xhat + bt <= 0.0 {
                gv = 0.0;
            }
            sg += gv;
            sgx += gv * xhat;
        }
        d_beta[c] = sg;
        d_gamma[c] = sgx;
        sum_d += gm * sg;
        sum_dx += gm * sgx;
    }
    let n = x.len() as f64;
    let (mean_d, mean_dx) = if normalize {
        (sum_d / n, sum_dx / n)
    } else {
        (0.0, 0.0)
    };
    // Pass 2: ∂L/∂x.
    for (c, ((x, g), gx)) in x
        .chunks_exact(spatial)
        .zip(g.chunks_exact(spatial))
        .zip(grad_x.chunks_exact_mut(spatial))
        .enumerate()
    {
        let (gm, bt) = (gamma[c].to_f64_lossy(), beta[c].to_f64_lossy());
        for ((&v, &gv), out) in x.iter().zip(g).zip(gx.iter_mut()) {
            let xhat = (v.to_f64_lossy() - mean) * inv_std;
            let mut gv = gv.to_f64_lossy();
            if relu && gm * xhat + bt <= 0.0 {
                gv = 0.0;
            }
            *out = F::of((gm * gv - mean_d - xhat * mean_dx) * inv_std);
        }
    }
    (d_gamma, d_beta)
}
