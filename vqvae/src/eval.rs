//! Reconstruction metrics over a set of images: PSNR and SSIM on u8 images (scikit-image
//! conventions: data range 255; SSIM with a 7×7 uniform window per channel) and codebook usage.

use daam::DaamBackend;
use datasets::{psnr, ssim, RgbImage};
use serde::Serialize;

use crate::data::{from_tensor, to_tensor};
use crate::model::VqVae;

/// Images per forward pass.
const BATCH: usize = 8;

/// Metrics of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageMetrics {
    /// The image's name (path).
    pub name: String,
    /// PSNR in dB of the u8 reconstruction.
    pub psnr: f64,
    /// SSIM of the u8 reconstruction.
    pub ssim: f64,
}

/// Metrics of a set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Mean PSNR (dB).
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Fraction of the codebook used by the set's codes.
    pub usage: f64,
    /// Per image.
    pub per_image: Vec<ImageMetrics>,
}

/// Reconstructions (clamped to [−1, 1]) and codes of images, in batches. Reconstructions are
/// `decode(encode(x))`: exactly what `vqvae decode` computes from the exported codes. With a
/// `tile`, each image is cut into `tile`² tiles ([`crate::tiles`]) that are reconstructed
/// separately and put back together; its codes are the tiles' code grids put together.
///
/// # Panics
/// If `tile` does not divide the images or is not a multiple of `factor`.
pub fn reconstruct_all<B: DaamBackend>(
    model: &VqVae<B>,
    images: &[RgbImage],
    tile: Option<usize>,
    factor: usize,
    device: &B::Device,
) -> (Vec<RgbImage>, Vec<Vec<i64>>) {
    let Some(tile) = tile else {
        return reconstruct_whole(model, images, device);
    };
    assert!(
        tile % factor == 0,
        "tile {tile} is not a multiple of the factor {factor}"
    );
    let mut recons = Vec::with_capacity(images.len());
    let mut codes = Vec::with_capacity(images.len());
    for image in images {
        let (h, w) = (image.height, image.width);
        let (tile_recons, tile_codes) =
            reconstruct_whole(model, &crate::tiles::split_image(image, tile), device);
        recons.push(crate::tiles::join_image(&tile_recons, h, w, tile));
        codes.push(crate::tiles::join(
            &tile_codes,
            1,
            h / factor,
            w / factor,
            tile / factor,
        ));
    }
    (recons, codes)
}

fn reconstruct_whole<B: DaamBackend>(
    model: &VqVae<B>,
    images: &[RgbImage],
    device: &B::Device,
) -> (Vec<RgbImage>, Vec<Vec<i64>>) {
    let mut recons = Vec::with_capacity(images.len());
    let mut codes = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        let indices = model.encode(to_tensor::<B>(chunk, device));
        let [n, h, w] = indices.dims();
        let flat: Vec<i64> = indices
            .clone()
            .into_data()
            .convert::<i64>()
            .to_vec()
            .expect("indices");
        codes.extend(flat.chunks_exact(h * w).take(n).map(<[i64]>::to_vec));
        recons.extend(from_tensor(model.decode(indices)));
    }
    (recons, codes)
}

/// Reconstructions of images from their unquantized latents
/// ([`VqVae::reconstruct_unquantized`]), tiled as [`reconstruct_all`] says.
///
/// # Panics
/// If `tile` does not divide the images.
pub fn reconstruct_all_unquantized<B: DaamBackend>(
    model: &VqVae<B>,
    images: &[RgbImage],
    tile: Option<usize>,
    device: &B::Device,
) -> Vec<RgbImage> {
    let whole = |images: &[RgbImage]| -> Vec<RgbImage> {
        images
            .chunks(BATCH)
            .flat_map(|chunk| {
                from_tensor(model.reconstruct_unquantized(to_tensor::<B>(chunk, device)))
            })
            .collect()
    };
    match tile {
        None => whole(images),
        Some(tile) => images
            .iter()
            .map(|image| {
                let tiles = whole(&crate::tiles::split_image(image, tile));
                crate::tiles::join_image(&tiles, image.height, image.width, tile)
            })
            .collect(),
    }
}

/// Evaluates a model on named images (tiled as [`reconstruct_all`] says).
pub fn evaluate<B: DaamBackend>(
    model: &VqVae<B>,
    images: &[(String, RgbImage)],
    num_codes: usize,
    tile: Option<usize>,
    factor: usize,
    device: &B::Device,
) -> Evaluation {
    let originals: Vec<RgbImage> = images.iter().map(|(_, i)| i.clone()).collect();
    let (recons, codes) = reconstruct_all(model, &originals, tile, factor, device);
    score(images, &recons, &codes, num_codes)
}

/// Scores reconstructions against originals.
pub fn score(
    images: &[(String, RgbImage)],
    recons: &[RgbImage],
    codes: &[Vec<i64>],
    num_codes: usize,
) -> Evaluation {
    let per_image: Vec<ImageMetrics> = images
        .iter()
        .zip(recons)
        .map(|((name, original), recon)| {
            let (a, b) = (original.to_rgb8(), recon.to_rgb8());
            ImageMetrics {
                name: name.clone(),
                psnr: psnr(&a, &b),
                ssim: ssim(&a, &b),
            }
        })
        .collect();
    let n = per_image.len().max(1) as f64;
    let mut used = vec![false; num_codes];
    for &c in codes.iter().flatten() {
        used[c as usize] = true;
    }
    Evaluation {
        images: per_image.len(),
        psnr: per_image.iter().map(|m| m.psnr).sum::<f64>() / n,
        ssim: per_image.iter().map(|m| m.ssim).sum::<f64>() / n,
        usage: used.iter().filter(|&&u| u).count() as f64 / num_codes.max(1) as f64,
        per_image,
    }
}
