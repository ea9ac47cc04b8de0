//! The VQ-VAE's stride-1 convolutions, one at a time, by the two composed routes a cubecl
//! backend can take (`DAAM_CONV`): matrix products over the unfolded input (`gemm`,
//! [`daam::conv_gemm`]) and the backend's implicit-GEMM kernel (`implicit`,
//! [`DaamBackend::implicit_conv2d`]: burn-cubecl's tensor-core convolution on CUDA and wgpu; on
//! other backends it is the matrix products again). For each shape of the preset, at its batch
//! size: forward and backward (data and weight gradients) milliseconds per route, each the median
//! of `--iters` calls ended by [`Backend::sync`], and the implicit route's largest difference from
//! the matrix products relative to their largest magnitude, for the output and both gradients.
//! Prints a markdown table, then how many implicit calls fell back to matrix products.
//!
//! ```sh
//! cargo bench -p vqvae --features cuda --bench conv_routes -- --device cuda --preset paper
//! ```
#![allow(missing_docs)]

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use daam::conv_gemm::{conv2d_gemm, conv2d_gemm_backward};
use daam::device::Device;
use daam::DaamBackend;
use vqvae::config::Preset;

/// One stride-1 convolution of the model: `in → out` channels, `kernel × kernel`, padding
/// `kernel / 2`, on `size × size` inputs; `count` of them in the model.
struct Shape {
    name: String,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    size: usize,
    count: usize,
}

/// The stride-1 convolutions of a preset's model (encoder stem, residual blocks, projection to
/// the codes, decoder stem, residual blocks, projection to the image); the strided and
/// transposed ones take the matrix products on either route.
fn shapes(preset: Preset) -> (usize, Vec<Shape>) {
    let config = preset.config();
    let hidden = &config.model.hidden;
    let code_dim = config.model.code_dim;
    let size = config.data.image_size as usize;
    let n = hidden.len();
    let shape = |name: String, in_channels, out_channels, kernel, size, count| Shape {
        name,
        in_channels,
        out_channels,
        kernel,
        size,
        count,
    };
    let mut list = vec![shape("encoder stem".into(), 3, hidden[0], 3, size, 1)];
    for (i, &c) in hidden.iter().enumerate() {
        let at = size >> (i + 1);
        list.push(shape(format!("encoder residual {i}"), c, c, 3, at, 2));
    }
    list.push(shape(
        "to code".into(),
        hidden[n - 1],
        code_dim,
        1,
        size >> n,
        1,
    ));
    list.push(shape(
        "decoder stem".into(),
        code_dim,
        hidden[n - 1],
        3,
        size >> n,
        1,
    ));
    for i in 0..n {
        let c = if i + 1 < n {
            hidden[n - 2 - i]
        } else {
            hidden[0]
        };
        let at = size >> (n - 1 - i);
        list.push(shape(format!("decoder residual {i}"), c, c, 3, at, 2));
    }
    list.push(shape("to image".into(), hidden[0], 3, 3, size, 1));
    (config.train.batch_size, list)
}

