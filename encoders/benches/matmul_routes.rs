//! The frozen encoders' linear-layer products, one shape at a time, by burn's matrix product and
//! by each `DAAM_MATMUL` strategy ([`daam::tiled_matmul`]: cubek's tiled matmuls, chosen
//! instead of the `Auto` strategy burn runs without autotune). Shapes are those of the
//! extraction benches on a GPU (`tools/gpu/encoders.sh`, `llama.sh`): BEiT-Large on 64 images of
//! 224² (12,608 rows), WavLM-Large on 16 clips of 5 s (3,984 rows), both f32, and Llama-2-13B on
//! 4 × 128 tokens in f16 (f32 off CUDA). Weights are `[d_output, d_input]` transposed, as loaded
//! from a checkpoint. For each shape: milliseconds (median of `--iters` calls, each ended by a
//! sync) and TFLOPS of burn's product on the rows as `[rows, d_input]` and as `[batch, tokens,
//! d_input]` (what burn's `Linear` runs, the encoders' route without a strategy), and of each
//! strategy, with its largest difference from burn's product relative to burn's largest
//! magnitude and how many of its calls fell back to burn's; then each route's products per
//! forward (×count per layer ×layers) and the fastest.
//!
//! ```sh
//! cargo bench -p encoders --features cuda --bench matmul_routes -- --device cuda \
//!     --strategies simple_cyclic_cmma,double_tma_cmma,specialized_tma_cmma
//! ```
#![allow(missing_docs)]

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use daam::bench::{median_ms, relative_difference};

/// One linear layer's product: `count` per encoder layer, `[batch · tokens, d_input] ·
/// [d_input, d_output]`.
struct Product {
    what: &'static str,
    d_input: usize,
    d_output: usize,
    count: usize,
}

/// A model's forward: its products per layer at the benches' batch.
struct Model {
    name: &'static str,
    batch: usize,
    tokens: usize,
    layers: usize,
    /// Llama runs in f16 on CUDA.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    half: bool,
    products: Vec<Product>,
}

