//! The extraction forward of issue #5 on Flex (CPU): every hidden state of a real-size encoder,
//! then the per-layer mean pooling that `classify extract` stores. Loads a checkpoint folder
//! written by `tools/bench_encoders_torch.py --save DIR` (random weights, the architecture of
//! `microsoft/beit-large-patch16-224` or `microsoft/wavlm-large`), times `--iters` forwards after
//! `--warmup` untimed ones on random inputs (`[batch, 3, 224, 224]` pixels or `[batch, 80000]`
//! 5-s clips), and prints one JSON line: model, batch, threads (`RAYON_NUM_THREADS`), load and
//! median and fastest forward seconds, items/s (from the median) and the process's peak resident
//! memory (`VmHWM`).
//! `tools/bench_encoders_compare.py` sets it beside the same forward in PyTorch.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo bench -p encoders --bench extract -- \
//!     --model beit --dir /tmp/encoders-bench/beit-large --batch 8
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use encoders::beit::Beit;
use encoders::{HiddenStates, WavLM};

type B = Flex;

/// Samples in one 5-s clip at 16 kHz.
const CLIP_SAMPLES: usize = 80_000;

/// The command line: `--model beit|wavlm --dir DIR [--batch N] [--warmup N] [--iters N]`.
struct Args {
    model: String,
    dir: PathBuf,
    batch: usize,
    warmup: usize,
    iters: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: String::new(),
        dir: PathBuf::new(),
        batch: 0,
        warmup: 1,
        iters: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().expect("a count");
        match flag.as_str() {
            "--model" => args.model = value(),
            "--dir" => args.dir = PathBuf::from(value()),
            "--batch" => args.batch = number(value()),
            "--warmup" => args.warmup = number(value()),
            "--iters" => args.iters = number(value()),
            "--bench" => {} // appended by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        args.model == "beit" || args.model == "wavlm",
        "--model must be beit or wavlm, got `{}`",
        args.model
    );
    if args.batch == 0 {
        args.batch = if args.model == "beit" { 8 } else { 2 };
    }
    args
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`) in MiB, 0 where unreadable.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The pooled features, read back to the host so that the timing covers the whole extraction.
fn pool(states: HiddenStates<B>) -> Vec<usize> {
    let pooled = states.pooled_layers(); // [batch, layers, d_model]
    let dims = pooled.dims().to_vec();
    let _ = pooled.into_data();
    dims
}

fn main() {
    let args = parse_args();
    let device = Default::default();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let start = Instant::now();
    let forward: Box<dyn Fn() -> Vec<usize>> = match args.model.as_str() {
        "beit" => {
            let model = Beit::<B>::load(&args.dir, &device).expect("load BEiT");
            let pixels = Tensor::<B, 4>::random(
                [args.batch, 3, 224, 224],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            Box::new(move || pool(model.forward(pixels.clone()).expect("BEiT forward")))
        }
        _ => {
            let model = WavLM::<B>::load(&args.dir, &device).expect("load WavLM");
            let clips = Tensor::<B, 2>::random(
                [args.batch, CLIP_SAMPLES],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            Box::new(move || pool(model.forward(clips.clone(), None).expect("WavLM forward")))
        }
    };
    let load_seconds = start.elapsed().as_secs_f64();
    for _ in 0..args.warmup {
        forward();
    }
    let mut times = Vec::with_capacity(args.iters);
    let mut shape = Vec::new();
    for _ in 0..args.iters {
        let start = Instant::now();
        shape = forward();
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let seconds = if times.len() % 2 == 0 {
        (times[mid - 1] + times[mid]) / 2.0
    } else {
        times[mid]
    };
    println!(
        "{{\"model\": \"{}\", \"batch\": {}, \"threads\": \"{threads}\", \"shape\": {shape:?}, \
         \"load_seconds\": {load_seconds:.3}, \"seconds\": {seconds:.4}, \
         \"min_seconds\": {:.4}, \
         \"items_per_second\": {:.4}, \"peak_rss_mib\": {:.1}}}",
        args.model,
        args.batch,
        times[0],
        args.batch as f64 / seconds,
        peak_rss_mib(),
    );
}
