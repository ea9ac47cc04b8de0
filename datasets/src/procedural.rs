//! An embedded, seeded procedural image set, so training and tests work with no dataset on disk.
//!
//! Each image is a small scene: a smooth two-colour gradient background, 2–6 filled shapes
//! (circles, axis-aligned and rotated rectangles, triangles) with flat, shaded, striped or
//! checkered fills, anti-aliased edges, and mild Gaussian pixel noise. Geometry is drawn in
//! coordinates relative to the image side, so the same `(seed, index)` gives the same scene at
//! any size.

use std::f32::consts::{PI, TAU};
use std::fs;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::error::{Error, Result};
use crate::image::RgbImage;

/// Standard deviation of the per-pixel noise, in units of the 0..=1 colour range (2/255).
const NOISE_STD: f32 = 2.0 / 255.0;

/// Domain tag mixed into the generator seed so these streams differ from other seeded uses.
const SEED_TAG: [u8; 16] = *b"daam-procedural\0";

type Color = [f32; 3];

/// Image `index` of the procedural set with `seed`, `size`×`size`: a random mix (all drawn from
/// a generator seeded by `(seed, index)`) of a smooth two-colour gradient background, 2–6 filled
/// shapes (circles, axis-aligned and rotated rectangles, triangles) in random colours, optional
/// stripes/checkerboard texture in some shapes, and mild per-pixel noise (std 2/255).
/// Deterministic; well under a millisecond for 64×64.
///
/// # Panics
/// If `size` is 0.
pub fn procedural_image(seed: u64, index: u64, size: u32) -> RgbImage {
    assert!(
        size > 0,
        "procedural image size must be positive, got {size}"
    );
    let mut rng = scene_rng(seed, index);
    let scene = Scene::random(&mut rng);
    scene.render(size as usize, &mut rng)
}

/// Writes images `0..count` of the procedural set with `seed` as `dir/proc_{index:05}.png`
/// (8-bit RGB, `size`×`size`), creating `dir` if needed, and returns their paths in order.
///
/// # Errors
/// [`Error::Io`] or [`Error::Encode`] naming the folder or file that could not be written.
///
/// # Panics
/// If `size` is 0.
pub fn write_procedural_folder(
    dir: &Path,
    seed: u64,
    count: usize,
    size: u32,
) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    (0..count)
        .map(|index| {
            let path = dir.join(format!("proc_{index:05}.png"));
            procedural_image(seed, index as u64, size).save_png(&path)?;
            Ok(path)
        })
        .collect()
}

fn scene_rng(seed: u64, index: u64) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..].copy_from_slice(&SEED_TAG);
    StdRng::from_seed(key)
}

fn random_color(rng: &mut impl Rng) -> Color {
    [rng.random(), rng.random(), rng.random()]
}

fn lerp(a: Color, b: Color, t: f32) -> Color {
    [0, 1, 2].map(|c| a[c] + (b[c] - a[c]) * t)
}

/// A unit direction at a uniformly random angle.
fn random_direction(rng: &mut impl Rng) -> [f32; 2] {
    let angle = rng.random_range(0.0..TAU);
    [angle.cos(), angle.sin()]
}

/// A smooth square wave in 0..=1 of the phase `s` (period 1), its edges anti-aliased over one
/// pixel given the period in pixels.
fn square_wave(s: f32, period_px: f32) -> f32 {
    let distance_px = ((s - s.floor() - 0.5).abs() - 0.25) * period_px;
    (0.5 + distance_px).clamp(0.0, 1.0)
}

/// Everything needed to draw one image, in coordinates where the image is the unit square.
struct Scene {
    background: Background,
    shapes: Vec<Shape>,
}

/// A linear gradient between two colours along a direction, smoothed at its ends.
struct Background {
    from: Color,
    to: Color,
    direction: [f32; 2],
}

struct Shape {
    geometry: Geometry,
    fill: Fill,
}

enum Geometry {
    Circle {
        center: [f32; 2],
        radius: f32,
    },
    /// A rectangle rotated by `angle` (0 for axis-aligned).
    Rectangle {
        center: [f32; 2],
        half_extent: [f32; 2],
        angle: f32,
    },
    /// Vertices in counter-clockwise order (in the x-right, y-down frame's algebra).
    Triangle {
        vertices: [[f32; 2]; 3],
    },
}

enum Fill {
    Flat(Color),
    /// The colour brightened on one side and darkened on the other, along `direction`.
    Shaded {
        color: Color,
        direction: [f32; 2],
        strength: f32,
    },
    Stripes {
        colors: [Color; 2],
        direction: [f32; 2],
        period: f32,
    },
    Checkerboard {
        colors: [Color; 2],
        period: f32,
    },
}

impl Scene {
    fn random(rng: &mut impl Rng) -> Self {
        let background = Background {
            from: random_color(rng),
            to: random_color(rng),
            direction: random_direction(rng),
        };
        let num_shapes = rng.random_range(2..=6);
        let shapes = (0..num_shapes)
            .map(|_| Shape {
                geometry: Geometry::random(rng),
                fill: Fill::random(rng),
            })
            .collect();
        Self { background, shapes }
    }