fn models(scale: usize) -> Vec<Model> {
    let p = |what, d_input: usize, d_output: usize, count| Product {
        what,
        d_input: d_input / scale,
        d_output: d_output / scale,
        count,
    };
    let encoder = |name, batch, tokens| Model {
        name,
        batch,
        tokens: tokens / scale,
        layers: 24,
        half: false,
        products: vec![
            p("query, key, value, output", 1024, 1024, 4),
            p("feed-forward in", 1024, 4096, 1),
            p("feed-forward out", 4096, 1024, 1),
        ],
    };
    vec![
        encoder("BEiT-Large", 64, 197),
        encoder("WavLM-Large", 16, 249),
        Model {
            name: "Llama-2-13B",
            batch: 4,
            tokens: 128 / scale,
            layers: 40,
            half: true,
            products: vec![
                p("query, key, value, output", 5120, 5120, 4),
                p("gate, up", 5120, 13824, 2),
                p("down", 13824, 5120, 1),
            ],
        },
    ]
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn choose(strategy: &str) -> anyhow::Result<()> {
    daam::tiled_matmul::set_strategy(Some(strategy)).map_err(anyhow::Error::msg)
}

#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
fn choose(_: &str) -> anyhow::Result<()> {
    anyhow::bail!("--strategies needs a cubecl build (cuda or wgpu)")
}

fn fallbacks() -> usize {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    return daam::tiled_matmul::fallbacks();
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    0
}

/// A route's products per forward.
struct Route {
    name: String,
    ms: f64,
    /// Products of a strategy that ran as burn's; `None` for burn's own routes.
    fell_back: Option<usize>,
    calls: usize,
}

/// One model's rows: burn's products, then each strategy's.
fn run<B: Backend>(
    device: &B::Device,
    model: &Model,
    strategies: &[String],
    warmup: usize,
    iters: usize,
) -> anyhow::Result<Vec<Route>> {
    let rows = model.batch * model.tokens;
    let burn = ["burn, 2-D", "burn, 3-D (burn's Linear)"].map(|name| Route {
        name: name.into(),
        ms: 0.0,
        fell_back: None,
        calls: 0,
    });
    let mut routes: Vec<Route> = burn
        .into_iter()
        .chain(strategies.iter().map(|name| Route {
            name: name.clone(),
            ms: 0.0,
            fell_back: Some(0),
            calls: 0,
        }))
        .collect();
    for p in &model.products {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<B, 2>::random([rows, p.d_input], normal, device);
        let weight = Tensor::<B, 2>::random(
            [p.d_output, p.d_input],
            Distribution::Normal(0.0, (p.d_input as f64).sqrt().recip()),
            device,
        )
        .transpose();
        let flops = 2.0 * (rows * p.d_input * p.d_output) as f64;
        let dtype = x.dtype();
        let reference = x.clone().matmul(weight.clone());
        let x3 = x.clone().reshape([model.batch, model.tokens, p.d_input]);
        let mut row = |route: usize, ms: f64, diff: Option<f64>, fell_back: usize| {
            let r = &mut routes[route];
            r.ms += ms * (p.count * model.layers) as f64;
            r.calls += 1 + warmup + iters;
            if let Some(total) = &mut r.fell_back {
                *total += fell_back;
            }
            println!(
                "| {} {} (×{}) | {rows}×{}·{}×{} {:?} | {} | {ms:.3} | {:.1} | {} | {fell_back} |",
                model.name,
                p.what,
                p.count,
                p.d_input,
                p.d_input,
                p.d_output,
                dtype,
                r.name,
                flops / ms / 1e9,
                diff.map_or("–".into(), |d| format!("{d:.1e}")),
            );
        };
        let ms = median_ms::<B>(device, warmup, iters, || {
            drop(x.clone().matmul(weight.clone()))
        });
        row(0, ms, None, 0);
        let ms = median_ms::<B>(device, warmup, iters, || {
            drop(x3.clone().matmul(weight.clone().unsqueeze::<3>()))
        });
        row(1, ms, None, 0);
        for (k, strategy) in strategies.iter().enumerate() {
            choose(strategy)?;
            let before = fallbacks();
            let diff = relative_difference(
                daam::tiled_matmul::matmul(x.clone(), weight.clone()),
                reference.clone(),
            );
            let ms = median_ms::<B>(device, warmup, iters, || {
                drop(daam::tiled_matmul::matmul(x.clone(), weight.clone()))
            });
            row(2 + k, ms, Some(diff), fallbacks() - before);
        }
    }
    Ok(routes)
}

fn main() -> anyhow::Result<()> {
    let (mut device, mut warmup, mut iters, mut scale) = ("cpu".to_string(), 2, 10, 1);
    let mut strategies: Vec<String> = Vec::new();
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--device" => device = value()?,
            "--warmup" => warmup = value()?.parse()?,
            "--iters" => iters = value()?.parse()?,
            "--scale" => scale = value()?.parse()?,
            "--models" => {
                only = Some(
                    value()?
                        .split(',')
                        .map(|m| m.trim().to_lowercase())
                        .collect(),
                )
            }
            "--strategies" => {
                strategies = value()?.split(',').map(|s| s.trim().to_string()).collect()
            }
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`: [--device cpu|cuda|wgpu] [--models beit,wavlm,llama] \
                 [--strategies NAME,...] [--warmup N] [--iters N] [--scale N (divides tokens and \
                 widths, for a quick check)]"
            ),
        }
    }
    anyhow::ensure!(scale > 0, "--scale must be positive");
    for strategy in &strategies {
        // Every name checked before the first timing.
        choose(strategy)?;
    }
    println!(
        "| product (×count per layer) | shape | route | ms | TFLOPS | rel. diff | fallbacks |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut summaries = Vec::new();
    for model in models(scale) {
        let key = model.name.split('-').next().unwrap_or("").to_lowercase();
        if only.as_ref().is_some_and(|only| !only.contains(&key)) {
            continue;
        }
        let routes = match device.as_str() {
            "cpu" => {
                run::<burn::backend::Flex>(&Default::default(), &model, &strategies, warmup, iters)?
            }
            #[cfg(feature = "wgpu")]
            "wgpu" => {
                let dev = daam::device::wgpu_device().map_err(anyhow::Error::msg)?;
                run::<daam::device::Wgpu>(&dev, &model, &strategies, warmup, iters)?
            }
            #[cfg(feature = "cuda")]
            "cuda" => {
                let dev = burn_cuda::CudaDevice::new(0);
                if model.half {
                    run::<burn_cuda::Cuda<half::f16>>(&dev, &model, &strategies, warmup, iters)?
                } else {
                    run::<burn_cuda::Cuda<f32>>(&dev, &model, &strategies, warmup, iters)?
                }
            }
            other => anyhow::bail!(
                "--device {other}: not in this build (cpu, or cuda/wgpu with their feature)"
            ),
        };
        summaries.push((model.name, routes));
    }
    println!();
    for (name, routes) in summaries {
        let base = routes[0].ms;
        for r in &routes {
            let fell_back = r.fell_back.map_or(String::new(), |n| {
                format!(", {n} of {} calls fell back to burn's", r.calls)
            });
            println!(
                "{name}: {}: {:.1} ms of products per forward ({:.2}× burn 2-D){fell_back}",
                r.name,
                r.ms,
                base / r.ms
            );
        }
        // A strategy whose every call fell back timed burn's product, not its own.
        let best = routes
            .iter()
            .filter(|r| r.fell_back.is_some_and(|n| n < r.calls))
            .min_by(|a, b| a.ms.total_cmp(&b.ms));
        match best {
            Some(r) => println!(
                "{name}: fastest strategy: {} ({:.2}× burn 2-D)",
                r.name,
                base / r.ms
            ),
            None if strategies.is_empty() => {}
            None => println!("{name}: fastest strategy: none (every call fell back)"),
        }
    }
    Ok(())
}
