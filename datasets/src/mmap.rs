//! Read-only memory maps of data files.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{io_error, Result};

/// Maps `path` read-only into memory.
///
/// # Errors
/// [`crate::Error::Io`] naming the file when it cannot be opened or mapped, or is not a regular
/// file (opening a FIFO blocks until a writer comes, past Ctrl-C).
#[allow(unsafe_code)]
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let metadata = std::fs::metadata(path).map_err(io_error(path))?;
    if !metadata.is_file() {
        return Err(io_error(path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a folder, a FIFO or a device)",
        )));
    }
    let file = File::open(path).map_err(io_error(path))?;
    // SAFETY: the file is opened read-only and the map is never written through. The writers of
    // this crate (embedding-store shards, manifests) write to a temporary name and rename, so a
    // file that is mapped is never modified in place; the dataset files (CIFAR-100 `.bin`) are
    // never written by this workspace. Another program truncating a mapped file is outside this
    // contract, as for every memory-mapped reader.
    unsafe { Mmap::map(&file) }.map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    /// A FIFO is refused before it is opened (the open blocked for ever).
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("shard.safetensors");
        crate::error::test_support::make_fifo(&fifo);
        let error = super::map_file(&fifo).unwrap_err();
        let message = crate::error::with_causes(&error);
        assert!(
            message.ends_with("not a regular file (a folder, a FIFO or a device)"),
            "{message}"
        );
    }
}
