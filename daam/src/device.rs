//! `--device cpu|cuda[:N]|wgpu` for the workspace's binaries, and the macros that dispatch a generic
//! function to a concrete backend. Library code stays generic over `B: Backend`; only a
//! binary's `main` expands [`dispatch!`](crate::dispatch) or
//! [`dispatch_autodiff!`](crate::dispatch_autodiff), with its own `cuda` and `wgpu` features
//! deciding whether CUDA and wgpu are compiled in.

use std::str::FromStr;

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// burn's Flex CPU backend.
    Cpu,
    /// burn's CUDA backend on GPU `N`.
    Cuda(usize),
    /// burn's wgpu backend on wgpu's default adapter (Vulkan, Metal or DirectX 12; the variable
    /// `CUBECL_WGPU_DEFAULT_DEVICE`, e.g. `DiscreteGpu(1)` or `Cpu`, picks another).
    Wgpu,
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "wgpu" => Ok(Self::Wgpu),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: use cpu, cuda, cuda:N or wgpu")),
        }
    }
}

/// burn's CUDA backend (fusion on; cubecl's autotune with the `autotune` feature).
#[cfg(feature = "cuda")]
pub type Cuda<F = f32> = burn_cuda::Cuda<F, i32>;

/// A device of [`Cuda`].
#[cfg(feature = "cuda")]
pub use burn_cuda::CudaDevice;

/// A CUDA device, checked to work: without a driver cudarc panics, which becomes an error here.
/// Turns cubecl's kernel caches on first ([`crate::kernel_cache::configure`]).
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<CudaDevice, String> {
    probe::<Cuda>("CUDA", || CudaDevice::new(index))
        .map_err(|reason| format!("CUDA device cuda:{index} is not available: {reason}"))
}

/// What the binaries print when they open a CUDA device: burn's CUDA backend compiles (NVRTC)
/// every new kernel on first use, and with the `autotune` feature compiles and times candidates
/// per matmul shape — the `small` VQ-VAE forward alone had compiled 166 kernels, about 1.5 per
/// second on an H200, and was not done after 100 s (BENCHMARKS.md, GPU section) — and where the
/// compiled kernels are kept.
#[cfg(feature = "cuda")]
pub fn cuda_notice() -> String {
    format!(
        "CUDA: the first steps compile every kernel they use, about 1.5 per second (more than \
         100 s for a VQ-VAE step on a fresh machine); compiled kernels are {}",
        crate::kernel_cache::configure()
    )
}

/// burn's wgpu backend (fusion on; cubecl's autotune with the `autotune` feature).
#[cfg(feature = "wgpu")]
pub type Wgpu<F = f32> = burn_wgpu::Wgpu<F, i32>;

/// A device of [`Wgpu`].
#[cfg(feature = "wgpu")]
pub use burn_wgpu::WgpuDevice;

/// wgpu's default adapter, checked to work: without one cubecl panics, which becomes an error
/// here. Turns cubecl's kernel caches on first ([`crate::kernel_cache::configure`]).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Result<WgpuDevice, String> {
    probe::<Wgpu>("wgpu", || WgpuDevice::DefaultDevice).map_err(|reason| {
        format!("no wgpu adapter is available (Vulkan, Metal or DirectX 12): {reason}")
    })
}

/// The device `open` makes, after one tensor has made the round trip to it; a panic on the way
/// becomes its message. Configures the kernel caches first and, once the device works, makes
/// its device threads' panics end the process ([`exit_on_device_thread_panic`]).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn probe<B: burn::tensor::backend::Backend>(
    backend: &'static str,
    open: impl FnOnce() -> B::Device + std::panic::UnwindSafe,
) -> Result<B::Device, String> {
    use burn::tensor::Tensor;
    crate::kernel_cache::configure();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let device = open();
        let _ = Tensor::<B, 1>::zeros([1], &device).into_data();
        device
    });
    std::panic::set_hook(hook);
    let device = probe.map_err(|panic| panic_message(panic.as_ref()).to_string())?;
    exit_on_device_thread_panic(backend);
    Ok(device)
}

/// The text of a panic's payload.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown error")
}

