//! GQDAAM: DAAM on the raw embeddings, a projection, then grouped-query attention (paper §1.3;
//! the authors' `IEMOCAP/GQDAAM.py`, `reference/daam-reference.md` §3).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::backend::DaamBackend;
use crate::{
    linear_rows, DensityAdaptiveAttention, DensityAdaptiveAttentionConfig, GroupedQueryAttention,
    GroupedQueryAttentionConfig,
};

/// Configuration of a [`GqDaam`].
#[derive(Config, Debug)]
pub struct GqDaamConfig {
    /// The DAAM on the input embeddings (paper: 8 heads).
    pub daam: DensityAdaptiveAttentionConfig,
    /// Width the embeddings are projected to before the GQA (authors: 512).
    #[config(default = 512)]
    pub d_embed: usize,
    /// GQA query heads (paper: 8).
    #[config(default = 8)]
    pub num_heads: usize,
    /// GQA key/value heads (paper: 2).
    #[config(default = 2)]
    pub num_kv_heads: usize,
}

/// `DensityAdaptiveAttention → Linear(d_model → d_embed) → GroupedQueryAttention`, no residuals.
#[derive(Module, Debug)]
pub struct GqDaam<B: Backend> {
    /// DAAM on the raw embeddings.
    pub daam: DensityAdaptiveAttention<B>,
    /// `d_model → d_embed` (the authors' `embed_transform`).
    pub embed: Linear<B>,
    /// Grouped-query self-attention at width `d_embed`.
    pub gqa: GroupedQueryAttention<B>,
}

impl GqDaamConfig {
    /// Builds the module.
    pub fn init<B: Backend>(&self, device: &B::Device) -> GqDaam<B> {
        GqDaam {
            daam: self.daam.init(device),
            embed: LinearConfig::new(self.daam.d_model, self.d_embed).init(device),
            gqa: GroupedQueryAttentionConfig::new(self.d_embed)
                .with_num_heads(self.num_heads)
                .with_num_kv_heads(self.num_kv_heads)
                .init(device),
        }
    }
}

impl<B: DaamBackend> GqDaam<B> {
    /// # Shapes
    /// - `x`: `[batch_size, seq_length, d_model]`
    /// - output: `[batch_size, seq_length, d_embed]`
    ///
    /// # Panics
    /// As [`DensityAdaptiveAttention::forward`].
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = self.daam.forward(x);
        self.gqa.forward(linear_rows(&self.embed, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;

    #[test]
    fn shapes() {
        let device = Default::default();
        let model = GqDaamConfig::new(DensityAdaptiveAttentionConfig::new(12).with_num_heads(3))
            .with_d_embed(16)
            .with_num_heads(4)
            .with_num_kv_heads(2)
            .init::<TestBackend>(&device);
        let y = model.forward(Tensor::zeros([5, 9, 12], &device));
        assert_eq!(y.dims(), [5, 9, 16]);
    }
}
