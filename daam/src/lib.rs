//! Density Adaptive Attention (Ioannides, Chadha, Elkins; arXiv 2401.11143) as burn modules.
//!
//! The paper uses the name DAAM for two computations; both are here, named apart:
//!
//! - [`DensityAdaptiveAttention`]: the per-feature multi-head DAAM of the main results (paper
//!   Alg. 1 and 3; "DAAMv1" is 8 heads, "DAAMv2" 1 head).
//! - [`MixtureDensityAttention`] and [`DensityBlock`]: the Mixture-of-Densities variant of the
//!   appendix (Alg. 2 and 4), along any axis of any rank.
//!
//! Also [`GroupedQueryAttention`], [`GqDaam`], and the [`ImportanceFactor`] with its plots.
//!
//! Both DAAM modules run as one fused op with its own backward through [`DaamBackend`]
//! (rayon kernels on burn's Flex CPU backend); [`reference`](mod@reference) holds the composed tensor-op
//! versions they are tested against.
//!
//! ```
//! use burn::backend::{Autodiff, Flex};
//! use burn::tensor::{Distribution, Tensor};
//! use daam::{DensityAdaptiveAttentionConfig, DensityBlockConfig, MixtureDensityAttentionConfig};
//!
//! type B = Autodiff<Flex>;
//! let device = Default::default();
//!
//! // Per-feature DAAM over 24 layer embeddings of width 64, 8 heads (DAAMv1).
//! let daam = DensityAdaptiveAttentionConfig::new(64).init::<B>(&device);
//! let x = Tensor::<B, 3>::random([2, 24, 64], Distribution::Normal(0.0, 1.0), &device);
//! let y = daam.forward(x.clone());
//! assert_eq!(y.dims(), [2, 24, 64]);
//!
//! // A DensityBlock on the channel axis of a feature map: 4 heads × 3 Gaussians.
//! let block = DensityBlockConfig::repeated(
//!     MixtureDensityAttentionConfig::new(1).with_num_heads(4).with_num_gaussians(3),
//!     1,
//! )
//! .init::<B>(&device);
//! let fmap = Tensor::<B, 4>::random([2, 32, 8, 8], Distribution::Normal(0.0, 1.0), &device);
//! let out = block.forward(fmap);
//! let grads = out.sum().backward();
//! assert!(block.layers[0].c.grad(&grads).is_some());
//! ```

pub mod allocator;
mod attention;
mod backend;
pub mod bench;
mod conv;
pub mod conv_gemm;
pub mod conv_implicit;
pub mod conv_phases;
mod density_adaptive_attention;
mod density_block;
pub mod device;
mod env_choice;
mod error;
pub mod folder_lock;
mod gaussian_form;
mod gq_daam;
mod grouped_query_attention;
pub mod host_init;
mod importance_factor;
pub mod kernel;
pub mod kernel_cache;
mod linear;
pub mod lookup;
mod mixture_density_attention;
pub mod paths;
pub mod plot;
pub mod record;
pub mod reduce;
pub mod reference;
pub mod settings_diff;
pub mod sigpipe;
pub mod tiled_matmul;

pub use attention::scaled_dot_product_attention;
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub use backend::implicit;
pub use backend::{
    cpu_kernels_enabled, AttentionGrads, AttentionSettings, ConvGrads, ConvSettings, DaamBackend,
    DensityGrads, DensityOutput, GroupNormGrads, GroupNormSettings,
};
pub use conv::{conv2d, conv2d_module, conv2d_relu, conv2d_relu_module, conv_transpose2d_module};
pub use density_adaptive_attention::{
    DensityAdaptiveAttention, DensityAdaptiveAttentionConfig, DensityAttentionOutput,
};
pub use density_block::{DensityBlock, DensityBlockConfig};
pub use error::{Error, Result};
pub use gaussian_form::GaussianForm;
pub use gq_daam::{GqDaam, GqDaamConfig};
pub use grouped_query_attention::{GroupedQueryAttention, GroupedQueryAttentionConfig};
pub use importance_factor::{
    gaussian_product_entropy, head_entropies, mixture_head_entropies, ImportanceFactor,
    ImportanceSummary, Interval, ParameterRanges,
};
pub use linear::linear_rows;
pub use mixture_density_attention::{
    MixtureDensityAttention, MixtureDensityAttentionConfig, ScaleInit,
};

#[cfg(test)]
pub(crate) mod tests {
    /// The backend unit tests run on.
    pub type TestBackend = burn::backend::Flex;
}

/// The README's code blocks, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
