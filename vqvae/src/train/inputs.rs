//! Checks of a run's image folders before it trains: a run folder the next scan of `--data`
//! or `--val` would read, and validation figures that would not be held-out figures.

use std::path::Path;

use super::checkpoint::RunSources;
use crate::data::ImageSource;
use crate::error::{Error, Result};

/// What makes the reported validation figures something else than held-out figures: a
/// validation set that is (or overlaps) the training set, or a holdout the folder cannot give.
pub(super) fn validation_notes(
    sources: &RunSources,
    source: &ImageSource,
    holdout: usize,
    batch_size: usize,
) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(data) = &sources.data else {
        return notes; // the embedded set holds out images of its own
    };
    match &sources.val {
        Some(val) => {
            let (d, v) = (daam::paths::resolved(data), daam::paths::resolved(val));
            if let (Ok(d), Ok(v)) = (d, v) {
                if d.starts_with(&v) || v.starts_with(&d) {
                    notes.push(format!(
                        "--val {} {} --data {}: validation images are training images, so the \
                         validation figures are training figures",
                        val.display(),
                        if d == v { "is" } else { "overlaps" },
                        data.display()
                    ));
                }
            }
        }
        None => {
            let len = source.len();
            if holdout == 0 || len < 2 {
                notes.push(format!(
                    "validating on the training images ({}): the validation figures are \
                     training figures; give --val, or more images and a data.holdout of at \
                     least 1",
                    if holdout == 0 {
                        "data.holdout = 0".to_string()
                    } else {
                        format!("{} holds one image", data.display())
                    }
                ));
            } else if holdout > len - 1 {
                notes.push(format!(
                    "data.holdout ({holdout}) is more than {} images allow: holding out {} \
                     and training on 1",
                    len,
                    len - 1
                ));
            } else if len - holdout < batch_size {
                notes.push(format!(
                    "holding out {holdout} of {len} images leaves {} for training, fewer than a \
                     batch ({batch_size}): every step trains on the same images",
                    len - holdout
                ));
            }
        }
    }
    notes
}

/// Refuses a run folder inside `--data` or `--val`: its sample grids (`samples/*.png`) would
/// be read as training or validation images by the next scan, a resume included, and shift
/// the seeded held-out split.
pub(super) fn check_run_outside_inputs(
    run: &Path,
    data: Option<&Path>,
    val: Option<&Path>,
) -> Result<()> {
    let out = daam::paths::resolved(run).map_err(|source| Error::Io {
        path: run.to_path_buf(),
        source,
    })?;
    for (flag, folder) in [("--data", data), ("--val", val)] {
        let Some(folder) = folder else { continue };
        let Ok(folder) = daam::paths::resolved(folder) else {
            continue; // a missing folder is reported where it is opened
        };
        if folder.is_dir() && out.starts_with(&folder) {
            return Err(Error::Usage(format!(
                "--out {} is inside the {flag} folder {}: its sample grids would be read as \
                 images of that folder by the next scan (a --resume included); choose a run \
                 folder outside it",
                run.display(),
                folder.display()
            )));
        }
    }
    Ok(())
}
