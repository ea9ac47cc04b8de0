//! The LoRA hyper-parameters: rank, α, the scaling convention and the adapted projections.

use burn::config::Config;
use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::linear::LoraAdapter;
use crate::seeded_init::SeededInit;

/// How the adapter output is scaled and how `A` starts (`reference/classify-anchors.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LoraScaling {
    /// Hugging Face `peft` (`init_lora_weights=True`, `use_rslora=False`): scale `α / r`, and
    /// `A ~ U(−1/√d_input, 1/√d_input)` (`kaiming_uniform_(a=√5)`, the `nn.Linear` default).
    #[default]
    Peft,
    /// The DAAM authors' hand-made `LoRALayer` (`LoRA-experiments/peft/*`): scale `α` (not
    /// `α / r`: 4× peft's at r = 4 with α = 16), and `A ~ N(0, 1/r)` (`randn(in, r) / √r`).
    Paper,
}

/// An attention projection an adapter can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LoraTarget {
    /// The query projection (BEiT `query`, WavLM and Llama `q_proj`).
    Query,
    /// The key projection (BEiT `key`, WavLM and Llama `k_proj`).
    Key,
    /// The value projection (BEiT `value`, WavLM and Llama `v_proj`).
    Value,
}

/// Configuration of the LoRA adapters of an encoder (Hu et al. 2021): every targeted projection
/// `W` of every layer becomes `W x + s · B(A x)` with a trainable rank-`r` pair `A`, `B` and the
/// pre-trained `W` frozen.
///
/// The defaults are the paper's baseline (issue #5): α = 16, query and value. The paper's text
/// says "fine-tuning the query and key projections", but its code adapts query and **value**
/// (`['q_proj','v_proj']`, BEiT `['query','value']`), which is what gives the reported trainable
/// counts (WavLM-Large r = 4: 394,244); `with_targets(vec![Query, Key])` selects the text's
/// choice.
#[derive(Config, Debug)]
pub struct LoraConfig {
    /// The rank `r` of `A · B` (the paper's runs: 4 and 8). Must be at least 1.
    pub rank: usize,
    /// α; the adapter output is scaled by `α / r` ([`LoraScaling::Peft`]) or `α`
    /// ([`LoraScaling::Paper`]). Default 16 (the paper's runs).
    #[config(default = 16.0)]
    pub alpha: f64,
    /// The scaling and `A` initialisation convention. Default [`LoraScaling::Peft`], the fair
    /// baseline; [`LoraScaling::Paper`] reproduces the authors' code.
    #[config(default = "LoraScaling::Peft")]
    pub scaling: LoraScaling,
    /// The adapted projections, in every layer. Default query and value (the authors' code).
    #[config(default = "vec![LoraTarget::Query, LoraTarget::Value]")]
    pub targets: Vec<LoraTarget>,
    /// Seed of the `A` initialisation (drawn on the host, the same on every backend). Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl LoraConfig {
    /// The factor `s` of the adapter output: `α / r` or `α`.
    pub fn scale(&self) -> f64 {
        match self.scaling {
            LoraScaling::Peft => self.alpha / self.rank as f64,
            LoraScaling::Paper => self.alpha,
        }
    }

    /// Whether `target` is adapted.
    pub fn adapts(&self, target: LoraTarget) -> bool {
        self.targets.contains(&target)
    }

