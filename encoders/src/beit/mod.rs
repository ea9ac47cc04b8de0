//! BEiT (Bao et al., 2021) as Hugging Face's `BeitModel` (transformers 4.46.3): patch
//! embedding, a CLS token, pre-norm transformer layers with LayerScale (`lambda_1`,
//! `lambda_2`) and a relative position bias per layer (fine-tuned checkpoints such as
//! `microsoft/beit-large-patch16-224`) or shared by all layers (`-pt22k`).
//!
//! Hidden-state convention (as transformers): `states[0]` is the embedding output (CLS + patches),
//! `states[i]` the raw output of layer `i`; there is no final norm (`use_mean_pooling` puts the
//! layer norm in the pooler, which the embeddings do not use). A 224² image with 16² patches gives
//! 197 tokens; [`crate::HiddenStates::pooled_layers`] averages all of them, CLS included.

mod config;
mod model;
mod relative_position;

pub use config::BeitConfig;
pub use model::{Beit, BeitLayer};
pub use relative_position::{relative_position_index, RelativePositionBias};
