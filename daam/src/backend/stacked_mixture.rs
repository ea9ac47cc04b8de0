//! The mixture of densities written out for every head at once, where the heads split the norm
//! axis evenly: `[outer, axis, inner]` viewed as `[outer, heads, chunk, inner]`, each head's
//! Gaussians folded into three numbers.
//!
//! With `p_i = 1 / c_i²`, one head's log-density is
//!
//! ```text
//! ℓ = −Σ_i p_i (z − m_i)² / (2V) = −(z (P z − 2S) + Q) / (2V),
//! P = Σ_i p_i,   S = Σ_i p_i m_i,   Q = Σ_i p_i m_i²
//! ```
//!
//! `Q / (2V)` is the same for every position of a chunk, so the softmax along the chunk drops it
//! and so does the backward (`Σ_chunk ∂L/∂ℓ = 0`, the softmax's gradient sums to zero): we
//! leave it out, which also spares the cancellation of a large constant when `|m_i| ≫ √V`.
//! The parameters' gradients need two sums per head instead of two per head and Gaussian:
//!
//! ```text
//! ∂L/∂m_i = p_i A₁,   ∂L/∂c_i = (A₂ − 2 m_i A₁) / c_i³,
//! A₁ = Σ e z / V,   A₂ = Σ e z² / V   (e = ∂L/∂ℓ, over batch, chunk and inner positions)
//! ```
//!
//! Against the per-head route (a slice per head, one term per Gaussian, the heads
//! concatenated, two full sums per head and Gaussian) the forward and backward run as one
//! chain of whole-tensor ops. Measured in BENCHMARKS.md; `DAAM_MIXTURE=per-head` keeps the old
//! route.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::reduce::sum_last;
use crate::reference;

/// How the composed mixture runs when the heads split the axis evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MixtureRoute {
    /// Every head at once ([`forward`], [`backward`]).
    Stacked,
    /// One head at a time (`reference::mixture_density_attention` and its written-out
    /// gradients; also the route of uneven heads).
    PerHead,
}

impl MixtureRoute {
    const ENV: &'static str = "DAAM_MIXTURE";

    /// `DAAM_MIXTURE` (`stacked` or `per-head`), read once; `stacked` by default.
    pub(crate) fn from_env() -> Self {
        static CHOICE: std::sync::OnceLock<MixtureRoute> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let choices = [("stacked", Self::Stacked), ("per-head", Self::PerHead)];
            crate::env_choice::from_env(Self::ENV, &choices, Self::Stacked)
        })
    }

    /// The route for `num_heads` heads over an axis of `axis`: [`Self::from_env`]'s where they
    /// split it evenly, else the per-head one.
    pub(crate) fn for_heads(axis: usize, num_heads: usize) -> Self {
        if axis.is_multiple_of(num_heads) {
            Self::from_env()
        } else {
            Self::PerHead
        }
    }
}

/// Each head's `(P, S)` of the module header, from `m` and `c` `[heads, gaussians]`, shaped
/// `[1, heads, 1, 1]` to broadcast; also `p = c⁻²` `[heads, gaussians]`.
fn folded<B: Backend>(
    mean_offsets: &Tensor<B, 2>,
    c: &Tensor<B, 2>,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 2>) {
    let [num_heads, _] = c.dims();
    let p = c.clone().powi_scalar(2).recip();
    let per_head = |t: Tensor<B, 2>| t.sum_dim(1).reshape([1, num_heads, 1, 1]);
    (
        per_head(p.clone()),
        per_head(p.clone() * mean_offsets.clone()),
        p,
    )
}

/// The statistics and the log-density without `Q` of the module header.
struct Stats<B: Backend> {
    /// `z = x − mean`, `[outer, heads, chunk, inner]`.
    z: Tensor<B, 4>,
    /// `V`, `[outer, heads, 1, inner]`.
    variance: Tensor<B, 4>,
    /// `ℓ + Q / (2V)`, `[outer, heads, chunk, inner]`.
    logit: Tensor<B, 4>,
}

