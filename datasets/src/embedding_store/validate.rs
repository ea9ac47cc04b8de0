//! Checking a store item by item.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::fingerprint::FingerprintHasher;
use super::manifest::unknown_manifest_keys;
use super::shard::{decode_row, decode_shard, FEATURES};
use super::warnings::Tally;
use super::{error_chain, Manifest, StoreDtype, StoreFingerprint, StoreWarning, MANIFEST_FILE};
use crate::error::Result;
use crate::mmap::map_file;

/// What is wrong in one place of a store.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A shard listed in the manifest is not there.
    MissingShard,
    /// A shard cannot be read or decoded (truncated, corrupt header, missing tensor or ids,
    /// tensors that disagree with each other); the message is the reader's error.
    Unreadable {
        /// The reader's error and its causes.
        message: String,
    },
    /// A shard's features have another dtype than the manifest's.
    DtypeMismatch {
        /// The manifest's dtype.
        expected: StoreDtype,
        /// The shard's dtype.
        got: StoreDtype,
    },
    /// A shard's features have another `[num_layers, d_model]` than the manifest's.
    ShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// The shape the manifest implies.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A shard holds another number of items than its manifest entry says, or the manifest's
    /// total disagrees with its shard list.
    CountMismatch {
        /// The number the manifest says.
        expected: usize,
        /// The number found.
        got: usize,
    },
    /// An item's features hold a NaN or an infinity (the first one of the row is reported).
    NonFinite {
        /// Layer of the first non-finite value.
        layer: usize,
        /// Position within the layer's vector.
        position: usize,
        /// The value.
        value: f32,
    },
    /// An item's label is not below the number of class names.
    LabelOutOfRange {
        /// The label.
        label: u32,
        /// The number of class names.
        num_classes: usize,
    },
    /// An item's id was already used by an earlier item.
    DuplicateId {
        /// The shard holding the first item with this id.
        first_file: PathBuf,
        /// The first item's index.
        first_item: usize,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingShard => write!(f, "shard file is missing"),
            Self::Unreadable { message } => write!(f, "unreadable: {message}"),
            Self::DtypeMismatch { expected, got } => {
                write!(f, "features are {got}, the manifest says {expected}")
            }
            Self::ShapeMismatch {
                tensor,
                expected,
                got,
            } => write!(
                f,
                "tensor `{tensor}` has shape {got:?}, expected {expected:?}"
            ),
            Self::CountMismatch { expected, got } => {
                write!(f, "holds {got} items, the manifest says {expected}")
            }
            Self::NonFinite {
                layer,
                position,
                value,
            } => write!(
                f,
                "non-finite feature {value} at layer {layer}, position {position}"
            ),
            Self::LabelOutOfRange { label, num_classes } => {
                write!(f, "label {label} is not below the {num_classes} classes")
            }
            Self::DuplicateId {
                first_file,
                first_item,
            } => write!(
                f,
                "id already used by item {first_item} in {}",
                first_file.display()
            ),
        }
    }
}

/// One problem found by [`validate_store`], with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The shard file (or the manifest) concerned.
    pub file: PathBuf,
    /// The item's index in the store (items numbered across shards by the manifest's counts),
    /// when the problem is about one item.
    pub item: Option<usize>,
    /// The item's id, when known.
    pub id: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(item) = self.item {
            write!(f, ": item {item}")?;
        }
        if let Some(id) = &self.id {
            write!(f, " (`{id}`)")?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// Everything [`validate_store`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationReport {
    /// The store folder.
    pub dir: PathBuf,
    /// Number of shards listed in the manifest.
    pub num_shards: usize,
    /// Number of items whose values, labels and ids were checked.
    pub items_checked: usize,
    /// The problems, in shard then item order.
    pub problems: Vec<Problem>,
    /// What reads cleanly but makes training or reporting on the store doubtful (no items, one
    /// class, one group, tiny groups, repeated class names); not problems: [`Self::is_ok`]
    /// ignores them.
    pub warnings: Vec<StoreWarning>,
    /// What identifies the items and features read (meaningful when [`Self::is_ok`]).
    pub fingerprint: StoreFingerprint,
}

