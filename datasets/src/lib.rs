//! Readers for the on-disk formats of the DAAM workspace, and image-quality metrics.
//!
//! For the VQ-VAE (DESIGN.md, "vqvae"):
//! - [`ImageFolder`]: every PNG/JPEG under a folder, recursively (COCO `train2017/` as is),
//!   with a seeded train/holdout [`ImageFolder::split`].
//! - [`load_image`]: decode any colour type to RGB, resize the shorter side, crop and flip as a
//!   [`Preprocess`] says, into an [`RgbImage`] of f32 in [-1, 1], channel-major.
//! - [`procedural_image`]: a seeded procedural image set, so training works with no dataset on
//!   disk; [`write_procedural_folder`] writes it as PNG files.
//! - [`psnr`] and [`ssim`]: reconstruction metrics on 8-bit images with scikit-image's
//!   conventions, checked against committed scikit-image values.
//!
//! The readers for the `classify` formats (IEMOCAP, CIFAR-100 binary, AG News CSV, the
//! embedding store) arrive with that work.
//!
//! ```
//! use datasets::{procedural_image, psnr, ssim};
//!
//! let original = procedural_image(0, 7, 64).to_rgb8();
//! let mut noisy = original.clone();
//! noisy.get_pixel_mut(10, 20).0[0] ^= 0x10;
//! assert!(psnr(&original, &noisy) > 40.0);
//! assert!(ssim(&original, &noisy) > 0.99);
//! assert_eq!(ssim(&original, &original), 1.0);
//! ```
//!
//! Anything touching files returns [`Result`], whose [`Error`] names the file; contract
//! violations (mismatched shapes, a zero size) panic with a message showing the numbers.

pub mod error;
pub mod image;
pub mod image_folder;
pub mod image_quality;
pub mod procedural;

pub use crate::image::{load_image, Crop, Preprocess, RgbImage};
pub use error::{Error, Result};
pub use image_folder::ImageFolder;
pub use image_quality::{psnr, ssim};
pub use procedural::{procedural_image, write_procedural_folder};
