//! Writing a store shard by shard, resumably.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::shard::{encode_shard, ShardItems};
use super::{write_atomic, EmbeddingStore, Manifest, ShardEntry, StoreInfo, MANIFEST_FILE};
use crate::error::{io_error, Error, Result};

/// Items pushed since the last shard was written.
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<String>,
    labels: Vec<u32>,
    groups: Vec<u32>,
    features: Vec<f32>,
}

/// Writes an embedding store: items are buffered and written a shard at a time.
///
/// A shard is written when `shard_size` items are pending, on [`Self::flush`] and on
/// [`Self::finish`]; the manifest is rewritten after each shard. Only flushed items are durable:
/// dropping the writer (or killing the process) loses the pending ones, and
/// [`Self::resume`] continues from the shards on disk.
///
/// ```
/// use datasets::{EmbeddingStoreWriter, StoreDtype, StoreInfo};
///
/// let dir = tempfile::tempdir().unwrap();
/// let info = StoreInfo {
///     encoder: "tiny".into(),
///     dataset: "toy".into(),
///     split: "train".into(),
///     num_layers: 1,
///     d_model: 2,
///     dtype: StoreDtype::F16,
///     pooling: "mean".into(),
///     class_names: vec!["neg".into(), "pos".into()],
///     chunk_samples: None,
///     max_tokens: None,
///     weights_digest: None,
///     source_digest: None,
/// };
/// let mut writer = EmbeddingStoreWriter::create(dir.path(), info, 2).unwrap();
/// writer.push("a", 0, 1, &[0.0, 1.0]).unwrap();
/// drop(writer); // killed before "a" was flushed
///
/// let mut writer = EmbeddingStoreWriter::resume(dir.path()).unwrap();
/// for id in ["a", "b", "c"] {
///     if !writer.contains(id) {
///         writer.push(id, 1, 1, &[2.0, 3.0]).unwrap();
///     }
/// }
/// assert_eq!(writer.finish().unwrap().count, 3);
/// ```
#[derive(Debug)]
pub struct EmbeddingStoreWriter {
    dir: PathBuf,
    manifest: Manifest,
    /// Ids of the flushed items then the pending ones, in push order.
    ids: Vec<String>,
    id_set: HashSet<String>,
    pending: Pending,
}

