//! Read-only memory maps of data files.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{io_error, Result};

/// Maps `path` read-only into memory.
///
/// # Errors
/// [`crate::Error::Io`] naming the file when it cannot be opened or mapped.
#[allow(unsafe_code)]
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(io_error(path))?;
    // SAFETY: the file is opened read-only and the map is never written through. The writers of
    // this crate (embedding-store shards, manifests) write to a temporary name and rename, so a
    // file that is mapped is never modified in place; the dataset files (CIFAR-100 `.bin`) are
    // never written by this workspace. Another program truncating a mapped file is outside this
    // contract, as for every memory-mapped reader.
    unsafe { Mmap::map(&file) }.map_err(io_error(path))
}
