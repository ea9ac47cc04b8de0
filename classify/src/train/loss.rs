//! Classification losses: cross-entropy and the authors' focal loss
//! (`reference/classify-anchors.md` §7).

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LossKind {
    /// Mean cross-entropy (CIFAR-100, AG News).
    CrossEntropy,
    /// Focal loss as the authors compute it for IEMOCAP: with `ce` the per-sample
    /// cross-entropy and `pt = exp(−ce)`, `alpha · (1 − pt + 1e-6)^gamma · ce`, averaged.
    /// `alpha` is one scalar for every class (the authors': 0.25, `gamma` 2.5).
    Focal {
        /// Scalar weight α.
        alpha: f64,
        /// Focusing exponent γ.
        gamma: f64,
    },
}

impl LossKind {
    /// The authors' IEMOCAP focal loss (α 0.25, γ 2.5).
    pub const AUTHORS_FOCAL: LossKind = LossKind::Focal {
        alpha: 0.25,
        gamma: 2.5,
    };

    /// The mean loss of a batch.
    ///
    /// # Shapes
    /// - `logits`: `[batch_size, num_classes]`
    /// - `targets`: `[batch_size]`
    /// - output: `[1]`
    pub fn loss<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let ce = cross_entropy_per_sample(logits, targets);
        match *self {
            LossKind::CrossEntropy => ce.mean(),
            LossKind::Focal { alpha, gamma } => {
                let pt = ce.clone().neg().exp();
                let modulating = (pt.neg() + (1.0 + 1e-6)).powf_scalar(gamma);
                (modulating * ce).mean().mul_scalar(alpha)
            }
        }
    }
}

/// `−log softmax(logits)[target]` per sample.
///
/// # Shapes
/// - `logits`: `[batch_size, num_classes]`
/// - `targets`: `[batch_size]`
/// - output: `[batch_size]`
pub fn cross_entropy_per_sample<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let [batch_size, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([batch_size, 1]));
    picked.reshape([batch_size]).neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::tensor::TensorData;

    fn value(t: Tensor<TestBackend, 1>) -> f64 {
        f64::from(t.into_scalar())
    }

    #[test]
    fn losses_match_closed_forms() {
        let device = Default::default();
        let rows = [[2.0f32, 0.5, -1.0], [0.1, 0.2, 0.3]];
        let targets = [0i64, 2];
        let logits = Tensor::<TestBackend, 2>::from_data(TensorData::from(rows), &device);
        let y = Tensor::<TestBackend, 1, Int>::from_data(TensorData::from(targets), &device);
        let ce: Vec<f64> = rows
            .iter()
            .zip(targets)
            .map(|(r, t)| {
                let lse = r.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
                lse - f64::from(r[t as usize])
            })
            .collect();
        let mean_ce = (ce[0] + ce[1]) / 2.0;
        let got = value(LossKind::CrossEntropy.loss(logits.clone(), y.clone()));
        assert!((got - mean_ce).abs() < 1e-6, "{got} vs {mean_ce}");

        let focal: f64 = ce
            .iter()
            .map(|&c| 0.25 * (1.0 - (-c).exp() + 1e-6).powf(2.5) * c)
            .sum::<f64>()
            / 2.0;
        let got = value(LossKind::AUTHORS_FOCAL.loss(logits, y));
        assert!((got - focal).abs() < 1e-6, "{got} vs {focal}");
    }
}
