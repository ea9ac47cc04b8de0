//! `vqvae reconstruct` and `vqvae decode`: reconstructions with metrics, code export, and
//! images back from codes.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use daam::DaamBackend;
use datasets::{ImageFolder, RgbImage};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::{from_tensor, load_all, ImageSource};
use crate::error::{Error, Result};
use crate::eval::{reconstruct_all, score, Evaluation};
use crate::grid::save_grid;
use crate::model::VqVae;
use crate::train::checkpoint;

/// A trained model with its configuration.
#[derive(Debug)]
pub struct LoadedModel<B: DaamBackend> {
    /// The network.
    pub model: VqVae<B>,
    /// Its run configuration.
    pub config: RunConfig,
    /// The checkpoint folder it came from.
    pub checkpoint: PathBuf,
}

/// Loads `--checkpoint PATH` (a run folder or one of its `step-*` folders).
///
/// # Errors
/// [`Error::Checkpoint`] naming what is missing or does not fit.
pub fn load<B: DaamBackend>(path: &Path, device: &B::Device) -> Result<LoadedModel<B>> {
    let (run, dir) = checkpoint::resolve(path)?;
    let config = checkpoint::read_config(&run)?;
    let model = checkpoint::load_model::<B>(&config, &dir, device)?;
    Ok(LoadedModel {
        model,
        config,
        checkpoint: dir,
    })
}

/// Largest side `--size` may ask for (an image of it is decoded whole before tiling).
pub const MAX_EVAL_SIZE: u32 = 8192;

/// Checks an evaluation side `size` for a model of down-sampling factor `f`: at least SSIM's
/// window, at most [`MAX_EVAL_SIZE`], a multiple of `f`.
pub fn check_eval_size(size: u32, f: u32) -> std::result::Result<(), String> {
    let min = crate::config::MIN_IMAGE_SIZE;
    if !(min..=MAX_EVAL_SIZE).contains(&size) {
        return Err(format!(
            "--size ({size}) must be between {min} (SSIM's window) and {MAX_EVAL_SIZE}"
        ));
    }
    if !size.is_multiple_of(f) {
        return Err(format!(
            "--size ({size}) must be a multiple of the down-sampling factor ({f})"
        ));
    }
    Ok(())
}

