//! Which op of a training step a backend is slow or stuck in: runs, op by op, a forward, a
//! backward and a gradient read through `Autodiff<B>` on Flex (CPU) or, in a `--features cuda`
//! build, CUDA (`--device cuda`), each stage ended by a device sync and timed, three rounds (the
//! first holds kernel compilation and autotuning). A watchdog ends the program with status 3
//! and the stuck op and stage when a stage runs past `--stage-timeout` seconds (default 60), so
//! a hang costs that much device time, not a call's whole limit. burn-only controls (linear,
//! conv2d) run first. Prints one line per stage as it ends, flushed.
//!
//! ```sh
//! cargo bench -p daam --features cuda --bench backend_probe -- --device cuda
//! ```
#![allow(missing_docs)]

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use daam::{
    DaamBackend, DensityAdaptiveAttentionConfig, GroupNormSettings, MixtureDensityAttentionConfig,
};

/// The op and stage running now, and since when (read by the watchdog).
static CURRENT: Mutex<Option<(String, Instant)>> = Mutex::new(None);

fn enter(what: String) {
    *CURRENT.lock().expect("probe state") = Some((what, Instant::now()));
}

/// Starts the watchdog: exits with status 3 once a stage is older than `limit`.
fn watchdog(limit: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some((what, since)) = CURRENT.lock().expect("probe state").as_ref() {
            if since.elapsed() > limit {
                println!(
                    "STUCK {what}: no end after {:.0} s",
                    since.elapsed().as_secs_f64()
                );
                print_threads();
                std::io::stdout().flush().ok();
                std::process::exit(3);
            }
        }
    });
}

/// Each thread's CPU ticks (user + system) and state from `/proc/self/task` (Linux).
fn threads() -> Vec<(String, String, u64, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let path = task.path();
        let read = |name: &str| std::fs::read_to_string(path.join(name)).unwrap_or_default();
        let stat = read("stat");
        // Fields after the `(comm)`: state is the first, utime and stime the 12th and 13th.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        let ticks = [11, 12]
            .iter()
            .filter_map(|&i| rest.get(i).and_then(|v| v.parse::<u64>().ok()))
            .sum();
        out.push((
            format!(
                "{} {}",
                task.file_name().to_string_lossy(),
                read("comm").trim()
            ),
            rest.first().unwrap_or(&"?").to_string(),
            ticks,
            read("wchan"),
        ));
    }
    out
}

/// Prints every thread's name, state, wait channel and CPU ticks over one second: all idle in
/// a futex wait is a deadlock; a busy thread is work (kernel compilation, autotuning).
fn print_threads() {
    let before = threads();
    std::thread::sleep(Duration::from_secs(1));
    let after = threads();
    println!("threads (id and name, state, wait channel, CPU ticks in 1 s, total ticks):");
    for (name, state, ticks, wchan) in &after {
        let earlier = before
            .iter()
            .find(|(n, ..)| n == name)
            .map_or(*ticks, |b| b.2);
        println!(
            "  {name} {state} {wchan} {} {ticks}",
            ticks.saturating_sub(earlier)
        );
    }
}

/// One op's forward on fresh leaves.
type Case<B> = fn(&burn::tensor::Device<B>) -> Step<B>;

/// Reads one leaf's gradient, summed (`None` where the leaf got none).
type Read<B> = Box<
    dyn Fn(
        &<B as AutodiffBackend>::Gradients,
    ) -> Option<Tensor<<B as AutodiffBackend>::InnerBackend, 1>>,
>;

/// A forward's output, flattened, and the reads of its leaves' gradients.
struct Step<B: AutodiffBackend> {
    output: Tensor<B, 1>,
    reads: Vec<Read<B>>,
}

fn read<B: AutodiffBackend, const D: usize>(leaf: &Tensor<B, D>) -> Read<B> {
    let leaf = leaf.clone();
    Box::new(move |grads| leaf.grad(grads).map(|g| g.sum()))
}

fn leaf<B: AutodiffBackend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
}

/// `output` flattened, with the reads of `leaves`' gradients.
fn step<B: AutodiffBackend, const D: usize, const E: usize>(
    output: Tensor<B, D>,
    leaves: &[Tensor<B, E>],
) -> Step<B> {
    Step {
        output: output.flatten(0, D - 1),
        reads: leaves.iter().map(read).collect(),
    }
}

