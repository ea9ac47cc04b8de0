//! The extraction forward of issue #5: every hidden state of a real-size encoder, then the
//! per-layer mean pooling that `classify extract` stores, on Flex (CPU) or, in a `--features cuda`
//! build, on CUDA (`--device cuda --precision f32|f16|bf16`). Loads a checkpoint folder written
//! by `tools/bench_encoders_torch.py --save DIR` (random weights, the architecture of
//! `microsoft/beit-large-patch16-224`, `microsoft/wavlm-large` or `meta-llama/Llama-2-13b-hf`),
//! times `--iters` forwards after `--warmup` untimed ones on random inputs (`[batch, 3, 224, 224]`
//! pixels, `[batch, 80000]` 5-s clips or `[batch, --tokens]` token ids), and prints one JSON
//! line: model, device, precision, batch, threads (`RAYON_NUM_THREADS`), load and median and
//! fastest forward seconds, items/s (from the median) and the process's peak resident memory
//! (`VmHWM`). Each timed forward ends with the pooled features read back to the host, so the
//! GPU's work is finished inside the timing.
//! `tools/bench_encoders_compare.py` sets it beside the same forward in PyTorch. With
//! `--reference FILE` (written by `bench_encoders_torch.py --reference`) the input is PyTorch's
//! and the JSON line adds the relative error of the pooled features against PyTorch's.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo bench -p encoders --bench extract -- \
//!     --model beit --dir /tmp/encoders-bench/beit-large --batch 8
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use encoders::beit::Beit;
use encoders::{HiddenStates, Llama, WavLM};
use safetensors::SafeTensors;

/// Samples in one 5-s clip at 16 kHz.
const CLIP_SAMPLES: usize = 80_000;

/// The command line: `--model beit|wavlm|llama --dir DIR [--batch N] [--tokens N] [--warmup N]
/// [--iters N] [--reference FILE] [--device cpu|cuda|wgpu] [--precision f32|f16|bf16]`.
struct Args {
    model: String,
    /// `cpu` or `cuda` (CUDA needs `--features cuda`).
    device: String,
    /// Compute precision on CUDA: `f32`, `f16` or `bf16`.
    precision: String,
    /// Tokens per Llama sequence.
    tokens: usize,
    dir: PathBuf,
    batch: usize,
    warmup: usize,
    iters: usize,
    /// A safetensors file with `input` and `pooled` from `bench_encoders_torch.py --reference`:
    /// the timed input is read from it and the pooled output compared.
    reference: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: String::new(),
        device: "cpu".into(),
        precision: "f32".into(),
        tokens: 128,
        dir: PathBuf::new(),
        batch: 0,
        warmup: 1,
        iters: 3,
        reference: None,
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
            "--reference" => args.reference = Some(PathBuf::from(value())),
            "--device" => args.device = value(),
            "--precision" => args.precision = value(),
            "--tokens" => args.tokens = number(value()),
            "--bench" => {} // appended by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        ["beit", "wavlm", "llama"].contains(&args.model.as_str()),
        "--model must be beit, wavlm or llama, got `{}`",
        args.model
    );
    assert!(
        ["cpu", "cuda", "wgpu"].contains(&args.device.as_str()),
        "--device must be cpu, cuda or wgpu"
    );
    assert!(
        args.device == "cuda" || args.precision == "f32",
        "--precision {} needs --device cuda",
        args.precision
    );
    assert!(args.iters > 0, "--iters must be at least 1");
    assert!(
        args.reference.is_none() || args.model != "llama",
        "--reference holds float inputs: beit or wavlm only"
    );
    if args.batch == 0 {
        args.batch = match args.model.as_str() {
            "beit" => 8,
            "wavlm" => 2,
            _ => 4,
        };
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

/// The pooled features `[batch, layers, d_model]`, read back to the host so that the timing
/// covers the whole extraction.
fn pool<B: Backend>(states: HiddenStates<B>) -> TensorData {
    states.pooled_layers().into_data().convert::<f32>()
}

/// A tensor of a reference file, as `f32` values and shape.
fn reference_tensor(file: &SafeTensors<'_>, name: &str) -> (Vec<f32>, Vec<usize>) {
    let view = file
        .tensor(name)
        .unwrap_or_else(|e| panic!("reference tensor `{name}`: {e:?}"));
    assert_eq!(
        view.dtype(),
        safetensors::Dtype::F32,
        "reference `{name}` is not f32"
    );
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, view.shape().to_vec())
}

/// `max|actual − expected| / max|expected|`.
fn relative_error(actual: &[f32], expected: &[f32]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "pooled sizes differ");
    let diff = actual
        .iter()
        .zip(expected)
        .map(|(a, e)| f64::from((a - e).abs()))
        .fold(0.0, f64::max);
    let scale = expected
        .iter()
        .map(|e| f64::from(e.abs()))
        .fold(0.0, f64::max);
    diff / scale.max(f64::MIN_POSITIVE)
}