/// [`daam::paths::resolved`], its error naming `path`.
fn resolved(path: &Path) -> Result<PathBuf> {
    daam::paths::resolved(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses an `--out` that exists and is not a folder (the OS said only "File exists").
///
/// # Errors
/// [`Error::Usage`] naming it.
pub fn check_output_folder(out: &Path) -> Result<()> {
    match daam::paths::file_in_place_of_folder(out) {
        Some(refusal) => Err(Error::Usage(format!("--out {refusal}"))),
        None => Ok(()),
    }
}

/// Refuses an output folder that is a training run's folder or inside one: `metrics.csv` would
/// replace the run's training log, images its sample grids.
///
/// # Errors
/// [`Error::Usage`] naming the run.
pub fn check_output_outside_runs(out: &Path) -> Result<()> {
    check_output_folder(out)?;
    let out_dir = resolved(out)?;
    if let Some(run) = out_dir
        .ancestors()
        .find(|dir| dir.join("config.json").is_file() && dir.join("latest").is_file())
    {
        return Err(Error::Usage(format!(
            "--out is {} {}: its metrics.csv, sample grids or checkpoints would be written \
                 over; choose a folder outside the run",
            if out_dir == run {
                "the training run"
            } else {
                "inside the training run"
            },
            run.display()
        )));
    }
    Ok(())
}

/// Refuses an output folder that would write among the input images: the folder of an input
/// file, an input folder or a folder inside it (reconstructions would replace originals of the
/// same name, and be read back as inputs by the next run).
///
/// # Errors
/// [`Error::Usage`] naming both folders.
pub fn check_output_apart(input: &Path, out: &Path) -> Result<()> {
    check_output_outside_runs(out)?;
    let input_dir = if input.is_file() {
        resolved(input)?.parent().map(Path::to_path_buf)
    } else {
        Some(resolved(input)?)
    };
    let out_dir = resolved(out)?;
    // A folder is scanned again next time, so nothing may be written inside it; a single file
    // is only at risk from an --out that is its own folder (STEM.png written over it).
    let at_risk = |dir: &PathBuf| {
        if input.is_file() {
            out_dir == *dir
        } else {
            out_dir.starts_with(dir)
        }
    };
    if let Some(dir) = input_dir.filter(at_risk) {
        return Err(Error::Usage(format!(
            "--out is {} {}: its images would be written over originals of the same name \
                 and read as inputs next time; choose a folder outside it",
            if out_dir == dir {
                "the input folder"
            } else {
                "inside the input folder"
            },
            dir.display()
        )));
    }
    // An input folder may reach the output folder through a symbolic link inside it.
    if input.is_dir() {
        if let Ok(folder) = ImageFolder::open(input) {
            for file in folder.files() {
                if resolved(file).is_ok_and(|f| f.starts_with(&out_dir)) {
                    return Err(Error::Usage(format!(
                        "the input image {} is inside --out (through a link): it would be \
                             written over; choose an output folder the input does not reach",
                        file.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Images of `--input`: one file or a folder (recursively).
pub fn input_source(input: &Path) -> Result<ImageSource> {
    if input.is_file() {
        let root = input.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok(ImageSource::Folder(ImageFolder::from_files(
            root,
            vec![input.to_path_buf()],
        )));
    }
    Ok(ImageSource::Folder(ImageFolder::open(input)?))
}

/// Loads inputs centre-cropped to `size`, naming skipped files in the log; errors when nothing
/// is readable.
pub fn load_inputs(input: &Path, size: u32) -> Result<Vec<(String, RgbImage)>> {
    let source = input_source(input)?;
    if let Some(summary) = source.folder().and_then(|f| f.ignored_summary()) {
        tracing::warn!("{}: {summary}", input.display());
    }
    let crate::data::LoadedImages { images, skipped } = load_all(&source, size);
    for (name, error) in &skipped {
        tracing::warn!("skipping unreadable image {name}: {error}");
    }
    if images.is_empty() {
        return Err(Error::NoImages {
            what: input.display().to_string(),
        });
    }
    Ok(images)
}

/// The codes of a set of images, as `vqvae reconstruct --export-codes` writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeFile {
    /// Checkpoint the codes belong to.
    pub checkpoint: String,
    /// Latent grid height.
    pub height: usize,
    /// Latent grid width.
    pub width: usize,
    /// Codebook size (every code is below it).
    pub num_codes: usize,
    /// Side, in pixels, of the tiles the image was reconstructed in ([`crate::tiles`]);
    /// absent: the whole image at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<usize>,
    /// [`model_digest`] of the checkpoint's weights: `decode` with other weights of the same
    /// codebook size would give other images. Absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_digest: Option<String>,
    /// One entry per image.
    pub images: Vec<ImageCodes>,
}

/// A digest (xxh3-64, hex) of a checkpoint folder's `model.bin`: what `reconstruct
/// --export-codes` records and `decode` compares.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read.
pub fn model_digest(checkpoint: &Path) -> Result<String> {
    let path = checkpoint.join("model.bin");
    let bytes = std::fs::read(&path).map_err(|source| Error::Io { path, source })?;
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)))
}

/// The codes of one image, row-major `[height, width]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageCodes {
    /// File stem the reconstruction is written under.
    pub name: String,
    /// Code indices.
    pub codes: Vec<i64>,
}

/// What two file names share when a file system may take them for the same file: their NFC
/// form (macOS's file systems compare names normalised, so `é` as one code point and as `e` +
/// a combining accent name one file) without letter case (macOS and Windows ignore it).
fn name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfc().collect::<String>().to_lowercase()
}

/// Longest stem [`stems`] keeps (bytes), so that `STEM_NNNN.side_by_side.png` fits a file
/// name's 255 bytes.
const MAX_STEM_BYTES: usize = 200;

/// A file-name stem for each input path, such that no two inputs' output files
/// (`STEM.png`, `STEM.side_by_side.png`) share a name: a repeated stem gets `_2`, `_3`, … (the
/// first free one: inputs `a/x.png`, `b/x.png` and `x_2.png` would otherwise both write
/// `x_2.png`, and `x.side_by_side.png` would write over `x`'s side-by-side image). Stems are
/// compared as [`name_key`] does: `X.png` and `x.png` give `X` and `x_2`.
fn stems(names: &[String]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    let key = name_key;
    names
        .iter()
        .map(|name| {
            let base: String = Path::new(name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("image")
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect();
            // File names have at most 255 bytes; leave room for `_N.side_by_side.png`.
            let mut end = base.len().min(MAX_STEM_BYTES);
            while !base.is_char_boundary(end) {
                end -= 1;
            }
            let base = base[..end].to_string();
            let side = |stem: &str| format!("{stem}.side_by_side");
            let stem = (1..)
                .map(|n| match n {
                    1 => base.clone(),
                    n => format!("{base}_{n}"),
                })
                .find(|stem| !taken.contains(&key(stem)) && !taken.contains(&key(&side(stem))))
                .expect("a free name");
            taken.insert(key(&side(&stem)));
            taken.insert(key(&stem));
            stem
        })
        .collect()
}

/// Creates an output folder.
fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a JSON file, creating its folder.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let json = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(path, json).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reconstructs every input: writes `NAME.png` (the reconstruction), `NAME.side_by_side.png`
/// (original | reconstruction), `metrics.csv` and `metrics.json`, and `codes.json` when
/// `export_codes` is set. `size` overrides the training image size, `tile` the side of the
/// tiles the images are reconstructed in ([`crate::tiles::choose_tile`]).
pub fn reconstruct<B: DaamBackend>(
    loaded: &LoadedModel<B>,
    input: &Path,
    out: &Path,
    size: Option<u32>,
    tile: Option<u32>,
    export_codes: bool,
    device: &B::Device,
) -> Result<Evaluation> {
    let size = size.unwrap_or(loaded.config.data.resize_side());
    let f = loaded.config.downsampling();
    check_eval_size(size, f).map_err(Error::Usage)?;
    check_output_apart(input, out)?;
    let tile = crate::tiles::choose_tile(&loaded.config, size, tile).map_err(Error::Usage)?;
    let images = load_inputs(input, size)?;
    create_dir(out)?;
    let originals: Vec<RgbImage> = images.iter().map(|(_, i)| i.clone()).collect();
    let (recons, codes) = reconstruct_all(&loaded.model, &originals, tile, f as usize, device);
    let num_codes = loaded.config.model.num_codes;
    let evaluation = score(&images, &recons, &codes, num_codes);
    let names: Vec<String> = images.iter().map(|(n, _)| n.clone()).collect();
    let stems = stems(&names);
    for ((stem, original), recon) in stems.iter().zip(&originals).zip(&recons) {
        let path = out.join(format!("{stem}.png"));
        recon.save_png(&path)?;
        save_grid(
            &[vec![original.clone(), recon.clone()]],
            &out.join(format!("{stem}.side_by_side.png")),
        )?;
    }
    let mut csv = String::from("image,psnr,ssim\n");
    for m in &evaluation.per_image {
        csv.push_str(&format!(
            "{},{:.4},{:.5}\n",
            crate::compare::csv_field(&m.name),
            m.psnr,
            m.ssim
        ));
    }
    csv.push_str(&format!(
        "mean,{:.4},{:.5}\n",
        evaluation.psnr, evaluation.ssim
    ));
    std::fs::write(out.join("metrics.csv"), csv).map_err(|source| Error::Io {
        path: out.join("metrics.csv"),
        source,
    })?;
    write_json(&out.join("metrics.json"), &evaluation)?;
    if export_codes {
        let latent = (size / f) as usize;
        let file = CodeFile {
            checkpoint: loaded.checkpoint.display().to_string(),
            height: latent,
            width: latent,
            num_codes,
            tile,
            model_digest: Some(model_digest(&loaded.checkpoint)?),
            images: stems
                .into_iter()
                .zip(codes)
                .map(|(name, codes)| ImageCodes { name, codes })
                .collect(),
        };
        write_json(&out.join("codes.json"), &file)?;
    }
    Ok(evaluation)
}

/// The keys of a `codes.json` [`CodeFile`] and of its image entries ([`ImageCodes`]).
const CODE_FILE_KEYS: [&str; 7] = [
    "checkpoint",
    "height",
    "width",
    "num_codes",
    "tile",
    "model_digest",
    "images",
];
const IMAGE_CODES_KEYS: [&str; 2] = ["name", "codes"];

/// Reads and checks a code file against a model of `num_codes` codes and down-sampling factor
/// `factor`: sizes and ranges, naming the image.
pub fn read_codes(path: &Path, num_codes: usize, factor: usize) -> Result<CodeFile> {
    let bad = |message: String| Error::Codes {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file: CodeFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let unknown =
        datasets::json_keys::unknown_keys(&text, &CODE_FILE_KEYS, "images", &IMAGE_CODES_KEYS);
    if !unknown.is_empty() {
        let keys: Vec<String> = unknown.iter().map(|k| format!("key `{k}`")).collect();
        tracing::warn!(
            "{} has {} that no reader knows: ignored (misspelt, or written by a newer vqvae?)",
            path.display(),
            keys.join(", ")
        );
    }
    if file.height == 0 || file.width == 0 {
        return Err(bad(format!(
            "the code grid is {}×{}: empty",
            file.height, file.width
        )));
    }
    // The grid becomes an image of (grid · factor)² pixels: refuse sizes no evaluation makes
    // (`reconstruct --size` is at most MAX_EVAL_SIZE pixels a side).
    let max_grid = MAX_EVAL_SIZE as usize / factor.max(1);
    if file.height > max_grid || file.width > max_grid {
        return Err(bad(format!(
            "the code grid is {}×{}: more than {max_grid} codes a side, the most `reconstruct` \
             writes for this model ({MAX_EVAL_SIZE} pixels at factor {factor})",
            file.height, file.width
        )));
    }
    if file.tile == Some(0) {
        return Err(bad("tile 0: a tile must be positive".into()));
    }
    // Names become file names in `--out`: one plain, distinct name per image.
    let mut names = std::collections::HashSet::new();
    for image in &file.images {
        let name = &image.name;
        let plain = !name.is_empty()
            && !name.contains(['/', '\\', '\0'])
            && Path::new(name).file_name() == Some(std::ffi::OsStr::new(name));
        if !plain {
            return Err(bad(format!(
                "image name {name:?} is not a plain file name (no folders, not empty): decode \
                 writes NAME.png into --out"
            )));
        }
        // `reconstruct` writes none (its stems replace them): a newline in a file name breaks
        // listings and scripts.
        if name.chars().any(char::is_control) {
            return Err(bad(format!(
                "image name {name:?} has a control character: decode writes NAME.png into --out"
            )));
        }
        if name.len() + ".png".len() > 255 {
            return Err(bad(format!(
                "image name {:?}… has {} bytes: NAME.png must fit a file name's 255",
                name.chars().take(20).collect::<String>(),
                name.len()
            )));
        }
        // As case-insensitive, normalising file systems compare names.
        if !names.insert(name_key(name)) {
            return Err(bad(format!(
                "image name {name:?} appears twice (letter case and Unicode normalisation \
                 aside): the second image would replace the first"
            )));
        }
    }
    if file.num_codes != num_codes {
        return Err(bad(format!(
            "written for a codebook of {} codes, the model has {num_codes}",
            file.num_codes
        )));
    }
    for image in &file.images {
        if image.codes.len() != file.height * file.width {
            return Err(bad(format!(
                "image {}: {} codes for a {}×{} grid",
                image.name,
                image.codes.len(),
                file.height,
                file.width
            )));
        }
        if let Some(c) = image
            .codes
            .iter()
            .find(|&&c| c < 0 || c as usize >= num_codes)
        {
            return Err(bad(format!(
                "image {}: code {c} outside 0..{num_codes}",
                image.name
            )));
        }
    }
    Ok(file)
}

/// Decodes a code file: writes `NAME.png` per image into `out`; returns the images.
pub fn decode<B: DaamBackend>(
    loaded: &LoadedModel<B>,
    codes: &Path,
    out: &Path,
    device: &B::Device,
) -> Result<Vec<(String, RgbImage)>> {
    let file = read_codes(
        codes,
        loaded.config.model.num_codes,
        loaded.config.downsampling() as usize,
    )?;
    if file.model_digest.is_none() {
        tracing::warn!(
            "{} records no digest of the weights it was written with (an older vqvae): decoding \
             with {} on trust that they are the same",
            codes.display(),
            loaded.checkpoint.display()
        );
    }
    if let Some(recorded) = &file.model_digest {
        let here = model_digest(&loaded.checkpoint)?;
        if *recorded != here {
            return Err(Error::Codes {
                path: codes.to_path_buf(),
                message: format!(
                    "written by the weights of {} (digest {recorded}), and --checkpoint {} holds \
                     other weights (digest {here}): decoding them would not give the images \
                     `reconstruct` wrote; decode with the checkpoint the codes came from",
                    file.checkpoint,
                    loaded.checkpoint.display()
                ),
            });
        }
    }
    check_output_outside_runs(out)?;
    create_dir(out)?;
    let mut decoded = Vec::with_capacity(file.images.len());
    if let Some(tile) = file.tile {
        let f = loaded.config.downsampling() as usize;
        let latent_tile = tile / f;
        if tile % f != 0 || file.height % latent_tile != 0 || file.width % latent_tile != 0 {
            return Err(Error::Config {
                path: codes.to_path_buf(),
                message: format!(
                    "tile {tile} does not fit a {}x{} code grid at factor {f}",
                    file.height, file.width
                ),
            });
        }
        for entry in &file.images {
            let blocks = crate::tiles::split(&entry.codes, 1, file.height, file.width, latent_tile);
            let flat: Vec<i64> = blocks.concat();
            let indices = Tensor::<B, 3, Int>::from_data(
                TensorData::new(flat, [blocks.len(), latent_tile, latent_tile]),
                device,
            );
            let tiles = from_tensor(loaded.model.decode(indices));
            let image = crate::tiles::join_image(&tiles, file.height * f, file.width * f, tile);
            image.save_png(&out.join(format!("{}.png", entry.name)))?;
            decoded.push((entry.name.clone(), image));
        }
        return Ok(decoded);
    }
    for chunk in file.images.chunks(8) {
        let flat: Vec<i64> = chunk.iter().flat_map(|i| i.codes.iter().copied()).collect();
        let indices = Tensor::<B, 3, Int>::from_data(
            TensorData::new(flat, [chunk.len(), file.height, file.width]),
            device,
        );
        let images = from_tensor(loaded.model.decode(indices));
        for (entry, image) in chunk.iter().zip(images) {
            image.save_png(&out.join(format!("{}.png", entry.name)))?;
            decoded.push((entry.name.clone(), image));
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::stems;
    use super::{CodeFile, ImageCodes, CODE_FILE_KEYS, IMAGE_CODES_KEYS};
    use datasets::json_keys::unknown_keys;

    /// The known-key lists are the keys a fully populated file writes, so they cannot drift
    /// apart; other keys are found, with the image entry they sit in.
    #[test]
    fn unknown_codes_json_keys_are_named() {
        let file = CodeFile {
            checkpoint: "run".into(),
            height: 1,
            width: 1,
            num_codes: 4,
            tile: Some(8),
            model_digest: Some("0".into()),
            images: vec![ImageCodes {
                name: "a".into(),
                codes: vec![0],
            }],
        };
        let mut value = serde_json::to_value(&file).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |list: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(&value), sorted(&CODE_FILE_KEYS));
        assert_eq!(keys(&value["images"][0]), sorted(&IMAGE_CODES_KEYS));
        let unknown = |value: &serde_json::Value| {
            unknown_keys(
                &value.to_string(),
                &CODE_FILE_KEYS,
                "images",
                &IMAGE_CODES_KEYS,
            )
        };
        assert!(unknown(&value).is_empty());
        value["tiles"] = 8.into();
        value["images"][0]["code"] = 1.into();
        assert_eq!(unknown(&value), ["tiles", "images[0].code"]);
    }

    #[test]
    fn output_names_never_collide() {
        let names: Vec<String> = [
            "a/x.png",
            "b/x.png",
            "x_2.png",
            "x.side_by_side.png",
            "y.jpg",
            "Y.PNG",
            "X_2.side_by_side.png",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let chosen = stems(&names);
        assert_eq!(
            chosen,
            [
                "x",
                "x_2",
                "x_2_2",
                "x.side_by_side_2",
                "y",
                "Y_2",
                "X_2.side_by_side_2"
            ]
        );
        let files: Vec<String> = chosen
            .iter()
            .flat_map(|s| [format!("{s}.png"), format!("{s}.side_by_side.png")])
            .collect();
        let mut files: Vec<String> = files.iter().map(|f| f.to_lowercase()).collect();
        files.sort();
        let count = files.len();
        files.dedup();
        assert_eq!(files.len(), count, "{files:?}");
        // Names one file on macOS (NFC, case aside) get their own stems.
        let accents: Vec<String> = ["caf\u{e9}.png", "CAFE\u{301}.png"]
            .map(String::from)
            .to_vec();
        assert_eq!(stems(&accents), ["caf\u{e9}", "CAFE\u{301}_2"]);
        // A control character becomes `_` (decode refuses names with one); outer spaces stay,
        // as decode takes them.
        let odd: Vec<String> = ["a\nb.png", " photo.png"].map(String::from).to_vec();
        assert_eq!(stems(&odd), ["a_b", " photo"]);
        let long = format!("{}.png", "é".repeat(120));
        let stem = &stems(&[long])[0];
        assert_eq!(stem.len(), 200, "{stem}");
    }
}
