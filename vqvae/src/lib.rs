//! A generative VQ-VAE whose down- and up-sampling blocks carry DAAM residual blocks on the
//! channel axis (the authors' blog, "Advanced Applications"; `../shared/DESIGN.md`, "vqvae").
//!
//! - [`model`]: the network ([`model::VqVae`]), generic over any [`daam::DaamBackend`].

pub mod model;

#[cfg(test)]
pub(crate) mod tests {
    /// The backend unit tests run on.
    pub type TestBackend = burn::backend::Flex;
    /// The autodiff backend unit tests train on.
    pub type TestAutodiff = burn::backend::Autodiff<TestBackend>;
}
