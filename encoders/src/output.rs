//! What an encoder returns: every hidden state, and the per-layer mean pooling that the
//! embedding store keeps.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// All hidden states of one forward pass, in Hugging Face's `output_hidden_states` order.
#[derive(Debug, Clone)]
pub struct HiddenStates<B: Backend> {
    /// `L + 1` tensors `[batch, time, d_model]`: index 0 is the embedding output (the input to
    /// the first layer), index `i` the output of layer `i`. Each encoder's module docs state what
    /// its last entry is (WavLM and Llama: after the final norm, as transformers 4.x).
    pub states: Vec<Tensor<B, 3>>,
    /// `[batch, time]`: 1.0 at real positions, 0.0 at padding; `None` when nothing is padded.
    pub valid: Option<Tensor<B, 2>>,
}

impl<B: Backend> HiddenStates<B> {
    /// The number of transformer layers `L` (the embedding output not counted).
    pub fn num_layers(&self) -> usize {
        self.states.len().saturating_sub(1)
    }

    /// The mean over real positions of each layer's output, the embedding output dropped: the
    /// features the DAT heads read.
    ///
    /// # Shapes
    /// - output: `[batch, L, d_model]`
    pub fn pooled_layers(&self) -> Tensor<B, 3> {
        let layers: Vec<Tensor<B, 3>> = self.states[1..]
            .iter()
            .map(|h| match &self.valid {
                None => h.clone().mean_dim(1),
                Some(valid) => {
                    let [batch, time] = valid.dims();
                    let weights = valid.clone().reshape([batch, time, 1]);
                    let count = valid.clone().sum_dim(1).reshape([batch, 1, 1]);
                    (h.clone() * weights).sum_dim(1) / count
                }
            })
            .collect();
        Tensor::cat(layers, 1)
    }
}