/// [`Stats`] of `x` `[outer, heads, chunk, inner]` for each head's `P` and `S` `[1, heads, 1,
/// 1]`, the centring and variance those of [`reference::centred_and_variance`] per head.
fn stats<B: Backend>(
    x: Tensor<B, 4>,
    big_p: Tensor<B, 4>,
    big_s: Tensor<B, 4>,
    eps: f64,
) -> Stats<B> {
    let [outer, num_heads, chunk, inner] = x.dims();
    let (z, variance) =
        reference::centred_and_variance(x.reshape([outer * num_heads, chunk, inner]), eps);
    let z = z.reshape([outer, num_heads, chunk, inner]);
    let variance = variance.reshape([outer, num_heads, 1, inner]);
    let quadratic = z.clone() * (z.clone() * big_p - big_s.mul_scalar(2.0));
    let logit = -(quadratic / variance.clone().mul_scalar(2.0));
    Stats { z, variance, logit }
}

/// `[outer, axis, inner]` as `[outer, heads, chunk, inner]`.
fn by_head<B: Backend>(x: Tensor<B, 3>, num_heads: usize) -> Tensor<B, 4> {
    let [outer, axis, inner] = x.dims();
    x.reshape([outer, num_heads, axis / num_heads, inner])
}

/// The mixture's output and weights, every head at once.
///
/// # Shapes
/// - `x`: `[outer, axis, inner]`, `axis` a multiple of `heads`
/// - `mean_offsets`, `c`: `[heads, gaussians]`
/// - outputs: `(x ⊙ mixture, mixture)`, both `[outer, axis, inner]`
pub(crate) fn forward<B: Backend>(
    x: Tensor<B, 3>,
    mean_offsets: Tensor<B, 2>,
    c: Tensor<B, 2>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let dims = x.dims();
    let [num_heads, _] = c.dims();
    let x = by_head(x, num_heads);
    let (big_p, big_s, _) = folded(&mean_offsets, &c);
    let Stats { logit, .. } = stats(x.clone(), big_p, big_s, eps);
    let mixture = softmax(logit, 2);
    ((x * mixture.clone()).reshape(dims), mixture.reshape(dims))
}

