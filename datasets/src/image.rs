//! Decoding image files into normalised RGB samples: resize, crop and flip.

use std::path::Path;

use ::image::imageops::{self, FilterType};
use ::image::{ImageError, ImageFormat, ImageReader};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An RGB image as f32 in [-1, 1], channel-major `[3, height, width]`.
///
/// Pixel value `v` in 0..=255 maps to `v / 127.5 - 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
    /// `3 * height * width` values, channel-major: red plane, green plane, blue plane, each
    /// row-major.
    pub data: Vec<f32>,
}

impl RgbImage {
    /// An image from its channel-major `[3, height, width]` data.
    ///
    /// # Panics
    /// If `data.len() != 3 * height * width`.
    pub fn new(height: usize, width: usize, data: Vec<f32>) -> Self {
        let image = Self {
            height,
            width,
            data,
        };
        image.assert_len();
        image
    }

    /// Converts an 8-bit image, mapping 0..=255 linearly onto [-1, 1].
    pub fn from_rgb8(img: &::image::RgbImage) -> Self {
        let (width, height) = (img.width() as usize, img.height() as usize);
        let plane = height * width;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, pixel) in img.pixels().enumerate() {
            for (c, &v) in pixel.0.iter().enumerate() {
                data[c * plane + i] = f32::from(v) / 127.5 - 1.0;
            }
        }
        Self {
            height,
            width,
            data,
        }
    }

    /// Quantises to 8 bits: `round((v + 1) * 127.5)` clamped to 0..=255 (NaN becomes 0).
    ///
    /// # Panics
    /// If `data.len() != 3 * height * width`.
    pub fn to_rgb8(&self) -> ::image::RgbImage {
        self.assert_len();
        let plane = self.height * self.width;
        let mut raw = vec![0u8; 3 * plane];
        for (i, pixel) in raw.chunks_exact_mut(3).enumerate() {
            for (c, out) in pixel.iter_mut().enumerate() {
                // `as u8` saturates and maps NaN to 0.
                *out = ((self.data[c * plane + i] + 1.0) * 127.5).round() as u8;
            }
        }
        ::image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .expect("buffer length is 3 * height * width by construction")
    }

    /// Writes the image as an 8-bit RGB PNG (see [`RgbImage::to_rgb8`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be created or written, [`Error::Encode`] when the
    /// encoder fails; both name `path`.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        self.to_rgb8()
            .save_with_format(path, ImageFormat::Png)
            .map_err(|source| match source {
                ImageError::IoError(source) => Error::Io {
                    path: path.to_path_buf(),
                    source,
                },
                source => Error::Encode {
                    path: path.to_path_buf(),
                    source,
                },
            })
    }

    fn assert_len(&self) {
        assert_eq!(
            self.data.len(),
            3 * self.height * self.width,
            "RgbImage data holds {} values, expected 3 * {} * {} (channels * height * width)",
            self.data.len(),
            self.height,
            self.width
        );
    }
}

/// Where the `size`×`size` crop is taken from the resized image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Crop {
    /// The centre (offset rounded down), for evaluation.
    Center,
    /// A uniformly random offset drawn from the sample's seed, for training.
    Random,
}

/// How a decoded image becomes a training/eval sample.
///
/// An image longer than [`MAX_ASPECT`] times its shorter side is first trimmed to its centred
/// part of that aspect. The shorter side is resized to `resize` (Catmull-Rom; smaller images are
/// upscaled), then a
/// `size`×`size` square is cropped and, if `flip` is set, mirrored horizontally with
/// probability 1/2. With `resize == size` the square spans the image's full shorter side;
/// with `resize > size` it is a crop of a larger view (random crops of photographs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Side of the square output, in pixels (e.g. 256).
    pub size: u32,
    /// Shorter side, in pixels, of the image the square is cropped from (at least `size`).
    pub resize: u32,
    /// Where the square is cropped from.
    pub crop: Crop,
    /// Whether to mirror horizontally with probability 1/2.
    pub flip: bool,
}

