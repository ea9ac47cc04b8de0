//! Content digests that tell whether a rerun of `extract` reads the same weights and the same
//! data as the run that started a store: folder names and record numbers do not (other weights
//! in a folder of the same name, other CIFAR-100 records under the same `train/N` ids).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{io_error, Result};

/// Files up to this size are hashed whole; larger ones through [`SAMPLES`] evenly spaced
/// blocks of [`BLOCK`] bytes and their length (a checkpoint of gigabytes is read in 4 MiB).
const WHOLE: u64 = 4 << 20;
const SAMPLES: u64 = 64;
const BLOCK: usize = 64 << 10;

/// Feeds `path`'s name, length and content (whole, or sampled past [`WHOLE`]) to `hasher`.
fn hash_file(hasher: &mut Xxh3, path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let len = file.metadata().map_err(io_error(path))?.len();
    if let Some(name) = path.file_name() {
        hasher.update(name.as_encoded_bytes());
    }
    hasher.update(&len.to_le_bytes());
    if len <= WHOLE {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(path))?;
        hasher.update(&bytes);
        return Ok(());
    }
    let mut block = vec![0u8; BLOCK];
    for k in 0..SAMPLES {
        let at = (len - BLOCK as u64) * k / (SAMPLES - 1);
        file.seek(SeekFrom::Start(at)).map_err(io_error(path))?;
        file.read_exact(&mut block).map_err(io_error(path))?;
        hasher.update(&block);
    }
    Ok(())
}

/// The digest of a checkpoint folder: its `config.json`, preprocessor and tokenizer files and
/// every `*.safetensors` file (names, lengths, content), as 16 hex digits.
///
/// # Errors
/// [`crate::Error::Io`] naming a file that cannot be read.
pub fn weights_digest(dir: &Path) -> Result<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|name| {
                        name.ends_with(".safetensors")
                            || matches!(
                                name,
                                "config.json" | "preprocessor_config.json" | "tokenizer.json"
                            )
                    })
        })
        .collect();
    files.sort();
    let mut hasher = Xxh3::new();
    for path in &files {
        hash_file(&mut hasher, path)?;
    }
    Ok(format!("{:016x}", hasher.digest()))
}

/// The digest of data files (`train.bin`, `train.csv`, …) and of extra `records` bytes (the
/// IEMOCAP turns and labels), as 16 hex digits.
///
/// # Errors
/// [`crate::Error::Io`] naming a file that cannot be read.
pub fn data_digest(files: &[&Path], records: &[u8]) -> Result<String> {
    let mut hasher = Xxh3::new();
    for path in files {
        hash_file(&mut hasher, path)?;
    }
    hasher.update(records);
    Ok(format!("{:016x}", hasher.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A changed byte anywhere in a small file, or in a sampled block of a large one, changes
    /// the digest; the folder's own name does not enter it.
    #[test]
    fn content_not_folder_names_makes_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a/model"), dir.path().join("b/renamed"));
        for folder in [&a, &b] {
            std::fs::create_dir_all(folder).unwrap();
            std::fs::write(folder.join("config.json"), "{}").unwrap();
            std::fs::write(folder.join("model.safetensors"), vec![7u8; 1000]).unwrap();
            std::fs::write(folder.join("notes.txt"), "not hashed").unwrap();
        }
        std::fs::write(b.join("notes.txt"), "other").unwrap();
        assert_eq!(weights_digest(&a).unwrap(), weights_digest(&b).unwrap());
        let mut bytes = vec![7u8; 1000];
        bytes[999] = 8;
        std::fs::write(b.join("model.safetensors"), &bytes).unwrap();
        assert_ne!(weights_digest(&a).unwrap(), weights_digest(&b).unwrap());

        let large = dir.path().join("train.bin");
        let mut bytes = vec![1u8; (WHOLE + 1000) as usize];
        std::fs::write(&large, &bytes).unwrap();
        let before = data_digest(&[&large], b"").unwrap();
        assert_eq!(before, data_digest(&[&large], b"").unwrap());
        assert_ne!(before, data_digest(&[&large], b"turn neu").unwrap());
        // The last block is always sampled.
        *bytes.last_mut().unwrap() = 2;
        std::fs::write(&large, &bytes).unwrap();
        assert_ne!(before, data_digest(&[&large], b"").unwrap());
    }
}
