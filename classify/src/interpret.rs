//! Interpretability of a trained DAAM head (paper §1.5, Fig. 2–3): the Importance Factor over a
//! validation pass, its heatmap and per-layer contributions, the learned-parameter ranges; and
//! the choice of high- and low-IF layers for the ablation.

use std::path::Path;

use daam::{DaamBackend, ImportanceFactor, ImportanceSummary, ParameterRanges};
use datasets::EmbeddingStore;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::head::{DatHead, LayerAttention};
use crate::report::write_atomic;
use crate::train::batch_tensors;

/// What `classify report` computes for one trained head.
#[derive(Debug, Clone, Serialize)]
pub struct Interpretation {
    /// DA, IF and layer contributions over the validation items.
    pub importance: ImportanceSummary,
    /// Ranges of the learned δ and ξ (per-feature DAAM kinds).
    pub ranges: Option<ParameterRanges>,
    /// Layers by contribution, highest first (0-based).
    pub layers_by_contribution: Vec<usize>,
}

/// Runs the head over `indices` of `store`, averaging its density weights.
///
/// # Errors
/// [`Error::Store`] when the head records no density weights (MHA, GQA, mixture) or no item is
/// given.
pub fn interpret<B: DaamBackend>(
    model: &DatHead<B>,
    store: &EmbeddingStore,
    indices: &[usize],
    layers: Option<&[usize]>,
    device: &B::Device,
) -> Result<Interpretation> {
    let num_layers = layers.map_or(store.num_layers(), <[usize]>::len);
    let mut factor = ImportanceFactor::new(num_layers, store.d_model());
    for chunk in indices.chunks(64) {
        let (x, _) = batch_tensors::<B>(store, chunk, layers, device);
        let out = model.forward_with_weights(x);
        match out.weights {
            Some(w) => factor.record(w),
            None => {
                return Err(Error::Interpretation {
                    what: "Importance Factor".into(),
                    message: "this head has no density weights: choose daam-v1, daam-v2 or \
                              gq-daam"
                        .into(),
                })
            }
        }
    }
    let importance = factor.summary().map_err(|e| Error::Interpretation {
        what: "Importance Factor".into(),
        message: e.to_string(),
    })?;
    let ranges = match &model.attention {
        LayerAttention::Daam(daam) => Some(ParameterRanges::of(daam)),
        LayerAttention::GqDaam(gq) => Some(ParameterRanges::of(&gq.daam)),
        _ => None,
    };
    let mut layers_by_contribution: Vec<usize> = (0..num_layers).collect();
    layers_by_contribution.sort_by(|&a, &b| {
        importance.layer_contribution[b].total_cmp(&importance.layer_contribution[a])
    });
    Ok(Interpretation {
        importance,
        ranges,
        layers_by_contribution,
    })
}

impl Interpretation {
    /// The `k` layers of highest and of lowest contribution, each sorted ascending.
    pub fn extreme_layers(&self, k: usize) -> (Vec<usize>, Vec<usize>) {
        let n = self.layers_by_contribution.len();
        let k = k.min(n);
        let mut high = self.layers_by_contribution[..k].to_vec();
        let mut low = self.layers_by_contribution[n - k..].to_vec();
        high.sort_unstable();
        low.sort_unstable();
        (high, low)
    }

    /// Writes `importance.png` (IF heatmap), `layer_contribution.png` and
    /// `interpretation.json` to `dir`.
    ///
    /// # Errors
    /// Plotting or I/O failures, naming the file.
    pub fn write(&self, dir: &Path, title: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(crate::error::io_error(dir))?;
        let plot_error = |path: &Path| {
            let path = path.to_path_buf();
            move |e: daam::Error| Error::Store {
                path,
                message: e.to_string(),
            }
        };
        let heatmap = dir.join("importance.png");
        daam::plot::write_importance_heatmap(&self.importance, title, &heatmap)
            .map_err(plot_error(&heatmap))?;
        let bars = dir.join("layer_contribution.png");
        daam::plot::write_layer_contribution(&self.importance, title, &bars)
            .map_err(plot_error(&bars))?;
        let path = dir.join("interpretation.json");
        let json = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, json.as_bytes())
    }
}
