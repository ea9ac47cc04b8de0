//! A VQ-VAE whose down- and up-sampling blocks carry DAAM residual blocks on the channel axis.
//!
//! Not written yet: this crate is a placeholder in the workspace until issue #3 lands.
