//! Seeded initialisation of new parameters (LoRA adapters, classification heads), drawn on the
//! host from one `StdRng` stream so that a seed gives the same values on every backend and device
//! (burn's `Tensor::random` follows the backend's own generator and global seed).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A reproducible source of initial parameter values.
#[derive(Debug)]
pub struct SeededInit {
    /// The generator; every draw advances it.
    rng: StdRng,
}

impl SeededInit {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `N(0, std²)` values (Box–Muller).
    pub fn normal<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        std: f64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| {
                let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = self.rng.random();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (z * std) as f32
            })
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// `U(−bound, bound)` values.
    pub fn uniform<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        bound: f64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| ((2.0 * self.rng.random::<f64>() - 1.0) * bound) as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    fn moments(t: Tensor<B, 2>) -> (f32, f32) {
        let mean: f32 = t.clone().mean().into_scalar();
        let var: f32 = (t - mean).square().mean().into_scalar();
        (mean, var.sqrt())
    }

    #[test]
    fn normal_has_the_requested_moments_and_repeats_with_the_seed() {
        let device = Default::default();
        let a: Tensor<B, 2> = SeededInit::new(7).normal([301, 67], 0.5, &device);
        let b: Tensor<B, 2> = SeededInit::new(7).normal([301, 67], 0.5, &device);
        a.to_data().assert_eq(&b.into_data(), true);
        let (mean, std) = moments(a);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((std - 0.5).abs() < 0.01, "std {std}");
    }

    #[test]
    fn uniform_stays_within_the_bound_with_the_uniform_spread() {
        let device = Default::default();
        let t: Tensor<B, 2> = SeededInit::new(3).uniform([211, 53], 0.25, &device);
        let high: f32 = t.clone().abs().max().into_scalar();
        assert!(high <= 0.25, "{high}");
        let (mean, std) = moments(t);
        assert!(mean.abs() < 0.01, "mean {mean}");
        // U(−b, b) has standard deviation b/√3.
        assert!((std - 0.25 / 3f32.sqrt()).abs() < 0.005, "std {std}");
    }

    #[test]
    fn different_seeds_give_different_values() {
        let device = Default::default();
        let a: Tensor<B, 2> = SeededInit::new(1).normal([4, 5], 1.0, &device);
        let b: Tensor<B, 2> = SeededInit::new(2).normal([4, 5], 1.0, &device);
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert!(diff > 0.0);
    }
}