    fn render(&self, size: usize, rng: &mut impl Rng) -> RgbImage {
        let plane = size * size;
        let pixel = 1.0 / size as f32;
        let mut data = vec![0.0f32; 3 * plane];
        let mut normals = GaussianPairs::default();
        for y in 0..size {
            for x in 0..size {
                let p = [(x as f32 + 0.5) * pixel, (y as f32 + 0.5) * pixel];
                let mut color = self.background.color(p);
                for shape in &self.shapes {
                    // Coverage of the pixel from the signed distance, a one-pixel ramp.
                    let coverage = (0.5 - shape.geometry.distance(p) / pixel).clamp(0.0, 1.0);
                    if coverage > 0.0 {
                        color = lerp(color, shape.fill.color(p, pixel), coverage);
                    }
                }
                for (c, value) in color.iter().enumerate() {
                    let noisy = value + NOISE_STD * normals.next(rng);
                    data[c * plane + y * size + x] = (noisy * 2.0 - 1.0).clamp(-1.0, 1.0);
                }
            }
        }
        RgbImage::new(size, size, data)
    }
}

impl Background {
    fn color(&self, p: [f32; 2]) -> Color {
        let [dx, dy] = self.direction;
        // Projection of the centred point, scaled so the corners reach 0 and 1.
        let t = 0.5 + ((p[0] - 0.5) * dx + (p[1] - 0.5) * dy) / (dx.abs() + dy.abs());
        let t = t.clamp(0.0, 1.0);
        lerp(self.from, self.to, t * t * (3.0 - 2.0 * t))
    }
}

impl Geometry {
    fn random(rng: &mut impl Rng) -> Self {
        let center = [rng.random_range(0.1..0.9), rng.random_range(0.1..0.9)];
        match rng.random_range(0..4) {
            0 => Self::Circle {
                center,
                radius: rng.random_range(0.06..0.28),
            },
            kind => Self::random_polygon(rng, center, kind),
        }
    }

    fn random_polygon(rng: &mut impl Rng, center: [f32; 2], kind: u32) -> Self {
        match kind {
            1 | 2 => Self::Rectangle {
                center,
                half_extent: [rng.random_range(0.05..0.3), rng.random_range(0.05..0.3)],
                angle: if kind == 1 {
                    0.0
                } else {
                    rng.random_range(0.0..PI)
                },
            },
            _ => {
                // Angular gaps of 1.6–2.6 rad keep the triangle far from degenerate.
                let radius = rng.random_range(0.1..0.32);
                let first = rng.random_range(0.0..TAU);
                let second = first + rng.random_range(1.6..2.6);
                let third = second + rng.random_range(1.6..2.6);
                let vertices = [first, second, third]
                    .map(|a| [center[0] + radius * a.cos(), center[1] + radius * a.sin()]);
                Self::Triangle { vertices }
            }
        }
    }