/// The gradients of [`forward`]'s output for `grad_out = ∂L/∂output`: `(∂L/∂x, ∂L/∂m, ∂L/∂c)`.
///
/// # Shapes
/// - `x`, `grad_out`: `[outer, axis, inner]`, `axis` a multiple of `heads`
/// - `mean_offsets`, `c`: `[heads, gaussians]`
/// - outputs: `[outer, axis, inner]`, `[heads, gaussians]`, `[heads, gaussians]`
pub(crate) fn backward<B: Backend>(
    x: Tensor<B, 3>,
    mean_offsets: Tensor<B, 2>,
    c: Tensor<B, 2>,
    eps: f64,
    grad_out: Tensor<B, 3>,
) -> (Tensor<B, 3>, Tensor<B, 2>, Tensor<B, 2>) {
    let dims = x.dims();
    let [num_heads, _] = c.dims();
    let x = by_head(x, num_heads);
    let g = by_head(grad_out, num_heads);
    let [_, _, chunk, _] = x.dims();
    let (big_p, big_s, p) = folded(&mean_offsets, &c);
    let Stats { z, variance, logit } = stats(x.clone(), big_p.clone(), big_s.clone(), eps);
    let mixture = softmax(logit.clone(), 2);
    // e = ∂L/∂ℓ (softmax backward along the chunk).
    let gx = g.clone() * x;
    let e = mixture.clone() * (gx.clone() - (mixture.clone() * gx).sum_dim(2));
    let e_over_v = e / variance;
    // ∂ℓ/∂z = −(P z − S) / V.
    let grad_z = -(e_over_v.clone() * (z.clone() * big_p - big_s));
    // ∂L/∂V = Σ e (z (Pz − 2S) + Q) / (2V²) = −Σ (e/V) logit (Q's term sums to zero).
    let grad_variance = -(e_over_v.clone() * logit).sum_dim(2);
    let mut grad_x = g * mixture + grad_z.clone() - grad_z.mean_dim(2);
    if chunk > 1 {
        grad_x = grad_x + z.clone() * grad_variance.mul_scalar(2.0 / (chunk - 1) as f64);
    }
    // Σ over batch, chunk and inner positions, per head: `[heads, 1]`.
    let per_head = |t: Tensor<B, 4>| {
        let [_, _, chunk, inner] = t.dims();
        sum_last(t.sum_dim(0).reshape([num_heads, chunk * inner]))
    };
    let weighted = e_over_v * z.clone();
    let a1 = per_head(weighted.clone());
    let a2 = per_head(weighted * z);
    let grad_m = p * a1.clone();
    let grad_c = (a2 - mean_offsets.mul_scalar(2.0) * a1) / c.powi_scalar(3);
    (grad_x.reshape(dims), grad_m, grad_c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::composed::per_head_mixture_backward;
    use crate::tests::TestBackend;
    use burn::tensor::{Distribution, Tolerance};

    type B = TestBackend;

    fn normal<const D: usize>(shape: [usize; D], std: f64) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, std), &Default::default())
    }

    /// The stacked route against the per-head one, in one process, on chunks of 3 and of 1
    /// (variance ε), with offsets large against the spread (where `Q` would cancel).
    #[test]
    fn stacked_and_per_head_routes_agree() {
        for (shape, heads, gaussians, offset_scale) in [
            ([3, 12, 5], 4, 3, 0.3),
            ([2, 4, 6], 4, 2, 0.3),
            ([2, 8, 7], 2, 4, 4.0),
        ] {
            let m = normal([heads, gaussians], offset_scale);
            let c = normal([heads, gaussians], 0.5).exp();
            let x = normal(shape, 1.0);
            let g = normal(shape, 1.0);
            let what = format!("{shape:?} H={heads} N={gaussians}");
            let (out, weights) = forward(x.clone(), m.clone(), c.clone(), 1e-8);
            let (out_ref, weights_ref) =
                reference::mixture_density_attention(x.clone(), m.clone(), c.clone(), heads, 1e-8);
            let tolerance = Tolerance::<f32>::absolute(2e-5).set_relative(2e-4);
            out.into_data()
                .assert_approx_eq(&out_ref.into_data(), tolerance);
            weights
                .into_data()
                .assert_approx_eq(&weights_ref.into_data(), tolerance);
            let (gx, gm, gc) = backward(x.clone(), m.clone(), c.clone(), 1e-8, g.clone());
            let (gx_ref, gm_ref, gc_ref) = per_head_mixture_backward(x, m, c, heads, 1e-8, g);
            for (name, a, b) in [("x", gx.flatten::<1>(0, 2), gx_ref.flatten::<1>(0, 2))]
                .into_iter()
                .chain([("m", gm.flatten(0, 1), gm_ref.flatten(0, 1))])
                .chain([("c", gc.flatten(0, 1), gc_ref.flatten(0, 1))])
            {
                let (a, b) = (a.into_data(), b.into_data());
                let scale = b.iter::<f32>().fold(0f32, |s, v| s.max(v.abs()));
                let worst = a
                    .iter::<f32>()
                    .zip(b.iter::<f32>())
                    .fold(0f32, |w, (a, b)| w.max((a - b).abs()));
                assert!(
                    worst <= 1e-4 * scale.max(1.0),
                    "{what}: grad {name} differs by {worst} (largest {scale})"
                );
            }
        }
    }

    #[test]
    fn uneven_heads_take_the_per_head_route() {
        assert_eq!(MixtureRoute::for_heads(5, 4), MixtureRoute::PerHead);
        assert_eq!(MixtureRoute::for_heads(7, 3), MixtureRoute::PerHead);
    }
}
