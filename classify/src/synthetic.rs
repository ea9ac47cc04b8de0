//! Generated embedding stores for tests, demos and benchmarks: items whose class lives in
//! shifts of chosen layers' feature means and variances, which a DAAM head can detect and a
//! test can check it learned.

use std::fs;
use std::path::{Path, PathBuf};

use datasets::embedding_store::MANIFEST_FILE;
use datasets::{EmbeddingStoreWriter, StoreDtype, StoreInfo};
use rand::{rngs::StdRng, RngExt, SeedableRng};

use crate::error::{invalid, io_error, Error, Result};

/// Most values (`layers × d_model`) a generated item may hold: 2^22, 16 MiB as f32 (a
/// Llama-2-13B item, 40 × 5120, holds 204,800).
pub const MAX_ITEM_VALUES: usize = 1 << 22;
/// Most bytes a generated store may hold (`count × layers × d_model` f32 values): 4 GiB.
pub const MAX_STORE_BYTES: u64 = 4 << 30;
/// Most classes, and most groups, of a generated store.
pub const MAX_CLASSES_OR_GROUPS: usize = 1 << 16;
/// Most bytes of items buffered before a shard is written (at most 256 items a shard).
const SHARD_BYTES: usize = 256 << 20;
/// The folder inside the store's folder where [`SyntheticSpec::write`] writes the store before
/// moving its files out, manifest last: an interrupted run leaves no manifest, so no store that
/// looks valid; the next run removes the folder and starts over.
pub const STAGING_FOLDER: &str = ".synth-partial";

/// The staging folder an interrupted `classify synth` left in `dir`, or in its `train/` or
/// `test/` (`--split`), where no manifest says that store was finished.
pub fn interrupted_staging(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("train"), dir.join("test")]
        .into_iter()
        .filter(|store| !store.join(MANIFEST_FILE).exists())
        .map(|store| store.join(STAGING_FOLDER))
        .find(|staging| staging.is_dir())
}

/// Bytes in words (`40.0 GB`).
fn gigabytes(bytes: u128) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Refuses `dir` when it already holds a store (a manifest): a generated store is written
/// whole, never added to or resumed.
///
/// # Errors
/// [`Error::Store`] naming `dir`.
pub fn refuse_existing_store(dir: &Path) -> Result<()> {
    if dir.join(MANIFEST_FILE).exists() {
        return Err(Error::Store {
            path: dir.to_path_buf(),
            message: "an embedding store already exists here; synth writes a whole new store \
                      and does not add to or resume one: delete the folder or choose another \
                      --out"
                .into(),
        });
    }
    Ok(())
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Items.
    pub count: usize,
    /// Encoder layers per item.
    pub num_layers: usize,
    /// Features per layer.
    pub d_model: usize,
    /// Classes (labels cycle through them).
    pub num_classes: usize,
    /// Groups (e.g. sessions; items are spread evenly).
    pub num_groups: usize,
    /// Layers that carry the class signal (0-based).
    pub signal_layers: Vec<usize>,
    /// Size of the class-dependent mean shift, in units of the noise σ.
    pub strength: f32,
    /// Seed.
    pub seed: u64,
}

impl SyntheticSpec {
    /// A small spec: `count` items of 8 layers × 16 features, 4 classes, 4 groups, signal in
    /// layers 2 and 5.
    pub fn small(count: usize, seed: u64) -> Self {
        Self {
            count,
            num_layers: 8,
            d_model: 16,
            num_classes: 4,
            num_groups: 4,
            signal_layers: vec![2, 5],
            strength: 1.0,
            seed,
        }
    }

    /// Refuses sizes too large to generate, before anything is written: an item of more than
    /// [`MAX_ITEM_VALUES`] values, a store of more than [`MAX_STORE_BYTES`], more than
    /// [`MAX_CLASSES_OR_GROUPS`] classes or groups. The messages name `synth`'s flags.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the flags, the size asked for and the bound.
    pub fn check(&self) -> Result<()> {
        let (count, layers, d_model) = (self.count, self.num_layers, self.d_model);
        let item = layers as u128 * d_model as u128;
        if item > MAX_ITEM_VALUES as u128 {
            return Err(invalid(
                "--layers × --d-model",
                format!(
                    "{layers} × {d_model} = {item} values per item ({} as f32), more than the \
                     {MAX_ITEM_VALUES} values ({} MiB) synth writes per item: choose smaller sizes",
                    gigabytes(item * 4),
                    (MAX_ITEM_VALUES * 4) >> 20
                ),
            ));
        }
        let bytes = count as u128 * item * 4;
        if bytes > u128::from(MAX_STORE_BYTES) {
            return Err(invalid(
                "--count × --layers × --d-model",
                format!(
                    "{count} items × {layers} × {d_model} values = {} as f32, more than the {} GiB \
                     synth writes per store: choose a smaller --count or smaller sizes",
                    gigabytes(bytes),
                    MAX_STORE_BYTES >> 30
                ),
            ));
        }
        for (flag, value) in [
            ("--classes", self.num_classes),
            ("--groups", self.num_groups),
        ] {
            if value > MAX_CLASSES_OR_GROUPS {
                return Err(invalid(
                    flag,
                    format!("{value} is more than the {MAX_CLASSES_OR_GROUPS} synth allows"),
                ));
            }
        }
        Ok(())
    }

