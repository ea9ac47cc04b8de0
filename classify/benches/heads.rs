//! One DAT training step (forward, cross-entropy, backward, AdamW) per head at the paper's
//! IEMOCAP/CIFAR shape: batch 32 × 24 layers × 1024 features, 4 classes.
//! `tools/bench_classify_compare.py` sets it beside the same step in PyTorch.
#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use burn::backend::{Autodiff, Flex};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use classify::head::{DatHeadConfig, HeadKind};
use classify::train::LossKind;
use criterion::{criterion_group, criterion_main, Criterion};

type B = Autodiff<Flex>;

fn train_step(c: &mut Criterion) {
    let device = Default::default();
    let (batch, layers, d_model, classes) = (32, 24, 1024, 4);
    let x = Tensor::<B, 3>::random(
        [batch, layers, d_model],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % classes as i64).collect();
    let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    let mut group = c.benchmark_group("dat_train_step");
    group.sample_size(10);
    for kind in HeadKind::ALL {
        let mut model = Some(DatHeadConfig::new(kind, layers, d_model, classes).init::<B>(&device));
        let mut optimizer = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(0.01)
            .init();
        group.bench_function(kind.name(), |bench| {
            bench.iter(|| {
                let m = model.take().expect("model");
                let loss = LossKind::CrossEntropy.loss(m.forward(x.clone()), y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                model = Some(optimizer.step(1e-4, m, grads));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
