//! The crate's error type: every variant names the file, tensor or key it is about.

use std::path::PathBuf;

/// Errors of loading and running the encoders.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file (`config.json`, an index) is malformed or misses a field.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight file is not valid safetensors.
    #[error("{path}: not a readable weight file: {message}")]
    WeightFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No weight file in a checkpoint folder.
    #[error("{dir}: no model.safetensors or model.safetensors.index.json in this folder")]
    NoWeights {
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// A tensor the architecture needs is not in the weight files.
    #[error("{dir}: tensor `{name}` is missing (looked for it with prefixes {prefixes:?})")]
    MissingTensor {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The Hugging Face parameter name.
        name: String,
        /// The prefixes tried (`""`, `"beit."`, ...).
        prefixes: Vec<String>,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("{dir}: tensor `{name}` has shape {found:?}, the configuration implies {expected:?}")]
    Shape {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The parameter name.
        name: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored in a dtype the loader does not read.
    #[error("{dir}: tensor `{name}` has dtype {dtype}; f32, f16 and bf16 are supported")]
    Dtype {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The parameter name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// The configuration asks for something the port does not implement.
    #[error("{path}: unsupported configuration: {message}")]
    Unsupported {
        /// The `config.json`.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
    /// An input has the wrong shape or content.
    #[error("invalid input: {0}")]
    Input(String),
    /// Tokenizer errors (`tokenizer.json`).
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
