//! Reconstruction metrics on 8-bit RGB images, following scikit-image's conventions
//! (`skimage.metrics.peak_signal_noise_ratio` and `structural_similarity`, version 0.24).

use ::image::RgbImage;

/// Side of SSIM's uniform window (skimage's default `win_size`).
pub const SSIM_WINDOW: usize = 7;

/// SSIM's luminance constant K1 (skimage default).
const K1: f64 = 0.01;
/// SSIM's contrast constant K2 (skimage default).
const K2: f64 = 0.03;
/// The dynamic range of 8-bit channels.
const DATA_RANGE: f64 = 255.0;

/// PSNR in dB between two u8 images of the same shape (data_range 255): 10 log10(255² / MSE);
/// `f64::INFINITY` when identical.
///
/// # Panics
/// If the images differ in shape (the message shows both).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_same_shape(a, b, "PSNR");
    let squared_error: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2))
        .sum();
    if squared_error == 0 {
        return f64::INFINITY;
    }
    // Integer sums are exact, so this matches numpy's float64 mean to the last bit or two.
    let mse = squared_error as f64 / a.as_raw().len() as f64;
    10.0 * (DATA_RANGE * DATA_RANGE / mse).log10()
}

/// SSIM as `skimage.metrics.structural_similarity(a, b, channel_axis=-1, data_range=255)` with
/// its defaults: 7×7 uniform window, K1 = 0.01, K2 = 0.03, `use_sample_covariance=True`
/// (covariances normalised by N/(N−1), N = 49), computed per channel, mean over the image after
/// cropping (win_size−1)/2 = 3 pixels from each edge, averaged over channels.
///
/// skimage filters with `mode='reflect'` and then crops, so only windows lying fully inside
/// the image count; they are computed exactly here from integer summed-area tables.
///
/// # Panics
/// If the images differ in shape (the message shows both), or either side is shorter than 7
/// pixels (skimage raises a `ValueError` there).
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_same_shape(a, b, "SSIM");
    let (width, height) = (a.width() as usize, a.height() as usize);
    assert!(
        width >= SSIM_WINDOW && height >= SSIM_WINDOW,
        "SSIM needs images at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {width}x{height}"
    );
    let channel_sum: f64 = (0..3)
        .map(|c| channel_ssim(a.as_raw(), b.as_raw(), width, height, c))
        .sum();
    channel_sum / 3.0
}

fn assert_same_shape(a: &RgbImage, b: &RgbImage, metric: &str) {
    assert_eq!(
        a.dimensions(),
        b.dimensions(),
        "{metric} needs images of the same shape, got {}x{} and {}x{} (width x height)",
        a.width(),
        a.height(),
        b.width(),
        b.height()
    );
}

/// Mean SSIM of channel `channel` of two interleaved RGB buffers over the windows lying fully
/// inside the image.
fn channel_ssim(a: &[u8], b: &[u8], width: usize, height: usize, channel: usize) -> f64 {
    let sample = |img: &[u8], x: usize, y: usize| u64::from(img[3 * (y * width + x) + channel]);
    let tables = WindowSums::new(width, height, |x, y| {
        let (p, q) = (sample(a, x, y), sample(b, x, y));
        [p, q, p * p, q * q, p * q]
    });

    let n = (SSIM_WINDOW * SSIM_WINDOW) as f64;
    let covariance_norm = n / (n - 1.0);
    let c1 = (K1 * DATA_RANGE).powi(2);
    let c2 = (K2 * DATA_RANGE).powi(2);
    let mut total = 0.0;
    for y in 0..=height - SSIM_WINDOW {
        for x in 0..=width - SSIM_WINDOW {
            let [sx, sy, sxx, syy, sxy] = tables.window(x, y, SSIM_WINDOW).map(|s| s as f64 / n);
            let vx = covariance_norm * (sxx - sx * sx);
            let vy = covariance_norm * (syy - sy * sy);
            let vxy = covariance_norm * (sxy - sx * sy);
            let numerator = (2.0 * sx * sy + c1) * (2.0 * vxy + c2);
            let denominator = (sx * sx + sy * sy + c1) * (vx + vy + c2);
            total += numerator / denominator;
        }
    }
    let count = (width - SSIM_WINDOW + 1) * (height - SSIM_WINDOW + 1);
    total / count as f64
}

/// Summed-area tables of several per-pixel integer quantities, for exact box sums.
struct WindowSums<const K: usize> {
    /// Row stride, `width + 1`.
    stride: usize,
    /// `(height + 1) * (width + 1)` entries; entry `(y, x)` sums the pixels above and left.
    table: Vec<[u64; K]>,
}

impl<const K: usize> WindowSums<K> {
    fn new(width: usize, height: usize, values: impl Fn(usize, usize) -> [u64; K]) -> Self {
        let stride = width + 1;
        let mut table = vec![[0u64; K]; stride * (height + 1)];
        for y in 0..height {
            let mut row = [0u64; K];
            for x in 0..width {
                let v = values(x, y);
                let above = table[y * stride + x + 1];
                for k in 0..K {
                    row[k] += v[k];
                }
                table[(y + 1) * stride + x + 1] = std::array::from_fn(|k| row[k] + above[k]);
            }
        }
        Self { stride, table }
    }

