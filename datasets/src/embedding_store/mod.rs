//! The embedding store: frozen-encoder features, one pooled vector per layer and item, on disk
//! (DESIGN.md, "classify").
//!
//! # Layout
//! A store is a folder:
//! - `manifest.json`: a [`Manifest`] (format version, encoder, dataset, split, `num_layers`,
//!   `d_model`, dtype, pooling, class names, total count, and each shard's file name and count).
//! - `shard-00000.safetensors`, `shard-00001.safetensors`, ...: safetensors files, each holding
//!   - `features`: `[n, num_layers, d_model]`, F16 or F32 as the manifest says;
//!   - `labels`: `[n]`, U32 when written here (I64 and I32 are read too);
//!   - `groups`: `[n]`, the cross-validation group (the IEMOCAP session), same dtypes as labels;
//!   - the item ids in the safetensors header metadata, key `ids`, as a JSON array of `n`
//!     strings. Keeping them in the header keeps a shard one self-contained file, written in one
//!     atomic rename.
//!
//! Items are numbered across shards in manifest order.
//!
//! # Durability
//! [`EmbeddingStoreWriter`] writes each shard and then the manifest to a temporary name in the
//! same folder and renames it over the final one, and rewrites the manifest after every shard.
//! A process killed at any point leaves a store that [`EmbeddingStore::open`] reads, holding the
//! shards completed so far; items not yet flushed into a shard are lost, and
//! [`EmbeddingStoreWriter::resume`] reopens the store so that an extraction can skip the items it
//! already holds and add the rest exactly once.
//!
//! [`validate_store`] checks a store item by item and lists every problem found, the warnings
//! ([`StoreWarning`]: no items, one class, one group, tiny groups, repeated class names) and
//! the store's [`StoreFingerprint`]; [`validate_stores`] does so for a folder that is a store or
//! holds `train/` and `test/` stores.

mod fingerprint;
mod manifest;
mod shard;
mod store;
mod validate;
mod warnings;
mod writer;

pub use fingerprint::StoreFingerprint;
pub use manifest::{Manifest, ShardEntry, StoreDtype, StoreInfo, FORMAT_VERSION, MANIFEST_FILE};
pub use store::EmbeddingStore;
pub use validate::{validate_store, validate_stores, Problem, ProblemKind, ValidationReport};
pub use warnings::{StoreWarning, SMALL_GROUP_ITEMS};
pub use writer::EmbeddingStoreWriter;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io_error, Result};

/// The temporary name `path` is written under before the rename: `.NAME.tmp` in the same folder.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically: to [`temporary_path`], synced, then renamed over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = temporary_path(path);
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(bytes).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error(path))
}

/// An error and its chain of sources on one line, for [`ProblemKind::Unreadable`].
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A small store description with `num_classes` classes.
    pub fn info(dtype: StoreDtype, num_layers: usize, d_model: usize) -> StoreInfo {
        StoreInfo {
            encoder: "tiny-encoder".to_owned(),
            dataset: "toy".to_owned(),
            split: "train".to_owned(),
            num_layers,
            d_model,
            dtype,
            pooling: "mean".to_owned(),
            class_names: vec!["a".to_owned(), "b".to_owned(), "c".to_owned()],
            chunk_samples: None,
            max_tokens: None,
            weights_digest: None,
            source_digest: None,
        }
    }

    /// Deterministic, distinct features for item `item`.
    pub fn features(item: usize, row_len: usize) -> Vec<f32> {
        (0..row_len)
            .map(|k| (item as f32) * 0.5 - (k as f32) * 0.03125 + 0.25)
            .collect()
    }

    /// Writes a store of `count` items `item-{i}` (label `i % 3`, group `i % 2`).
    pub fn write_store(dir: &Path, info: &StoreInfo, count: usize, shard_size: usize) -> Manifest {
        let row_len = info.num_layers * info.d_model;
        let mut writer = EmbeddingStoreWriter::create(dir, info.clone(), shard_size).unwrap();
        for i in 0..count {
            let id = format!("item-{i}");
            writer
                .push(&id, (i % 3) as u32, (i % 2) as u32, &features(i, row_len))
                .unwrap();
        }
        writer.finish().unwrap()
    }
}