fn main() {
    // The allocator settings of the `classify` binary (daam::allocator).
    daam::allocator::retain_freed_memory();
    let args = parse_args();
    match (args.device.as_str(), args.precision.as_str()) {
        ("cpu", _) => run::<Flex>(&args, &Default::default()),
        #[cfg(feature = "wgpu")]
        ("wgpu", _) => {
            let device = daam::device::wgpu_device().unwrap_or_else(|e| panic!("{e}"));
            run::<daam::device::Wgpu>(&args, &device)
        }
        #[cfg(not(feature = "wgpu"))]
        ("wgpu", _) => panic!("--device wgpu needs a build with `--features wgpu`"),
        #[cfg(feature = "cuda")]
        (_, precision) => {
            use burn_cuda::{Cuda, CudaDevice};
            let device = CudaDevice::new(0);
            match precision {
                "f32" => run::<Cuda<f32>>(&args, &device),
                "f16" => run::<Cuda<half::f16>>(&args, &device),
                "bf16" => run::<Cuda<half::bf16>>(&args, &device),
                other => panic!("--precision must be f32, f16 or bf16, got `{other}`"),
            }
        }
        #[cfg(not(feature = "cuda"))]
        _ => panic!("--device cuda needs a build with `--features cuda`"),
    }
}

fn run<B: Backend>(args: &Args, device: &B::Device) {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let reference_bytes = args
        .reference
        .as_ref()
        .map(|path| std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let reference = reference_bytes
        .as_ref()
        .map(|bytes| SafeTensors::deserialize(bytes).expect("a safetensors reference file"));
    let input = |shape: Vec<usize>| -> TensorData {
        match &reference {
            Some(file) => {
                let (values, found) = reference_tensor(file, "input");
                assert_eq!(found, shape, "reference input shape");
                TensorData::new(values, found)
            }
            None => {
                let n = shape.iter().product::<usize>();
                let random = Tensor::<Flex, 1>::random(
                    [n],
                    Distribution::Normal(0.0, 1.0),
                    &Default::default(),
                );
                let values: Vec<f32> = random.into_data().to_vec().expect("f32 values");
                TensorData::new(values, shape)
            }
        }
    };
    let start = Instant::now();
    let forward: Box<dyn Fn() -> TensorData> = match args.model.as_str() {
        "beit" => {
            let model = Beit::<B>::load(&args.dir, device).expect("load BEiT");
            let shape = [args.batch, 3, 224, 224];
            let pixels =
                Tensor::<B, 4>::from_data(input(shape.to_vec()).convert::<B::FloatElem>(), device);
            Box::new(move || pool(model.forward(pixels.clone()).expect("BEiT forward")))
        }
        "wavlm" => {
            let model = WavLM::<B>::load(&args.dir, device).expect("load WavLM");
            let clips = Tensor::<B, 2>::from_data(
                input(vec![args.batch, CLIP_SAMPLES]).convert::<B::FloatElem>(),
                device,
            );
            Box::new(move || pool(model.forward(clips.clone(), None).expect("WavLM forward")))
        }
        _ => {
            let model = Llama::<B>::load(&args.dir, device).expect("load Llama");
            // Random ids above the special tokens (0..3) of a 32,000-token vocabulary.
            let ids: Vec<i64> = (0..args.batch * args.tokens)
                .map(|i| 3 + (i as i64 * 7919) % 31_997)
                .collect();
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [args.batch, args.tokens]),
                device,
            );
            let mask = Tensor::<B, 2>::ones([args.batch, args.tokens], device);
            Box::new(move || {
                pool(
                    model
                        .forward(ids.clone(), Some(mask.clone()))
                        .expect("Llama forward"),
                )
            })
        }
    };
    let load_seconds = start.elapsed().as_secs_f64();
    for _ in 0..args.warmup {
        forward();
    }
    let mut times = Vec::with_capacity(args.iters);
    let mut pooled = None;
    for _ in 0..args.iters {
        let start = Instant::now();
        pooled = Some(forward());
        times.push(start.elapsed().as_secs_f64());
    }
    let pooled = pooled.expect("at least one timed forward");
    let shape: Vec<usize> = pooled.shape.to_vec();
    let error = reference.as_ref().map(|file| {
        let (expected, found) = reference_tensor(file, "pooled");
        assert_eq!(found, shape, "reference pooled shape");
        let actual: Vec<f32> = pooled.to_vec().expect("f32 pooled features");
        relative_error(&actual, &expected)
    });
    times.sort_by(f64::total_cmp);
    let mid = times.len() / 2;
    let seconds = if times.len() % 2 == 0 {
        (times[mid - 1] + times[mid]) / 2.0
    } else {
        times[mid]
    };
    println!(
        "{{\"model\": \"{}\", \"device\": \"{}\", \"precision\": \"{}\", \"batch\": {}, \"threads\": \"{threads}\", \"shape\": {shape:?}, \
         \"load_seconds\": {load_seconds:.3}, \"seconds\": {seconds:.4}, \
         \"min_seconds\": {:.4}, \
         \"items_per_second\": {:.4}, \"peak_rss_mib\": {:.1}, \
         \"relative_error\": {}}}",
        args.model,
        args.device,
        args.precision,
        args.batch,
        times[0],
        args.batch as f64 / seconds,
        peak_rss_mib(),
        error.map_or("null".to_string(), |e| format!("{e:.3e}")),
    );
}
