//! Interpretability of a trained DAAM head (paper §1.5, Fig. 2–3): the Importance Factor over a
//! validation pass, its heatmap and per-layer contributions, the learned-parameter ranges; and
//! the choice of high- and low-IF layers for the ablation.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
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

/// Counts the learned parameters of `model` that are not finite: `(not finite, all)`.
pub fn non_finite_parameters<B: Backend, M: Module<B>>(model: &M) -> (usize, usize) {
    struct Count {
        bad: usize,
        all: usize,
    }
    impl<B: Backend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let values = param
                .val()
                .into_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .expect("f64 data");
            self.all += values.len();
            self.bad += values.iter().filter(|v| !v.is_finite()).count();
        }
    }
    let mut count = Count { bad: 0, all: 0 };
    model.visit(&mut count);
    (count.bad, count.all)
}

/// The refusal of a diverged run: `what` in `what`, its values not finite.
fn diverged(run: &str, what: String) -> Error {
    Error::Interpretation {
        what: run.to_owned(),
        message: format!(
            "the run diverged: {what} are not finite (NaN or ±inf), so its Importance Factors \
             mean nothing; nothing was interpreted or ablated: retrain it (e.g. with a lower \
             --lr)"
        ),
    }
}

/// Runs the head over `indices` of `store`, averaging its density weights. `run` names the
/// run in errors (`run fold-1 of daam-v2`).
///
/// # Errors
/// [`Error::Interpretation`] when the head records no density weights (MHA, GQA, mixture) or
/// no item is given, and, naming `run`, when a learned parameter or a density weight average
/// is not finite (a diverged run: its layers would be ranked by NaN).
pub fn interpret<B: DaamBackend>(
    model: &DatHead<B>,
    store: &EmbeddingStore,
    indices: &[usize],
    layers: Option<&[usize]>,
    run: &str,
    device: &B::Device,
) -> Result<Interpretation> {
    let (bad, all) = non_finite_parameters(model);
    if bad > 0 {
        return Err(diverged(
            run,
            format!("{bad} of its {all} learned parameters"),
        ));
    }
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
    for (name, values) in [
        ("density attention", &importance.density_attention),
        ("Importance Factor", &importance.importance),
        ("layer contribution", &importance.layer_contribution),
    ] {
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(diverged(
                run,
                format!("{bad} of its {} {name} values", values.len()),
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use burn::module::ModuleMapper;

    use super::*;
    use crate::head::{DatHeadConfig, HeadKind};
    use crate::synthetic::SyntheticSpec;
    use crate::tests::TestBackend;

    /// Every parameter times NaN.
    struct Poison;
    impl<B: Backend> ModuleMapper<B> for Poison {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            Param::from_mapped_value(id, tensor.mul_scalar(f32::NAN), mapper)
        }
    }

    /// A head whose learned parameters are NaN (a diverged run's last save) is refused, naming
    /// the run, before its layers are ranked by NaN.
    #[test]
    fn a_head_with_non_finite_parameters_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SyntheticSpec::small(8, 1).write(dir.path(), "all").unwrap();
        let store = EmbeddingStore::open(dir.path()).unwrap();
        let device = Default::default();
        let head = DatHeadConfig::new(HeadKind::DaamV2, 8, 16, 4)
            .with_conv_channels(2)
            .init::<TestBackend>(&device);
        let indices: Vec<usize> = (0..8).collect();
        let run = "run fold-1 of daam-v2";
        assert!(interpret(&head, &store, &indices, None, run, &device).is_ok());
        let (_, all) = non_finite_parameters(&head);
        let head = head.map(&mut Poison);
        assert_eq!(non_finite_parameters(&head), (all, all));
        let error = interpret(&head, &store, &indices, None, run, &device)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            format!(
                "run fold-1 of daam-v2: the run diverged: {all} of its {all} learned parameters \
                 are not finite (NaN or ±inf), so its Importance Factors mean nothing; nothing \
                 was interpreted or ablated: retrain it (e.g. with a lower --lr)"
            )
        );
    }
}