/// Makes a panic on one of cubecl's device threads end the process with a one-line error.
///
/// cubecl runs every GPU operation as a task on a device thread (`DSU-…`, `DSD-…`) and catches
/// a task's panic there, logging it; the program waiting for that task's output then waits for
/// ever. A failed buffer allocation is such a panic: a `paper` step at a batch size the device
/// could not allocate (on wgpu, larger than the adapter's largest buffer) hung `vqvae train`
/// without a message. Checkpoints are written to a temporary folder and renamed, so ending the
/// process here loses only the steps since the last one. Installed once, by the device
/// constructors.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn exit_on_device_thread_panic(backend: &'static str) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let on_device = thread
                .name()
                .is_some_and(|name| name.starts_with("DSU-") || name.starts_with("DSD-"));
            if !on_device {
                return previous(info);
            }
            let reason = panic_message(info.payload());
            eprintln!("error: the {backend} device failed: {reason}");
            if reason.contains("allocate") {
                eprintln!(
                    "  it ran out of memory, or a tensor is larger than the device's largest \
                     buffer: try a smaller --batch-size"
                );
            }
            std::process::exit(1);
        }));
    });
}

/// What the binaries print when they open a wgpu device: as [`cuda_notice`], every new kernel
/// is compiled on first use.
#[cfg(feature = "wgpu")]
pub fn wgpu_notice() -> String {
    format!(
        "wgpu: the first steps compile every kernel they use; compiled kernels are {}",
        crate::kernel_cache::configure()
    )
}

/// Runs `$body` with `$B` an autodiff backend for `$device` and `$dev` its device.
#[macro_export]
macro_rules! dispatch_autodiff {
    ($device:expr, |$B:ident, $dev:ident| $body:expr) => {
        $crate::__dispatch!($device, [burn::backend::Autodiff<] [>], |$B, $dev| $body)
    };
}

/// Runs `$body` with `$B` an inference backend for `$device` and `$dev` its device.
#[macro_export]
macro_rules! dispatch {
    ($device:expr, |$B:ident, $dev:ident| $body:expr) => {
        $crate::__dispatch!($device, [] [], |$B, $dev| $body)
    };
}

/// [`dispatch!`] and [`dispatch_autodiff!`]: `$B` is the backend wrapped in `$open … $close`.
#[doc(hidden)]
#[macro_export]
macro_rules! __dispatch {
    ($device:expr, [$($open:tt)*] [$($close:tt)*], |$B:ident, $dev:ident| $body:expr) => {
        match $device {
            $crate::device::Device::Cpu => {
                type $B = $($open)* burn::backend::Flex $($close)*;
                let $dev = Default::default();
                $body
            }
            $crate::device::Device::Cuda(index) => {
                #[cfg(feature = "cuda")]
                {
                    type $B = $($open)* $crate::device::Cuda $($close)*;
                    let $dev = $crate::device::cuda_device(index).map_err(anyhow::Error::msg)?;
                    eprintln!("{}", $crate::device::cuda_notice());
                    $body
                }
                #[cfg(not(feature = "cuda"))]
                {
                    let _ = index;
                    anyhow::bail!(concat!(
                        "this ",
                        env!("CARGO_PKG_NAME"),
                        " was built without CUDA support: rebuild with \
                         `cargo build --release --features cuda`"
                    ))
                }
            }
            $crate::device::Device::Wgpu => {
                #[cfg(feature = "wgpu")]
                {
                    type $B = $($open)* $crate::device::Wgpu $($close)*;
                    let $dev = $crate::device::wgpu_device().map_err(anyhow::Error::msg)?;
                    eprintln!("{}", $crate::device::wgpu_notice());
                    $body
                }
                #[cfg(not(feature = "wgpu"))]
                {
                    anyhow::bail!(concat!(
                        "this ",
                        env!("CARGO_PKG_NAME"),
                        " was built without wgpu support: rebuild with \
                         `cargo build --release --features wgpu`"
                    ))
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!("wgpu".parse(), Ok(Device::Wgpu));
        assert!("gpu"
            .parse::<Device>()
            .unwrap_err()
            .contains("unknown device `gpu`"));
    }
}
