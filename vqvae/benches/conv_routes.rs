//! The VQ-VAE's convolutions (stride 1, the strided down-sampling and the transposed
//! up-sampling ones), one at a time, by the two composed routes a cubecl backend can take
//! (`DAAM_CONV`): matrix products over the unfolded input (`gemm`, [`daam::conv_gemm`]) and the
//! backend's implicit-GEMM kernels (`implicit`, [`daam::conv_implicit`]: cubek's tensor-core
//! convolutions on CUDA and wgpu, a transposed convolution and a strided one's data gradient as
//! one stride-1 convolution per output phase; on other backends the kernels are the matrix
//! products again). For each shape of the preset, at its batch size: forward and backward (data and weight gradients) milliseconds per route, each the median
//! of `--iters` calls ended by [`Backend::sync`], and the implicit route's largest difference from
//! the matrix products relative to their largest magnitude, for the output and both gradients.
//! `--kernels` times several of the implicit route's kernels (`DAAM_IMPLICIT`'s names,
//! `ALGORITHM:TILE`) in one run. Prints a markdown table (one row per shape and kernel; the
//! fallbacks column counts the calls that ran as matrix products because the kernel did not
//! take them: the kernel's part then runs as matrix products, inside its timing), each
//! kernel's total over the model's convolutions, and the fastest kernel that ran at all.
//!
//! ```sh
//! cargo bench -p vqvae --features cuda --bench conv_routes -- --device cuda --preset paper \
//!     --kernels simple_sync_cyclic:cmma,simple_async_tma:mma
//! ```
#![allow(missing_docs)]

use burn::tensor::{Distribution, Tensor};
use daam::bench::{median_ms, relative_difference};
use daam::conv_gemm::{
    conv2d_gemm, conv2d_gemm_backward, conv_transpose2d_gemm, conv_transpose2d_gemm_backward,
    GemmGrads,
};
use daam::device::Device;
use daam::{conv_implicit, DaamBackend};
use vqvae::config::Preset;

/// One convolution of the model: `in → out` channels, `kernel × kernel`, on `size × size`
/// inputs; `count` of them in the model. Stride 1 with padding `kernel / 2`, or (`sampling`)
/// the blocks' 4×4 stride-2 padding-1 down-sampling convolution or up-sampling transposed one.
struct Shape {
    name: String,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    size: usize,
    count: usize,
    sampling: Sampling,
}

#[derive(Clone, Copy, PartialEq)]
enum Sampling {
    None,
    Down,
    Up,
}

impl Shape {
    fn stride(&self) -> [usize; 2] {
        match self.sampling {
            Sampling::None => [1, 1],
            Sampling::Down | Sampling::Up => [2, 2],
        }
    }

    fn padding(&self) -> [usize; 2] {
        [self.kernel / 2 - usize::from(self.sampling != Sampling::None); 2]
    }

    fn out_size(&self) -> usize {
        match self.sampling {
            Sampling::None => self.size,
            Sampling::Down => self.size / 2,
            Sampling::Up => self.size * 2,
        }
    }

    fn weight_dims(&self) -> [usize; 4] {
        let k = self.kernel;
        match self.sampling {
            Sampling::Up => [self.in_channels, self.out_channels, k, k],
            _ => [self.out_channels, self.in_channels, k, k],
        }
    }

    /// The forward by the matrix products or the implicit route.
    fn forward<B: DaamBackend>(
        &self,
        implicit: bool,
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Tensor<B, 1>,
    ) -> Tensor<B, 4> {
        let (stride, padding, bias) = (self.stride(), self.padding(), Some(bias));
        match (self.sampling, implicit) {
            (Sampling::Up, false) => {
                conv_transpose2d_gemm(x, weight, bias, stride, padding, [0, 0])
            }
            (Sampling::Up, true) => {
                conv_implicit::conv_transpose2d(x, weight, bias, stride, padding, [0, 0])
            }
            (_, false) => conv2d_gemm(x, weight, bias, stride, padding),
            (_, true) => conv_implicit::conv2d(x, weight, bias, stride, padding),
        }
    }

