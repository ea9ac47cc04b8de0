//! Square tiles of images and code grids. A model trained on `image_size`² crops of a larger
//! view sees its own input size when a larger evaluation image is cut into tiles of that size,
//! reconstructed tile by tile and put back together (GroupNorm normalises over the whole input,
//! so the statistics of a whole photograph differ from those of the crops it was trained on).

use datasets::RgbImage;

use crate::config::RunConfig;

/// The tile side a model evaluates `size`² images with: its training `image_size` when `size`
/// is a larger multiple of it, else `None` (the whole image at once).
pub fn eval_tile(config: &RunConfig, size: u32) -> Option<usize> {
    let tile = config.data.image_size;
    (size > tile && size.is_multiple_of(tile)).then_some(tile as usize)
}

/// The tile side for `size`² images when the user asks for `requested` (`--tile`): `None`
/// (the whole image at once) when it equals `size`, `requested` when it is a smaller divisor of
/// `size` and a multiple of the model's down-sampling factor, and [`eval_tile`] when nothing was
/// asked for.
///
/// # Errors
/// A message saying which condition `requested` breaks.
pub fn choose_tile(
    config: &RunConfig,
    size: u32,
    requested: Option<u32>,
) -> Result<Option<usize>, String> {
    let Some(tile) = requested else {
        return Ok(eval_tile(config, size));
    };
    let factor = config.downsampling();
    if tile == 0 || tile > size || !size.is_multiple_of(tile) {
        return Err(format!(
            "--tile {tile} must divide the image size {size} (use --tile {size} for whole images)"
        ));
    }
    if tile % factor != 0 {
        return Err(format!(
            "--tile {tile} must be a multiple of the down-sampling factor {factor}"
        ));
    }
    Ok((tile < size).then_some(tile as usize))
}

/// Cuts `[channels, height, width]` row-major `data` into `tile`×`tile` blocks, in row-major
/// block order, each `[channels, tile, tile]`.
///
/// # Panics
/// If `tile` does not divide `height` and `width` or `data` has the wrong length.
pub fn split<T: Copy>(
    data: &[T],
    channels: usize,
    height: usize,
    width: usize,
    tile: usize,
) -> Vec<Vec<T>> {
    assert!(
        tile > 0 && height.is_multiple_of(tile) && width.is_multiple_of(tile),
        "tile {tile} must divide {height}x{width}"
    );
    assert_eq!(
        data.len(),
        channels * height * width,
        "data of [{channels}, {height}, {width}]"
    );
    let mut blocks = Vec::with_capacity((height / tile) * (width / tile));
    for by in 0..height / tile {
        for bx in 0..width / tile {
            let mut block = Vec::with_capacity(channels * tile * tile);
            for c in 0..channels {
                for y in 0..tile {
                    let row = (c * height + by * tile + y) * width + bx * tile;
                    block.extend_from_slice(&data[row..row + tile]);
                }
            }
            blocks.push(block);
        }
    }
    blocks
}

/// Puts blocks cut by [`split`] back together.
///
/// # Panics
/// If the number or sizes of the blocks do not fit.
pub fn join<T: Copy + Default>(
    blocks: &[Vec<T>],
    channels: usize,
    height: usize,
    width: usize,
    tile: usize,
) -> Vec<T> {
    let per_row = width / tile;
    assert_eq!(
        blocks.len(),
        (height / tile) * per_row,
        "blocks of a {height}x{width} grid"
    );
    let mut data = vec![T::default(); channels * height * width];
    for (b, block) in blocks.iter().enumerate() {
        assert_eq!(block.len(), channels * tile * tile, "block {b}");
        let (by, bx) = (b / per_row, b % per_row);
        for c in 0..channels {
            for y in 0..tile {
                let row = (c * height + by * tile + y) * width + bx * tile;
                let src = (c * tile + y) * tile;
                data[row..row + tile].copy_from_slice(&block[src..src + tile]);
            }
        }
    }
    data
}

/// [`split`] for an image.
pub fn split_image(image: &RgbImage, tile: usize) -> Vec<RgbImage> {
    split(&image.data, 3, image.height, image.width, tile)
        .into_iter()
        .map(|block| RgbImage::new(tile, tile, block))
        .collect()
}

/// [`join`] for images.
pub fn join_image(tiles: &[RgbImage], height: usize, width: usize, tile: usize) -> RgbImage {
    let blocks: Vec<Vec<f32>> = tiles.iter().map(|t| t.data.clone()).collect();
    RgbImage::new(height, width, join(&blocks, 3, height, width, tile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_then_join_is_identity() {
        let data: Vec<u32> = (0..2 * 6 * 9).collect();
        let blocks = split(&data, 2, 6, 9, 3);
        assert_eq!(blocks.len(), 6);
        // Block 1 (row 0, column 1), channel 0, first row: columns 3..6 of row 0.
        assert_eq!(&blocks[1][..3], &[3, 4, 5]);
        // Block 3 (row 1, column 0), channel 1, first row: row 3 of channel 1.
        assert_eq!(&blocks[3][9..12], &[54 + 27, 54 + 28, 54 + 29]);
        assert_eq!(join(&blocks, 2, 6, 9, 3), data);
    }

    #[test]
    fn the_tile_is_the_training_size_unless_asked_otherwise() {
        // `small`: 64² crops, factor 8.
        let config = crate::config::Preset::Small.config();
        assert_eq!(choose_tile(&config, 256, None), Ok(Some(64)));
        assert_eq!(choose_tile(&config, 64, None), Ok(None));
        assert_eq!(choose_tile(&config, 256, Some(128)), Ok(Some(128)));
        assert_eq!(choose_tile(&config, 256, Some(256)), Ok(None));
        let err = choose_tile(&config, 256, Some(96)).unwrap_err();
        assert!(err.contains("must divide the image size 256"), "{err}");
        let err = choose_tile(&config, 256, Some(512)).unwrap_err();
        assert!(err.contains("must divide"), "{err}");
        let err = choose_tile(&config, 256, Some(4)).unwrap_err();
        assert!(
            err.contains("multiple of the down-sampling factor 8"),
            "{err}"
        );
    }

    #[test]
    #[should_panic = "tile 4 must divide 6x9"]
    fn tile_must_divide() {
        split(&[0u8; 54], 1, 6, 9, 4);
    }
}
