//! The Importance Factor and the other diagnostics of paper §1.5 (Fig. 2–3, Table 2's
//! "modality summary").

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::{DensityAdaptiveAttention, GaussianForm, MixtureDensityAttention};

/// Running average of density weights over a pass (paper §1.5: "taking the arithmetic average
/// of the generated Density Attention maps during validation").
///
/// Every recorded sample counts once, so the result equals the authors' average of per-batch
/// means when batches have equal sizes (`reference/daam-reference.md` §6).
#[derive(Debug, Clone)]
pub struct ImportanceFactor {
    num_layers: usize,
    d_model: usize,
    sum: Vec<f64>,
    count: usize,
}

/// What [`ImportanceFactor::summary`] computes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImportanceSummary {
    /// Rows of the maps (encoder layers).
    pub num_layers: usize,
    /// Columns of the maps (features).
    pub d_model: usize,
    /// Samples averaged.
    pub count: usize,
    /// DA: mean density weight, `[num_layers, d_model]` row-major.
    pub density_attention: Vec<f64>,
    /// IF = (DA − min DA) / (max DA − min DA) over the whole matrix, in [0, 1]; all zeros when
    /// DA is constant.
    pub importance: Vec<f64>,
    /// Each layer's share of the total density weight, in percent (sums to 100). The formula is
    /// our reading of Fig. 3; the paper does not state it.
    pub layer_contribution: Vec<f64>,
}

impl ImportanceFactor {
    /// An empty accumulator for `[num_layers, d_model]` maps.
    pub fn new(num_layers: usize, d_model: usize) -> Self {
        Self {
            num_layers,
            d_model,
            sum: vec![0.0; num_layers * d_model],
            count: 0,
        }
    }

    /// Adds a batch of density weights.
    ///
    /// # Shapes
    /// - `weights`: `[batch_size, seq_length, d_model]` with `seq_length = num_layers`
    ///
    /// # Panics
    /// If the shape differs from the accumulator's.
    pub fn record<B: Backend>(&mut self, weights: Tensor<B, 3>) {
        let [batch_size, seq_length, d_model] = weights.dims();
        assert_eq!(
            (seq_length, d_model),
            (self.num_layers, self.d_model),
            "ImportanceFactor: weights are [_, {seq_length}, {d_model}], expected [_, {}, {}]",
            self.num_layers,
            self.d_model
        );
        let batch_sum = weights.sum_dim(0).into_data().convert::<f64>();
        let values = batch_sum.to_vec::<f64>().expect("f64 data");
        for (s, v) in self.sum.iter_mut().zip(values) {
            *s += v;
        }
        self.count += batch_size;
    }

    /// Samples recorded so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// DA, IF and the per-layer contributions.
    ///
    /// # Errors
    /// [`Error::NothingRecorded`] before the first [`record`](Self::record).
    pub fn summary(&self) -> Result<ImportanceSummary> {
        if self.count == 0 {
            return Err(Error::NothingRecorded);
        }
        let density_attention: Vec<f64> = self.sum.iter().map(|s| s / self.count as f64).collect();
        let (min, max) = min_max(&density_attention);
        let importance = density_attention
            .iter()
            .map(|&v| {
                if max > min {
                    (v - min) / (max - min)
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = density_attention.iter().sum();
        let layer_contribution = density_attention
            .chunks_exact(self.d_model)
            .map(|row| 100.0 * row.iter().sum::<f64>() / total)
            .collect();
        Ok(ImportanceSummary {
            num_layers: self.num_layers,
            d_model: self.d_model,
            count: self.count,
            density_attention,
            importance,
            layer_contribution,
        })
    }
}

/// Smallest and largest value.
fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// A closed interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
}

/// The learned-parameter ranges of a per-feature DAAM (paper Table 2's "modality summary":
/// e.g. speech δ ∈ [−0.06, 0.10], ξ ∈ [1.88, 2.06]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ParameterRanges {
    /// Range of the mean offsets δ.
    pub mean_offset: Interval,
    /// Range of the scaled variances ξ.
    pub scaled_variance: Interval,
}

impl ParameterRanges {
    /// Reads the ranges off a module.
    pub fn of<B: Backend>(module: &DensityAdaptiveAttention<B>) -> Self {
        let interval = |t: Tensor<B, 2>| {
            let values = t
                .into_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .expect("f64 data");
            let (min, max) = min_max(&values);
            Interval { min, max }
        };
        Self {
            mean_offset: interval(module.mean_offset.val()),
            scaled_variance: interval(module.scaled_variance.val()),
        }
    }
}

/// Differential entropy `½ ln(2πe σ²_prod)` of the product of Gaussians with the given
/// variances, where `σ²_prod = (Σ 1/σ²_i)⁻¹` (paper §1, "product of N Gaussians per head").
///
/// # Panics
/// If `variances` is empty.
pub fn gaussian_product_entropy(variances: &[f64]) -> f64 {
    assert!(!variances.is_empty(), "no variances");
    let precision: f64 = variances.iter().map(|v| 1.0 / v).sum();
    0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E / precision).ln()
}

