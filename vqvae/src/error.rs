//! Errors of the `vqvae` library.

use std::path::PathBuf;

/// What can go wrong in training, checkpointing and reconstruction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file is invalid.
    #[error("invalid configuration {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint is missing, incomplete, or does not fit the configuration.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading images failed.
    #[error(transparent)]
    Data(#[from] datasets::Error),
    /// A code file is malformed or does not fit the model.
    #[error("codes {path}: {message}")]
    Codes {
        /// The code file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the loss became {value} at step {step}; stopped without saving (last good checkpoint: \
         {last_checkpoint})"
    )]
    NonFiniteLoss {
        /// The step.
        step: u64,
        /// The loss value.
        value: f64,
        /// The last checkpoint written, or "none".
        last_checkpoint: String,
    },
    /// A command-line value the command cannot use; the message names the option.
    #[error("{0}")]
    Usage(String),
    /// No image could be read in a whole batch or input set.
    #[error("no readable image in {what}")]
    NoImages {
        /// Which input.
        what: String,
    },
    /// Ctrl-C or SIGTERM came before the first step: nothing was trained, nothing saved.
    #[error("interrupted while {during}: nothing was trained or saved")]
    Interrupted {
        /// What was under way.
        during: String,
    },
    /// Writing a figure failed.
    #[error("cannot write {path}: {message}")]
    Figure {
        /// The figure.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;
