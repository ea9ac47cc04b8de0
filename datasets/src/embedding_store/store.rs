//! Reading a store: memory-mapped shards behind one item index.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::shard::{decode_row, decode_shard, FEATURES};
use super::{Manifest, StoreDtype};
use crate::error::{Error, Result};
use crate::mmap::map_file;

/// One memory-mapped shard.
#[derive(Debug)]
struct MappedShard {
    map: Mmap,
    /// Byte offset of the features tensor in the file.
    features_start: usize,
}

/// A store opened for reading: labels, groups and ids in memory, features memory-mapped.
///
/// Items are numbered `0..len()` across shards in manifest order.
///
/// ```
/// use datasets::{EmbeddingStore, EmbeddingStoreWriter, StoreDtype, StoreInfo};
///
/// let dir = tempfile::tempdir().unwrap();
/// let info = StoreInfo {
///     encoder: "tiny".into(),
///     dataset: "toy".into(),
///     split: "train".into(),
///     num_layers: 2,
///     d_model: 3,
///     dtype: StoreDtype::F32,
///     pooling: "mean".into(),
///     class_names: vec!["neg".into(), "pos".into()],
///     chunk_samples: None,
///     max_tokens: None,
///     weights_digest: None,
///     source_digest: None,
/// };
/// let mut writer = EmbeddingStoreWriter::create(dir.path(), info, 1000).unwrap();
/// writer.push("a", 1, 0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// writer.push("b", 0, 0, &[0.5; 6]).unwrap();
/// writer.finish().unwrap();
///
/// let store = EmbeddingStore::open(dir.path()).unwrap();
/// assert_eq!(store.len(), 2);
/// assert_eq!(store.labels(), &[1, 0]);
/// assert_eq!(store.gather(&[1, 0]), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// ```
#[derive(Debug)]
pub struct EmbeddingStore {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<MappedShard>,
    /// Index of each shard's first item; `shard_starts[0] == 0`.
    shard_starts: Vec<usize>,
    labels: Vec<u32>,
    groups: Vec<u32>,
    ids: Vec<String>,
}

impl EmbeddingStore {
    /// Opens the store in `dir`: reads the manifest, maps every shard and checks its tensors
    /// against the manifest (dtype, `[count, num_layers, d_model]`).
    ///
    /// Item-level checks (non-finite values, labels out of range, duplicate ids) are left to
    /// [`super::validate_store`].
    ///
    /// # Errors
    /// The [`Manifest::read`] errors; [`Error::Io`] naming a missing or unreadable shard;
    /// [`Error::Safetensors`] naming a truncated or corrupt shard; [`Error::Shape`] and
    /// [`Error::TensorDtype`] naming a shard that disagrees with the manifest.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let info = &manifest.info;
        let mut store = Self {
            dir: dir.to_path_buf(),
            shards: Vec::with_capacity(manifest.shards.len()),
            shard_starts: Vec::with_capacity(manifest.shards.len()),
            labels: Vec::with_capacity(manifest.count),
            groups: Vec::with_capacity(manifest.count),
            ids: Vec::with_capacity(manifest.count),
            manifest: manifest.clone(),
        };
        for entry in &manifest.shards {
            let path = dir.join(&entry.file);
            let map = map_file(&path)?;
            let contents = decode_shard(&path, &map)?;
            if contents.dtype != info.dtype {
                return Err(Error::TensorDtype {
                    path,
                    tensor: FEATURES.to_owned(),
                    expected: info.dtype.to_string(),
                    got: contents.dtype.to_string(),
                });
            }
            let expected = [entry.count, info.num_layers, info.d_model];
            if contents.features_shape != expected {
                return Err(Error::Shape {
                    path,
                    tensor: FEATURES.to_owned(),
                    expected: expected.to_vec(),
                    got: contents.features_shape.to_vec(),
                });
            }
            store.shard_starts.push(store.labels.len());
            store.labels.extend(contents.labels);
            store.groups.extend(contents.groups);
            store.ids.extend(contents.ids);
            store.shards.push(MappedShard {
                map,
                features_start: contents.features_bytes.start,
            });
        }
        Ok(store)
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the store holds no item.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of layers per item.
    pub fn num_layers(&self) -> usize {
        self.manifest.info.num_layers
    }

    /// Width of each layer's vector.
    pub fn d_model(&self) -> usize {
        self.manifest.info.d_model
    }

    /// Element type of the stored features.
    pub fn dtype(&self) -> StoreDtype {
        self.manifest.info.dtype
    }

    /// Every item's label, an index into [`Self::class_names`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Every item's group (IEMOCAP session), for cross-validation folds.
    pub fn groups(&self) -> &[u32] {
        &self.groups
    }

