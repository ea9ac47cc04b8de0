//! The network: encoder and decoder with DAAM residual blocks, and the vector quantizer.

mod attention;
mod decoder;
mod encoder;
mod group_norm;
mod quantizer;
mod residual_block;
mod vqvae;

pub use attention::ChannelAttention;
pub use decoder::{Decoder, DecoderConfig, UpSampleBlock};
pub use encoder::{DownSampleBlock, Encoder, EncoderConfig};
pub use group_norm::GroupNormRelu;
pub use quantizer::{
    CodeNorm, CodebookUpdate, QuantizerOutput, VectorQuantizer, VectorQuantizerConfig,
};
pub use residual_block::{DaamResidualBlock, DaamResidualBlockConfig};
pub use vqvae::{VqVae, VqVaeConfig, VqVaeOutput};