impl Preprocess {
    /// Evaluation preprocessing: centre crop, no flip.
    pub fn eval(size: u32) -> Self {
        Self {
            size,
            resize: size,
            crop: Crop::Center,
            flip: false,
        }
    }

    /// Training preprocessing: random crop, random horizontal flip.
    pub fn train(size: u32) -> Self {
        Self {
            size,
            resize: size,
            crop: Crop::Random,
            flip: true,
        }
    }

    /// The same preprocessing, cropping from images whose shorter side is `resize`.
    pub fn with_resize(self, resize: u32) -> Self {
        Self { resize, ..self }
    }

    /// Resizes `img` so its shorter side is `self.resize` (the first half of [`Self::apply`];
    /// applying to the result gives the same output as applying to `img`, which is what an
    /// image cache stores).
    ///
    /// # Panics
    /// If `resize` is 0 or `img` is empty.
    pub fn resize_image(&self, img: ::image::RgbImage) -> ::image::RgbImage {
        let (width, height) = img.dimensions();
        assert!(self.resize > 0, "Preprocess resize must be positive");
        assert!(
            width > 0 && height > 0,
            "cannot preprocess an empty {width}x{height} image"
        );
        let img = match trimmed_to_max_aspect(&img) {
            Some(trimmed) => trimmed,
            None => img,
        };
        let (width, height) = img.dimensions();
        let (new_width, new_height) = resized_dimensions(width, height, self.resize);
        if (new_width, new_height) == (width, height) {
            img
        } else {
            imageops::resize(&img, new_width, new_height, FilterType::CatmullRom)
        }
    }

    /// Applies the preprocessing to a decoded image; random choices are drawn from `seed`
    /// (the crop offset first, then the flip), so the same image and seed give the same output.
    ///
    /// # Panics
    /// If `size` is 0, `resize < size`, or `img` is empty.
    pub fn apply(&self, img: &::image::RgbImage, seed: u64) -> RgbImage {
        let size = self.size;
        let (width, height) = img.dimensions();
        assert!(size > 0, "Preprocess size must be positive, got {size}");
        assert!(
            self.resize >= size,
            "Preprocess resize ({}) must be at least size ({size})",
            self.resize
        );
        assert!(
            width > 0 && height > 0,
            "cannot preprocess an empty {width}x{height} image"
        );
        let trimmed = trimmed_to_max_aspect(img);
        let img = trimmed.as_ref().unwrap_or(img);
        let (width, height) = img.dimensions();
        let (new_width, new_height) = resized_dimensions(width, height, self.resize);
        let resized;
        let source = if (new_width, new_height) == (width, height) {
            img
        } else {
            resized = imageops::resize(img, new_width, new_height, FilterType::CatmullRom);
            &resized
        };

        let mut rng = StdRng::seed_from_u64(seed);
        let (x, y) = match self.crop {
            Crop::Center => ((new_width - size) / 2, (new_height - size) / 2),
            Crop::Random => (
                rng.random_range(0..=new_width - size),
                rng.random_range(0..=new_height - size),
            ),
        };
        let mut cropped = imageops::crop_imm(source, x, y, size, size).to_image();
        if self.flip && rng.random_bool(0.5) {
            imageops::flip_horizontal_in_place(&mut cropped);
        }
        RgbImage::from_rgb8(&cropped)
    }
}

/// The longest side an image keeps, in multiples of its shorter side, before it is resized: a
/// 20000×2 strip resized whole to a shorter side of 512 would be 5,120,000×512 pixels (7.8 GB),
/// where the crop needs 512×512 of it. Photographs (4:3, 16:9, 3:1 panoramas) are not touched.
pub const MAX_ASPECT: u32 = 4;

