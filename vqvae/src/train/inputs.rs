//! Checks of a run's image folders before it trains: a run folder the next scan of `--data`
//! or `--val` would read, and validation figures that would not be held-out figures.

use std::path::{Path, PathBuf};

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

/// Refuses a `--data` or `--val` folder whose symbolic links reach the run folder: the scan
/// would read the run's own sample grids as images ([`check_run_outside_inputs`] covers a run
/// folder inside the folder itself).
pub(super) fn check_links_outside_run(run: &Path, flag: &str, images: &ImageSource) -> Result<()> {
    let Some(folder) = images.folder() else {
        return Ok(());
    };
    let Ok(out) = daam::paths::resolved(run) else {
        return Ok(());
    };
    // A link to the run folder, into it, or to a folder holding it.
    let reaches = |target: &&PathBuf| target.starts_with(&out) || out.starts_with(target);
    match folder.links().iter().find(reaches) {
        Some(target) => Err(Error::Usage(format!(
            "the {flag} folder {} reaches --out {} through its link to {}: the run's sample \
             grids would be read as its images; remove the link or choose a run folder it does \
             not reach",
            folder.root().display(),
            run.display(),
            target.display()
        ))),
        None => Ok(()),
    }
}
