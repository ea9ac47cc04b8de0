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

// Tested in `tests/host_init.rs`, a test binary of its own: the seed is the CPU backend's global
// generator, which the unit tests' random tensors draw from concurrently.