impl EmbeddingStoreWriter {
    /// Creates a new, empty store in `dir` (creating the folder) and writes its manifest.
    ///
    /// # Panics
    /// When `shard_size`, `info.num_layers` or `info.d_model` is zero, or `info.class_names` is
    /// empty.
    ///
    /// # Errors
    /// [`Error::StoreExists`] when `dir` already holds a manifest or a shard file;
    /// [`Error::Io`] when the folder or manifest cannot be written.
    pub fn create(dir: &Path, info: StoreInfo, shard_size: usize) -> Result<Self> {
        assert!(shard_size > 0, "shard_size must be positive, got 0");
        assert!(
            info.num_layers > 0 && info.d_model > 0,
            "num_layers ({}) and d_model ({}) must be positive",
            info.num_layers,
            info.d_model
        );
        assert!(
            !info.class_names.is_empty(),
            "class_names must name at least one class, got none"
        );
        if dir.exists() && holds_store_files(dir)? {
            return Err(Error::StoreExists {
                path: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let manifest = Manifest::new(info, shard_size);
        manifest.write(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            ids: Vec::new(),
            id_set: HashSet::new(),
            pending: Pending::default(),
        })
    }

    /// Reopens a store written by [`Self::create`], possibly by a process that was killed: the
    /// shards listed in the manifest are kept (and read, so a corrupt one is an error), leftover
    /// temporary files are removed, and new items go into new shards.
    ///
    /// # Errors
    /// The [`EmbeddingStore::open`] errors; [`Error::Io`] when a leftover temporary file cannot
    /// be removed.
    pub fn resume(dir: &Path) -> Result<Self> {
        let store = EmbeddingStore::open(dir)?;
        remove_temporary_files(dir)?;
        let ids = store.ids().to_vec();
        let id_set: HashSet<String> = ids.iter().cloned().collect();
        if id_set.len() != ids.len() {
            let mut seen = HashSet::new();
            let duplicate = ids.iter().find(|id| !seen.insert(*id)).cloned();
            return Err(Error::DuplicateId {
                path: dir.to_path_buf(),
                id: duplicate.unwrap_or_default(),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: store.manifest().clone(),
            ids,
            id_set,
            pending: Pending::default(),
        })
    }

    /// Whether an item with this id was pushed (flushed or pending).
    pub fn contains(&self, id: &str) -> bool {
        self.id_set.contains(id)
    }

    /// Ids of every item pushed, flushed ones first, in push order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of items pushed, flushed or pending.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no item was pushed.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of items already written to shards.
    pub fn flushed_len(&self) -> usize {
        self.manifest.count
    }

    /// What the store holds.
    pub fn info(&self) -> &StoreInfo {
        &self.manifest.info
    }

    /// Adds one item; writes a shard when `shard_size` items are pending.
    ///
    /// # Shapes
    /// `features` is `[num_layers, d_model]`, row-major.
    ///
    /// # Panics
    /// When `features.len() != num_layers * d_model`.
    ///
    /// # Errors
    /// [`Error::DuplicateId`] when `id` is already in the store, [`Error::LabelOutOfRange`] when
    /// `label` is not below the number of class names (nothing is added in either case); the
    /// [`Self::flush`] errors.
    pub fn push(&mut self, id: &str, label: u32, group: u32, features: &[f32]) -> Result<()> {
        let info = &self.manifest.info;
        assert_eq!(
            features.len(),
            info.row_len(),
            "features must hold num_layers * d_model = {} * {} = {} values, got {}",
            info.num_layers,
            info.d_model,
            info.row_len(),
            features.len()
        );
        if label as usize >= info.class_names.len() {
            return Err(Error::LabelOutOfRange {
                path: self.dir.clone(),
                id: id.to_owned(),
                label,
                num_classes: info.class_names.len(),
            });
        }
        if !self.id_set.insert(id.to_owned()) {
            return Err(Error::DuplicateId {
                path: self.dir.clone(),
                id: id.to_owned(),
            });
        }
        self.ids.push(id.to_owned());
        self.pending.ids.push(id.to_owned());
        self.pending.labels.push(label);
        self.pending.groups.push(group);
        self.pending.features.extend_from_slice(features);
        if self.pending.ids.len() >= self.manifest.shard_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending items as a new shard, then the manifest (both atomically). Does
    /// nothing when no item is pending.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file that cannot be written. The pending items stay pending.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.ids.is_empty() {
            return Ok(());
        }
        let info = &self.manifest.info;
        let file = Manifest::shard_file_name(self.manifest.shards.len());
        let path = self.dir.join(&file);
        let bytes = encode_shard(
            &path,
            info.dtype,
            info.num_layers,
            info.d_model,
            &ShardItems {
                ids: &self.pending.ids,
                labels: &self.pending.labels,
                groups: &self.pending.groups,
                features: &self.pending.features,
            },
        )?;
        write_atomic(&path, &bytes)?;
        let count = self.pending.ids.len();
        let mut manifest = self.manifest.clone();
        manifest.shards.push(ShardEntry { file, count });
        manifest.count += count;
        manifest.write(&self.dir)?;
        self.manifest = manifest;
        self.pending = Pending::default();
        Ok(())
    }

    /// Flushes the pending items and returns the final manifest.
    ///
    /// # Errors
    /// The [`Self::flush`] errors.
    pub fn finish(mut self) -> Result<Manifest> {
        self.flush()?;
        Ok(self.manifest)
    }
}

/// Whether `dir` holds a manifest or a shard file.
fn holds_store_files(dir: &Path) -> Result<bool> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let name = entry.map_err(io_error(dir))?.file_name();
        let name = name.to_string_lossy();
        if name == MANIFEST_FILE || (name.starts_with("shard-") && name.ends_with(".safetensors")) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the `.NAME.tmp` files a killed writer may have left.
fn remove_temporary_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = name.starts_with(".shard-") || name.starts_with(&format!(".{MANIFEST_FILE}"));
        if ours && name.ends_with(".tmp") {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{features, info, write_store};
    use super::super::StoreDtype;
    use super::*;

    #[test]
    fn create_refuses_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 1, 2), 3, 2);
        let error =
            EmbeddingStoreWriter::create(dir.path(), info(StoreDtype::F32, 1, 2), 2).unwrap_err();
        assert!(matches!(error, Error::StoreExists { .. }), "{error}");
    }

    #[test]
    fn create_makes_missing_folders_and_an_empty_readable_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        let writer = EmbeddingStoreWriter::create(&path, info(StoreDtype::F32, 1, 2), 2).unwrap();
        assert!(writer.is_empty());
        assert!(EmbeddingStore::open(&path).unwrap().is_empty());
    }

    #[test]
    fn duplicate_id_and_bad_label_are_errors_that_add_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            EmbeddingStoreWriter::create(dir.path(), info(StoreDtype::F32, 1, 2), 10).unwrap();
        writer.push("x", 0, 0, &[1.0, 2.0]).unwrap();
        let error = writer.push("x", 1, 0, &[1.0, 2.0]).unwrap_err();
        assert!(error.to_string().contains("item id `x`"), "{error}");
        let error = writer.push("y", 3, 0, &[1.0, 2.0]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("label 3, but there are 3 classes"),
            "{error}"
        );
        assert_eq!(writer.ids(), ["x"]);
        assert_eq!(writer.finish().unwrap().count, 1);
    }

    #[test]
    #[should_panic = "features must hold num_layers * d_model = 2 * 3 = 6 values, got 5"]
    fn wrong_feature_length_panics() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            EmbeddingStoreWriter::create(dir.path(), info(StoreDtype::F32, 2, 3), 4).unwrap();
        let _ = writer.push("x", 0, 0, &[0.0; 5]);
    }

    #[test]
    fn resume_after_a_kill_adds_every_item_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let info = info(StoreDtype::F32, 2, 3);
        let all_ids: Vec<String> = (0..17).map(|i| format!("item-{i}")).collect();

        // First run: 2 shards of 4 flushed, 3 more items pending when it is "killed".
        let mut writer = EmbeddingStoreWriter::create(dir.path(), info.clone(), 4).unwrap();
        for (i, id) in all_ids.iter().enumerate().take(11) {
            writer.push(id, (i % 3) as u32, 0, &features(i, 6)).unwrap();
        }
        assert_eq!(writer.flushed_len(), 8);
        drop(writer);
        // A kill between writing a temporary file and renaming it leaves this behind.
        fs::write(dir.path().join(".shard-00002.safetensors.tmp"), b"partial").unwrap();

        let partial = EmbeddingStore::open(dir.path()).unwrap();
        assert_eq!(partial.len(), 8);

        // Second run walks the whole dataset again, skipping what is stored.
        let mut writer = EmbeddingStoreWriter::resume(dir.path()).unwrap();
        assert!(!dir.path().join(".shard-00002.safetensors.tmp").exists());
        assert!(writer.contains("item-7") && !writer.contains("item-8"));
        let mut added = 0;
        for (i, id) in all_ids.iter().enumerate() {
            if !writer.contains(id) {
                writer.push(id, (i % 3) as u32, 0, &features(i, 6)).unwrap();
                added += 1;
            }
        }
        assert_eq!(added, 9);
        let manifest = writer.finish().unwrap();
        assert_eq!(manifest.count, 17);

        let store = EmbeddingStore::open(dir.path()).unwrap();
        let mut ids = store.ids().to_vec();
        ids.sort();
        let mut expected = all_ids.clone();
        expected.sort();
        assert_eq!(ids, expected);
        for (index, id) in store.ids().iter().enumerate() {
            let item: usize = id["item-".len()..].parse().unwrap();
            assert_eq!(store.gather(&[index]), features(item, 6), "{id}");
            assert_eq!(store.labels()[index], (item % 3) as u32);
        }
    }
}
