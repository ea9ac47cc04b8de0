//! Image preprocessing as a checkpoint's `preprocessor_config.json` describes it (Hugging Face
//! `BeitImageProcessor` / `ViTImageProcessor` fields): resize, optional centre crop, rescale to
//! [0, 1], normalise per channel.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A `size` / `crop_size` entry: an integer or `{"height", "width"}` (or `{"shortest_edge"}`,
/// read as a square).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeField {
    Square(u32),
    HeightWidth { height: u32, width: u32 },
    Shortest { shortest_edge: u32 },
}

impl SizeField {
    fn hw(&self) -> (u32, u32) {
        match *self {
            Self::Square(s) | Self::Shortest { shortest_edge: s } => (s, s),
            Self::HeightWidth { height, width } => (height, width),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    do_resize: Option<bool>,
    #[serde(default)]
    size: Option<SizeField>,
    #[serde(default)]
    resample: Option<u32>,
    #[serde(default)]
    do_center_crop: Option<bool>,
    #[serde(default)]
    crop_size: Option<SizeField>,
    #[serde(default)]
    do_rescale: Option<bool>,
    #[serde(default)]
    rescale_factor: Option<f32>,
    #[serde(default)]
    do_normalize: Option<bool>,
    #[serde(default)]
    image_mean: Option<[f32; 3]>,
    #[serde(default)]
    image_std: Option<[f32; 3]>,
}

/// How images become a model's `pixel_values`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePreprocessor {
    /// Resize to `(height, width)`, when set.
    pub resize: Option<(u32, u32)>,
    /// The resampling filter of the resize (PIL's codes: 2 bilinear, 3 bicubic, 1 Lanczos,
    /// 0 nearest).
    pub resample: u32,
    /// Centre crop to `(height, width)` after the resize, when set.
    pub center_crop: Option<(u32, u32)>,
    /// Multiplier of the u8 values (1/255), when set.
    pub rescale: Option<f32>,
    /// Per-channel `(mean, std)` normalisation, when set.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

impl ImagePreprocessor {
    /// The preprocessing when a checkpoint has no `preprocessor_config.json`: a bicubic resize to
    /// the model's input side, rescale, normalise with mean = std = 0.5 (BEiT's values).
    pub fn square(side: u32) -> Self {
        Self {
            resize: Some((side, side)),
            resample: 3,
            center_crop: None,
            rescale: Some(1.0 / 255.0),
            normalize: Some(([0.5; 3], [0.5; 3])),
        }
    }

    /// Reads `dir/preprocessor_config.json`, or falls back to [`ImagePreprocessor::square`] with
    /// `side` when the checkpoint has none. Unset fields take `BeitImageProcessor`'s defaults.
    ///
    /// # Errors
    /// [`Error::Json`] naming the file when it does not parse.
    pub fn load(dir: impl AsRef<Path>, side: u32) -> Result<Self> {
        let path = dir.as_ref().join("preprocessor_config.json");
        if !path.is_file() {
            return Ok(Self::square(side));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let raw: RawConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let size = raw.size.map_or((256, 256), |s| s.hw());
        let crop = raw.crop_size.map_or((224, 224), |s| s.hw());
        Ok(Self {
            resize: raw.do_resize.unwrap_or(true).then_some(size),
            resample: raw.resample.unwrap_or(3),
            center_crop: raw.do_center_crop.unwrap_or(true).then_some(crop),
            rescale: raw
                .do_rescale
                .unwrap_or(true)
                .then_some(raw.rescale_factor.unwrap_or(1.0 / 255.0)),
            normalize: raw.do_normalize.unwrap_or(true).then_some((
                raw.image_mean.unwrap_or([0.5; 3]),
                raw.image_std.unwrap_or([0.5; 3]),
            )),
        })
    }

    /// The output side lengths `(height, width)` for an input of `(height, width)`.
    pub fn output_size(&self, input: (u32, u32)) -> (u32, u32) {
        let resized = self.resize.unwrap_or(input);
        self.center_crop.unwrap_or(resized)
    }

    fn filter(&self) -> FilterType {
        match self.resample {
            0 => FilterType::Nearest,
            1 => FilterType::Lanczos3,
            2 => FilterType::Triangle,
            _ => FilterType::CatmullRom,
        }
    }

    /// One image's channel-first values.
    ///
    /// # Shapes
    /// - output: `3 · height · width` values, channel-major
    pub fn pixels(&self, image: &RgbImage) -> Vec<f32> {
        let mut image = match self.resize {
            Some((h, w)) if image.dimensions() != (w, h) => {
                imageops::resize(image, w, h, self.filter())
            }
            _ => image.clone(),
        };
        if let Some((ch, cw)) = self.center_crop {
            let (w, h) = image.dimensions();
            let (cw, ch) = (cw.min(w), ch.min(h));
            let (x, y) = ((w - cw) / 2, (h - ch) / 2);
            image = imageops::crop_imm(&image, x, y, cw, ch).to_image();
        }
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0.0f32; 3 * plane];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                let mut v = f32::from(pixel.0[c]);
                if let Some(scale) = self.rescale {
                    v *= scale;
                }
                if let Some((mean, std)) = self.normalize {
                    v = (v - mean[c]) / std[c];
                }
                out[c * plane + i] = v;
            }
        }
        out
    }

    /// A batch of images as `pixel_values`.
    ///
    /// # Shapes
    /// - output: `[batch, 3, height, width]`
    ///
    /// # Errors
    /// [`Error::Input`] when the batch is empty or its images end up with different sizes.
    pub fn batch<B: Backend>(
        &self,
        images: &[RgbImage],
        device: &B::Device,
    ) -> Result<Tensor<B, 4>> {
        let first = images
            .first()
            .ok_or_else(|| Error::Input("an empty image batch".into()))?;
        let (h, w) = self.output_size((first.height(), first.width()));
        let mut values = Vec::with_capacity(images.len() * 3 * (h * w) as usize);
        for (i, image) in images.iter().enumerate() {
            let pixels = self.pixels(image);
            if pixels.len() != 3 * (h * w) as usize {
                return Err(Error::Input(format!(
                    "image {i} of the batch preprocesses to another size than image 0 ({h}×{w})"
                )));
            }
            values.extend(pixels);
        }
        Ok(Tensor::from_data(
            TensorData::new(values, [images.len(), 3, h as usize, w as usize]),
            device,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_channel_first_with_mean_and_std() {
        let image = RgbImage::from_fn(2, 1, |x, _| {
            image::Rgb([0, 255, if x == 0 { 51 } else { 102 }])
        });
        let pre = ImagePreprocessor {
            resize: None,
            resample: 3,
            center_crop: None,
            rescale: Some(1.0 / 255.0),
            normalize: Some(([0.5; 3], [0.5; 3])),
        };
        let v = pre.pixels(&image);
        let expected = [-1.0, -1.0, 1.0, 1.0, 0.2 / 0.5 - 1.0, 0.4 / 0.5 - 1.0];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }

    #[test]
    fn reads_the_beit_large_preprocessor_fields() {
        let dir = std::env::temp_dir().join(format!("pre-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("preprocessor_config.json"),
            r#"{"crop_size": 224, "do_center_crop": false, "do_normalize": true, "do_resize": true,
               "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
               "size": 224}"#,
        )
        .unwrap();
        let pre = ImagePreprocessor::load(&dir, 224).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(pre.resize, Some((224, 224)));
        assert_eq!(pre.center_crop, None);
        assert_eq!(pre.resample, 2);
        assert_eq!(pre.output_size((32, 32)), (224, 224));
    }
}