/// Median milliseconds of `iters` calls of `f` after `warmup`, each ended by a sync.
fn time<B: Backend>(device: &B::Device, warmup: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    B::sync(device).expect("sync");
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            f();
            B::sync(device).expect("sync");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `max |a − b| / max |b|`.
fn relative<B: Backend>(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f64 {
    let scale = b.clone().abs().max().into_scalar();
    let diff = (a - b).abs().max().into_scalar();
    let [scale, diff]: [f64; 2] = [
        burn::tensor::ElementConversion::elem(scale),
        burn::tensor::ElementConversion::elem(diff),
    ];
    diff / scale.max(f64::MIN_POSITIVE)
}

fn run<B: DaamBackend>(
    device: &B::Device,
    preset: Preset,
    batch: Option<usize>,
    warmup: usize,
    iters: usize,
) {
    let (preset_batch, list) = shapes(preset);
    let batch = batch.unwrap_or(preset_batch);
    println!(
        "| convolution (×count) | shape | gemm fwd ms | implicit fwd ms | gemm bwd ms | \
         implicit bwd ms | rel. diff y / ∂x / ∂w |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut gemm_total, mut implicit_total) = (0.0, 0.0);
    for s in &list {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<B, 4>::random([batch, s.in_channels, s.size, s.size], normal, device);
        let fan_in = (s.in_channels * s.kernel * s.kernel) as f64;
        let weight = Tensor::<B, 4>::random(
            [s.out_channels, s.in_channels, s.kernel, s.kernel],
            Distribution::Normal(0.0, fan_in.sqrt().recip()),
            device,
        );
        let bias = Tensor::<B, 1>::random([s.out_channels], normal, device);
        let grad = Tensor::<B, 4>::random([batch, s.out_channels, s.size, s.size], normal, device);
        let padding = [s.kernel / 2; 2];
        let prim = |t: &Tensor<B, 4>| t.clone().into_primitive().tensor();
        let gemm_forward = || {
            conv2d_gemm(
                x.clone(),
                weight.clone(),
                Some(bias.clone()),
                [1, 1],
                padding,
            )
        };
        let implicit_forward = || -> Tensor<B, 4> {
            Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(B::implicit_conv2d(
                prim(&x),
                prim(&weight),
                bias.clone().into_primitive().tensor(),
                padding,
            )))
        };
        let gemm_backward =
            || conv2d_gemm_backward(x.clone(), weight.clone(), [1, 1], padding, grad.clone());
        let implicit_backward = || {
            let (gx, gw) =
                B::implicit_conv2d_backward(prim(&x), prim(&weight), padding, prim(&grad));
            let wrap = |t| Tensor::<B, 4>::from_primitive(burn::tensor::TensorPrimitive::Float(t));
            (wrap(gx), wrap(gw))
        };
        let y_diff = relative(implicit_forward(), gemm_forward());
        let (gx, gw) = implicit_backward();
        let reference = gemm_backward();
        let (x_diff, w_diff) = (relative(gx, reference.x), relative(gw, reference.weight));
        let gemm_fwd = time::<B>(device, warmup, iters, || drop(gemm_forward()));
        let implicit_fwd = time::<B>(device, warmup, iters, || drop(implicit_forward()));
        let gemm_bwd = time::<B>(device, warmup, iters, || {
            let g = gemm_backward();
            drop((g.x, g.weight));
        });
        let implicit_bwd = time::<B>(device, warmup, iters, || drop(implicit_backward()));
        gemm_total += (gemm_fwd + gemm_bwd) * s.count as f64;
        implicit_total += (implicit_fwd + implicit_bwd) * s.count as f64;
        println!(
            "| {} (×{}) | {}→{} {k}×{k} @{}² | {gemm_fwd:.3} | {implicit_fwd:.3} | {gemm_bwd:.3} | \
             {implicit_bwd:.3} | {y_diff:.1e} / {x_diff:.1e} / {w_diff:.1e} |",
            s.name,
            s.count,
            s.in_channels,
            s.out_channels,
            s.size,
            k = s.kernel,
        );
    }
    println!(
        "\n{} batch {batch}: the stride-1 convolutions' forward + backward, ×count: gemm \
         {gemm_total:.1} ms, implicit {implicit_total:.1} ms ({:.2}×)",
        preset.name(),
        gemm_total / implicit_total
    );
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    println!(
        "implicit calls that fell back to matrix products: {}",
        daam::implicit::fallbacks()
    );
}

fn main() -> anyhow::Result<()> {
    let (mut device, mut preset, mut batch, mut warmup, mut iters) =
        (Device::Cpu, Preset::Small, None, 2, 10);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--device" => device = value()?.parse().map_err(anyhow::Error::msg)?,
            "--preset" => {
                preset = match value()?.as_str() {
                    "paper" => Preset::Paper,
                    "small" => Preset::Small,
                    "tiny" => Preset::Tiny,
                    other => anyhow::bail!("--preset must be paper, small or tiny, got `{other}`"),
                }
            }
            "--batch" => batch = Some(value()?.parse()?),
            "--warmup" => warmup = value()?.parse()?,
            "--iters" => iters = value()?.parse()?,
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`: [--device cpu|cuda|wgpu] [--preset paper|small|tiny] \
                 [--batch N] [--warmup N] [--iters N]"
            ),
        }
    }
    daam::dispatch!(device, |B, dev| {
        run::<B>(&dev, preset, batch, warmup, iters);
        Ok(())
    })
}
