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
    #[error("no image file (png, jpg, jpeg) under {}", path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
