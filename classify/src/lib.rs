//! The paper's classification experiments: DAT heads over frozen-encoder layer embeddings.
//!
//! Not written yet: this crate is a placeholder in the workspace until issue #4 lands.
