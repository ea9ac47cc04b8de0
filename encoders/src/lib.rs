//! Frozen pre-trained encoders in burn, for the paper's per-layer embeddings: WavLM-Large
//! (speech), BEiT-Large (images) and Llama-2 (text), configured from a Hugging Face checkpoint's
//! `config.json` and loaded from its weight files.
//!
//! Each encoder returns [`HiddenStates`]: every layer's output in transformers 4.x's
//! `output_hidden_states` order, and [`HiddenStates::pooled_layers`], the per-layer mean over
//! time or tokens that `classify extract` writes to an embedding store. Parity with Hugging Face
//! `transformers` 4.46.3 is tested on tiny random checkpoints (`tests/fixtures/`, written by
//! `tools/make_encoder_fixtures.py`).

pub mod attention;
pub mod beit;
pub mod classification;
pub mod conv1d;
pub mod error;
pub mod image_preprocess;
pub mod kernels;
pub mod llama;
pub mod lora;
pub mod output;
pub mod seeded_init;
pub mod wavlm;
pub mod weights;

pub use error::{Error, Result};
pub use image_preprocess::ImagePreprocessor;
pub use llama::Llama;
pub use output::HiddenStates;
pub use wavlm::WavLM;
pub use weights::{read_config, Weights};
