//! Forward (inference) and forward + backward of the fused DAAM ops against their composed
//! tensor-op references, on the shapes of issue #2, plus a memory-copy bandwidth probe for the
//! bandwidth bound.
//!
//! `tools/bench_daam_compare.py` runs this next to PyTorch eager and prints the ratio table
//! recorded in BENCHMARKS.md. Threads: set `RAYON_NUM_THREADS` (Flex runs on rayon).

#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::hint::black_box;
use std::time::Duration;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use daam::{
    reference, DensityAdaptiveAttentionConfig, DensityBlockConfig, GaussianForm,
    MixtureDensityAttentionConfig,
};

type B = Autodiff<Flex>;

/// Normal samples on the default device.
fn normal<const D: usize>(shape: [usize; D], std: f64) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, std), &Default::default())
}

fn per_feature(c: &mut Criterion) {
    let device = Default::default();
    let mut module = DensityAdaptiveAttentionConfig::new(1024).init::<B>(&device);
    module.mean_offset = Param::from_tensor(normal([8, 1024], 0.1).require_grad());
    let x = normal([32, 24, 1024], 1.0).require_grad();
    let grad_out = normal([32, 24, 1024], 1.0);
    let plain = module.clone().valid();
    let x_plain = x.clone().inner();
    let mut group = c.benchmark_group("daam_b32_s24_d1024_h8_fwd");
    group.bench_function("fused", |b| {
        b.iter(|| black_box(plain.forward(x_plain.clone())))
    });
    group.finish();
    let mut group = c.benchmark_group("daam_b32_s24_d1024_h8_fwdbwd");
    group.bench_function("fused", |b| {
        b.iter(|| {
            let y = module.forward(x.clone());
            black_box((y * grad_out.clone()).sum().backward())
        })
    });
    group.bench_function("composed", |b| {
        b.iter(|| {
            let (y, _) = reference::density_adaptive_attention(
                x.clone(),
                module.mean_offset.val(),
                module.scaled_variance.val(),
                8,
                GaussianForm::Variance,
            );
            black_box((y * grad_out.clone()).sum().backward())
        })
    });
    group.finish();
}

fn density_block(c: &mut Criterion) {
    let device = Default::default();
    let block = DensityBlockConfig::repeated(
        MixtureDensityAttentionConfig::new(1)
            .with_num_heads(4)
            .with_num_gaussians(3),
        1,
    )
    .init::<B>(&device);
    let x = normal([8, 128, 64, 64], 1.0).require_grad();
    let grad_out = normal([8, 128, 64, 64], 1.0);
    let plain = block.clone().valid();
    let x_plain = x.clone().inner();
    let mut group = c.benchmark_group("density_block_b8_c128_64x64_fwd");
    group.bench_function("fused", |b| {
        b.iter(|| black_box(plain.forward(x_plain.clone())))
    });
    group.finish();
    let mut group = c.benchmark_group("density_block_b8_c128_64x64_fwdbwd");
    group.bench_function("fused", |b| {
        b.iter(|| {
            let y = block.forward(x.clone());
            black_box((y * grad_out.clone()).sum().backward())
        })
    });
    group.bench_function("composed", |b| {
        b.iter(|| {
            let layer = &block.layers[0];
            let view = x.clone().reshape([8, 128, 64 * 64]);
            let (y, _) = reference::mixture_density_attention(
                view.clone(),
                layer.mean_offsets.val(),
                layer.c.val(),
                4,
                layer.eps,
            );
            black_box(
                ((y + view) * grad_out.clone().reshape([8, 128, 4096]))
                    .sum()
                    .backward(),
            )
        })
    });
    group.finish();
}

/// Read + write bandwidth of a large copy: the denominator of the bandwidth bound.
fn copy_bandwidth(c: &mut Criterion) {
    let src = vec![1.0f32; 32 << 20]; // 128 MiB
    let mut dst = vec![0.0f32; 32 << 20];
    c.bench_function("copy_128MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = per_feature, density_block, copy_bandwidth
}
criterion_main!(benches);
