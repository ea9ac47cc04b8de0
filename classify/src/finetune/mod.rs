//! The paper's encoder fine-tuning baselines (LoRA, LoRA+; Table 2), run by `classify
//! replicate` beside the DAT heads on the same folds or seeds.
//!
//! A LoRA method needs the encoder's weights and the raw dataset (`--weights`, `--encoder`,
//! `--data`): the store the DAT heads read decides the runs and their items, and each item's
//! waveform, image or text is read again from the dataset. The encoder is frozen; rank-`r`
//! adapters sit on its query and value projections (the authors' code; see
//! [`encoders::lora::LoraConfig`]) and the Hugging Face classification head trains with them.

mod baseline;
mod data;
mod inputs;
mod method;
mod run;

pub use baseline::{
    data_task, raw_stores, recorded_input_settings, run_lora, FinetuneOptions, FinetuneResult,
};
pub use data::RawStore;
pub use inputs::{FromItems, InputBuilder};
pub use method::LoraMethod;
pub use run::{finetune_run, FinetuneData, PlusRatio};
