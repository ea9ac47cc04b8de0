//! Image grids: rows of equally sized images on a light background.

use std::path::Path;

use datasets::RgbImage;

use crate::error::{Error, Result};

/// Pixels between images and around the grid.
const PAD: u32 = 4;

/// Lays `rows` out as a grid (row `r`, column `c` = `rows[r][c]`); every image must have the
/// size of the first one. Empty rows are allowed.
///
/// # Panics
/// If no image is given or the sizes differ.
pub fn grid(rows: &[Vec<RgbImage>]) -> image::RgbImage {
    let first = rows.iter().flatten().next().expect("a grid needs an image");
    let (h, w) = (first.height as u32, first.width as u32);
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let width = columns * (w + PAD) + PAD;
    let height = rows.len() as u32 * (h + PAD) + PAD;
    let mut canvas = image::RgbImage::from_pixel(width, height, image::Rgb([235, 235, 235]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            assert_eq!(
                (tile.height as u32, tile.width as u32),
                (h, w),
                "grid tiles differ"
            );
            let x0 = PAD + c as u32 * (w + PAD);
            let y0 = PAD + r as u32 * (h + PAD);
            image::imageops::replace(&mut canvas, &tile.to_rgb8(), x0 as i64, y0 as i64);
        }
    }
    canvas
}

/// Writes a grid as PNG, creating the parent folder.
///
/// # Errors
/// [`Error::Figure`] naming `path`.
pub fn save_grid(rows: &[Vec<RgbImage>], path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    grid(rows).save(path).map_err(|e| Error::Figure {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_where_expected() {
        let white = RgbImage::new(2, 3, vec![1.0; 18]);
        let black = RgbImage::new(2, 3, vec![-1.0; 18]);
        let g = grid(&[vec![white.clone(), black.clone()], vec![black]]);
        assert_eq!(g.dimensions(), (2 * (3 + PAD) + PAD, 2 * (2 + PAD) + PAD));
        assert_eq!(g.get_pixel(PAD, PAD).0, [255, 255, 255]);
        assert_eq!(g.get_pixel(2 * PAD + 3, PAD).0, [0, 0, 0]);
        assert_eq!(g.get_pixel(2 * PAD + 3, 2 * PAD + 2).0, [235, 235, 235]);
    }
}
