//! Llama-2 (`transformers` 4.46.3 `LlamaModel`, eager attention) and its `tokenizer.json`
//! tokenization, for per-layer text embeddings.
//!
//! The architecture: token embedding; `L` pre-norm decoder layers, each
//! `h = x + attn(RMSNorm(x))`, `out = h + down(silu(gate(RMSNorm(h))) · up(RMSNorm(h)))`, with
//! causal attention, rotate-half rotary positions (θ = `rope_theta`, positions `0..seq_length`)
//! and grouped key/value heads; a final RMSNorm. `rope_scaling` and activations other than SiLU
//! are rejected with [`crate::Error::Unsupported`].
//!
//! # Hidden-state convention (transformers 4.46.3)
//!
//! [`Llama::forward`] returns `L + 1` states as HF's `output_hidden_states`:
//! - `states[0]`: the token embeddings (the input to layer 1);
//! - `states[i]`, `0 < i < L`: the raw output of layer `i` (no norm applied);
//! - `states[L]`: the output of layer `L` *after* the final `norm` (HF's `last_hidden_state`);
//!   the un-normed output of the last layer is not returned, as in HF.
//!
//! Padding is on the right ([`LlamaTokenizer::encode_batch`]); padded positions are masked as
//! keys and ignored by [`crate::HiddenStates::pooled_layers`], and a padded row's real positions
//! equal the row run alone.

pub mod attention;
pub mod config;
pub mod mlp;
pub mod model;
pub mod rope;
pub mod tokenizer;

pub use attention::GroupedQueryAttention;
pub use config::LlamaConfig;
pub use mlp::SwiGlu;
pub use model::{DecoderLayer, Llama};
pub use rope::RotaryTables;
pub use tokenizer::{LlamaTokenizer, TokenBatch};
