//! Training through `Autodiff<B>` where `B` has no kernels for the inputs
//! ([`daam::DaamBackend::fused_kernels`]): each op one node whose composed backward is written
//! out in tensor ops (no autodiff pass of its own), the convolution through burn's own
//! differentiated by burn. Flex's kernels cover f32
//! only, so f64 inputs take that path here, as every input does on CUDA. Before it existed the
//! op's composed backward ran a second autodiff pass inside burn's, which waited forever on the
//! graph's lock: no CUDA training step ever finished (BENCHMARKS.md, GPU section). Each case
//! runs under a watchdog so a deadlock fails the test instead of hanging it, and matches the
//! f32 fused kernels.

use std::sync::mpsc;
use std::time::Duration;

use crate::common::{assert_close, seeded_normal, to_vec, B};
use burn::module::Param;
use burn::tensor::{FloatDType, Tensor, TensorPrimitive};
use daam::{
    AttentionSettings, ConvSettings, DaamBackend, DensityAdaptiveAttentionConfig, GaussianForm,
    GroupNormSettings, MixtureDensityAttentionConfig,
};

/// f64 (composed) against f32 (fused kernels): outputs and gradients in f32.
const TOLERANCE: f64 = 1e-4;

/// A case's named outputs and gradients, as f32 values.
type Results = Vec<(&'static str, Vec<f32>)>;

/// Runs `case` in f32 and in f64 on a worker thread; fails after 120 s without an answer.
fn both_ways(what: &str, case: fn(FloatDType) -> Results) {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(|| (case(FloatDType::F32), case(FloatDType::F64)));
        let _ = send.send(result);
    });
    let (fused, composed) = receive
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what}: no answer in 120 s (a deadlock)"))
        .unwrap_or_else(|_| panic!("{what}: the case panicked (message above)"));
    for ((name, fused), (_, composed)) in fused.iter().zip(&composed) {
        assert_close(what, name, composed, fused, TOLERANCE);
    }
}

/// A seeded leaf of dtype `dtype`.
fn leaf<const D: usize>(shape: [usize; D], seed: u64, dtype: FloatDType) -> Tensor<B, D> {
    seeded_normal(shape, seed).cast(dtype).require_grad()
}

/// A parameter re-made as a leaf of dtype `dtype` from `f`'s values.
fn param<const D: usize>(
    param: Param<Tensor<B, D>>,
    dtype: FloatDType,
    f: impl Fn(Tensor<B, D>) -> Tensor<B, D>,
) -> Param<Tensor<B, D>> {
    param.map(|t| f(t).cast(dtype).detach().require_grad())
}

fn float<const D: usize>(t: Tensor<B, D>) -> burn::tensor::ops::FloatTensor<B> {
    t.into_primitive().tensor()
}

