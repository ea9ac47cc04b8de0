//! The runs of a replication: leave-one-group-out folds (IEMOCAP sessions) or seeded runs on
//! the official splits, each with a dev split carved from its training items.

use std::path::{Path, PathBuf};

use datasets::{EmbeddingStore, StoreFingerprint, ValidationReport};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::{Protocol, TrainSettings};

/// The stores of a task: one store (folds over its groups) or a train and a test store.
pub struct Stores {
    /// The store training items come from (and, for folds, validation items too).
    pub train: EmbeddingStore,
    /// The official test split, for seeded runs.
    pub test: Option<EmbeddingStore>,
    /// Where they were opened from.
    pub dir: PathBuf,
    /// The validator's reports on the train store and then the test store: their warnings and
    /// fingerprints (their problems are refused by [`Self::open`]).
    pub validation: Vec<ValidationReport>,
}

/// What identifies the content of a replication's stores (see [`StoreFingerprint`]), kept in
/// its `replicate.json` so that a rerun or a report can tell that `--embeddings` still holds
/// the items and features its runs were trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoresFingerprint {
    /// The train store (for folds, the one store).
    pub train: StoreFingerprint,
    /// The test store of the seeded protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<StoreFingerprint>,
}

impl Stores {
    /// Opens `dir` for `protocol`: a store itself for group folds, or `dir/train` and
    /// `dir/test` for seeded runs; checks that the stores agree in shape and classes, and runs
    /// the validator over every item ([`datasets::validate_store`]: labels below the class
    /// count, finite features, unique ids), so that no run trains or reports on a store that
    /// `classify validate` rejects. The check reads each item once, as one epoch of training
    /// does, and a replication trains for many.
    ///
    /// # Errors
    /// The store's own errors, [`Error::StoreProblems`] listing what the validator found, and
    /// [`Error::Store`] when the layout or the stores do not fit.
    pub fn open(dir: &Path, protocol: Protocol) -> Result<Self> {
        match protocol {
            Protocol::GroupFolds => {
                let (train, report) = open_valid(dir)?;
                let groups = distinct_groups(&train);
                if groups.len() < 2 {
                    return Err(Error::Store {
                        path: dir.to_path_buf(),
                        message: format!(
                            "leave-one-group-out folds need at least 2 groups (sessions), the \
                             store has {}",
                            groups.len()
                        ),
                    });
                }
                Ok(Self {
                    train,
                    test: None,
                    dir: dir.to_path_buf(),
                    validation: vec![report],
                })
            }
            Protocol::Seeds { .. } => {
                let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
                for d in [&train_dir, &test_dir] {
                    if !d.join("manifest.json").exists() {
                        return Err(Error::Store {
                            path: d.clone(),
                            message: "seeded runs read a `train/` and a `test/` store under \
                                      --embeddings; this one has no manifest.json"
                                .into(),
                        });
                    }
                }
                let (train, train_report) = open_valid(&train_dir)?;
                let (test, test_report) = open_valid(&test_dir)?;
                let shape =
                    |s: &EmbeddingStore| (s.num_layers(), s.d_model(), s.class_names().to_vec());
                if shape(&train) != shape(&test) {
                    return Err(Error::Store {
                        path: test_dir,
                        message: format!(
                            "the test store ({} layers × {}, classes {:?}) does not match the \
                             train store ({} layers × {}, classes {:?})",
                            test.num_layers(),
                            test.d_model(),
                            test.class_names(),
                            train.num_layers(),
                            train.d_model(),
                            train.class_names()
                        ),
                    });
                }
                // The same features read twice (a link) would score the training items.
                if let (Ok(a), Ok(b)) = (train_dir.canonicalize(), test_dir.canonicalize()) {
                    if a == b {
                        return Err(Error::Store {
                            path: test_dir,
                            message: format!(
                                "is the train store {}: the runs would be scored on the items \
                                 they trained on",
                                a.display()
                            ),
                        });
                    }
                }
                // Features of one encoder, pooling and dataset on both sides.
                let (a, b) = (&train.manifest().info, &test.manifest().info);
                let differs: Vec<String> = [
                    ("encoder", a.encoder == b.encoder, &a.encoder, &b.encoder),
                    ("dataset", a.dataset == b.dataset, &a.dataset, &b.dataset),
                    ("pooling", a.pooling == b.pooling, &a.pooling, &b.pooling),
                ]
                .into_iter()
                .filter(|(_, same, ..)| !same)
                .map(|(field, _, x, y)| format!("{field} `{x}` / `{y}`"))
                .chain(
                    [
                        ("chunk_samples", a.chunk_samples, b.chunk_samples),
                        ("max_tokens", a.max_tokens, b.max_tokens),
                    ]
                    .into_iter()
                    .filter(|(_, x, y)| x != y)
                    .map(|(field, x, y)| format!("{field} {x:?} / {y:?}")),
                )
                .collect();
                if !differs.is_empty() {
                    return Err(Error::Store {
                        path: test_dir,
                        message: format!(
                            "the train and test stores were not made alike ({}): extract both \
                             splits with the same encoder and settings",
                            differs.join(", ")
                        ),
                    });
                }
                Ok(Self {
                    train,
                    test: Some(test),
                    dir: dir.to_path_buf(),
                    validation: vec![train_report, test_report],
                })
            }
        }
    }