fn cases<B: AutodiffBackend + DaamBackend>() -> Vec<(&'static str, Case<B>)> {
    vec![
        ("burn linear (control)", |device| {
            let x = leaf::<B, 2>([64, 256], device);
            let w = leaf::<B, 2>([256, 256], device);
            step(x.clone().matmul(w.clone()), &[x, w])
        }),
        ("burn conv2d (control)", |device| {
            let x = leaf::<B, 4>([8, 32, 32, 32], device);
            let w = leaf::<B, 4>([64, 32, 3, 3], device);
            let y = conv2d(
                x.clone(),
                w.clone(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            step(y, &[x, w])
        }),
        ("daam group_norm", |device| {
            let x = leaf::<B, 3>([8, 64, 1024], device);
            let gamma = leaf::<B, 1>([64], device);
            let beta = leaf::<B, 1>([64], device);
            let settings = GroupNormSettings {
                groups: 8,
                eps: 1e-5,
                relu: true,
                normalize: true,
            };
            // No public GroupNorm module in `daam` (the VQ-VAE has its own): the op itself.
            let primitive = |t: &Tensor<B, 1>| t.clone().into_primitive().tensor();
            let y = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(B::group_norm(
                x.clone().into_primitive().tensor(),
                primitive(&gamma),
                primitive(&beta),
                settings,
            )));
            let mut s = step(y, &[x]);
            s.reads.extend([read(&gamma), read(&beta)]);
            s
        }),
        ("daam fused_conv2d", |device| {
            let x = leaf::<B, 4>([8, 32, 32, 32], device);
            let w = leaf::<B, 4>([64, 32, 3, 3], device);
            let bias = leaf::<B, 1>([64], device);
            let y = daam::conv2d_relu(x.clone(), w.clone(), bias.clone(), [1, 1], [1, 1]);
            let mut s = step(y, &[x, w]);
            s.reads.push(read(&bias));
            s
        }),
        ("daam attention", |device| {
            let q = leaf::<B, 3>([8, 64, 256], device);
            let k = leaf::<B, 3>([8, 64, 128], device);
            let v = leaf::<B, 3>([8, 64, 128], device);
            let y = daam::scaled_dot_product_attention(q.clone(), k.clone(), v.clone(), 8, 4);
            step(y, &[q, k, v])
        }),
        ("daam per-feature DAAM", |device| {
            let module = DensityAdaptiveAttentionConfig::new(256)
                .with_num_heads(8)
                .init::<B>(device);
            let x = leaf::<B, 3>([8, 64, 256], device);
            let y = module.forward(x.clone());
            let mut s = step(y, &[x]);
            s.reads.push(read(&module.mean_offset.val()));
            s
        }),
        ("daam mixture", |device| {
            let module = MixtureDensityAttentionConfig::new(1)
                .with_num_heads(4)
                .with_num_gaussians(4)
                .init::<B>(device);
            let x = leaf::<B, 4>([8, 24, 64, 16], device);
            let y = module.forward(x.clone());
            let mut s = step(y, &[x]);
            s.reads.push(read(&module.c.val()));
            s
        }),
    ]
}

fn run<B: AutodiffBackend + DaamBackend>(device: B::Device, rounds: usize) {
    let cases = cases::<B>();
    for round in 1..=rounds {
        for (name, case) in &cases {
            let stage = |label: &str, f: &mut dyn FnMut()| {
                enter(format!("round {round} {name}: {label}"));
                let started = Instant::now();
                f();
                B::sync(&device).expect("device sync");
                println!(
                    "round {round} {name}: {label} {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                );
                std::io::stdout().flush().ok();
            };
            let mut built = None;
            stage("forward", &mut || built = Some(case(&device)));
            let Step { output, reads } = built.expect("forward ran");
            let mut grads = None;
            stage("backward", &mut || {
                let target =
                    Tensor::random([output.dims()[0]], Distribution::Normal(0.0, 1.0), &device);
                grads = Some((output.clone() * target).sum().backward());
            });
            let grads = grads.expect("backward ran");
            stage("gradient read", &mut || {
                for read in &reads {
                    let g = read(&grads).expect("every leaf gets a gradient");
                    let _ = g.into_data();
                }
            });
        }
    }
    *CURRENT.lock().expect("probe state") = None;
    println!("all stages ended");
}

fn main() {
    let mut device = "cpu".to_string();
    let mut limit = 60.0;
    let mut rounds = 3;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--device" => device = it.next().expect("--device needs a value"),
            "--stage-timeout" => limit = it.next().and_then(|v| v.parse().ok()).expect("seconds"),
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("a count"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    watchdog(Duration::from_secs_f64(limit));
    match device.as_str() {
        "cpu" => run::<Autodiff<Flex>>(Default::default(), rounds),
        #[cfg(feature = "cuda")]
        "cuda" => {
            let device = daam::device::cuda_device(0).unwrap_or_else(|e| panic!("{e}"));
            println!("{}", daam::device::cuda_notice());
            run::<Autodiff<daam::device::Cuda>>(device, rounds)
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            let device = daam::device::wgpu_device().unwrap_or_else(|e| panic!("{e}"));
            println!("{}", daam::device::wgpu_notice());
            run::<Autodiff<daam::device::Wgpu>>(device, rounds)
        }
        other => panic!(
            "--device must be cpu, cuda (with --features cuda) or wgpu (with --features wgpu), \
             got {other}"
        ),
    }
}
