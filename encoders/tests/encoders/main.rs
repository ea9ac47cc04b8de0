//! The `encoders` integration tests, in one test binary (one link of burn's generic code instead
//! of one per file): parity with Hugging Face transformers 4.46.3 on the tiny random checkpoints
//! of `tests/fixtures/`, and the LoRA adapters and classification heads.

mod common;
mod lora;
mod parity_beit;
mod parity_llama;
mod parity_wavlm;
