//! A store's fingerprint: what identifies its content, so that a run made on a store can tell
//! whether the store at hand is that same store (`classify replicate` rerun into its folder).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3Default;

use super::StoreInfo;

/// What identifies a store's content: its description, its item count, and xxh3-64 digests
/// of its items (ids, labels, groups) and of its features' bytes, each in item order.
///
/// Two stores with equal fingerprints hold the same items with the same features (up to a
/// 64-bit hash collision), wherever they lie and however they are sharded: a store moved or
/// copied keeps its fingerprint, one re-extracted or regenerated with other data at the same
/// path does not. A path alone cannot tell these apart. [`super::validate_store`] computes it
/// as it reads every item ([`super::ValidationReport::fingerprint`]), so it costs no second
/// read of the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFingerprint {
    /// The manifest's description (encoder, dataset, split, shapes, dtype, pooling, classes).
    #[serde(flatten)]
    pub info: StoreInfo,
    /// Number of items read.
    pub count: usize,
    /// xxh3-64 (16 hex digits) of every item's id (its byte length, then its bytes), label
    /// and group (u32 little-endian), in item order.
    pub items: String,
    /// xxh3-64 (16 hex digits) of the features' stored bytes (f16 or f32 as
    /// [`StoreInfo::dtype`] says), in item order.
    pub features: String,
}

/// Accumulates a [`StoreFingerprint`] shard by shard.
pub(crate) struct FingerprintHasher {
    items: Xxh3Default,
    features: Xxh3Default,
    count: usize,
}

impl FingerprintHasher {
    /// A hasher that has seen no item.
    pub(crate) fn new() -> Self {
        Self {
            items: Xxh3Default::new(),
            features: Xxh3Default::new(),
            count: 0,
        }
    }

    /// Adds one item's id, label and group.
    pub(crate) fn item(&mut self, id: &str, label: u32, group: u32) {
        self.items.update(&(id.len() as u64).to_le_bytes());
        self.items.update(id.as_bytes());
        self.items.update(&label.to_le_bytes());
        self.items.update(&group.to_le_bytes());
        self.count += 1;
    }

    /// Adds the stored bytes of the next items' features.
    pub(crate) fn features(&mut self, bytes: &[u8]) {
        self.features.update(bytes);
    }

    /// The fingerprint of a store described by `info` holding the items seen.
    pub(crate) fn finish(&self, info: &StoreInfo) -> StoreFingerprint {
        StoreFingerprint {
            info: info.clone(),
            count: self.count,
            items: format!("{:016x}", self.items.digest()),
            features: format!("{:016x}", self.features.digest()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{features, info};
    use super::super::{validate_store, EmbeddingStoreWriter, StoreDtype};
    use super::*;

    /// Writes `count` items (`item-i`, label `i % 3`, group `i % 2`) with `edit` applied to
    /// each item's (id, label, features) before it is pushed.
    fn store(
        dir: &std::path::Path,
        count: usize,
        shard_size: usize,
        edit: impl Fn(usize, &mut String, &mut u32, &mut Vec<f32>),
    ) -> StoreFingerprint {
        let info = info(StoreDtype::F16, 2, 3);
        let mut writer = EmbeddingStoreWriter::create(dir, info.clone(), shard_size).unwrap();
        for i in 0..count {
            let (mut id, mut label, mut row) =
                (format!("item-{i}"), (i % 3) as u32, features(i, 6));
            edit(i, &mut id, &mut label, &mut row);
            writer.push(&id, label, (i % 2) as u32, &row).unwrap();
        }
        writer.finish().unwrap();
        let report = validate_store(dir).unwrap();
        assert!(report.is_ok(), "{report}");
        report.fingerprint
    }

    #[test]
    fn the_same_items_give_the_same_fingerprint_however_sharded_or_placed() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(&dir.path().join("a"), 7, 3, |_, _, _, _| {});
        let b = store(&dir.path().join("b"), 7, 5, |_, _, _, _| {});
        assert_eq!(a, b);
        assert_eq!((a.count, a.items.len(), a.features.len()), (7, 16, 16));
    }

    #[test]
    fn another_item_label_or_feature_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let base = store(&dir.path().join("base"), 7, 3, |_, _, _, _| {});
        let fewer = store(&dir.path().join("fewer"), 6, 3, |_, _, _, _| {});
        assert_ne!((fewer.count, &fewer.items), (base.count, &base.items));
        let label = store(&dir.path().join("label"), 7, 3, |i, _, label, _| {
            if i == 4 {
                *label = 0;
            }
        });
        assert_ne!(label.items, base.items);
        assert_eq!(label.features, base.features);
        let id = store(&dir.path().join("id"), 7, 3, |i, id, _, _| {
            if i == 6 {
                id.push('x');
            }
        });
        assert_ne!(id.items, base.items);
        // One value of the last item, the rest alike: the items are the same, the features not.
        let feature = store(&dir.path().join("feature"), 7, 3, |i, _, _, row| {
            if i == 6 {
                row[5] += 1.0;
            }
        });
        assert_eq!(feature.items, base.items);
        assert_ne!(feature.features, base.features);
    }
}