    /// Sums over the `side`×`side` window whose top-left pixel is `(x, y)`.
    fn window(&self, x: usize, y: usize, side: usize) -> [u64; K] {
        let at = |x: usize, y: usize| &self.table[y * self.stride + x];
        let (top_left, top_right) = (at(x, y), at(x + side, y));
        let (bottom_left, bottom_right) = (at(x, y + side), at(x + side, y + side));
        std::array::from_fn(|k| bottom_right[k] + top_left[k] - top_right[k] - bottom_left[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ::image::Rgb;

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 9) as u8, (y * 7) as u8, ((x + y) * 3) as u8])
        })
    }

    /// A straightforward per-window SSIM, to check the summed-area tables.
    fn naive_ssim(a: &RgbImage, b: &RgbImage) -> f64 {
        let (w, h) = (a.width(), a.height());
        let n = 49.0;
        let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
        let mut channel_means = Vec::new();
        for c in 0..3 {
            let mut total = 0.0;
            let mut count = 0.0;
            for y0 in 0..=h - 7 {
                for x0 in 0..=w - 7 {
                    let mut xs = Vec::new();
                    let mut ys = Vec::new();
                    for y in y0..y0 + 7 {
                        for x in x0..x0 + 7 {
                            xs.push(f64::from(a.get_pixel(x, y).0[c]));
                            ys.push(f64::from(b.get_pixel(x, y).0[c]));
                        }
                    }
                    let mx = xs.iter().sum::<f64>() / n;
                    let my = ys.iter().sum::<f64>() / n;
                    let vx = xs.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / (n - 1.0);
                    let vy = ys.iter().map(|v| (v - my).powi(2)).sum::<f64>() / (n - 1.0);
                    let cov = xs
                        .iter()
                        .zip(&ys)
                        .map(|(p, q)| (p - mx) * (q - my))
                        .sum::<f64>()
                        / (n - 1.0);
                    total += (2.0 * mx * my + c1) * (2.0 * cov + c2)
                        / ((mx * mx + my * my + c1) * (vx + vy + c2));
                    count += 1.0;
                }
            }
            channel_means.push(total / count);
        }
        channel_means.iter().sum::<f64>() / 3.0
    }

    #[test]
    fn psnr_of_identical_images_is_infinite() {
        let img = gradient(9, 8);
        assert_eq!(psnr(&img, &img), f64::INFINITY);
    }

    #[test]
    fn psnr_matches_the_formula_for_a_known_mse() {
        let a = RgbImage::from_pixel(4, 5, Rgb([100, 100, 100]));
        let mut b = a.clone();
        // One channel of one pixel off by 60: MSE = 3600 / 60.
        b.get_pixel_mut(2, 3).0[1] = 160;
        let expected = 10.0 * (255.0f64 * 255.0 / 60.0).log10();
        assert!((psnr(&a, &b) - expected).abs() < 1e-12);
        // Symmetric, and a uniform offset of 5 gives MSE 25.
        assert_eq!(psnr(&a, &b), psnr(&b, &a));
        let c = RgbImage::from_pixel(4, 5, Rgb([105, 105, 105]));
        assert!((psnr(&a, &c) - 10.0 * (65025.0f64 / 25.0).log10()).abs() < 1e-12);
    }

    #[test]
    fn ssim_of_identical_images_is_one() {
        let img = gradient(13, 9);
        assert_eq!(ssim(&img, &img), 1.0);
        let flat = RgbImage::from_pixel(7, 7, Rgb([3, 200, 255]));
        assert_eq!(ssim(&flat, &flat), 1.0);
    }

    #[test]
    fn ssim_matches_a_naive_window_loop() {
        let a = gradient(12, 10);
        let b = RgbImage::from_fn(12, 10, |x, y| {
            let p = a.get_pixel(x, y).0;
            Rgb(p.map(|v| v.wrapping_mul(3).wrapping_add((x * y) as u8)))
        });
        let fast = ssim(&a, &b);
        let naive = naive_ssim(&a, &b);
        assert!((fast - naive).abs() < 1e-12, "{fast} vs {naive}");
        assert!(fast < 0.9);
        assert_eq!(ssim(&a, &b), ssim(&b, &a));
    }

    #[test]
    #[should_panic = "PSNR needs images of the same shape, got 4x5 and 5x4"]
    fn psnr_rejects_different_shapes() {
        psnr(&gradient(4, 5), &gradient(5, 4));
    }

    #[test]
    #[should_panic = "SSIM needs images of the same shape, got 8x8 and 8x9"]
    fn ssim_rejects_different_shapes() {
        ssim(&gradient(8, 8), &gradient(8, 9));
    }

    #[test]
    #[should_panic = "SSIM needs images at least 7x7, got 6x20"]
    fn ssim_rejects_tiny_images() {
        ssim(&gradient(6, 20), &gradient(6, 20));
    }
}
