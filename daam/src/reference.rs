//! The DAAM modules composed from ordinary burn tensor ops: the readable specification.
//!
//! These run on any backend, are differentiated by burn's autodiff, and are what the fused
//! kernels ([`crate::kernel`]) are tested against. They are several times slower than the fused
//! ops on Flex (broadcasting binary ops; see `BENCHMARKS.md`), so the modules do not call them
//! directly: they go through [`crate::DaamBackend`], whose default methods are these functions.

use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::kernel::per_feature::{NORM_EPS, VARIANCE_FLOOR};
use crate::kernel::HeadChunks;
use crate::reduce::mean_last;
use crate::GaussianForm;

/// Per-feature multi-head DAAM (paper Alg. 1 and 3; `reference/daam-reference.md` §1.1).
///
/// Returns `(x ⊙ w, w)`.
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_model]`
/// - `mean_offset` δ, `scaled_variance` ξ: `[num_heads, d_model]`
/// - outputs: `[batch_size, seq_length, d_model]`
pub fn density_adaptive_attention<B: Backend>(
    x: Tensor<B, 3>,
    mean_offset: Tensor<B, 2>,
    scaled_variance: Tensor<B, 2>,
    num_heads: usize,
    form: GaussianForm,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [batch_size, seq_length, d_model] = x.dims();
    let chunk = seq_length / num_heads;
    let x = x.reshape([batch_size, num_heads, chunk, d_model]);
    let mean = x.clone().mean_dim(2); // [batch_size, num_heads, 1, d_model]
    let mean_sq = x.clone().powi_scalar(2).mean_dim(2);
    let variance = (mean_sq - mean.clone().powi_scalar(2))
        .abs()
        .add_scalar(VARIANCE_FLOOR);
    let delta = mean_offset.reshape([1, num_heads, 1, d_model]);
    let xi = scaled_variance.reshape([1, num_heads, 1, d_model]);
    let y = (x.clone() - (mean + delta)) / variance.add_scalar(NORM_EPS).sqrt();
    let denominator = match form {
        GaussianForm::Variance => xi.mul_scalar(2.0),
        GaussianForm::StdDev => xi.powi_scalar(2).mul_scalar(2.0),
    };
    let weights = (y.powi_scalar(2).neg() / denominator).exp();
    let output = x * weights.clone();
    (
        output.reshape([batch_size, seq_length, d_model]),
        weights.reshape([batch_size, seq_length, d_model]),
    )
}

/// One multi-head mixture layer along axis 1 of `[outer, axis, inner]` (paper App. B Alg. 2;
/// `reference/daam-reference.md` §2.1), in the stable form `softmax(Σ_i log-Gaussian_i)`.
///
/// Returns `(x ⊙ mixture, mixture)`.
///
/// # Shapes
/// - `x`: `[outer, axis, inner]`
/// - `mean_offsets` m, `c`: `[num_heads, num_gaussians]`
/// - outputs: `[outer, axis, inner]`
pub fn mixture_density_attention<B: Backend>(
    x: Tensor<B, 3>,
    mean_offsets: Tensor<B, 2>,
    c: Tensor<B, 2>,
    num_heads: usize,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [_, axis, _] = x.dims();
    let [_, num_gaussians] = mean_offsets.dims();
    let chunks = HeadChunks { axis, num_heads };
    let (outputs, mixtures): (Vec<_>, Vec<_>) = (0..num_heads)
        .map(|h| {
            let (start, len) = chunks.span(h);
            let x = x.clone().narrow(1, start, len);
            let (z, variance) = centred_and_variance(x.clone(), eps);
            let mut logit = z.zeros_like();
            for i in 0..num_gaussians {
                let (m_i, c_i) = gaussian(&mean_offsets, &c, h, i);
                let t = z.clone() - m_i;
                logit = logit
                    - t.powi_scalar(2) / (c_i.powi_scalar(2).mul_scalar(2.0) * variance.clone());
            }
            let mixture = softmax(logit, 1);
            (x * mixture.clone(), mixture)
        })
        .unzip();
    (Tensor::cat(outputs, 1), Tensor::cat(mixtures, 1))
}

/// One head's chunk centred, `z = x − mean(x)`, and its variance `Σz² / (n − 1) + ε` along
/// axis 1 (`ε` alone for a chunk of one position, which has no spread): the statistics of
/// [`mixture_density_attention`], shared with its written-out backward.
///
/// # Shapes
/// - `x`: `[outer, n, inner]`
/// - outputs: `z` `[outer, n, inner]`, the variance `[outer, 1, inner]`
pub(crate) fn centred_and_variance<B: Backend>(
    x: Tensor<B, 3>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let [_, len, _] = x.dims();
    let z = x.clone() - x.mean_dim(1);
    let variance = if len > 1 {
        z.clone()
            .powi_scalar(2)
            .sum_dim(1)
            .div_scalar((len - 1) as f64)
    } else {
        z.clone().sum_dim(1).zeros_like()
    }
    .add_scalar(eps);
    (z, variance)
}

/// Gaussian `i` of head `head` of a mixture layer: `(m_i, c_i)`, each `[1, 1, 1]` to broadcast.
pub(crate) fn gaussian<B: Backend>(
    mean_offsets: &Tensor<B, 2>,
    c: &Tensor<B, 2>,
    head: usize,
    i: usize,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let pick = |t: &Tensor<B, 2>| {
        t.clone()
            .slice([head..head + 1, i..i + 1])
            .reshape([1, 1, 1])
    };
    (pick(mean_offsets), pick(c))
}

/// Scaled dot-product attention with grouped key/value heads (the composed form of
/// [`crate::kernel::attention`]): query head `h` attends with key/value head
/// `h / (num_heads / num_kv_heads)`, `softmax(Q Kᵀ / sqrt(head_dim)) V`, heads concatenated.
///
/// # Shapes
/// - `q`: `[batch_size, seq_length, num_heads · head_dim]`
/// - `k`, `v`: `[batch_size, seq_length, num_kv_heads · head_dim]`
/// - output: `[batch_size, seq_length, num_heads · head_dim]`
pub fn scaled_dot_product_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    num_heads: usize,
    num_kv_heads: usize,
) -> Tensor<B, 3> {
    let [batch_size, seq_length, width] = q.dims();
    let head_dim = width / num_heads;
    let group = num_heads / num_kv_heads;
    // Query heads of a group are contiguous: stack them along the sequence axis so each group
    // is one matmul against its key/value head.
    let q = q
        .reshape([batch_size, seq_length, num_heads, head_dim])
        .swap_dims(1, 2) // [batch_size, num_heads, seq_length, head_dim]
        .reshape([batch_size, num_kv_heads, group * seq_length, head_dim]);
    let split_kv = |t: Tensor<B, 3>| {
        t.reshape([batch_size, seq_length, num_kv_heads, head_dim])
            .swap_dims(1, 2)
    }; // [batch_size, num_kv_heads, seq_length, head_dim]
    let scores = q
        .matmul(split_kv(k).swap_dims(2, 3))
        .div_scalar((head_dim as f64).sqrt());
    softmax(scores, 3) // [batch_size, num_kv_heads, group · seq_length, seq_length]
        .matmul(split_kv(v))
        .reshape([batch_size, num_heads, seq_length, head_dim])
        .swap_dims(1, 2)
        .reshape([batch_size, seq_length, width])
}

/// GroupNorm over `[batch_size, channels, spatial]` with a per-channel affine map and an
/// optional ReLU (the composed form of [`crate::kernel::group_norm`]; biased variance, as
/// burn's and PyTorch's `GroupNorm`).
///
/// # Shapes
/// - `x`: `[batch_size, channels, spatial]`
/// - `gamma`, `beta`: `[channels]`
/// - output: `[batch_size, channels, spatial]`
pub fn group_norm<B: Backend>(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    groups: usize,
    eps: f64,
    apply_relu: bool,
) -> Tensor<B, 3> {
    let [batch_size, channels, spatial] = x.dims();
    let grouped = x.reshape([batch_size, groups, channels / groups * spatial]);
    let centered = grouped.clone() - mean_last(grouped);
    let variance = mean_last(centered.clone().powi_scalar(2));
    let normalized =
        (centered / variance.add_scalar(eps).sqrt()).reshape([batch_size, channels, spatial]);
    let y = normalized * gamma.reshape([1, channels, 1]) + beta.reshape([1, channels, 1]);
    if apply_relu {
        relu(y)
    } else {
        y
    }
}

/// The per-channel affine map `γ_c x + β_c` with an optional ReLU: [`group_norm`] without the
/// normalisation (the composed form of [`crate::kernel::group_norm`] with `normalize = false`).
///
/// # Shapes
/// - `x`: `[batch_size, channels, spatial]`
/// - `gamma`, `beta`: `[channels]`
/// - output: `[batch_size, channels, spatial]`
pub fn affine<B: Backend>(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    apply_relu: bool,
) -> Tensor<B, 3> {
    let channels = gamma.dims()[0];
    let y = x * gamma.reshape([1, channels, 1]) + beta.reshape([1, channels, 1]);
    if apply_relu {
        relu(y)
    } else {
        y
    }
}
