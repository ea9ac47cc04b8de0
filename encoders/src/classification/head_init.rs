//! A head's parameters from a task checkpoint when it has them with the right shape, else drawn
//! as transformers' `_init_weights` does (the same rule as `from_pretrained(...,
//! ignore_mismatched_sizes=True)`).

use std::path::Path;

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::Deserialize;

use crate::error::Result;
use crate::seeded_init::SeededInit;
use crate::weights::{read_config, Weights};

/// The `config.json` fields every head reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InitFields {
    /// The standard deviation of fresh linear weights (transformers default 0.02).
    #[serde(default = "initializer_range")]
    pub initializer_range: f64,
}

fn initializer_range() -> f64 {
    0.02
}

impl InitFields {
    /// Reads them from `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        read_config(dir)
    }
}

/// Builds head parameters, loading what the checkpoint has and drawing the rest.
pub(crate) struct HeadBuilder<'a, B: Backend> {
    /// The checkpoint, read under the prefix the head's names sit under.
    pub weights: &'a Weights,
    /// The standard deviation of fresh weights.
    pub std: f64,
    /// The generator of fresh weights.
    pub init: SeededInit,
    /// The names of the tensors drawn rather than loaded.
    pub initialised: Vec<String>,
    /// Where the parameters go.
    pub device: &'a B::Device,
}

impl<B: Backend> HeadBuilder<'_, B> {
    /// `{name}.weight` `[d_output, d_input]` (and `{name}.bias` when `bias`) from the checkpoint
    /// when both are there with these shapes; else `N(0, std²)` weights and a zero bias.
    pub fn linear(
        &mut self,
        name: &str,
        d_input: usize,
        d_output: usize,
        bias: bool,
    ) -> Result<Linear<B>> {
        let weight = format!("{name}.weight");
        let bias_name = format!("{name}.bias");
        let stored = self.weights.shape(&weight) == Some(vec![d_output, d_input])
            && (!bias || self.weights.shape(&bias_name) == Some(vec![d_output]));
        if stored {
            return self
                .weights
                .linear(name, d_input, d_output, bias, self.device);
        }
        self.initialised.push(weight);
        let linear = Linear {
            weight: Param::from_tensor(self.init.normal(
                [d_input, d_output],
                self.std,
                self.device,
            )),
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_output], self.device))),
        };
        if bias {
            self.initialised.push(bias_name);
        }
        Ok(linear)
    }

    /// `{name}.weight` and `{name}.bias` `[d_model]` from the checkpoint when there; else ones
    /// and zeros.
    pub fn layer_norm(&mut self, name: &str, d_model: usize, epsilon: f64) -> Result<LayerNorm<B>> {
        let stored = ["weight", "bias"]
            .iter()
            .all(|part| self.weights.shape(&format!("{name}.{part}")) == Some(vec![d_model]));
        if stored {
            return self.weights.layer_norm(name, d_model, epsilon, self.device);
        }
        self.initialised.push(format!("{name}.weight"));
        self.initialised.push(format!("{name}.bias"));
        Ok(LayerNormConfig::new(d_model)
            .with_epsilon(epsilon)
            .init(self.device))
    }
}
