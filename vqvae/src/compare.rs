//! `vqvae compare`: the same images through several models, one table and one grid per image,
//! and a self-contained HTML report.

use std::fmt::Write as _;
use std::path::Path;

use daam::DaamBackend;
use datasets::RgbImage;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::eval::{reconstruct_all, reconstruct_all_unquantized, score, Evaluation};
use crate::grid::grid;
use crate::reconstruct::{load_inputs, write_json, LoadedModel};

/// One model's results.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// Column label.
    pub label: String,
    /// Checkpoint folder.
    pub checkpoint: String,
    /// How the inputs went through the model: `64² tiles`, `whole images`, or `–` for the
    /// bicubic floor.
    pub reconstructed_in: String,
    /// Its metrics on the inputs.
    pub evaluation: Evaluation,
}

/// A label for a model: its run folder's name and its attention.
pub fn default_label<B: DaamBackend>(loaded: &LoadedModel<B>) -> String {
    let run = loaded
        .checkpoint
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let attention = match loaded.config.model.attention {
        crate::model::ChannelAttention::Daam { .. } => "DAAM",
        crate::model::ChannelAttention::None => "no attention",
    };
    format!("{run} ({attention})")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The training-free floor a tokenizer must beat: each image downscaled by `factor` and back up
/// with bicubic (Catmull-Rom) interpolation, at the same grid size as the codes.
pub fn bicubic_floor(image: &RgbImage, factor: u32) -> RgbImage {
    use image::imageops::{resize, FilterType};
    let rgb = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    let small = resize(
        &rgb,
        (w / factor).max(1),
        (h / factor).max(1),
        FilterType::CatmullRom,
    );
    RgbImage::from_rgb8(&resize(&small, w, h, FilterType::CatmullRom))
}

/// What a comparison adds to the models' rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompareOptions {
    /// Square size inputs are resized and centre-cropped to; `None`: the first model's view.
    pub size: Option<u32>,
    /// Side of the tiles every model reconstructs the inputs in; `None`: each model's default
    /// ([`crate::tiles::choose_tile`]).
    pub tile: Option<u32>,
    /// A last row/column with the bicubic floor at the first model's down-sampling factor.
    pub bicubic_floor: bool,
    /// A row/column per model decoded from its unquantized latents
    /// ([`crate::model::VqVae::reconstruct_unquantized`]): how much the codebook costs.
    pub unquantized: bool,
}

/// Runs every model on the inputs and writes `comparison.{md,csv,json}`, `grids/NAME.png`
/// (original | model 1 | model 2 | … | unquantized 1 | … | bicubic floor) and `report.html`
/// into `out`.
///
/// # Errors
/// When `size` is not a multiple of a model's down-sampling factor, inputs are unreadable, or
/// files cannot be written.
pub fn compare<B: DaamBackend>(
    models: &[(String, LoadedModel<B>)],
    input: &Path,
    out: &Path,
    options: CompareOptions,
    device: &B::Device,
) -> Result<Vec<ModelResult>> {
    let size = options
        .size
        .unwrap_or(models[0].1.config.data.resize_side());
    for (label, m) in models {
        let f = m.config.downsampling();
        crate::reconstruct::check_eval_size(size, f)
            .map_err(|message| Error::Usage(format!("{message} (model {label})")))?;
    }
    crate::reconstruct::check_output_apart(input, out)?;
    let mut tiles = Vec::new();
    for (label, m) in models {
        let tile = crate::tiles::choose_tile(&m.config, size, options.tile)
            .map_err(|message| Error::Usage(format!("{message} (model {label})")))?;
        tiles.push(tile);
    }
    let images = load_inputs(input, size)?;
    let originals: Vec<RgbImage> = images.iter().map(|(_, i)| i.clone()).collect();
    let mut results = Vec::new();
    let mut columns: Vec<Vec<RgbImage>> = Vec::new();
    for ((label, m), &tile) in models.iter().zip(&tiles) {
        let factor = m.config.downsampling() as usize;
        let (recons, codes) = reconstruct_all(&m.model, &originals, tile, factor, device);
        results.push(ModelResult {
            label: label.clone(),
            checkpoint: m.checkpoint.display().to_string(),
            reconstructed_in: view(tile),
            evaluation: score(&images, &recons, &codes, m.config.model.num_codes),
        });
        columns.push(recons);
    }
    if options.unquantized {
        for ((label, m), &tile) in models.iter().zip(&tiles) {
            let recons = reconstruct_all_unquantized(&m.model, &originals, tile, device);
            results.push(ModelResult {
                label: format!("{label}, unquantized"),
                checkpoint: m.checkpoint.display().to_string(),
                reconstructed_in: view(tile),
                evaluation: score(&images, &recons, &[], 1),
            });
            columns.push(recons);
        }
    }
    if options.bicubic_floor {
        let f = models[0].1.config.downsampling();
        let recons: Vec<RgbImage> = originals.iter().map(|i| bicubic_floor(i, f)).collect();
        results.push(ModelResult {
            label: format!("bicubic ↓{f}↑ (floor)"),
            checkpoint: "-".into(),
            reconstructed_in: "–".into(),
            evaluation: score(&images, &recons, &[], 1),
        });
        columns.push(recons);
    }
    std::fs::create_dir_all(out.join("grids")).map_err(io(out))?;
    let mut grids = Vec::new();
    for (i, (name, original)) in images.iter().enumerate() {
        let stem = Path::new(name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image");
        let mut row = vec![original.clone()];
        row.extend(columns.iter().map(|c| c[i].clone()));
        let path = out.join("grids").join(format!("{i:03}_{stem}.png"));
        grid(&[row]).save(&path).map_err(|e| Error::Figure {
            path: path.clone(),
            message: e.to_string(),
        })?;
        grids.push((name.clone(), path));
    }
    let table = markdown_table(&results);
    std::fs::write(out.join("comparison.md"), &table).map_err(io(out))?;
    std::fs::write(out.join("comparison.csv"), csv_table(&results)).map_err(io(out))?;
    write_json(&out.join("comparison.json"), &results)?;
    let html = html_report(&results, &grids)?;
    std::fs::write(out.join("report.html"), html).map_err(io(out))?;
    Ok(results)
}

/// `64² tiles` or `whole images`.
fn view(tile: Option<usize>) -> String {
    tile.map_or_else(|| "whole images".into(), |t| format!("{t}² tiles"))
}

/// The summary table in markdown.
pub fn markdown_table(results: &[ModelResult]) -> String {
    let mut s = String::from(
        "| model | images | reconstructed in | PSNR (dB) | SSIM | codebook usage |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in results {
        let e = &r.evaluation;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.4} | {:.1}% |",
            r.label.replace('|', "\\|"),
            e.images,
            r.reconstructed_in,
            e.psnr,
            e.ssim,
            100.0 * e.usage
        );
    }
    s.replace("| 0.0% |", "| – |")
}