/// The centred part of `img` whose longer side is [`MAX_ASPECT`] times its shorter side, when
/// `img` is longer than that; `None` otherwise. Centred, not random, so that an image cache
/// that stores [`Preprocess::resize_image`]'s output gives what [`Preprocess::apply`] gives.
fn trimmed_to_max_aspect(img: &::image::RgbImage) -> Option<::image::RgbImage> {
    let (width, height) = img.dimensions();
    let limit = |short: u32| short.saturating_mul(MAX_ASPECT);
    if width > limit(height) {
        let keep = limit(height);
        Some(imageops::crop_imm(img, (width - keep) / 2, 0, keep, height).to_image())
    } else if height > limit(width) {
        let keep = limit(width);
        Some(imageops::crop_imm(img, 0, (height - keep) / 2, width, keep).to_image())
    } else {
        None
    }
}

/// Dimensions after scaling so the shorter side is `size` (the longer side rounded to nearest,
/// never below `size`).
fn resized_dimensions(width: u32, height: u32, size: u32) -> (u32, u32) {
    let scale_long = |long: u32, short: u32| {
        let scaled = (u64::from(long) * u64::from(size) + u64::from(short) / 2) / u64::from(short);
        u32::try_from(scaled).unwrap_or(u32::MAX).max(size)
    };
    if width <= height {
        (size, scale_long(height, width))
    } else {
        (scale_long(width, height), size)
    }
}

/// Decodes an image file (format guessed from its bytes, then its extension) to 8-bit RGB.
///
/// Grayscale is replicated to three channels, 16-bit channels are rounded to 8 bits and alpha
/// is dropped (not composited). EXIF orientation is ignored, as PIL and torchvision do.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened or read, [`Error::Decode`] when its content is
/// not a decodable image; both name `path`.
pub fn decode_rgb8(path: &Path) -> Result<::image::RgbImage> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = ImageReader::open(path)
        .map_err(io_error)?
        .with_guessed_format()
        .map_err(io_error)?;
    let decoded = reader.decode().map_err(|source| Error::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(decoded.into_rgb8())
}