    /// The store validation items of `plan` come from.
    pub fn val_store(&self) -> &EmbeddingStore {
        self.test.as_ref().unwrap_or(&self.train)
    }

    /// What identifies the stores' content, from the validator's reports.
    ///
    /// # Panics
    /// When [`Self::validation`] is empty (a `Stores` not made by [`Self::open`]).
    pub fn fingerprint(&self) -> StoresFingerprint {
        StoresFingerprint {
            train: self.validation[0].fingerprint.clone(),
            test: self.validation.get(1).map(|r| r.fingerprint.clone()),
        }
    }

    /// The validator's warnings, each as `STORE: warning: …`.
    pub fn warnings(&self) -> Vec<String> {
        self.validation
            .iter()
            .flat_map(|report| {
                report
                    .warnings
                    .iter()
                    .map(|w| format!("{}: warning: {w}", report.dir.display()))
            })
            .collect()
    }
}

/// Opens the store in `dir` and checks every item with the validator, whose report it returns.
fn open_valid(dir: &Path) -> Result<(EmbeddingStore, ValidationReport)> {
    let store = EmbeddingStore::open(dir)?;
    let report = datasets::validate_store(dir)?;
    if !report.is_ok() {
        return Err(Error::StoreProblems {
            report: Box::new(report),
        });
    }
    Ok((store, report))
}

/// The sorted distinct groups of a store.
pub fn distinct_groups(store: &EmbeddingStore) -> Vec<u32> {
    let mut groups = store.groups().to_vec();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// One run of a replication.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// `fold-1` … or `seed-1` … (1-based, as the paper's F1…/R1…).
    pub label: String,
    /// Seed of the run's initialisation, data order and dev split.
    pub seed: u64,
    /// Training items (of the train store).
    pub train: Vec<usize>,
    /// Dev items (of the train store), disjoint from `train`.
    pub dev: Vec<usize>,
    /// Validation items (of [`Stores::val_store`]).
    pub val: Vec<usize>,
}

/// The runs `protocol` makes over `stores`; `runs` overrides the number of seeded runs.
pub fn plan_runs(
    stores: &Stores,
    protocol: Protocol,
    settings: &TrainSettings,
    runs: Option<usize>,
) -> Vec<RunPlan> {
    let carve = |mut items: Vec<usize>, seed: u64| -> (Vec<usize>, Vec<usize>) {
        let n_dev = (items.len() as f64 * settings.dev_fraction).round() as usize;
        items.shuffle(&mut StdRng::seed_from_u64(seed ^ 0xDE7_5EED));
        let dev = items.split_off(items.len() - n_dev.min(items.len().saturating_sub(1)));
        let (mut train, mut dev) = (items, dev);
        train.sort_unstable();
        dev.sort_unstable();
        (train, dev)
    };
    match protocol {
        Protocol::GroupFolds => {
            let groups = stores.train.groups();
            distinct_groups(&stores.train)
                .into_iter()
                .enumerate()
                .map(|(k, group)| {
                    // Wraps on purpose: `--seed 18446744073709551615` gives the next run seed 0
                    // (plain `+` wrapped silently in release and panicked in debug builds).
                    let seed = settings.seed.wrapping_add(k as u64);
                    let (val, rest): (Vec<usize>, Vec<usize>) =
                        (0..groups.len()).partition(|&i| groups[i] == group);
                    let (train, dev) = carve(rest, seed);
                    RunPlan {
                        label: format!("fold-{}", k + 1),
                        seed,
                        train,
                        dev,
                        val,
                    }
                })
                .collect()
        }
        Protocol::Seeds { runs: default } => (0..runs.unwrap_or(default))
            .map(|r| {
                // Wraps on purpose: `--seed 18446744073709551615` gives the next run seed 0
                // (plain `+` wrapped silently in release and panicked in debug builds).
                let seed = settings.seed.wrapping_add(r as u64);
                let (train, dev) = carve((0..stores.train.len()).collect(), seed);
                RunPlan {
                    label: format!("seed-{}", r + 1),
                    seed,
                    train,
                    dev,
                    val: (0..stores.val_store().len()).collect(),
                }
            })
            .collect(),
    }
}