    /// Checks the configuration: the reason when `rank` is 0, α is not a positive finite
    /// number (α = 0 switches the adapters off, a negative α only flips the sign of `B`, NaN
    /// or ∞ poisons every output), or `targets` is empty or names a projection twice.
    pub fn check(&self) -> Result<(), String> {
        if self.rank == 0 {
            return Err(format!("LoRA rank must be at least 1, got {}", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!(
                "LoRA alpha must be a positive finite number, got {}",
                self.alpha
            ));
        }
        if self.targets.is_empty() {
            return Err("LoRA targets are empty".to_owned());
        }
        for (i, target) in self.targets.iter().enumerate() {
            if self.targets[..i].contains(target) {
                return Err(format!(
                    "LoRA target {target:?} is listed twice in {:?}",
                    self.targets
                ));
            }
        }
        Ok(())
    }

    /// Checks the configuration.
    ///
    /// # Panics
    /// With [`LoraConfig::check`]'s reason when it finds one.
    pub fn validate(&self) {
        if let Err(reason) = self.check() {
            panic!("{reason}");
        }
    }

    /// A fresh adapter for a `d_input → d_output` projection: `A` drawn from `init` as
    /// [`LoraConfig::scaling`] says, `B = 0` (so the adapted projection starts equal to the
    /// frozen one).
    ///
    /// # Panics
    /// As [`LoraConfig::validate`].
    pub fn init_adapter<B: Backend>(
        &self,
        d_input: usize,
        d_output: usize,
        init: &mut SeededInit,
        device: &B::Device,
    ) -> LoraAdapter<B> {
        self.validate();
        let shape = [d_input, self.rank];
        let lora_a = match self.scaling {
            LoraScaling::Peft => init.uniform(shape, 1.0 / (d_input as f64).sqrt(), device),
            LoraScaling::Paper => init.normal(shape, 1.0 / (self.rank as f64).sqrt(), device),
        };
        LoraAdapter {
            lora_a: Param::from_tensor(lora_a),
            lora_b: Param::from_tensor(Tensor::zeros([self.rank, d_output], device)),
            scale: self.scale(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn defaults_are_the_papers_runs() {
        let config = LoraConfig::new(4);
        assert_eq!(config.alpha, 16.0);
        assert_eq!(config.targets, vec![LoraTarget::Query, LoraTarget::Value]);
        assert_eq!(config.scaling, LoraScaling::Peft);
        assert_eq!(config.scale(), 4.0);
        assert_eq!(config.with_scaling(LoraScaling::Paper).scale(), 16.0);
        assert_eq!(LoraConfig::new(8).scale(), 2.0);
    }

    #[test]
    fn adapters_start_with_b_zero_and_a_of_the_chosen_spread() {
        let device = Default::default();
        let (d_input, d_output, rank) = (400, 7, 3);
        let mut init = SeededInit::new(0);
        let peft: LoraAdapter<B> =
            LoraConfig::new(rank).init_adapter(d_input, d_output, &mut init, &device);
        assert_eq!(peft.lora_a.dims(), [d_input, rank]);
        assert_eq!(peft.lora_b.dims(), [rank, d_output]);
        let b_max: f32 = peft.lora_b.val().abs().max().into_scalar();
        assert_eq!(b_max, 0.0);
        let a_max: f32 = peft.lora_a.val().abs().max().into_scalar();
        assert!(a_max <= 1.0 / 20.0, "U(±1/√400): {a_max}");

        let paper: LoraAdapter<B> = LoraConfig::new(rank)
            .with_scaling(LoraScaling::Paper)
            .init_adapter(d_input, d_output, &mut init, &device);
        let a = paper.lora_a.val();
        let std: f32 = a.square().mean().sqrt().into_scalar();
        let expected = 1.0 / (rank as f32).sqrt();
        assert!(
            (std - expected).abs() < 0.05 * expected,
            "N(0, 1/r): std {std}"
        );
        assert_eq!(paper.scale, 16.0);
    }

    #[test]
    #[should_panic = "LoRA rank must be at least 1, got 0"]
    fn rank_zero_is_rejected() {
        LoraConfig::new(0).validate();
    }

    #[test]
    fn alpha_must_be_positive_and_finite() {
        assert_eq!(LoraConfig::new(4).check(), Ok(()));
        for alpha in [f64::NAN, f64::INFINITY, 0.0, -5.0] {
            let reason = LoraConfig::new(4).with_alpha(alpha).check().unwrap_err();
            assert_eq!(
                reason,
                format!("LoRA alpha must be a positive finite number, got {alpha}")
            );
        }
    }

    #[test]
    #[should_panic = "LoRA target Query is listed twice"]
    fn a_repeated_target_is_rejected() {
        LoraConfig::new(4)
            .with_targets(vec![LoraTarget::Query, LoraTarget::Query])
            .validate();
    }
}
