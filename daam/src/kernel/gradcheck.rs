//! Finite-difference checks of the fused backward passes, in f64 on the kernels themselves.
//!
//! Central differences with step `h = 1e-6` have truncation error `O(h²)` ≈ 1e-12 and rounding
//! error ≈ `ε_f64 · |L| / h` ≈ 1e-10 relative: a 1e-6 tolerance leaves two orders of margin and
//! still catches any wrong term (those are O(1)).

use super::mixture::{self, MixtureParams};
use super::per_feature::{self, PerFeatureParams};
use super::ViewDims;
use crate::GaussianForm;

/// A small deterministic generator (SplitMix64 → uniform → Box-Muller).
struct Samples(u64);

impl Samples {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let (u, v) = (self.uniform().max(1e-300), self.uniform());
                (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    }
}

const H: f64 = 1e-6;
const TOLERANCE: f64 = 1e-6;

/// `max |analytic − numeric| / max |numeric|` over the entries of one gradient.
fn check(name: &str, analytic: &[f64], numeric: &[f64]) {
    let scale = numeric
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    let diff = analytic
        .iter()
        .zip(numeric)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff / scale < TOLERANCE,
        "{name}: relative error {:.2e}",
        diff / scale
    );
}

/// Central differences of `loss` with respect to every entry of `values`.
fn numeric(values: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut work = values.to_vec();
    (0..values.len())
        .map(|i| {
            work[i] = values[i] + H;
            let up = loss(&work);
            work[i] = values[i] - H;
            let down = loss(&work);
            work[i] = values[i];
            (up - down) / (2.0 * H)
        })
        .collect()
}

fn per_feature_case(dims: ViewDims, num_heads: usize, form: GaussianForm, seed: u64) {
    let mut rng = Samples(seed);
    let x: Vec<f64> = rng
        .normal(dims.len())
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.3 * (i % 5) as f64)
        .collect();
    let delta: Vec<f64> = rng
        .normal(num_heads * dims.inner)
        .iter()
        .map(|v| 0.2 * v)
        .collect();
    let xi: Vec<f64> = rng
        .normal(num_heads * dims.inner)
        .iter()
        .map(|v| 1.5 + 0.3 * v.abs())
        .collect();
    let g = rng.normal(dims.len());
    let loss = |x: &[f64], delta: &[f64], xi: &[f64]| {
        let params = PerFeatureParams {
            mean_offset: delta,
            scaled_variance: xi,
            num_heads,
            form,
        };
        let (mut out, mut w) = (vec![0.0; dims.len()], vec![0.0; dims.len()]);
        per_feature::forward(x, dims, &params, &mut out, &mut w);
        out.iter().zip(&g).map(|(o, g)| o * g).sum::<f64>()
    };
    let params = PerFeatureParams {
        mean_offset: &delta,
        scaled_variance: &xi,
        num_heads,
        form,
    };
    let (mut out, mut w) = (vec![0.0; dims.len()], vec![0.0; dims.len()]);
    per_feature::forward(&x, dims, &params, &mut out, &mut w);
    let mut grad_x = vec![0.0; dims.len()];
    let grads = per_feature::backward(&x, &w, &g, dims, &params, &mut grad_x);
    check("x", &grad_x, &numeric(&x, |x| loss(x, &delta, &xi)));
    check(
        "δ",
        &grads.mean_offset,
        &numeric(&delta, |d| loss(&x, d, &xi)),
    );
    check(
        "ξ",
        &grads.scaled_variance,
        &numeric(&xi, |s| loss(&x, &delta, s)),
    );
}

#[test]
fn per_feature_variance_form() {
    per_feature_case(
        ViewDims {
            outer: 2,
            axis: 6,
            inner: 5,
        },
        2,
        GaussianForm::Variance,
        1,
    );
}

#[test]
fn per_feature_stddev_form_single_head() {
    per_feature_case(
        ViewDims {
            outer: 3,
            axis: 4,
            inner: 3,
        },
        1,
        GaussianForm::StdDev,
        2,
    );
}

