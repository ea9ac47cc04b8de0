//! A generative VQ-VAE whose down- and up-sampling blocks carry DAAM residual blocks on the
//! channel axis (the authors' blog, "Advanced Applications"; `../shared/DESIGN.md`, "vqvae").
//!
//! - [`model`]: the network ([`model::VqVae`]), generic over any [`daam::DaamBackend`].
//! - [`config`]: presets (`paper`, `small`, `tiny`) and TOML overrides.
//! - [`train`]: the training loop with checkpoints, resumption and Ctrl-C.
//! - [`reconstruct`], [`compare`]: reconstructions, code export/decoding, comparisons.
//! - [`eval`], [`grid`], [`tiles`]: metrics, pictures, tiled evaluation of larger images.

pub mod compare;
pub mod config;
pub mod data;
mod error;
pub mod eval;
pub mod grid;
pub mod model;
pub mod reconstruct;
pub mod tiles;
pub mod train;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod tests {
    /// The backend unit tests run on.
    pub type TestBackend = burn::backend::Flex;
    /// The autodiff backend unit tests train on.
    pub type TestAutodiff = burn::backend::Autodiff<TestBackend>;
}