impl ValidationReport {
    /// Whether no problem was found (warnings aside).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}, {} checked, {}, {}",
            self.dir.display(),
            counted(self.num_shards, "shard"),
            counted(self.items_checked, "item"),
            counted(self.problems.len(), "problem"),
            counted(self.warnings.len(), "warning")
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        for warning in &self.warnings {
            write!(f, "\n  warning: {warning}")?;
        }
        Ok(())
    }
}

/// `n` and `noun`, plural unless `n` is 1: `1 item`, `0 problems`.
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Checks the store in `dir` and lists every problem: missing or unreadable shards, dtype,
/// shape and count mismatches with the manifest, items with NaN or infinite features, labels
/// not below the number of classes, and ids used twice; then the warnings
/// ([`StoreWarning`]), and the store's [`StoreFingerprint`].
///
/// # Errors
/// Only when the manifest itself cannot be read (the [`Manifest::read`] errors, except a total
/// count that disagrees with the shard list, which is reported as a problem).
pub fn validate_store(dir: &Path) -> Result<ValidationReport> {
    let manifest = Manifest::read_without_count_check(dir)?;
    let mut report = ValidationReport {
        dir: dir.to_path_buf(),
        num_shards: manifest.shards.len(),
        items_checked: 0,
        problems: Vec::new(),
        warnings: Vec::new(),
        fingerprint: FingerprintHasher::new().finish(&manifest.info),
    };
    let mut read = Read {
        first_use: HashMap::new(),
        tally: Tally::new(manifest.info.class_names.len()),
        hasher: FingerprintHasher::new(),
    };
    let listed: usize = manifest.shards.iter().map(|shard| shard.count).sum();
    if listed != manifest.count {
        report.problems.push(Problem {
            file: dir.join(MANIFEST_FILE),
            item: None,
            id: None,
            kind: ProblemKind::CountMismatch {
                expected: manifest.count,
                got: listed,
            },
        });
    }
    let mut start = 0;
    for entry in &manifest.shards {
        let path = dir.join(&entry.file);
        check_shard(&manifest, &path, entry.count, start, &mut read, &mut report);
        start += entry.count;
    }
    report.warnings = read.tally.warnings(&manifest.info, report.is_ok());
    // Read again for its keys: `Manifest` drops the ones it does not know.
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap_or_default();
    let keys = unknown_manifest_keys(&text);
    if !keys.is_empty() {
        report.warnings.push(StoreWarning::UnknownKeys { keys });
    }
    report.fingerprint = read.hasher.finish(&manifest.info);
    Ok(report)
}

/// The sub-folders holding the stores of a split dataset, in the order they are validated.
const SPLIT_STORES: [&str; 2] = ["train", "test"];

/// [`validate_store`] over what `dir` holds: `dir` itself when it has a manifest, else each
/// of its `train/` and `test/` stores that has one (the layout `classify extract` writes for
/// CIFAR-100 and AG News, and `classify synth --split`), in that order.
///
/// # Errors
/// The [`validate_store`] errors of the first store whose manifest cannot be read; when `dir`
/// has no manifest and neither split store has one, the error of reading `dir`'s manifest.
pub fn validate_stores(dir: &Path) -> Result<Vec<ValidationReport>> {
    let splits: Vec<PathBuf> = SPLIT_STORES
        .iter()
        .map(|split| dir.join(split))
        .filter(|split| split.join(MANIFEST_FILE).exists())
        .collect();
    if dir.join(MANIFEST_FILE).exists() || splits.is_empty() {
        return Ok(vec![validate_store(dir)?]);
    }
    splits.iter().map(|split| validate_store(split)).collect()
}

/// What the validator gathers over the items it reads.
struct Read {
    /// Where each id was first seen: its shard and item index.
    first_use: HashMap<String, (PathBuf, usize)>,
    /// Items by label and group, for the warnings.
    tally: Tally,
    /// The fingerprint so far.
    hasher: FingerprintHasher,
}

