//! The `classify` integration tests, in one test binary (one link of burn's generic code instead
//! of one per file): the binary end to end, head training and the protocols, and the embedding
//! extraction and LoRA baselines on the `encoders` crate's tiny checkpoints.

mod cli;
mod extract;
mod training;