/// Per-head entropies of a per-feature DAAM, in normalised units (`y` of the module's
/// equation): head `h` is the product of its `d_model` Gaussians with variance ξ
/// ([`GaussianForm::Variance`]) or ξ² ([`GaussianForm::StdDev`]).
pub fn head_entropies<B: Backend>(module: &DensityAdaptiveAttention<B>) -> Vec<f64> {
    let xi = module.scaled_variance.val();
    let [_, d_model] = xi.dims();
    let values = xi
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 data");
    values
        .chunks_exact(d_model)
        .map(|head| {
            let variances: Vec<f64> = match module.form {
                GaussianForm::Variance => head.to_vec(),
                GaussianForm::StdDev => head.iter().map(|s| s * s).collect(),
            };
            gaussian_product_entropy(&variances)
        })
        .collect()
}

/// Per-head entropies of a mixture layer, in units of the chunk's standard deviation: head `h`
/// is the product of its Gaussians with variances `c_i²`.
pub fn mixture_head_entropies<B: Backend>(module: &MixtureDensityAttention<B>) -> Vec<f64> {
    let c = module.c.val();
    let [_, num_gaussians] = c.dims();
    let values = c
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 data");
    values
        .chunks_exact(num_gaussians)
        .map(|head| gaussian_product_entropy(&head.iter().map(|c| c * c).collect::<Vec<_>>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use crate::DensityAdaptiveAttentionConfig;

    #[test]
    fn importance_is_min_max_normalised_and_contributions_sum_to_100() {
        let device = Default::default();
        let mut factor = ImportanceFactor::new(2, 3);
        let batch = Tensor::<TestBackend, 3>::from_floats(
            [
                [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
                [[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]],
            ],
            &device,
        );
        factor.record(batch);
        let s = factor.summary().unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.density_attention, [2.0, 2.0, 2.0, 5.0, 5.0, 5.0]);
        assert_eq!(s.importance, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        assert!((s.layer_contribution[0] - 100.0 * 6.0 / 21.0).abs() < 1e-12);
        assert!((s.layer_contribution.iter().sum::<f64>() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn constant_maps_give_zero_importance_and_empty_is_an_error() {
        let mut factor = ImportanceFactor::new(1, 2);
        assert!(matches!(factor.summary(), Err(Error::NothingRecorded)));
        factor.record(Tensor::<TestBackend, 3>::ones(
            [4, 1, 2],
            &Default::default(),
        ));
        assert_eq!(factor.summary().unwrap().importance, [0.0, 0.0]);
    }

    #[test]
    #[should_panic(expected = "weights are [_, 3, 2], expected [_, 2, 2]")]
    fn wrong_shape_panics() {
        ImportanceFactor::new(2, 2).record(Tensor::<TestBackend, 3>::ones(
            [1, 3, 2],
            &Default::default(),
        ));
    }

    #[test]
    fn entropy_of_the_initial_module_is_closed_form() {
        // 8 heads of 16 Gaussians with variance 2: σ²_prod = 2/16.
        let module =
            DensityAdaptiveAttentionConfig::new(16).init::<TestBackend>(&Default::default());
        let expected = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * 2.0 / 16.0).ln();
        for h in head_entropies(&module) {
            assert!((h - expected).abs() < 1e-12);
        }
        let ranges = ParameterRanges::of(&module);
        assert_eq!(ranges.mean_offset, Interval { min: 0.0, max: 0.0 });
        assert_eq!(ranges.scaled_variance, Interval { min: 2.0, max: 2.0 });
    }
}
