//! The `daam` integration tests, in one test binary (one link of burn's generic code instead of
//! one per file): PyTorch fixtures, fused kernels against the composed burn ops, extremes and
//! GroupNorm.

mod common;
mod extremes;
mod fixtures;
mod fused_vs_composed;
mod group_norm;
mod unfused;
