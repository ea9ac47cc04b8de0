//! One DAT training step (forward, cross-entropy, backward, AdamW) per head on a chosen device:
//! the same step as the criterion bench `heads`, as a plain program so that it runs on CUDA too
//! (`--features cuda`, `--device cuda`). Each timed step ends with [`Backend::sync`], so the
//! GPU's work is inside the timing. Prints one JSON line per head: head, device, batch, median
//! and fastest step milliseconds, samples/s (from the median). `tools/bench_classify_torch.py
//! --device cuda` times the same step in PyTorch.
//!
//! ```sh
//! cargo bench -p classify --features cuda --bench train_step -- --device cuda --iters 50
//! cargo bench -p classify --features cuda --bench train_step -- --device cuda --precision bf16
//! ```
//!
//! `--precision bf16|f16` times the mixed-precision step of `classify replicate --precision`.
#![allow(missing_docs)]

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use classify::head::{DatHeadConfig, HeadKind};
use classify::train::{LossKind, MixedPrecision, Precision};
use daam::DaamBackend;

/// The command line: `[--device cpu|cuda] [--precision f32|bf16|f16] [--batch N] [--layers N]
/// [--d-model N] [--classes N] [--warmup N] [--iters N] [--heads a,b,...]`.
struct Args {
    device: String,
    precision: Precision,
    batch: usize,
    layers: usize,
    d_model: usize,
    classes: usize,
    warmup: usize,
    iters: usize,
    heads: Vec<HeadKind>,
}

fn parse_args() -> Args {
    let mut args = Args {
        device: "cpu".into(),
        precision: Precision::F32,
        batch: 32,
        layers: 24,
        d_model: 1024,
        classes: 4,
        warmup: 3,
        iters: 20,
        heads: HeadKind::ALL.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().expect("a count");
        match flag.as_str() {
            "--device" => args.device = value(),
            "--precision" => {
                let name = value();
                args.precision = Precision::from_name(&name).unwrap_or_else(|| {
                    panic!("--precision must be f32, bf16 or f16, got `{name}`")
                });
            }
            "--batch" => args.batch = number(value()),
            "--layers" => args.layers = number(value()),
            "--d-model" => args.d_model = number(value()),
            "--classes" => args.classes = number(value()),
            "--warmup" => args.warmup = number(value()),
            "--iters" => args.iters = number(value()),
            "--heads" => {
                let names = value();
                args.heads = names
                    .split(',')
                    .map(|name| {
                        *HeadKind::ALL
                            .iter()
                            .find(|k| k.name() == name)
                            .unwrap_or_else(|| panic!("unknown head `{name}`"))
                    })
                    .collect();
            }
            "--bench" => {} // appended by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.iters > 0, "--iters must be at least 1");
    args
}

fn main() {
    // The allocator settings of the `classify` binary (daam::allocator).
    daam::allocator::retain_freed_memory();
    let args = parse_args();
    match args.device.as_str() {
        "cpu" => run::<Autodiff<Flex>>(&args, &Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => {
            let device = daam::device::cuda_device(0).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("{}", daam::device::cuda_notice());
            run::<Autodiff<daam::device::Cuda>>(&args, &device);
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            let device = daam::device::wgpu_device().unwrap_or_else(|e| panic!("{e}"));
            eprintln!("{}", daam::device::wgpu_notice());
            run::<Autodiff<daam::device::Wgpu>>(&args, &device);
        }
        other => panic!(
            "--device must be cpu, cuda (with --features cuda) or wgpu (with --features wgpu), \
             got `{other}`"
        ),
    }
}

fn run<B: AutodiffBackend + DaamBackend>(args: &Args, device: &B::Device) {
    let x = Tensor::<B, 3>::random(
        [args.batch, args.layers, args.d_model],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let labels: Vec<i64> = (0..args.batch as i64)
        .map(|i| i % args.classes as i64)
        .collect();
    let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [args.batch]), device);
    for &kind in &args.heads {
        let mut model =
            DatHeadConfig::new(kind, args.layers, args.d_model, args.classes).init::<B>(device);
        let mut optimizer = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(0.01)
            .init();
        let mut amp = MixedPrecision::new(args.precision);
        let compute = args.precision.compute_dtype();
        let mut times = Vec::with_capacity(args.iters);
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            let logits = model.forward_with_weights_in(x.clone(), compute).logits;
            let loss = LossKind::CrossEntropy.loss(logits, y.clone());
            let grads = amp
                .gradients(&model, loss)
                .unwrap_or_else(|c| panic!("f16 loss scale collapsed: {c:?}"));
            if let Some(grads) = grads {
                model = optimizer.step(1e-4, model, grads);
            }
            B::sync(device).expect("device sync");
            if i >= args.warmup {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{{\"head\": \"{}\", \"device\": \"{}\", \"precision\": \"{}\", \"batch\": {}, \
             \"ms\": {:.3}, \"min_ms\": {:.3}, \"samples_per_second\": {:.1}, \"skipped\": {}}}",
            kind.name(),
            args.device,
            args.precision.name(),
            args.batch,
            median * 1e3,
            times[0] * 1e3,
            args.batch as f64 / median,
            amp.skipped(),
        );
    }
}
