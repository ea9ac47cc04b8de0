//! Which scale the per-feature Gaussian's exponent divides by.

use serde::{Deserialize, Serialize};

/// The exponent of the per-feature DAAM weight `w = exp(−y² / (2 s))`.
///
/// The authors' code and the paper's Algorithm 1 divide by `2ξ` (ξ acts as a variance); the
/// paper's text writes `2c²` (ξ as a standard deviation). See `reference/daam-reference.md` §1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GaussianForm {
    /// `exp(−y² / (2ξ))`: the authors' code and Alg. 1 (default).
    #[default]
    Variance,
    /// `exp(−y² / (2ξ²))`: the paper's §1 text.
    StdDev,
}