fn csv_table(results: &[ModelResult]) -> String {
    let mut s = String::from("model,image,psnr,ssim\n");
    for r in results {
        for m in &r.evaluation.per_image {
            let _ = writeln!(
                s,
                "{},{},{:.4},{:.5}",
                csv_field(&r.label),
                csv_field(&m.name),
                m.psnr,
                m.ssim
            );
        }
        let _ = writeln!(
            s,
            "{},mean,{:.4},{:.5}",
            csv_field(&r.label),
            r.evaluation.psnr,
            r.evaluation.ssim
        );
    }
    s
}

/// A CSV field as RFC 4180 writes it: quoted, with inner quotes doubled, when it holds a comma,
/// a quote or a line break (file names and labels can); as it is otherwise.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Minimal HTML escaping for labels and names.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (RFC 4648) of `bytes`, for embedding PNGs.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn html_report(results: &[ModelResult], grids: &[(String, std::path::PathBuf)]) -> Result<String> {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>VQ-VAE reconstruction \
         comparison</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:\
         collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,\
         th:first-child{text-align:left}img{image-rendering:pixelated;max-width:100%}</style>\
         </head><body><h1>Reconstruction comparison</h1>",
    );
    let labels: Vec<String> = results.iter().map(|r| escape(&r.label)).collect();
    let _ = write!(
        s,
        "<p>PSNR and SSIM on 8-bit images (scikit-image conventions: data range 255, SSIM with a \
         7×7 uniform window per channel). Grids: original, then {}.</p>",
        labels.join(", ")
    );
    s.push_str("<table><tr><th>model</th><th>images</th><th>reconstructed in</th><th>PSNR (dB)</th><th>SSIM</th><th>codebook usage</th></tr>");
    for r in results {
        let e = &r.evaluation;
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.4}</td><td>{:.1}%</td></tr>",
            escape(&r.label),
            e.images,
            r.reconstructed_in,
            e.psnr,
            e.ssim,
            100.0 * e.usage
        );
    }
    s.push_str("</table>");
    for (i, (name, path)) in grids.iter().enumerate() {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let scores: Vec<String> = results
            .iter()
            .map(|r| {
                let m = &r.evaluation.per_image[i];
                format!("{}: {:.2} dB / {:.4}", escape(&r.label), m.psnr, m.ssim)
            })
            .collect();
        let _ = write!(
            s,
            "<h3>{}</h3><p>{}</p><img src=\"data:image/png;base64,{}\">",
            escape(name),
            scores.join(" · "),
            base64(&bytes)
        );
    }
    s.push_str("</body></html>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("photo.png"), "photo.png");
        assert_eq!(csv_field("a,b.png"), "\"a,b.png\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn bicubic_floor_keeps_flat_images_and_blurs_detail() {
        let flat = RgbImage::new(16, 16, vec![0.2; 3 * 256]);
        assert_eq!(bicubic_floor(&flat, 4).to_rgb8(), flat.to_rgb8());
        let checker: Vec<f32> = (0..3 * 256)
            .map(|i| {
                if (i % 16 + i / 16) % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        let checker = RgbImage::new(16, 16, checker);
        let psnr = datasets::psnr(&checker.to_rgb8(), &bicubic_floor(&checker, 4).to_rgb8());
        assert!(
            psnr < 10.0,
            "a 1-pixel checkerboard cannot survive ↓4↑: {psnr}"
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
