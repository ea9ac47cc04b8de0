//! Seeded initialisation that gives the same parameters on every device.
//!
//! burn draws a module's random initial weights from the backend's own generator, so
//! `B::seed(device, s)` then `init` gives one model on the CPU (Flex) and another on CUDA or
//! wgpu for the same seed: a run could not be repeated on another device, nor a GPU run checked
//! step by step against the CPU. [`init_on_host`] draws them on the CPU under the seed and moves
//! them to the device, so a seed names one model everywhere.

use burn::backend::Flex;
use burn::module::Module;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{Backend, BackendTypes};

/// A module initialised on the CPU under `seed` and moved to `device`.
///
/// `host` and `target` build the same module (the same configuration) on Flex and on `B`;
/// `target`'s own random draws are replaced by `host`'s. Parameters travel in f32, as burn's
/// full-precision records hold them.
///
/// # Panics
/// If `host` and `target` build modules of different structure (a programming error: both
/// closures are meant to call the same `init`).
pub fn init_on_host<B, H, M>(
    seed: u64,
    device: &B::Device,
    host: impl FnOnce(&<Flex as BackendTypes>::Device) -> H,
    target: impl FnOnce(&B::Device) -> M,
) -> M
where
    B: Backend,
    H: Module<Flex>,
    M: Module<B>,
{
    let cpu = Default::default();
    Flex::seed(&cpu, seed);
    let drawn = host(&cpu);
    let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<Flex>::record(&recorder, drawn.into_record(), ())
        .expect("an in-memory record of a module serialises");
    let record = Recorder::<B>::load(&recorder, bytes, device)
        .expect("init_on_host: `host` and `target` must build the same module");
    target(device).load_record(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Tensor;

    #[test]
    fn the_seed_gives_the_host_draw_on_another_backend() {
        let config = LinearConfig::new(5, 3);
        let device = Default::default();
        let moved: Linear<Autodiff<Flex>> =
            init_on_host(7, &device, |d| config.init(d), |d| config.init(d));
        Flex::seed(&device, 7);
        let drawn: Linear<Flex> = config.init(&device);
        let moved = moved.weight.val().inner().into_data();
        moved.assert_eq(&drawn.weight.val().into_data(), true);
        // Another seed draws other weights: the seed is what decides.
        let other: Linear<Autodiff<Flex>> =
            init_on_host(8, &device, |d| config.init(d), |d| config.init(d));
        let other: Tensor<Flex, 2> = other.weight.val().inner();
        assert_ne!(other.into_data(), moved);
    }
}