fn mixture_case(dims: ViewDims, num_heads: usize, num_gaussians: usize, seed: u64) {
    let mut rng = Samples(seed);
    let x: Vec<f64> = rng
        .normal(dims.len())
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + 0.2 * (i % 3) as f64))
        .collect();
    let n = num_heads * num_gaussians;
    let m: Vec<f64> = rng.normal(n).iter().map(|v| 0.3 * v).collect();
    let c: Vec<f64> = rng.normal(n).iter().map(|v| (0.3 * v).exp()).collect();
    let g = rng.normal(dims.len());
    let eps = 1e-8;
    let loss = |x: &[f64], m: &[f64], c: &[f64]| {
        let params = MixtureParams {
            mean_offsets: m,
            c,
            num_heads,
            num_gaussians,
            eps,
        };
        let (mut out, mut w) = (vec![0.0; dims.len()], vec![0.0; dims.len()]);
        mixture::forward(x, dims, &params, &mut out, &mut w);
        out.iter().zip(&g).map(|(o, g)| o * g).sum::<f64>()
    };
    let params = MixtureParams {
        mean_offsets: &m,
        c: &c,
        num_heads,
        num_gaussians,
        eps,
    };
    let mut grad_x = vec![0.0; dims.len()];
    let grads = mixture::backward(&x, &g, dims, &params, &mut grad_x);
    check("x", &grad_x, &numeric(&x, |x| loss(x, &m, &c)));
    check("m", &grads.mean_offsets, &numeric(&m, |m| loss(&x, m, &c)));
    check("c", &grads.c, &numeric(&c, |c| loss(&x, &m, c)));
}

#[test]
fn mixture_remainder_head() {
    mixture_case(
        ViewDims {
            outer: 2,
            axis: 7,
            inner: 3,
        },
        3,
        2,
        3,
    );
}

#[test]
fn mixture_chunk_of_one_and_wide_inner() {
    // Heads of 1, 1, 3 positions; inner wider than one kernel block (256).
    mixture_case(
        ViewDims {
            outer: 1,
            axis: 5,
            inner: 300,
        },
        3,
        3,
        4,
    );
}

fn group_norm_case(dims: super::group_norm::GroupNormDims, seed: u64) {
    use super::group_norm;
    let mut rng = Samples(seed);
    let n = dims.batch * dims.channels * dims.spatial;
    let x: Vec<f64> = rng
        .normal(n)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + (i % 4) as f64) + 0.5)
        .collect();
    let gamma: Vec<f64> = rng
        .normal(dims.channels)
        .iter()
        .map(|v| 1.0 + 0.3 * v)
        .collect();
    let beta: Vec<f64> = rng.normal(dims.channels).iter().map(|v| 0.2 * v).collect();
    let g = rng.normal(n);
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
        let mut out = vec![0.0; n];
        group_norm::forward(x, gamma, beta, &dims, &mut out);
        out.iter().zip(&g).map(|(o, g)| o * g).sum::<f64>()
    };
    let mut grad_x = vec![0.0; n];
    let grads = group_norm::backward(&x, &gamma, &beta, &g, &dims, &mut grad_x);
    check("x", &grad_x, &numeric(&x, |x| loss(x, &gamma, &beta)));
    check(
        "γ",
        &grads.gamma,
        &numeric(&gamma, |gm| loss(&x, gm, &beta)),
    );
    check("β", &grads.beta, &numeric(&beta, |b| loss(&x, &gamma, b)));
}

#[test]
fn group_norm_with_and_without_relu() {
    for (relu, normalize) in [(false, true), (true, true), (false, false), (true, false)] {
        let dims = super::group_norm::GroupNormDims {
            batch: 2,
            channels: 6,
            spatial: 5,
            groups: 3,
            eps: 1e-5,
            relu,
            normalize,
        };
        group_norm_case(dims, 5 + relu as u64 + 2 * normalize as u64);
    }
}
