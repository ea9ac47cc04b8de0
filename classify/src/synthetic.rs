//! Generated embedding stores for tests, demos and benchmarks: items whose class lives in
//! shifts of chosen layers' feature means and variances, which a DAAM head can detect and a
//! test can check it learned.

use std::path::Path;

use datasets::{EmbeddingStoreWriter, StoreDtype, StoreInfo};
use rand::{rngs::StdRng, RngExt, SeedableRng};

use crate::error::Result;

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

    /// Writes the store to `dir` (f32, shards of 256 items), with `split` in its manifest.
    ///
    /// # Errors
    /// The writer's errors (an existing store, I/O).
    pub fn write(&self, dir: &Path, split: &str) -> Result<()> {
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
        let mut writer = EmbeddingStoreWriter::create(dir, info, 256)?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        for i in 0..self.count {
            let label = i % self.num_classes;
            let group = (i * self.num_groups / self.count.max(1)) as u32;
            let features = self.item(&mut rng, label);
            writer.push(&format!("{split}-{i:06}"), label as u32, group, &features)?;
        }
        writer.finish()?;
        Ok(())
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    ((-2.0f64 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