    /// The data, weight and bias gradients by the matrix products or the implicit route.
    fn backward<B: DaamBackend>(
        &self,
        implicit: bool,
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        grad: Tensor<B, 4>,
    ) -> GemmGrads<B> {
        let (stride, padding) = (self.stride(), self.padding());
        match (self.sampling, implicit) {
            (Sampling::Up, false) => {
                conv_transpose2d_gemm_backward(x, weight, stride, padding, [0, 0], grad)
            }
            (Sampling::Up, true) => {
                conv_implicit::conv_transpose2d_backward(x, weight, stride, padding, [0, 0], grad)
            }
            (_, false) => conv2d_gemm_backward(x, weight, stride, padding, grad),
            (_, true) => conv_implicit::conv2d_backward(x, weight, stride, padding, grad),
        }
    }

    /// Implicit-GEMM kernel calls (the unit of the fallback count) of a forward and a backward:
    /// forward, data and weight gradient, where a transposed convolution's forward and a
    /// strided one's data gradient are four phases each.
    fn kernel_calls(&self) -> usize {
        match self.sampling {
            Sampling::None => 3,
            Sampling::Down | Sampling::Up => 2 + self.stride()[0] * self.stride()[1],
        }
    }

    fn describe(&self) -> String {
        let what = match self.sampling {
            Sampling::None => "",
            Sampling::Down => " stride 2",
            Sampling::Up => " transposed, stride 2",
        };
        format!(
            "{}→{} {k}×{k}{what} @{}²",
            self.in_channels,
            self.out_channels,
            self.size,
            k = self.kernel
        )
    }
}

/// The convolutions of a preset's model: encoder stem, each block's down-sampling convolution
/// and residual block, projection to the codes, decoder stem, each block's up-sampling
/// transposed convolution and residual block, projection to the image.
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
        sampling: Sampling::None,
    };
    let sampling = |name: String, in_channels, out_channels, size, sampling| Shape {
        sampling,
        ..shape(name, in_channels, out_channels, 4, size, 1)
    };
    let mut list = vec![shape("encoder stem".into(), 3, hidden[0], 3, size, 1)];
    let mut c_in = hidden[0];
    for (i, &c) in hidden.iter().enumerate() {
        let at = size >> (i + 1);
        list.push(sampling(
            format!("encoder down {i}"),
            c_in,
            c,
            at * 2,
            Sampling::Down,
        ));
        list.push(shape(format!("encoder residual {i}"), c, c, 3, at, 2));
        c_in = c;
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
    let mut c_in = hidden[n - 1];
    for i in 0..n {
        let c = if i + 1 < n {
            hidden[n - 2 - i]
        } else {
            hidden[0]
        };
        let at = size >> (n - 1 - i);
        list.push(sampling(
            format!("decoder up {i}"),
            c_in,
            c,
            at / 2,
            Sampling::Up,
        ));
        list.push(shape(format!("decoder residual {i}"), c, c, 3, at, 2));
        c_in = c;
    }
    list.push(shape("to image".into(), hidden[0], 3, 3, size, 1));
    (config.train.batch_size, list)
}

/// The implicit route's kernel names to time (`--kernels`); one unnamed entry where the build
/// has no choice (no cubecl backend).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn select(kernel: &Option<String>) -> anyhow::Result<String> {
    if let Some(name) = kernel {
        daam::implicit::set_kernel(name).map_err(anyhow::Error::msg)?;
    }
    Ok(daam::implicit::kernel_name())
}

#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
fn select(kernel: &Option<String>) -> anyhow::Result<String> {
    anyhow::ensure!(
        kernel.is_none(),
        "--kernels needs a cubecl build (cuda or wgpu)"
    );
    Ok("matrix products".into())
}

fn fallbacks() -> usize {
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    return daam::implicit::fallbacks();
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    0
}

