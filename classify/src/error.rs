//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong training, evaluating or reporting on heads.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// An embedding store or data file could not be read.
    #[error(transparent)]
    Data(#[from] datasets::Error),
    /// A JSON file (run result, report, checkpoint metadata) is malformed.
    #[error("cannot parse {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A per-run metrics CSV is malformed.
    #[error("{}: line {line}: {message}", path.display())]
    Metrics {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The stores do not fit the request (sizes, classes, folds).
    #[error("{}: {message}", path.display())]
    Store {
        /// The store.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A model checkpoint could not be saved or loaded.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// After an epoch whose losses were finite, the head's weights or outputs are not.
    #[error(
        "{what}: the run diverged at epoch {epoch}: {message}; its accuracies would be those of \
         a broken model, so the run stops: retrain with a lower --lr"
    )]
    Diverged {
        /// The run.
        what: String,
        /// Epoch (1-based).
        epoch: usize,
        /// What is not finite.
        message: String,
    },
    /// The training loss became NaN or infinite.
    #[error("{what}: the loss became {value} at epoch {epoch}, step {step}")]
    NonFiniteLoss {
        /// The run.
        what: String,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The value.
        value: f32,
    },
    /// Mixed-precision `f16` training: the gradients overflowed step after step until the
    /// loss scale fell below 1 (the forward itself does not fit `f16`).
    #[error(
        "{what}: f16 gradients overflowed {overflows} steps in a row until the loss scale fell \
         below 1 (epoch {epoch}, step {step}); train with --precision bf16 or f32"
    )]
    LossScaleCollapsed {
        /// The run.
        what: String,
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// Overflowing steps in a row.
        overflows: usize,
    },
    /// A head cannot give what was asked of it (an Importance Factor from a head without
    /// density weights, or over no items).
    #[error("{what}: {message}")]
    Interpretation {
        /// The head or run.
        what: String,
        /// Why not.
        message: String,
    },
    /// An encoder could not be loaded or run (`classify extract`).
    #[error(transparent)]
    Encoder(#[from] encoders::Error),
    /// The run was interrupted (Ctrl-C); finished runs are kept.
    #[error("interrupted")]
    Interrupted,
    /// A store that the validator finds problems in (labels out of range, non-finite
    /// features, duplicate ids, ...), refused before anything trains on it.
    #[error("{}", store_problems(report))]
    StoreProblems {
        /// What [`datasets::validate_store`] found (boxed: it carries the store's warnings and
        /// fingerprint, and would make every `Result` of the crate as large).
        report: Box<datasets::ValidationReport>,
    },
    /// A setting (a command-line option, a field of a run's file) is out of range or does not
    /// fit the rest; refused before anything is written.
    #[error("{setting}: {message}")]
    InvalidSetting {
        /// The option or field, as the user wrote it (`--lr`, `head.json num_layers`).
        setting: String,
        /// What is wrong, with the value.
        message: String,
    },
}

/// Problems listed at most in an [`Error::StoreProblems`] message.
const PROBLEMS_SHOWN: usize = 5;

fn store_problems(report: &datasets::ValidationReport) -> String {
    let total = report.problems.len();
    let mut message = format!(
        "{}: the store has {total} problem{}, so nothing trains on it:",
        report.dir.display(),
        if total == 1 { "" } else { "s" }
    );
    for problem in report.problems.iter().take(PROBLEMS_SHOWN) {
        message.push_str(&format!("\n  {problem}"));
    }
    if total > PROBLEMS_SHOWN {
        message.push_str(&format!(
            "\n  ... and {} more (`classify validate {}` lists them all)",
            total - PROBLEMS_SHOWN,
            report.dir.display()
        ));
    }
    message
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::InvalidSetting`] for `setting`.
pub(crate) fn invalid(setting: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSetting {
        setting: setting.into(),
        message: message.into(),
    }
}

/// An [`Error::Io`] for `path`.
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Locks the output folder `dir` for this process ([`daam::folder_lock`]); `what` says what the
/// process writes there ("the store", "the replication").
/// Refuses an `--out` that exists and is not a folder (the OS said only "File exists").
pub(crate) fn out_is_a_folder(dir: &std::path::Path) -> Result<()> {
    match daam::paths::file_in_place_of_folder(dir) {
        Some(refusal) => Err(invalid("--out", refusal)),
        None => Ok(()),
    }
}

pub(crate) fn lock_out(dir: &std::path::Path, what: &str) -> Result<daam::folder_lock::FolderLock> {
    use daam::folder_lock::{lock_folder, LockError};
    out_is_a_folder(dir)?;
    lock_folder(dir).map_err(|e| match e {
        LockError::InUse { .. } => Error::Store {
            path: dir.to_path_buf(),
            message: format!(
                "{e}, writing {what}: two processes writing one folder would overwrite each \
                 other's files (wait for it, stop it, or choose another --out)"
            ),
        },
        LockError::NotAFile { .. } => Error::Store {
            path: dir.to_path_buf(),
            message: e.to_string(),
        },
        LockError::Io { path, source } => Error::Io { path, source },
    })
}
