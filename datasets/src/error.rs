//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the crate's on-disk formats.
///
/// Every variant names the file or folder it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be opened, read, created or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file with an image extension is not a decodable image (corrupt, truncated, or another
    /// kind of file).
    #[error("cannot decode image {}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },
    /// An image could not be encoded to the file.
    #[error("cannot encode image {}", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// A path that should be a folder is not one.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A folder holds no image file (png, jpg, jpeg), even in its subfolders.
    #[error("no image file (png, jpg, jpeg) under {}{}", path.display(), others.as_deref().map(|o| format!(": {o}")).unwrap_or_default())]
    Empty {
        /// The folder.
        path: PathBuf,
        /// The other files found, in words ([`crate::ImageFolder::ignored_summary`]).
        others: Option<String>,
    },
    /// A record of a binary or tabular file breaks the format (a CIFAR-100 label out of range, a
    /// shard tensor of the wrong dtype, a CSV row with the wrong number of fields).
    #[error("{}: record {record}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The record's index (0-based for binary records and store items).
        record: usize,
        /// What is wrong, with the expected and actual values.
        message: String,
    },
    /// A line of a text file breaks its format (an IEMOCAP label line, an AG News row, a class
    /// names file).
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, 1-based (for a CSV record, the line it starts on).
        line: u64,
        /// What is wrong, with the expected and actual values.
        message: String,
    },
    /// A file of fixed-size records ends in the middle of a record.
    #[error(
        "{} is truncated: {len} bytes is not a whole number of {record_size}-byte records \
         (record {record} is incomplete)",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The index of the incomplete record (0-based).
        record: usize,
        /// Size of one record, in bytes.
        record_size: usize,
        /// Size of the file, in bytes.
        len: u64,
    },
    /// A tensor's shape disagrees with the manifest or with the other tensors of its file.
    #[error("{}: tensor `{tensor}` has shape {got:?}, expected {expected:?}", path.display())]
    Shape {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A safetensors file cannot be parsed (bad header, truncated data).
    #[error("cannot read safetensors file {}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A JSON file (an embedding-store manifest) cannot be parsed or written.
    #[error("bad JSON in {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A CSV file cannot be read (I/O error or broken quoting).
    #[error("cannot read CSV file {}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The reader's error, with its position.
        #[source]
        source: csv::Error,
    },
    /// A WAV file cannot be decoded (bad header, unsupported encoding, truncated data).
    #[error("cannot decode WAV file {}", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: hound::Error,
    },
    /// A folder does not have the layout of the dataset release it should hold.
    #[error("{}: {message}", path.display())]
    Layout {
        /// The folder (or the expected file or subfolder).
        path: PathBuf,
        /// What was expected and not found.
        message: String,
    },
    /// A labelled utterance has no audio file.
    #[error("{}:{line}: utterance {id} has no WAV file at {}", label_file.display(), wav.display())]
    MissingWav {
        /// The label file naming the utterance.
        label_file: PathBuf,
        /// The line of the label file, 1-based.
        line: u64,
        /// The utterance id (IEMOCAP turn name).
        id: String,
        /// Where the WAV file was expected.
        wav: PathBuf,
    },
    /// A tensor or metadata entry that a safetensors shard must hold is absent.
    #[error("{}: no `{name}` entry", path.display())]
    MissingEntry {
        /// The shard file.
        path: PathBuf,
        /// The tensor or metadata key.
        name: String,
    },
    /// A tensor has an element type the reader does not accept.
    #[error("{}: tensor `{tensor}` has dtype {got}, expected {expected}", path.display())]
    TensorDtype {
        /// The file holding the tensor.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The dtype(s) accepted.
        expected: String,
        /// The dtype found.
        got: String,
    },
    /// An embedding-store manifest is inconsistent (unknown format version, zero sizes, a total
    /// count that disagrees with its shards).
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, with the expected and actual values.
        message: String,
    },
    /// An embedding store already exists where a new one was to be created.
    #[error("an embedding store already exists in {} (resume it or pick another folder)", path.display())]
    StoreExists {
        /// The store folder.
        path: PathBuf,
    },
    /// An item id was given twice to an embedding store.
    #[error("{}: item id `{id}` is already in the store", path.display())]
    DuplicateId {
        /// The store folder.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },
    /// An item's label is not below the number of classes.
    #[error("{}: item `{id}` has label {label}, but there are {num_classes} classes", path.display())]
    LabelOutOfRange {
        /// The store folder.
        path: PathBuf,
        /// The item id.
        id: String,
        /// The label given.
        label: u32,
        /// The number of class names.
        num_classes: usize,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Maps an I/O error on `path` to [`Error::Io`].
pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `error` followed by each of its causes, `": "`-separated (`{:#}` of `anyhow`, for messages
/// printed without it): "cannot decode image a.png: Format error decoding Png: …".
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let next = c.to_string();
        // Some errors repeat their source's text in their own; print it once.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_causes_appends_each_cause_once() {
        let error = Error::Io {
            path: "a/b.png".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(with_causes(&error), "cannot access a/b.png: gone");
        assert_eq!(error.to_string(), "cannot access a/b.png");
    }
}

/// Test helpers shared by the readers' tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// Makes a FIFO at `path` (a file whose open blocks until a writer comes).
    #[cfg(unix)]
    pub(crate) fn make_fifo(path: &std::path::Path) {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
    }
}
