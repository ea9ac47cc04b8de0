//! Fused CPU kernels: each module's forward and backward as one pass over plain slices.
//!
//! The kernels see a tensor as `[outer, axis, inner]` (row-major, contiguous): statistics run
//! along `axis`, split into head chunks; `inner` is the contiguous, vectorised axis. They are
//! generic over [`Real`] so the same code runs in `f32` (the backend) and `f64` (the
//! finite-difference tests). The composed tensor-op versions in [`crate::reference`] are the
//! readable specification these kernels are tested against.

pub mod attention;
pub mod conv2d;
pub mod conv2d_shifted;
#[cfg(test)]
mod gradcheck;
pub mod group_norm;
mod layout;
pub mod mixture;
pub mod per_feature;
pub mod simd;

pub use layout::{HeadChunks, ViewDims};

use num_traits::Float;

/// The float types the kernels run in.
pub trait Real: Float + Send + Sync + core::iter::Sum + core::fmt::Debug + 'static {
    /// Converts from `f64` (constants, accumulators).
    fn of(value: f64) -> Self;
    /// Converts to `f64`.
    fn to_f64_lossy(self) -> f64;
    /// `e^x` computed in f64 to the precision this storage type keeps.
    fn exp(x: f64) -> f64;
}

impl Real for f32 {
    #[inline(always)]
    fn of(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn to_f64_lossy(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn exp(x: f64) -> f64 {
        simd::exp_degree::<7>(x)
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn to_f64_lossy(self) -> f64 {
        self
    }
    #[inline(always)]
    fn exp(x: f64) -> f64 {
        simd::exp(x)
    }
}