    /// Signed distance from `p` to the boundary (negative inside), in image-side units. Exact
    /// for circles and rectangles; for triangles the distance to the nearest edge line, exact
    /// inside and along the edges.
    fn distance(&self, p: [f32; 2]) -> f32 {
        match *self {
            Self::Circle { center, radius } => (p[0] - center[0]).hypot(p[1] - center[1]) - radius,
            Self::Rectangle {
                center,
                half_extent,
                angle,
            } => {
                let (sin, cos) = angle.sin_cos();
                let (dx, dy) = (p[0] - center[0], p[1] - center[1]);
                let qx = (dx * cos + dy * sin).abs() - half_extent[0];
                let qy = (-dx * sin + dy * cos).abs() - half_extent[1];
                qx.max(0.0).hypot(qy.max(0.0)) + qx.max(qy).min(0.0)
            }
            Self::Triangle { vertices } => (0..3)
                .map(|i| {
                    let a = vertices[i];
                    let b = vertices[(i + 1) % 3];
                    let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
                    let cross = ex * (p[1] - a[1]) - ey * (p[0] - a[0]);
                    -cross / ex.hypot(ey)
                })
                .fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

impl Fill {
    fn random(rng: &mut impl Rng) -> Self {
        let color = random_color(rng);
        match rng.random_range(0..10) {
            0..=3 => Self::Flat(color),
            4..=5 => Self::Shaded {
                color,
                direction: random_direction(rng),
                strength: rng.random_range(0.1..0.3),
            },
            6..=7 => Self::Stripes {
                colors: [color, random_color(rng)],
                direction: random_direction(rng),
                period: rng.random_range(0.05..0.14),
            },
            _ => Self::Checkerboard {
                colors: [color, random_color(rng)],
                period: rng.random_range(0.08..0.2),
            },
        }
    }

    /// The fill colour at `p`; `pixel` is the side of one pixel, for anti-aliasing textures.
    fn color(&self, p: [f32; 2], pixel: f32) -> Color {
        match *self {
            Self::Flat(color) => color,
            Self::Shaded {
                color,
                direction,
                strength,
            } => {
                let t = (p[0] - 0.5) * direction[0] + (p[1] - 0.5) * direction[1];
                color.map(|v| (v * (1.0 + 2.0 * strength * t)).clamp(0.0, 1.0))
            }
            Self::Stripes {
                colors,
                direction,
                period,
            } => {
                let s = (p[0] * direction[0] + p[1] * direction[1]) / period;
                lerp(colors[0], colors[1], square_wave(s, period / pixel))
            }
            Self::Checkerboard { colors, period } => {
                let period_px = period / pixel;
                let mx = square_wave(p[0] / period, period_px);
                let my = square_wave(p[1] / period, period_px);
                lerp(colors[0], colors[1], mx * (1.0 - my) + my * (1.0 - mx))
            }
        }
    }
}

/// Standard normal draws by the Box–Muller transform, two per pair of uniforms.
#[derive(Default)]
struct GaussianPairs {
    spare: Option<f32>,
}

impl GaussianPairs {
    fn next(&mut self, rng: &mut impl Rng) -> f32 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1: f32 = 1.0 - rng.random::<f32>();
        let u2: f32 = rng.random();
        let radius = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (TAU * u2).sin_cos();
        self.spare = Some(radius * sin);
        radius * cos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variance(values: &[f32]) -> f64 {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n
    }

    #[test]
    fn deterministic() {
        assert_eq!(procedural_image(3, 17, 32), procedural_image(3, 17, 32));
    }

    #[test]
    fn indices_and_seeds_differ() {
        let base = procedural_image(3, 17, 32);
        assert_ne!(base, procedural_image(3, 18, 32));
        assert_ne!(base, procedural_image(4, 17, 32));
        // (seed, index) is not collapsed into one number.
        assert_ne!(procedural_image(0, 1, 16), procedural_image(1, 0, 16));
    }

    #[test]
    fn values_in_range_and_shape() {
        for index in 0..20 {
            let image = procedural_image(9, index, 24);
            assert_eq!(
                (image.height, image.width, image.data.len()),
                (24, 24, 3 * 24 * 24)
            );
            assert!(image.data.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
    }

    #[test]
    fn not_flat() {
        for index in 0..20 {
            let image = procedural_image(5, index, 32);
            assert!(variance(&image.data) > 1e-3, "image {index} is nearly flat");
        }
    }

    #[test]
    fn noise_is_mild() {
        // Neighbouring pixels mostly differ by little: the scene is piecewise smooth.
        let image = procedural_image(1, 2, 64);
        let diffs: Vec<f32> = image
            .data
            .chunks_exact(64)
            .flat_map(|row| row.windows(2).map(|w| (w[1] - w[0]).abs()))
            .collect();
        let small = diffs.iter().filter(|&&d| d < 0.1).count();
        assert!(
            small * 10 > diffs.len() * 8,
            "{small} of {} steps are small",
            diffs.len()
        );
    }

    #[test]
    fn gaussian_pairs_have_unit_moments() {
        let mut rng = StdRng::seed_from_u64(0);
        let mut normals = GaussianPairs::default();
        let draws: Vec<f32> = (0..20_000).map(|_| normals.next(&mut rng)).collect();
        let mean = draws.iter().map(|&v| f64::from(v)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((variance(&draws) - 1.0).abs() < 0.05);
    }

    #[test]
    fn shape_distances_have_the_right_sign() {
        let circle = Geometry::Circle {
            center: [0.5, 0.5],
            radius: 0.2,
        };
        assert!((circle.distance([0.5, 0.5]) + 0.2).abs() < 1e-6);
        assert!((circle.distance([0.9, 0.5]) - 0.2).abs() < 1e-6);
        let rect = Geometry::Rectangle {
            center: [0.5, 0.5],
            half_extent: [0.2, 0.1],
            angle: PI / 2.0,
        };
        // Rotated a quarter turn: 0.1 wide along x, 0.2 along y.
        assert!((rect.distance([0.5, 0.75]) - 0.05).abs() < 1e-5);
        assert!((rect.distance([0.65, 0.5]) - 0.05).abs() < 1e-5);
        assert!(rect.distance([0.5, 0.5]) < 0.0);
        let triangle = Geometry::Triangle {
            vertices: [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
        };
        assert!((triangle.distance([0.2, 0.2]) + 0.2).abs() < 1e-6);
        assert!((triangle.distance([0.5, -0.1]) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn random_triangles_contain_their_centre() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let center = [0.5, 0.5];
            let triangle = Geometry::random_polygon(&mut rng, center, 3);
            assert!(triangle.distance(center) < 0.0);
        }
    }

    #[test]
    fn write_folder_writes_numbered_pngs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("proc");
        let paths = write_procedural_folder(&out, 2, 3, 16).expect("write folder");
        let names: Vec<_> = paths
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            ["proc_00000.png", "proc_00001.png", "proc_00002.png"]
        );
        let decoded = crate::image::decode_rgb8(&paths[1]).expect("decode");
        assert_eq!(decoded, procedural_image(2, 1, 16).to_rgb8());
    }
}