fn run<B: DaamBackend>(
    device: &B::Device,
    preset: Preset,
    batch: Option<usize>,
    kernels: &[Option<String>],
    cube: bool,
    warmup: usize,
    iters: usize,
) -> anyhow::Result<()> {
    for kernel in kernels {
        // Every name checked before the first timing.
        select(kernel)?;
    }
    let (preset_batch, list) = shapes(preset);
    let batch = batch.unwrap_or(preset_batch);
    println!(
        "| convolution (×count) | shape | implicit kernel | gemm fwd ms | implicit fwd ms | \
         gemm bwd ms | implicit bwd ms | rel. diff y / ∂x / ∂w | fallbacks |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut gemm_total = 0.0;
    let mut implicit_totals = vec![0.0; kernels.len()];
    let mut names = vec![String::new(); kernels.len()];
    let mut kernel_fallbacks = vec![0; kernels.len()];
    for s in &list {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<B, 4>::random([batch, s.in_channels, s.size, s.size], normal, device);
        let fan_in = (s.in_channels * s.kernel * s.kernel) as f64;
        let weight = Tensor::<B, 4>::random(
            s.weight_dims(),
            Distribution::Normal(0.0, fan_in.sqrt().recip()),
            device,
        );
        let bias = Tensor::<B, 1>::random([s.out_channels], normal, device);
        let out = s.out_size();
        let grad = Tensor::<B, 4>::random([batch, s.out_channels, out, out], normal, device);
        let forward = |implicit| s.forward(implicit, x.clone(), weight.clone(), bias.clone());
        // With the bias gradient, on either route.
        let backward = |implicit| s.backward(implicit, x.clone(), weight.clone(), grad.clone());
        let gemm_forward = || forward(false);
        let implicit_forward = || forward(true);
        let gemm_backward = || backward(false);
        let implicit_backward = || {
            let g = backward(true);
            (g.x, g.weight, g.bias)
        };
        let gemm_fwd = median_ms::<B>(device, warmup, iters, || drop(gemm_forward()));
        let gemm_bwd = median_ms::<B>(device, warmup, iters, || drop(gemm_backward()));
        gemm_total += (gemm_fwd + gemm_bwd) * s.count as f64;
        let reference_y = gemm_forward();
        let reference = gemm_backward();
        for (k, kernel) in kernels.iter().enumerate() {
            names[k] = if cube {
                select(kernel)?
            } else {
                "none: the backend's default, matrix products".into()
            };
            let before = fallbacks();
            let y_diff = relative_difference(implicit_forward(), reference_y.clone());
            let (gx, gw, _) = implicit_backward();
            let x_diff = relative_difference(gx, reference.x.clone());
            let w_diff = relative_difference(gw, reference.weight.clone());
            let implicit_fwd = median_ms::<B>(device, warmup, iters, || drop(implicit_forward()));
            let implicit_bwd = median_ms::<B>(device, warmup, iters, || drop(implicit_backward()));
            implicit_totals[k] += (implicit_fwd + implicit_bwd) * s.count as f64;
            let fell_back = fallbacks() - before;
            kernel_fallbacks[k] += fell_back;
            println!(
                "| {} (×{}) | {} | {} | {gemm_fwd:.3} | {implicit_fwd:.3} | {gemm_bwd:.3} | \
                 {implicit_bwd:.3} | {y_diff:.1e} / {x_diff:.1e} / {w_diff:.1e} | {} |",
                s.name,
                s.count,
                s.describe(),
                names[k],
                fell_back,
            );
        }
    }
    println!(
        "\n{} batch {batch}, the convolutions' forward + backward ×count: gemm \
         {gemm_total:.1} ms",
        preset.name()
    );
    // Each shape calls each kernel for its passes, once for the differences and `warmup +
    // iters` times for the timings.
    let calls = list.iter().map(Shape::kernel_calls).sum::<usize>() * (1 + warmup + iters);
    let mut best = None;
    for ((name, total), fell_back) in names.iter().zip(&implicit_totals).zip(&kernel_fallbacks) {
        println!(
            "implicit {name}: {total:.1} ms ({:.2}× gemm), {fell_back} of {calls} calls fell \
             back to matrix products",
            gemm_total / total
        );
        if *fell_back < calls && best.is_none_or(|(_, b)| total < b) {
            best = Some((name, total));
        }
    }
    match best {
        Some((name, total)) => println!(
            "fastest implicit kernel: {name} ({:.2}× gemm)",
            gemm_total / total
        ),
        None => println!("fastest implicit kernel: none (every call fell back)"),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (mut device, mut preset, mut batch, mut warmup, mut iters) =
        (Device::Cpu, Preset::Small, None, 2, 10);
    let mut kernels = vec![None];
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
            "--kernels" => {
                kernels = value()?
                    .split(',')
                    .map(|k| Some(k.trim().to_string()))
                    .collect()
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => anyhow::bail!(
                "unknown argument `{other}`: [--device cpu|cuda|wgpu] [--preset paper|small|tiny] \
                 [--batch N] [--warmup N] [--iters N] [--kernels ALGORITHM:TILE,...]"
            ),
        }
    }
    // Flex has no implicit kernel (DaamBackend's default: matrix products).
    let cube = !matches!(device, Device::Cpu);
    daam::dispatch!(device, |B, dev| {
        run::<B>(&dev, preset, batch, &kernels, cube, warmup, iters)
    })
}