fn tensor<const D: usize>(t: burn::tensor::ops::FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

#[test]
fn group_norm_and_affine_without_kernels() {
    for normalize in [true, false] {
        let case = if normalize {
            group_norm_case::<true>
        } else {
            group_norm_case::<false>
        };
        both_ways(&format!("group norm, normalize {normalize}"), case);
    }
}

fn group_norm_case<const NORMALIZE: bool>(dtype: FloatDType) -> Results {
    let x = leaf([2, 8, 13], 1, dtype);
    let gamma = leaf([8], 2, dtype);
    let beta = leaf([8], 3, dtype);
    let settings = GroupNormSettings {
        groups: 4,
        eps: 1e-5,
        relu: true,
        normalize: NORMALIZE,
    };
    let out: Tensor<B, 3> = tensor(B::group_norm(
        float(x.clone()),
        float(gamma.clone()),
        float(beta.clone()),
        settings,
    ));
    let grads = (out.clone() * seeded_normal([2, 8, 13], 4).cast(dtype))
        .sum()
        .backward();
    vec![
        ("output", to_vec(out)),
        ("grad x", to_vec(x.grad(&grads).unwrap())),
        ("grad γ", to_vec(gamma.grad(&grads).unwrap())),
        ("grad β", to_vec(beta.grad(&grads).unwrap())),
    ]
}

#[test]
fn convolutions_without_kernels() {
    both_ways("conv2d", |dtype| conv_case(dtype, None));
    both_ways("conv_transpose2d", |dtype| conv_case(dtype, Some([1, 1])));
}

fn conv_case(dtype: FloatDType, transposed: Option<[usize; 2]>) -> Results {
    let x = leaf([2, 3, 9, 8], 10, dtype);
    // [out, in, kh, kw] for a convolution, [in, out, kh, kw] transposed.
    let weight = match transposed {
        None => leaf([4, 3, 3, 3], 11, dtype),
        Some(_) => leaf([3, 4, 3, 3], 11, dtype),
    };
    let bias = leaf([4], 12, dtype);
    let settings = ConvSettings {
        stride: [2, 2],
        padding: [1, 1],
        transposed,
        relu: true,
    };
    let out: Tensor<B, 4> = tensor(B::fused_conv2d(
        float(x.clone()),
        float(weight.clone()),
        float(bias.clone()),
        settings,
    ));
    let g = seeded_normal(out.dims(), 13).cast(dtype);
    let grads = (out.clone() * g).sum().backward();
    vec![
        ("output", to_vec(out)),
        ("grad x", to_vec(x.grad(&grads).unwrap())),
        ("grad weight", to_vec(weight.grad(&grads).unwrap())),
        ("grad bias", to_vec(bias.grad(&grads).unwrap())),
    ]
}

fn per_feature_case<const STD_DEV: bool>(dtype: FloatDType) -> Results {
    let form = if STD_DEV {
        GaussianForm::StdDev
    } else {
        GaussianForm::Variance
    };
    let mut module = DensityAdaptiveAttentionConfig::new(7)
        .with_num_heads(5)
        .with_form(form)
        .init::<B>(&Default::default());
    module.mean_offset = param(module.mean_offset, dtype, |_| {
        seeded_normal([5, 7], 30).mul_scalar(0.1)
    });
    module.scaled_variance = param(module.scaled_variance, dtype, |t| t);
    let x = leaf([3, 10, 7], 31, dtype);
    let out = module.forward(x.clone());
    let grads = (out.clone() * seeded_normal([3, 10, 7], 32).cast(dtype))
        .sum()
        .backward();
    vec![
        ("output", to_vec(out)),
        ("grad x", to_vec(x.grad(&grads).unwrap())),
        ("grad δ", to_vec(module.mean_offset.grad(&grads).unwrap())),
        (
            "grad ξ",
            to_vec(module.scaled_variance.grad(&grads).unwrap()),
        ),
    ]
}

#[test]
fn grouped_query_attention_without_kernels() {
    both_ways("attention", |dtype| {
        let q = leaf([2, 5, 12], 20, dtype);
        let k = leaf([2, 5, 6], 21, dtype);
        let v = leaf([2, 5, 6], 22, dtype);
        let settings = AttentionSettings {
            num_heads: 4,
            num_kv_heads: 2,
        };
        let out: Tensor<B, 3> = tensor(B::scaled_dot_product_attention(
            float(q.clone()),
            float(k.clone()),
            float(v.clone()),
            settings,
        ));
        let grads = (out.clone() * seeded_normal([2, 5, 12], 23).cast(dtype))
            .sum()
            .backward();
        vec![
            ("output", to_vec(out)),
            ("grad q", to_vec(q.grad(&grads).unwrap())),
            ("grad k", to_vec(k.grad(&grads).unwrap())),
            ("grad v", to_vec(v.grad(&grads).unwrap())),
        ]
    });
}

#[test]
fn density_attention_without_kernels() {
    both_ways("per-feature DAAM, 2ξ", per_feature_case::<false>);
    both_ways("per-feature DAAM, 2ξ²", per_feature_case::<true>);
    both_ways("mixture of densities", |dtype| {
        mixture_case(dtype, [2, 3], [3, 6, 4, 2], 40)
    });
    // Chunks of one position (variance ε, no spread) and a last head taking the remainder.
    both_ways("mixture, uneven chunks", |dtype| {
        mixture_case(dtype, [4, 2], [3, 5, 4], 50)
    });
}

/// A mixture layer of `[num_heads, num_gaussians]` over axis 1 of an input of `shape`, its
/// parameters and data seeded from `seed`.
fn mixture_case<const D: usize>(
    dtype: FloatDType,
    [num_heads, num_gaussians]: [usize; 2],
    shape: [usize; D],
    seed: u64,
) -> Results {
    let mut module = MixtureDensityAttentionConfig::new(1)
        .with_num_heads(num_heads)
        .with_num_gaussians(num_gaussians)
        .init::<B>(&Default::default());
    module.mean_offsets = param(module.mean_offsets, dtype, |_| {
        seeded_normal([num_heads, num_gaussians], seed).mul_scalar(0.3)
    });
    module.c = param(module.c, dtype, |t| t);
    let x = leaf(shape, seed + 1, dtype);
    let out = module.forward(x.clone());
    let grads = (out.clone() * seeded_normal(shape, seed + 2).cast(dtype))
        .sum()
        .backward();
    vec![
        ("output", to_vec(out)),
        ("grad x", to_vec(x.grad(&grads).unwrap())),
        ("grad m", to_vec(module.mean_offsets.grad(&grads).unwrap())),
        ("grad c", to_vec(module.c.grad(&grads).unwrap())),
    ]
}
