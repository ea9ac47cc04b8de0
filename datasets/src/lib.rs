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
//! For classification (DESIGN.md, "classify"; formats in classify-anchors §6):
//! - [`Iemocap`]: the `IEMOCAP_full_release/` labels as 4-class [`IemocapUtterance`]s
//!   ([`Emotion4`], `exc` merged into `hap`, class order [`IEMOCAP_CLASS_NAMES`]) with session,
//!   speaker and WAV path; [`read_wav`] decodes a WAV to mono f32 and [`chunk_waveform`] cuts it
//!   into zero-padded 5-s chunks as the reference pipeline does.
//! - [`Cifar100`]: a memory-mapped `train.bin`/`test.bin` of the binary release.
//! - [`AgNews`]: `train.csv`/`test.csv` as [`AgNewsItem`]s with 0-based labels.
//! - The embedding store ([`embedding_store`]): per-layer pooled encoder features in
//!   safetensors shards with a JSON manifest, written resumably by [`EmbeddingStoreWriter`],
//!   read memory-mapped by [`EmbeddingStore`], checked item by item by [`validate_store`].
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

pub mod ag_news;
pub mod audio;
pub mod cifar100;
mod class_names;
pub mod embedding_store;
pub mod error;
pub mod iemocap;
pub mod image;
pub mod image_folder;
pub mod image_quality;
pub mod json_keys;
mod mmap;
pub mod procedural;
pub mod resample;
pub mod split;

pub use crate::ag_news::{read_ag_news_csv, AgNews, AgNewsItem, AG_NEWS_NUM_CLASSES};
pub use crate::audio::{chunk_waveform, read_wav, Waveform, CHUNK_SAMPLES_16K};
pub use crate::cifar100::{Cifar100, CIFAR100_NUM_COARSE, CIFAR100_NUM_FINE};
pub use crate::embedding_store::{
    validate_store, validate_stores, EmbeddingStore, EmbeddingStoreWriter, Manifest, Problem,
    ProblemKind, ShardEntry, StoreDtype, StoreFingerprint, StoreInfo, StoreWarning,
    ValidationReport, SMALL_GROUP_ITEMS,
};
pub use crate::iemocap::{
    Emotion4, Gender, Iemocap, IemocapUtterance, WavCheck, IEMOCAP_CLASS_NAMES,
};
pub use crate::image::{decode_rgb8, load_image, Crop, Preprocess, RgbImage};
pub use error::{Error, Result};
pub use image_folder::ImageFolder;
pub use image_quality::{psnr, ssim};
pub use procedural::{procedural_image, write_procedural_folder};
pub use resample::resample;
pub use split::Split;