    /// The features of item `index` with label `label`, `[num_layers, d_model]` row-major:
    /// standard normal noise; on the signal layers, the first `d_model / 4` features are
    /// shifted by `strength · (label − (classes − 1) / 2)` and scaled by `1 + 0.25 · label`.
    pub fn item(&self, rng: &mut StdRng, label: usize) -> Vec<f32> {
        let mut features = Vec::with_capacity(self.num_layers * self.d_model);
        let centre = (self.num_classes as f32 - 1.0) / 2.0;
        for layer in 0..self.num_layers {
            let signal = self.signal_layers.contains(&layer);
            for feature in 0..self.d_model {
                let noise = normal(rng);
                let value = if signal && feature < self.d_model.div_ceil(4) {
                    self.strength * (label as f32 - centre) + noise * (1.0 + 0.25 * label as f32)
                } else {
                    noise
                };
                features.push(value);
            }
        }
        features
    }

    /// Writes the store to `dir` (f32, shards of at most 256 items and 256 MiB), with `split`
    /// in its manifest. The store is written in [`STAGING_FOLDER`] inside `dir`, then its files
    /// are moved to `dir`, the manifest last.
    ///
    /// # Errors
    /// [`Self::check`]'s and [`refuse_existing_store`]'s errors, before anything is written;
    /// the writer's errors (I/O).
    pub fn write(&self, dir: &Path, split: &str) -> Result<()> {
        self.check()?;
        refuse_existing_store(dir)?;
        let info = StoreInfo {
            encoder: "synthetic".into(),
            dataset: "synthetic".into(),
            split: split.into(),
            num_layers: self.num_layers,
            d_model: self.d_model,
            dtype: StoreDtype::F32,
            pooling: "none".into(),
            class_names: (0..self.num_classes)
                .map(|c| format!("class-{c}"))
                .collect(),
            chunk_samples: None,
            max_tokens: None,
            weights_digest: None,
            source_digest: None,
        };
        let staging = dir.join(STAGING_FOLDER);
        if staging.exists() {
            // Left by an interrupted run: generation is deterministic, so start over.
            fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
        }
        let shard_size = (SHARD_BYTES / (self.num_layers * self.d_model * 4)).clamp(1, 256);
        let mut writer = EmbeddingStoreWriter::create(&staging, info, shard_size)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        for i in 0..self.count {
            let label = i % self.num_classes;
            let group = (i * self.num_groups / self.count.max(1)) as u32;
            let features = self.item(&mut rng, label);
            writer.push(&format!("{split}-{i:06}"), label as u32, group, &features)?;
        }
        writer.finish()?;
        publish(&staging, dir)
    }
}

/// Moves the store in `staging` to `dir`, its manifest last, and removes `staging`.
fn publish(staging: &Path, dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    for entry in fs::read_dir(staging).map_err(io_error(staging))? {
        let name = entry.map_err(io_error(staging))?.file_name();
        if name != MANIFEST_FILE {
            files.push(name);
        }
    }
    files.sort();
    files.push(MANIFEST_FILE.into());
    for name in files {
        let to = dir.join(&name);
        fs::rename(staging.join(&name), &to).map_err(io_error(&to))?;
    }
    fs::remove_dir(staging).map_err(io_error(staging))
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0f64 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SyntheticSpec {
        SyntheticSpec {
            signal_layers: vec![1],
            ..SyntheticSpec::small(6, 3)
        }
    }

    /// `--layers 100000 --d-model 100000` (10^10 values an item) aborted on allocation after
    /// the manifest was written, leaving an empty store that validated.
    #[test]
    fn sizes_too_large_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        for (spec, expected) in [
            (
                SyntheticSpec {
                    num_layers: 100_000,
                    d_model: 100_000,
                    ..spec()
                },
                "--layers × --d-model: 100000 × 100000 = 10000000000 values per item (40.0 GB",
            ),
            (
                SyntheticSpec {
                    num_layers: usize::MAX,
                    d_model: usize::MAX,
                    ..spec()
                },
                "--layers × --d-model",
            ),
            (
                SyntheticSpec {
                    count: 1_000_000,
                    num_layers: 100,
                    d_model: 100,
                    ..spec()
                },
                "--count × --layers × --d-model: 1000000 items × 100 × 100 values = 40.0 GB",
            ),
            (
                SyntheticSpec {
                    num_classes: usize::MAX,
                    ..spec()
                },
                "--classes: 18446744073709551615 is more than the 65536",
            ),
            (
                SyntheticSpec {
                    num_groups: 1 << 20,
                    ..spec()
                },
                "--groups: 1048576 is more than the 65536",
            ),
        ] {
            let out = dir.path().join("store");
            let error = spec.write(&out, "all").unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!out.exists(), "{error}: wrote {}", out.display());
        }
    }

    /// The store is moved into place, manifest last, only once written whole; what an
    /// interrupted run left is replaced, and an existing store is refused without suggesting a
    /// resume that synth does not have.
    #[test]
    fn a_store_appears_only_when_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("store");
        let staging = out.join(STAGING_FOLDER);
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join(MANIFEST_FILE), "{ interrupted").unwrap();
        spec().write(&out, "all").unwrap();
        assert!(!staging.exists());
        let store = datasets::EmbeddingStore::open(&out).unwrap();
        assert_eq!(store.len(), 6);

        let error = spec().write(&out, "all").unwrap_err().to_string();
        assert!(
            error.contains("an embedding store already exists here")
                && error.contains("delete the folder or choose another --out")
                && !error.contains("resume it"),
            "{error}"
        );
    }
}
