//! Helpers the route benches share (`vqvae`'s `conv_routes`, `encoders`' `matmul_routes`):
//! timings that end with the device's queue, and the difference of two routes' results.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Tensor};

/// Median milliseconds of `iters` calls of `f` after `warmup` untimed ones, each ended by
/// [`Backend::sync`] so that a GPU's queued work is inside the timing.
///
/// # Panics
/// If `iters` is 0 or the device fails to sync.
pub fn median_ms<B: Backend>(
    device: &B::Device,
    warmup: usize,
    iters: usize,
    mut f: impl FnMut(),
) -> f64 {
    assert!(iters > 0, "median_ms: no timed iterations");
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

/// `max |a − b| / max |b|`: how far `a` is from the reference `b`, relative to `b`'s largest
/// magnitude.
pub fn relative_difference<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f64 {
    let scale: f64 = b.clone().abs().max().into_scalar().elem();
    let diff: f64 = (a - b).abs().max().into_scalar().elem();
    diff / scale.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn relative_difference_is_scaled_by_the_reference() {
        let device = Default::default();
        let b = Tensor::<Flex, 1>::from_floats([2.0, -4.0], &device);
        let a = Tensor::<Flex, 1>::from_floats([2.5, -4.0], &device);
        assert_eq!(relative_difference(a, b.clone()), 0.125);
        assert_eq!(relative_difference(b.clone(), b), 0.0);
    }

    #[test]
    fn median_of_the_timed_calls_only() {
        let mut calls = 0;
        let ms = median_ms::<Flex>(&Default::default(), 2, 3, || calls += 1);
        assert_eq!(calls, 5);
        assert!(ms >= 0.0);
    }
}