/// Checks one shard whose first item is `start` and appends its problems to `report`.
fn check_shard(
    manifest: &Manifest,
    path: &Path,
    listed_count: usize,
    start: usize,
    read: &mut Read,
    report: &mut ValidationReport,
) {
    let info = &manifest.info;
    let problem = |kind| Problem {
        file: path.to_path_buf(),
        item: None,
        id: None,
        kind,
    };
    if !path.exists() {
        report.problems.push(problem(ProblemKind::MissingShard));
        return;
    }
    let map = match map_file(path) {
        Ok(map) => map,
        Err(error) => {
            let message = error_chain(&error);
            report
                .problems
                .push(problem(ProblemKind::Unreadable { message }));
            return;
        }
    };
    let shard = match decode_shard(path, &map) {
        Ok(shard) => shard,
        Err(error) => {
            let message = error_chain(&error);
            report
                .problems
                .push(problem(ProblemKind::Unreadable { message }));
            return;
        }
    };
    if shard.dtype != info.dtype {
        report.problems.push(problem(ProblemKind::DtypeMismatch {
            expected: info.dtype,
            got: shard.dtype,
        }));
    }
    let [count, num_layers, d_model] = shard.features_shape;
    if [num_layers, d_model] != [info.num_layers, info.d_model] {
        report.problems.push(problem(ProblemKind::ShapeMismatch {
            tensor: FEATURES.to_owned(),
            expected: vec![listed_count, info.num_layers, info.d_model],
            got: shard.features_shape.to_vec(),
        }));
        return;
    }
    if count != listed_count {
        report.problems.push(problem(ProblemKind::CountMismatch {
            expected: listed_count,
            got: count,
        }));
    }

    read.hasher.features(&map[shard.features_bytes.clone()]);
    let row_len = num_layers * d_model;
    let row_bytes = row_len * shard.dtype.size_bytes();
    let mut row = vec![0.0f32; row_len];
    for (k, id) in shard.ids.iter().enumerate() {
        let item = start + k;
        let item_problem = |kind| Problem {
            file: path.to_path_buf(),
            item: Some(item),
            id: Some(id.clone()),
            kind,
        };
        let offset = shard.features_bytes.start + k * row_bytes;
        decode_row(shard.dtype, &map[offset..offset + row_bytes], &mut row);
        if let Some(flat) = row.iter().position(|value| !value.is_finite()) {
            report.problems.push(item_problem(ProblemKind::NonFinite {
                layer: flat / d_model,
                position: flat % d_model,
                value: row[flat],
            }));
        }
        let label = shard.labels[k];
        if label as usize >= info.class_names.len() {
            report
                .problems
                .push(item_problem(ProblemKind::LabelOutOfRange {
                    label,
                    num_classes: info.class_names.len(),
                }));
        }
        read.tally.add(label, shard.groups[k]);
        read.hasher.item(id, label, shard.groups[k]);
        match read.first_use.get(id) {
            Some((first_file, first_item)) => {
                report.problems.push(item_problem(ProblemKind::DuplicateId {
                    first_file: first_file.clone(),
                    first_item: *first_item,
                }))
            }
            None => {
                read.first_use
                    .insert(id.clone(), (path.to_path_buf(), item));
            }
        }
        report.items_checked += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    use super::super::shard::{GROUPS, IDS, LABELS};
    use super::super::test_support::{info, write_store};
    use super::super::EmbeddingStoreWriter;
    use super::*;

    /// Rewrites shard `file` of the store in `dir` with the given pieces.
    fn write_shard(
        dir: &Path,
        file: &str,
        features: (Dtype, Vec<usize>, Vec<u8>),
        labels: &[u32],
        ids: &[&str],
    ) {
        let labels: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        let groups = vec![0u8; labels.len()];
        let n = ids.len();
        let tensors = [
            (
                FEATURES,
                TensorView::new(features.0, features.1, &features.2).unwrap(),
            ),
            (
                LABELS,
                TensorView::new(Dtype::U32, vec![n], &labels).unwrap(),
            ),
            (
                GROUPS,
                TensorView::new(Dtype::U32, vec![n], &groups).unwrap(),
            ),
        ];
        let ids = serde_json::to_string(ids).unwrap();
        let metadata = Some(std::collections::HashMap::from([(IDS.to_owned(), ids)]));
        fs::write(
            dir.join(file),
            safetensors::serialize(tensors, &metadata).unwrap(),
        )
        .unwrap();
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn a_good_store_has_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F16, 2, 3), 7, 3);
        let report = validate_store(dir.path()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.warnings, [], "{report}");
        assert_eq!((report.num_shards, report.items_checked), (3, 7));
    }

    #[test]
    fn unknown_manifest_keys_are_a_warning_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 2, 3), 4, 4);
        let path = dir.path().join(MANIFEST_FILE);
        let mut manifest: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        manifest["chunk_sample"] = 8000.into();
        fs::write(&path, manifest.to_string()).unwrap();
        let report = validate_store(dir.path()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(
            report.warnings,
            [StoreWarning::UnknownKeys {
                keys: vec!["chunk_sample".to_owned()]
            }]
        );
        assert!(
            report.to_string().contains(
                "warning: manifest.json has key `chunk_sample` that no reader knows: it is \
                 ignored (misspelt, or written by a newer tool?)"
            ),
            "{report}"
        );
    }

    #[test]
    fn warnings_are_listed_apart_from_problems() {
        let dir = tempfile::tempdir().unwrap();
        let mut one_class = info(StoreDtype::F32, 1, 2);
        one_class.split = "all".to_owned();
        let mut writer = EmbeddingStoreWriter::create(dir.path(), one_class, 4).unwrap();
        for i in 0..12 {
            writer
                .push(&format!("item-{i}"), 1, (i % 6 / 5) as u32, &[0.5, 1.0])
                .unwrap();
        }
        writer.finish().unwrap();
        let report = validate_store(dir.path()).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(
            report.warnings,
            [
                StoreWarning::OneClass {
                    label: 1,
                    name: "b".to_owned()
                },
                StoreWarning::SmallGroups {
                    groups: vec![(1, 2)]
                }
            ]
        );
        let text = report.to_string();
        assert!(
            text.contains(
                "3 shards, 12 items checked, 0 problems, 2 warnings\n  warning: every item has label 1 (`b`)"
            ),
            "{text}"
        );

        let empty = tempfile::tempdir().unwrap();
        write_store(empty.path(), &info(StoreDtype::F32, 1, 2), 0, 4);
        let report = validate_store(empty.path()).unwrap();
        assert_eq!(
            (report.is_ok(), report.warnings.as_slice()),
            (true, &[StoreWarning::NoItems][..]),
            "{report}"
        );
    }

    #[test]
    fn a_folder_of_train_and_test_stores_validates_each() {
        let dir = tempfile::tempdir().unwrap();
        write_store(
            &dir.path().join("train"),
            &info(StoreDtype::F32, 1, 2),
            6,
            4,
        );
        write_store(&dir.path().join("test"), &info(StoreDtype::F32, 1, 2), 3, 4);
        fs::remove_file(dir.path().join("test/shard-00000.safetensors")).unwrap();
        let reports = validate_stores(dir.path()).unwrap();
        let found: Vec<(PathBuf, usize, usize)> = reports
            .iter()
            .map(|r| (r.dir.clone(), r.items_checked, r.problems.len()))
            .collect();
        assert_eq!(
            found,
            [
                (dir.path().join("train"), 6, 0),
                (dir.path().join("test"), 0, 1)
            ]
        );
        // A store is validated alone, and a folder with no store names its manifest.
        assert_eq!(validate_stores(&dir.path().join("train")).unwrap().len(), 1);
        let error = validate_stores(&dir.path().join("test/none")).unwrap_err();
        assert!(error.to_string().contains("none/manifest.json"), "{error}");
    }

    #[test]
    fn item_problems_are_each_reported_with_file_index_and_id() {
        let dir = tempfile::tempdir().unwrap();
        // Shards of 2 items, [num_layers, d_model] = [1, 2], 3 classes.
        write_store(dir.path(), &info(StoreDtype::F32, 1, 2), 4, 2);
        let features = f32_bytes(&[1.0, f32::NAN, f32::NEG_INFINITY, 0.0]);
        write_shard(
            dir.path(),
            "shard-00001.safetensors",
            (Dtype::F32, vec![2, 1, 2], features),
            &[5, 1],
            &["item-3", "item-0"],
        );
        let report = validate_store(dir.path()).unwrap();
        let shard1 = dir.path().join("shard-00001.safetensors");
        let shard0 = dir.path().join("shard-00000.safetensors");
        let expected = vec![
            Problem {
                file: shard1.clone(),
                item: Some(2),
                id: Some("item-3".to_owned()),
                kind: ProblemKind::NonFinite {
                    layer: 0,
                    position: 1,
                    value: f32::NAN,
                },
            },
            Problem {
                file: shard1.clone(),
                item: Some(2),
                id: Some("item-3".to_owned()),
                kind: ProblemKind::LabelOutOfRange {
                    label: 5,
                    num_classes: 3,
                },
            },
            Problem {
                file: shard1.clone(),
                item: Some(3),
                id: Some("item-0".to_owned()),
                kind: ProblemKind::NonFinite {
                    layer: 0,
                    position: 0,
                    value: f32::NEG_INFINITY,
                },
            },
            Problem {
                file: shard1,
                item: Some(3),
                id: Some("item-0".to_owned()),
                kind: ProblemKind::DuplicateId {
                    first_file: shard0,
                    first_item: 0,
                },
            },
        ];
        // NaN != NaN: compare the rendered reports.
        assert_eq!(
            format!("{:?}", report.problems),
            format!("{expected:?}"),
            "{report}"
        );
        let text = report.to_string();
        assert!(
            text.contains("shard-00001.safetensors: item 2 (`item-3`): non-finite feature NaN"),
            "{text}"
        );
    }

    #[test]
    fn structural_problems_are_each_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 1, 2), 9, 2);
        // shard 0: missing; shard 1: truncated; shard 2: wrong d_model; shard 3: f16 and one
        // item fewer than listed; shard 4 (1 item) fine.
        fs::remove_file(dir.path().join("shard-00000.safetensors")).unwrap();
        let path1 = dir.path().join("shard-00001.safetensors");
        let bytes = fs::read(&path1).unwrap();
        fs::write(&path1, &bytes[..bytes.len() - 3]).unwrap();
        write_shard(
            dir.path(),
            "shard-00002.safetensors",
            (Dtype::F32, vec![2, 1, 3], f32_bytes(&[0.0; 6])),
            &[0, 0],
            &["x", "y"],
        );
        write_shard(
            dir.path(),
            "shard-00003.safetensors",
            (Dtype::F16, vec![1, 1, 2], vec![0u8; 4]),
            &[0],
            &["z"],
        );
        let report = validate_store(dir.path()).unwrap();
        let kinds: Vec<(String, ProblemKind)> = report
            .problems
            .iter()
            .map(|p| {
                let file = p.file.file_name().unwrap().to_string_lossy().into_owned();
                (file, p.kind.clone())
            })
            .collect();
        assert_eq!(kinds.len(), 5, "{report}");
        assert_eq!(
            kinds[0],
            (
                "shard-00000.safetensors".to_owned(),
                ProblemKind::MissingShard
            )
        );
        assert_eq!(kinds[1].0, "shard-00001.safetensors");
        assert!(
            matches!(kinds[1].1, ProblemKind::Unreadable { .. }),
            "{report}"
        );
        assert_eq!(
            kinds[2],
            (
                "shard-00002.safetensors".to_owned(),
                ProblemKind::ShapeMismatch {
                    tensor: "features".to_owned(),
                    expected: vec![2, 1, 2],
                    got: vec![2, 1, 3],
                }
            )
        );
        assert_eq!(
            kinds[3],
            (
                "shard-00003.safetensors".to_owned(),
                ProblemKind::DtypeMismatch {
                    expected: StoreDtype::F32,
                    got: StoreDtype::F16,
                }
            )
        );
        assert_eq!(
            kinds[4],
            (
                "shard-00003.safetensors".to_owned(),
                ProblemKind::CountMismatch {
                    expected: 2,
                    got: 1,
                }
            )
        );
        // Items of the readable shards are still checked.
        assert_eq!(report.items_checked, 2);
    }

    #[test]
    fn manifest_total_disagreeing_with_shards_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        write_store(dir.path(), &info(StoreDtype::F32, 1, 2), 3, 2);
        let path = dir.path().join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"count\": 3", "\"count\": 4")).unwrap();
        let report = validate_store(dir.path()).unwrap();
        assert_eq!(report.problems.len(), 1, "{report}");
        assert_eq!(report.problems[0].file, path);
        assert_eq!(
            report.problems[0].kind,
            ProblemKind::CountMismatch {
                expected: 4,
                got: 3
            }
        );
    }
}
