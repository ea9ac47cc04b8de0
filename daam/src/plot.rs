//! PNG figures of the Importance Factor: the layers × features heatmap (paper Fig. 2) and the
//! per-layer contribution bars (Fig. 3).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};
use crate::importance_factor::ImportanceSummary;

/// The font every figure uses, embedded (see `assets/README.md`) so plots render text on
/// machines without system fonts.
const FONT: &str = "sans-serif";

fn register_embedded_font() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // The embedded bytes are a valid font (tested); a failure would leave text unrendered,
        // not corrupt the figure.
        let _ = register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans-subset.ttf"),
        );
    });
}

/// Viridis, linearly interpolated between five anchors; `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn plot_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Plot {
        path: path.to_path_buf(),
        message,
    }
}

/// Writes the IF heatmap: features on x, layers on y (layer 1 at the bottom), viridis from
/// IF = 0 to 1, with a colour bar.
///
/// # Errors
/// [`Error::Plot`] naming `path` when drawing or encoding fails.
pub fn write_importance_heatmap(
    summary: &ImportanceSummary,
    title: &str,
    path: &Path,
) -> Result<()> {
    register_embedded_font();
    let err = plot_error(path);
    let (layers, d_model) = (summary.num_layers, summary.d_model);
    let height = (240 + 14 * layers as u32).min(1000);
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (main, bar) = root.split_horizontally(1090);
    let mut chart = ChartBuilder::on(&main)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0..d_model, 0..layers)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("feature")
        .y_desc("layer")
        .y_labels(layers.min(24))
        .y_label_formatter(&|&l| {
            if l < layers {
                format!("{}", l + 1)
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(summary.importance.iter().enumerate().map(|(i, &v)| {
            let (l, d) = (i / d_model, i % d_model);
            Rectangle::new([(d, l), (d + 1, l + 1)], viridis(v).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    let mut colour_bar = ChartBuilder::on(&bar)
        .margin_top(46)
        .margin_bottom(52)
        .margin_right(40)
        .y_label_area_size(40)
        .caption("IF", (FONT, 16))
        .build_cartesian_2d(0..1, 0.0..1.0)
        .map_err(|e| err(e.to_string()))?;
    colour_bar
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style((FONT, 12))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    colour_bar
        .draw_series((0..100).map(|i| {
            let (lo, hi) = (i as f64 / 100.0, (i + 1) as f64 / 100.0);
            Rectangle::new([(0, lo), (1, hi)], viridis(lo).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Writes the per-layer contribution bars (percent of the total density weight).
///
/// # Errors
/// [`Error::Plot`] naming `path` when drawing or encoding fails.
pub fn write_layer_contribution(
    summary: &ImportanceSummary,
    title: &str,
    path: &Path,
) -> Result<()> {
    register_embedded_font();
    let err = plot_error(path);
    let layers = summary.num_layers;
    let top = summary
        .layer_contribution
        .iter()
        .fold(0.0f64, |m, &v| m.max(v))
        .max(1e-9)
        * 1.1;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1..layers).into_segmented(), 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("layer")
        .y_desc("contribution (%)")
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(
            summary
                .layer_contribution
                .iter()
                .enumerate()
                .map(|(l, &v)| {
                    let x0 = SegmentValue::Exact(l + 1);
                    let x1 = SegmentValue::Exact(l + 2);
                    let mut bar = Rectangle::new([(x0, 0.0), (x1, v)], viridis(0.35).filled());
                    bar.set_margin(0, 0, 3, 3);
                    bar
                }),
        )
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::importance_factor::ImportanceFactor;
    use crate::tests::TestBackend;
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn viridis_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), RGBColor(68, 1, 84));
    }

    #[test]
    fn writes_both_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let mut factor = ImportanceFactor::new(6, 40);
        factor.record(Tensor::<TestBackend, 3>::random(
            [3, 6, 40],
            Distribution::Uniform(0.0, 1.0),
            &Default::default(),
        ));
        let summary = factor.summary().unwrap();
        let heatmap = dir.path().join("if.png");
        let bars = dir.path().join("layers.png");
        write_importance_heatmap(&summary, "IF (test)", &heatmap).unwrap();
        write_layer_contribution(&summary, "Layer contribution (test)", &bars).unwrap();
        for path in [heatmap, bars] {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
        }
    }

    #[test]
    fn unwritable_path_is_a_named_error() {
        let mut factor = ImportanceFactor::new(1, 2);
        factor.record(Tensor::<TestBackend, 3>::ones(
            [1, 1, 2],
            &Default::default(),
        ));
        let path = Path::new("/nonexistent-dir/if.png");
        let err = write_importance_heatmap(&factor.summary().unwrap(), "t", path).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/if.png"), "{err}");
    }
}
