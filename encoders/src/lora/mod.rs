//! LoRA and LoRA+ adapters on the encoders' attention projections (issue #5, item 4): the
//! paper's parameter-efficient fine-tuning baselines.
//!
//! Every query, key and value projection of the three encoders is a [`LoraLinear`]: the frozen
//! pre-trained `Linear` and an optional [`LoraAdapter`] (`A [d_input, r]`, `B [r, d_output]`,
//! `B = 0` at the start), computing `W x + b + s · B(A x)`. Without adapters the encoders compute
//! exactly what they did before. [`LoraAdaptable::with_lora`] freezes an encoder and adds
//! adapters to the projections a [`LoraConfig`] targets, in every layer.
//!
//! # Conventions (`reference/classify-anchors.md` §5, `reference/daam-reference.md` §5)
//!
//! | | [`LoraScaling::Peft`] (default) | [`LoraScaling::Paper`] (authors' code) |
//! |---|---|---|
//! | scale `s` | `α / r` | `α` |
//! | `A` init | `U(±1/√d_input)` | `N(0, 1/r)` |
//! | `B` init | 0 | 0 |
//!
//! Targets: the paper's text says query and key; its code adapts query and value, which is the
//! default here ([`LoraConfig::targets`]) because it gives the reported trainable counts
//! ([`lora_param_count`]).
//!
//! **WavLM caveat.** transformers 4.x's `WavLMAttention` never calls its `q_proj` / `k_proj` /
//! `v_proj` modules: it passes their `.weight` tensors to `F.multi_head_attention_forward`. Forward
//! hooks or module wrappers that keep `.weight` (the authors' LoRA layers, peft's `lora.Linear`)
//! are therefore bypassed, their adapters get no gradient, and the authors' WavLM "LoRA" runs
//! trained only the 4-way classifier over a frozen random projector (transformers PR #48773).
//! Here the adapters do enter WavLM's attention; the authors' runs correspond to training the
//! classifier alone ([`crate::classification::HeadTraining::ClassifierOnly`] without adapters).
//!
//! # LoRA+
//! [`split_grads`] and [`step_lora_plus`] train the `B` matrices ([`LoraAdaptable::lora_b_ids`])
//! at `λ` times the learning rate of the rest.

mod adaptable;
mod config;
mod count;
mod linear;
mod plus;

pub use adaptable::LoraAdaptable;
pub use config::{LoraConfig, LoraScaling, LoraTarget};
pub use count::{lora_param_count, LoraSites};
pub use linear::{LoraAdapter, LoraLinear};
pub use plus::{
    split_grads, step_lora_plus, SplitGradients, LORA_PLUS_RATIO, PAPER_LORA_PLUS_RATIO,
};
