//! Llama-2 tokenization from a checkpoint's `tokenizer.json` (the "fast" tokenizer: BPE with
//! byte fallback, the `▁` space normalizer and a `<s> $A` post-processor), through Hugging
//! Face's `tokenizers` crate, and batching into right-padded id tensors.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// A `tokenizer.json` tokenizer that truncates every text to at most `max_length` ids.
#[derive(Debug, Clone)]
pub struct LlamaTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    max_length: usize,
}

/// A right-padded batch of token ids.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    /// `[batch_size, seq_length]`: the ids, [`LlamaTokenizer::PAD_ID`] after each text's end.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch_size, seq_length]`: 1.0 at real tokens, 0.0 at padding.
    pub attention_mask: Tensor<B, 2>,
    /// The number of real tokens of each text (special tokens included).
    pub lengths: Vec<usize>,
}

impl LlamaTokenizer {
    /// The paper's truncation length, Llama-2's context: 4096 tokens.
    pub const DEFAULT_MAX_LENGTH: usize = 4096;

    /// The id written at padded positions: `<unk>` (0); Llama-2 has no padding token, and the
    /// attention mask hides these positions from the real ones.
    pub const PAD_ID: u32 = 0;

    /// Reads a `tokenizer.json`, truncating to [`Self::DEFAULT_MAX_LENGTH`].
    ///
    /// # Errors
    /// [`Error::Tokenizer`] naming the file when it cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self {
            tokenizer,
            path,
            max_length: 0,
        }
        .with_max_length(Self::DEFAULT_MAX_LENGTH)
    }

    /// Reads `dir/tokenizer.json`.
    ///
    /// # Errors
    /// As [`LlamaTokenizer::from_file`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(dir.as_ref().join("tokenizer.json"))
    }

    /// Truncates to at most `max_length` ids, special tokens included (as HF's
    /// `tokenizer(text, truncation=True, max_length=...)`: the text is cut on the right and the
    /// `<s>` kept). The file's own padding setting is dropped: batches are padded here.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] when `max_length` does not leave room for the special tokens.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        let special = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_length <= special {
            return Err(self.error(format!(
                "max_length = {max_length} leaves no room beside {special} special tokens"
            )));
        }
        let truncation = TruncationParams {
            max_length,
            ..TruncationParams::default()
        };
        self.tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        self.tokenizer.with_padding(None);
        self.max_length = max_length;
        Ok(self)
    }

    /// The truncation length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The tokenizer file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of `text`, with `<s>` prepended when `add_special_tokens`, truncated to
    /// [`LlamaTokenizer::max_length`].
    ///
    /// # Errors
    /// [`Error::Tokenizer`] naming the file when the tokenizer fails.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| self.error(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes `texts` with special tokens and right-pads them to the longest.
    ///
    /// # Shapes
    /// - output: `input_ids` and `attention_mask` `[batch_size, seq_length]`, `seq_length` the
    ///   longest text's length
    ///
    /// # Errors
    /// [`Error::Input`] for an empty batch, [`Error::Tokenizer`] as [`LlamaTokenizer::encode`].
    pub fn encode_batch<B: Backend>(
        &self,
        texts: &[&str],
        device: &B::Device,
    ) -> Result<TokenBatch<B>> {
        let encoded = texts
            .iter()
            .map(|text| self.encode(text, true))
            .collect::<Result<Vec<_>>>()?;
        pad_batch(&encoded, device)
    }

    fn error(&self, message: String) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message,
        }
    }
}

/// Right-pads id sequences with [`LlamaTokenizer::PAD_ID`] into a batch.
///
/// # Shapes
/// - output: `input_ids` and `attention_mask` `[batch_size, seq_length]`, `seq_length` the
///   longest sequence's length
///
/// # Errors
/// [`Error::Input`] when `sequences` is empty or all of them are.
pub fn pad_batch<B: Backend>(sequences: &[Vec<u32>], device: &B::Device) -> Result<TokenBatch<B>> {
    let batch_size = sequences.len();
    let seq_length = sequences.iter().map(Vec::len).max().unwrap_or(0);
    if seq_length == 0 {
        return Err(Error::Input(format!(
            "cannot batch {batch_size} token sequences with no tokens"
        )));
    }
    let mut ids = vec![i64::from(LlamaTokenizer::PAD_ID); batch_size * seq_length];
    let mut mask = vec![0.0f32; batch_size * seq_length];
    for (row, sequence) in sequences.iter().enumerate() {
        for (column, &id) in sequence.iter().enumerate() {
            ids[row * seq_length + column] = i64::from(id);
            mask[row * seq_length + column] = 1.0;
        }
    }
    Ok(TokenBatch {
        input_ids: Tensor::from_data(TensorData::new(ids, [batch_size, seq_length]), device),
        attention_mask: Tensor::from_data(TensorData::new(mask, [batch_size, seq_length]), device),
        lengths: sequences.iter().map(Vec::len).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn pads_on_the_right_with_a_mask() {
        let batch = pad_batch::<B>(&[vec![1, 5, 6], vec![1, 7]], &Default::default()).unwrap();
        assert_eq!(batch.lengths, [3, 2]);
        batch
            .input_ids
            .into_data()
            .assert_eq(&TensorData::from([[1i64, 5, 6], [1, 7, 0]]), false);
        batch.attention_mask.into_data().assert_eq(
            &TensorData::from([[1.0f32, 1.0, 1.0], [1.0, 1.0, 0.0]]),
            false,
        );
    }

    #[test]
    fn an_empty_batch_is_an_input_error() {
        assert!(matches!(
            pad_batch::<B>(&[], &Default::default()),
            Err(Error::Input(_))
        ));
    }
}
