//! Errors of the `daam` crate (only its file-writing parts can fail; contract violations panic).

use std::path::PathBuf;

/// What can go wrong writing the Importance Factor's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Drawing or encoding a plot failed.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// What the plotting library reported.
        message: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Nothing was recorded before asking for the summary.
    #[error("no attention weights were recorded")]
    NothingRecorded,
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