/// Decodes a file (PNG, JPEG; any colour type: grayscale and grayscale+alpha become RGB, 16-bit
/// channels are scaled to 8-bit, alpha is dropped), resizes so the shorter side is `size`
/// ([`FilterType::CatmullRom`]; an image smaller than `size` is upscaled), crops `size`×`size`
/// (centre, or a random offset drawn from `seed`), and flips horizontally with probability 1/2
/// drawn from `seed` when `flip` is set. Same path + same seed = same output.
///
/// # Errors
/// [`Error::Io`] when the file is missing or unreadable, [`Error::Decode`] when it is corrupt,
/// truncated or not an image; both name `path`.
///
/// # Panics
/// If `preprocess.size` is 0.
pub fn load_image(path: &Path, preprocess: &Preprocess, seed: u64) -> Result<RgbImage> {
    Ok(preprocess.apply(&decode_rgb8(path)?, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    use ::image::{ImageBuffer, Luma, Rgb, Rgba};

    /// A deterministic test pattern with distinct values per pixel and channel.
    fn pattern(width: u32, height: u32) -> ::image::RgbImage {
        ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([
                (x * 7 + y * 3) as u8,
                (x * 11 + y * 13 + 5) as u8,
                (255 - x * 2 - y) as u8,
            ])
        })
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("create a temporary directory")
    }

    #[test]
    fn rgb8_round_trip_is_exact() {
        let img = pattern(5, 3);
        let converted = RgbImage::from_rgb8(&img);
        assert_eq!((converted.height, converted.width), (3, 5));
        assert_eq!(converted.data.len(), 45);
        assert_eq!(converted.to_rgb8(), img);
    }

    #[test]
    fn from_rgb8_maps_extremes_and_is_channel_major() {
        let img = ImageBuffer::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgb([0, 255, 0])
            } else {
                Rgb([255, 0, 51])
            }
        });
        let converted = RgbImage::from_rgb8(&img);
        let expected = [-1.0, 1.0, 1.0, -1.0, -1.0, 51.0 / 127.5 - 1.0];
        assert_eq!(converted.data, expected);
    }

    #[test]
    fn to_rgb8_rounds_and_clamps() {
        let image = RgbImage::new(1, 2, vec![-3.0, 3.0, 0.0, f32::NAN, 0.001, -0.999]);
        let rgb = image.to_rgb8();
        // Channel-major: red [-3, 3], green [0, NaN], blue [0.001, -0.999]. 0.0 -> 127.5
        // rounds away from zero to 128.
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 128, 128]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255, 0, 0]);
    }

    #[test]
    #[should_panic = "RgbImage data holds 5 values, expected 3 * 1 * 2"]
    fn new_rejects_wrong_length() {
        RgbImage::new(1, 2, vec![0.0; 5]);
    }

    #[test]
    fn resized_dimensions_scale_the_shorter_side() {
        assert_eq!(resized_dimensions(640, 480, 256), (341, 256));
        assert_eq!(resized_dimensions(480, 640, 256), (256, 341));
        assert_eq!(resized_dimensions(100, 100, 256), (256, 256));
        assert_eq!(resized_dimensions(10, 3, 4), (13, 4));
        assert_eq!(resized_dimensions(1000, 999, 8), (8, 8));
    }

    #[test]
    fn center_crop_of_right_sized_image_is_the_middle() {
        // 9 wide, 4 high, size 4: no resize, crop columns 2..6.
        let img = pattern(9, 4);
        let out = Preprocess::eval(4).apply(&img, 0);
        let expected = imageops::crop_imm(&img, 2, 0, 4, 4).to_image();
        assert_eq!(out.to_rgb8(), expected);
    }

    #[test]
    fn flip_mirrors_columns() {
        let img = pattern(6, 6);
        let unflipped = Preprocess::eval(6).apply(&img, 0);
        let preprocess = Preprocess {
            flip: true,
            ..Preprocess::eval(6)
        };
        let outputs: Vec<_> = (0..16).map(|seed| preprocess.apply(&img, seed)).collect();
        let mirrored = RgbImage::from_rgb8(&imageops::flip_horizontal(&img));
        assert!(outputs.iter().all(|o| *o == unflipped || *o == mirrored));
        assert!(outputs.contains(&unflipped));
        assert!(outputs.contains(&mirrored));
    }

    #[test]
    fn random_crop_stays_inside_and_varies() {
        let img = pattern(20, 5);
        let preprocess = Preprocess {
            crop: Crop::Random,
            ..Preprocess::eval(5)
        };
        let crops: Vec<_> = (0..32).map(|seed| preprocess.apply(&img, seed)).collect();
        for crop in &crops {
            let rgb = crop.to_rgb8();
            let found = (0..=15).any(|x| imageops::crop_imm(&img, x, 0, 5, 5).to_image() == rgb);
            assert!(found, "a random crop is not a 5x5 window of the source");
        }
        assert!(crops.iter().any(|c| *c != crops[0]));
    }

    #[test]
    fn very_long_images_are_trimmed_to_their_centre_before_resizing() {
        // 30×3: trimmed to the centred 12×3 (columns 9..21) before anything else.
        let img = pattern(30, 3);
        let random = Preprocess {
            crop: Crop::Random,
            ..Preprocess::eval(3)
        };
        for seed in 0..32 {
            let rgb = random.apply(&img, seed).to_rgb8();
            assert!(
                (9..=18).any(|x| imageops::crop_imm(&img, x, 0, 3, 3).to_image() == rgb),
                "seed {seed}: not a window of the centred 12×3"
            );
        }
        // The centre crop is where it was.
        let centre = Preprocess::eval(3).apply(&img, 0).to_rgb8();
        assert_eq!(centre, imageops::crop_imm(&img, 13, 0, 3, 3).to_image());
        // Tall too; and the cached resize gives what `apply` gives.
        let strip = pattern(2, 5000);
        let preprocess = Preprocess::train(64).with_resize(96);
        let cached = preprocess.resize_image(strip.clone());
        assert_eq!(cached.dimensions(), (96, 384));
        for seed in 0..4 {
            let direct = preprocess.apply(&strip, seed);
            assert_eq!((direct.height, direct.width), (64, 64));
            assert_eq!(direct, preprocess.apply(&cached, seed));
        }
        // A 20000×2 strip at 512 (7.8 GB resized whole) needs 2048×512 now.
        let wide = pattern(20_000, 2);
        let out = Preprocess::eval(512).apply(&wide, 0);
        assert_eq!((out.height, out.width), (512, 512));
    }

    #[test]
    fn crops_of_a_larger_view_equal_crops_of_the_cached_resize() {
        let img = pattern(40, 30);
        let preprocess = Preprocess::train(8).with_resize(15);
        let cached = preprocess.resize_image(img.clone());
        assert_eq!(cached.dimensions(), (20, 15));
        for seed in 0..8 {
            let direct = preprocess.apply(&img, seed);
            assert_eq!((direct.height, direct.width), (8, 8));
            assert_eq!(direct, preprocess.apply(&cached, seed));
        }
        // A resize equal to the size keeps the old behaviour: the full shorter side.
        let whole = Preprocess::eval(15).apply(&img, 0);
        assert_eq!(whole, Preprocess::eval(15).with_resize(15).apply(&img, 0));
    }

    #[test]
    #[should_panic = "Preprocess resize (4) must be at least size (8)"]
    fn resize_below_size_panics() {
        Preprocess::eval(8).with_resize(4).apply(&pattern(9, 9), 0);
    }

    #[test]
    #[should_panic = "Preprocess size must be positive, got 0"]
    fn zero_size_panics() {
        Preprocess::eval(0).apply(&pattern(3, 3), 0);
    }

    #[test]
    fn png_round_trip_through_load_image() {
        let dir = temp_dir();
        let path = dir.path().join("round.png");
        let img = pattern(7, 7);
        img.save(&path).expect("write png");
        let loaded = load_image(&path, &Preprocess::eval(7), 3).expect("load png");
        assert_eq!(loaded, RgbImage::from_rgb8(&img));
    }

    #[test]
    fn save_png_round_trips() {
        let dir = temp_dir();
        let path = dir.path().join("saved.png");
        let image = RgbImage::from_rgb8(&pattern(5, 5));
        image.save_png(&path).expect("save png");
        assert_eq!(
            load_image(&path, &Preprocess::eval(5), 0).expect("load"),
            image
        );
    }

    #[test]
    fn save_png_into_missing_folder_names_the_path() {
        let dir = temp_dir();
        let path = dir.path().join("missing").join("x.png");
        let err = RgbImage::from_rgb8(&pattern(2, 2))
            .save_png(&path)
            .unwrap_err();
        match &err {
            Error::Io { path: p, .. } => assert_eq!(p, &path),
            other => panic!("expected Error::Io, got {other:?}"),
        }
        assert!(err.to_string().contains("x.png"));
    }

    #[test]
    fn grayscale_and_alpha_become_rgb() {
        let dir = temp_dir();
        let gray_path = dir.path().join("gray.png");
        ImageBuffer::from_fn(3, 3, |x, y| Luma([(x * 40 + y) as u8]))
            .save(&gray_path)
            .expect("write gray");
        let gray = decode_rgb8(&gray_path).expect("decode gray");
        assert_eq!(gray.get_pixel(2, 1).0, [81, 81, 81]);

        let rgba_path = dir.path().join("rgba.png");
        ImageBuffer::from_fn(3, 3, |x, _| Rgba([x as u8, 10, 20, 0]))
            .save(&rgba_path)
            .expect("write rgba");
        let rgba = decode_rgb8(&rgba_path).expect("decode rgba");
        assert_eq!(rgba.get_pixel(2, 0).0, [2, 10, 20]);
    }
}
