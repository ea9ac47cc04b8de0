//! Turning raw items (waveforms, images, texts) into the inputs of the classification models.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use encoders::classification::{
    AudioBatch, BeitForImageClassification, LlamaForSequenceClassification, SequenceClassifier,
    WavLMForSequenceClassification,
};
use encoders::llama::{LlamaTokenizer, TokenBatch};
use encoders::ImagePreprocessor;

use crate::error::{Error, Result};
use crate::extract::{Input, Item};

/// What turns items into model inputs: the checkpoint's image preprocessing or tokenizer.
#[derive(Debug)]
pub enum InputBuilder {
    /// 16 kHz waveforms, zero-padded to the longest, with an attention mask when padded.
    Audio,
    /// Images through the checkpoint's preprocessing.
    Image(ImagePreprocessor),
    /// Texts through the tokenizer, right-padded.
    Text(Box<LlamaTokenizer>),
}

fn mismatch(item: &Item) -> Error {
    Error::Interpretation {
        what: item.id.clone(),
        message: "this item is not an input for the chosen encoder".into(),
    }
}

impl InputBuilder {
    fn audio<B: Backend>(items: &[Item], device: &B::Device) -> Result<AudioBatch<B>> {
        let mut width = 0;
        for item in items {
            let Input::Audio { samples, .. } = &item.input else {
                return Err(mismatch(item));
            };
            width = width.max(samples.len());
        }
        let mut values = vec![0.0f32; items.len() * width];
        let mut mask = vec![0.0f32; items.len() * width];
        let mut padded = false;
        for (row, item) in items.iter().enumerate() {
            if let Input::Audio { samples, real } = &item.input {
                values[row * width..row * width + samples.len()].copy_from_slice(samples);
                mask[row * width..row * width + real].fill(1.0);
                padded |= *real < width;
            }
        }
        let shape = [items.len(), width];
        Ok(AudioBatch {
            input_values: Tensor::from_data(TensorData::new(values, shape), device),
            attention_mask: padded.then(|| Tensor::from_data(TensorData::new(mask, shape), device)),
        })
    }

    fn images<B: Backend>(
        preprocess: &ImagePreprocessor,
        items: &[Item],
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        let images = items
            .iter()
            .map(|item| match &item.input {
                Input::Image(image) => Ok(image.clone()),
                _ => Err(mismatch(item)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(preprocess.batch(&images, device)?)
    }

    fn texts<B: Backend>(
        tokenizer: &LlamaTokenizer,
        items: &[Item],
        device: &B::Device,
    ) -> Result<TokenBatch<B>> {
        let texts = items
            .iter()
            .map(|item| match &item.input {
                Input::Text(text) => Ok(text.as_str()),
                _ => Err(mismatch(item)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(tokenizer.encode_batch(&texts, device)?)
    }
}

/// A classification model whose input can be built from raw items.
pub trait FromItems<B: Backend>: SequenceClassifier<B> {
    /// The model input of `items`.
    ///
    /// # Errors
    /// An item of another modality, preprocessing or tokenizer errors.
    fn input(builder: &InputBuilder, items: &[Item], device: &B::Device) -> Result<Self::Input>;
}

fn wrong_builder() -> Error {
    Error::Interpretation {
        what: "fine-tuning".into(),
        message: "the input builder does not match the encoder".into(),
    }
}

impl<B: Backend> FromItems<B> for WavLMForSequenceClassification<B> {
    fn input(builder: &InputBuilder, items: &[Item], device: &B::Device) -> Result<AudioBatch<B>> {
        match builder {
            InputBuilder::Audio => InputBuilder::audio(items, device),
            _ => Err(wrong_builder()),
        }
    }
}

impl<B: Backend> FromItems<B> for BeitForImageClassification<B> {
    fn input(builder: &InputBuilder, items: &[Item], device: &B::Device) -> Result<Tensor<B, 4>> {
        match builder {
            InputBuilder::Image(preprocess) => InputBuilder::images(preprocess, items, device),
            _ => Err(wrong_builder()),
        }
    }
}

impl<B: Backend> FromItems<B> for LlamaForSequenceClassification<B> {
    fn input(builder: &InputBuilder, items: &[Item], device: &B::Device) -> Result<TokenBatch<B>> {
        match builder {
            InputBuilder::Text(tokenizer) => InputBuilder::texts(tokenizer, items, device),
            _ => Err(wrong_builder()),
        }
    }
}
