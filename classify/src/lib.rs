//! The paper's classification experiments (§1.3–1.5, Table 2) over embedding stores: DAT heads
//! with each attention module the paper compares, training with the authors' settings, the
//! replication protocols and their reports, and Importance Factor figures.
//!
//! - [`head`]: [`head::DatHead`] with [`head::HeadKind`] `daam-v1`, `daam-v2`, `mixture`,
//!   `gq-daam`, `mha`, `mha-bn`, `gqa`, and parameter counts set against the authors'.
//! - [`train`]: focal and cross-entropy losses, per-task defaults, one training run.
//! - [`protocol`]: leave-one-session-out folds or seeded runs, with dev splits.
//! - [`replicate`] and [`report`]: every method over every run, resumable, and the
//!   Table-2 style report under both epoch-selection protocols.
//! - [`interpret`]: Importance Factor heatmaps, layer contributions, parameter ranges.
//!
//! Library code is generic over the backend; the `classify` binary picks Flex (CPU) or CUDA.

pub mod error;
pub mod extract;
pub mod finetune;
pub mod head;
pub mod interpret;
mod out_folder;
pub mod protocol;
pub mod replicate;
pub mod report;
pub mod synthetic;
pub mod train;

pub use error::{Error, Result};

#[cfg(test)]
pub(crate) mod tests {
    /// The backend unit tests run on.
    pub type TestBackend = burn::backend::Flex;
}