    /// Every item's id.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The class names.
    pub fn class_names(&self) -> &[String] {
        &self.manifest.info.class_names
    }

    /// The features of the items at `indices`, in that order, as f32 (f16 stores are widened).
    ///
    /// # Shapes
    /// Returns `[indices.len(), num_layers, d_model]`, row-major.
    ///
    /// # Panics
    /// When an index is not below [`Self::len`].
    pub fn gather(&self, indices: &[usize]) -> Vec<f32> {
        let row_len = self.manifest.info.row_len();
        let mut out = vec![0.0; indices.len() * row_len];
        for (row, &index) in out.chunks_exact_mut(row_len).zip(indices) {
            self.read_row(index, row);
        }
        out
    }

    /// Writes item `index`'s `[num_layers, d_model]` features into `out`.
    fn read_row(&self, index: usize, out: &mut [f32]) {
        assert!(
            index < self.len(),
            "item index {index} is out of range for a store of {} items",
            self.len()
        );
        let shard_index = self.shard_starts.partition_point(|&start| start <= index) - 1;
        let row = index - self.shard_starts[shard_index];
        let shard = &self.shards[shard_index];
        let row_bytes = out.len() * self.dtype().size_bytes();
        let start = shard.features_start + row * row_bytes;
        decode_row(self.dtype(), &shard.map[start..start + row_bytes], out);
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::test_support::{features, info, write_store};
    use super::super::MANIFEST_FILE;
    use super::*;

    fn expected_rows(indices: &[usize], row_len: usize) -> Vec<f32> {
        indices.iter().flat_map(|&i| features(i, row_len)).collect()
    }

    #[test]
    fn f32_round_trip_over_several_shards() {
        let dir = tempfile::tempdir().unwrap();
        let info = info(StoreDtype::F32, 3, 5);
        let manifest = write_store(dir.path(), &info, 11, 4);
        assert_eq!(manifest.count, 11);
        let counts: Vec<usize> = manifest.shards.iter().map(|s| s.count).collect();
        assert_eq!(counts, [4, 4, 3]);

        let store = EmbeddingStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 11);
        assert_eq!((store.num_layers(), store.d_model()), (3, 5));
        assert_eq!(store.manifest(), &manifest);
        assert_eq!(store.ids()[9], "item-9");
        assert_eq!(store.labels()[..5], [0, 1, 2, 0, 1]);
        assert_eq!(store.groups()[..3], [0, 1, 0]);
        assert_eq!(store.class_names(), ["a", "b", "c"]);
        let indices = [10, 0, 4, 3, 7, 7];
        assert_eq!(store.gather(&indices), expected_rows(&indices, 15));
        assert!(store.gather(&[]).is_empty());
    }

    #[test]
    fn f16_round_trip_within_half_precision() {
        let dir = tempfile::tempdir().unwrap();
        let info = info(StoreDtype::F16, 2, 7);
        write_store(dir.path(), &info, 5, 2);
        let store = EmbeddingStore::open(dir.path()).unwrap();
        let indices: Vec<usize> = (0..5).rev().collect();
        let got = store.gather(&indices);
        let expected = expected_rows(&indices, 14);
        for (g, e) in got.iter().zip(&expected) {
            // f16 has an 11-bit significand: relative error at most 2^-11.
            assert!((g - e).abs() <= e.abs() * 4.9e-4 + 1e-7, "{g} vs {e}");
        }
    }

    #[test]
    #[should_panic = "item index 3 is out of range for a store of 3 items"]
    fn gather_out_of_range_panics() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 1, 2), 3, 2);
        EmbeddingStore::open(dir.path()).unwrap().gather(&[0, 3]);
    }

    #[test]
    fn truncated_shard_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 2, 3), 6, 4);
        let path = dir.path().join("shard-00001.safetensors");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let message = EmbeddingStore::open(dir.path()).unwrap_err().to_string();
        assert!(message.contains("shard-00001.safetensors"), "{message}");
    }

    #[test]
    fn missing_shard_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 2, 3), 6, 4);
        fs::remove_file(dir.path().join("shard-00000.safetensors")).unwrap();
        let message = EmbeddingStore::open(dir.path()).unwrap_err().to_string();
        assert!(message.contains("shard-00000.safetensors"), "{message}");
    }

    #[test]
    fn shape_disagreeing_with_manifest_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 2, 3), 6, 4);
        let path = dir.path().join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"d_model\": 3", "\"d_model\": 4")).unwrap();
        let error = EmbeddingStore::open(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("shard-00000.safetensors: tensor `features` has shape [4, 2, 3], expected [4, 2, 4]"),
            "{message}"
        );
    }
}
