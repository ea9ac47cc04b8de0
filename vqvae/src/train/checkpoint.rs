//! Checkpoints: written to a temporary folder and renamed into place, so a crash or Ctrl-C
//! never leaves a half-written checkpoint; `latest` names the newest complete one.
//!
//! ```text
//! RUN/config.json             the RunConfig
//! RUN/sources.json            the training and validation image folders (`--data`, `--val`)
//! RUN/.lock                   held by the process training into RUN
//! RUN/latest                  "step-00000500"
//! RUN/step-00000500/model.bin        weights (burn BinFileRecorder's format, full precision)
//! RUN/step-00000500/optimizer.bin    Adam moments
//! RUN/step-00000500/state.json       step, codebook statistics, skipped-image count
//! RUN/step-00000500/model.json       the parameters model.bin holds (path, shape)
//! ```

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, Recorder};
use burn::tensor::backend::Backend;
use daam::record::{CheckedBinFileRecorder, RecordFault};
use serde::{Deserialize, Serialize};

use super::codebook_stats::CodebookStats;
use crate::config::RunConfig;
use crate::data::ImageSource;
use crate::error::{Error, Result};
use crate::model::VqVae;

/// The recorder of every file here: burn's `BinFileRecorder` format, read with a bound so a
/// corrupt file is an error, not an abort ([`daam::record`]).
pub type CheckpointRecorder = CheckedBinFileRecorder<FullPrecisionSettings>;

/// Training progress besides the weights: everything a resumed run needs to continue exactly
/// (the data order, crops and flips derive from the seed and the step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    /// Codebook statistics (dead-code restarts depend on them).
    pub codebook: CodebookStats,
    /// Distinct unreadable images met so far (`skipped_files.len()`; checkpoints written before
    /// the files were kept counted every re-read, once per epoch).
    pub skipped_images: u64,
    /// The names of the unreadable images met so far, so that each is counted and reported
    /// once, across epochs and resumes.
    #[serde(default)]
    pub skipped_files: std::collections::BTreeSet<String>,
    /// Codes restarted from latents so far (dead-code restarts; 0 in checkpoints written before
    /// it was counted).
    #[serde(default)]
    pub restarted_codes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Locks `run` (creating it) for this training process ([`daam::folder_lock`]): two
/// processes training into one folder would delete each other's checkpoints.
///
/// # Errors
/// [`Error::Checkpoint`] when another process holds the folder (naming its process id) or its
/// `.lock` is a link; [`Error::Io`].
pub fn lock_run(run: &Path) -> Result<daam::folder_lock::FolderLock> {
    use daam::folder_lock::{lock_folder, LockError};
    lock_folder(run).map_err(|e| match e {
        LockError::InUse { .. } => Error::Usage(format!(
            "{} {e}, training into it: two runs in one folder would delete each other's \
             checkpoints (wait for it, stop it, or choose another --out)",
            run.display()
        )),
        LockError::NotAFile { .. } => Error::Checkpoint {
            path: run.to_path_buf(),
            message: e.to_string(),
        },
        LockError::Io { path, source } => Error::Io { path, source },
    })
}

/// Writes the run's `config.json`.
pub fn write_config(run: &Path, config: &RunConfig) -> Result<()> {
    std::fs::create_dir_all(run).map_err(io(run))?;
    let json = serde_json::to_string_pretty(config).expect("configs serialise");
    write_atomic(&run.join("config.json"), json.as_bytes())
}

/// Reads a run's `config.json`.
pub fn read_config(run: &Path) -> Result<RunConfig> {
    let path = run.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let config: RunConfig = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.clone(),
        message: format!("config.json is not a valid run configuration: {e}"),
    })?;
    config.validate().map_err(|message| Error::Checkpoint {
        path,
        message: format!("config.json is not a usable run configuration: {message}"),
    })?;
    Ok(config)
}

/// The image folders a run trains and validates on, kept beside its `config.json` so that
/// `--resume` without `--data` continues on the same images (not on the procedural set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSources {
    /// Training images (`--data`), absolute; `None`: the embedded procedural set.
    pub data: Option<PathBuf>,
    /// Validation images (`--val`), absolute; `None`: held out of the training images.
    pub val: Option<PathBuf>,
    /// What `data` held when this file was written ([`Listing::of`]); absent for the
    /// procedural set and in runs from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_listing: Option<Listing>,
    /// What `val` held when this file was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_listing: Option<Listing>,
}

/// The images of a folder as a run saw them: how many, and a digest of their names. A resume
/// compares it with the folder's images now ([`Listing::change`]), because the order of
/// batches follows the image list: other images give other batches than an uninterrupted run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Number of image files.
    pub images: usize,
    /// xxh3-64 (hex) of their paths relative to the folder, in the scan's (sorted) order.
    pub digest: String,
}

impl Listing {
    /// The listing of a folder source; `None` for the procedural set.
    pub fn of(source: &ImageSource) -> Option<Self> {
        let folder = source.folder()?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for file in folder.files() {
            let name = file.strip_prefix(folder.root()).unwrap_or(file);
            hasher.update(name.as_os_str().as_encoded_bytes());
            hasher.update(&[0]);
        }
        Some(Self {
            images: folder.len(),
            digest: format!("{:016x}", hasher.digest()),
        })
    }

    /// How `now` differs from this listing, in words; `None` when it does not.
    pub fn change(&self, now: &Self) -> Option<String> {
        if self == now {
            None
        } else if self.images == now.images {
            Some(format!(
                "other images under the same count ({})",
                now.images
            ))
        } else {
            Some(format!(
                "{} images where the run had {}",
                now.images, self.images
            ))
        }
    }
}

/// Writes the run's `sources.json`, with the folders made absolute.
pub fn write_sources(run: &Path, sources: &RunSources) -> Result<()> {
    let absolute = |p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
        p.as_ref()
            .map(|p| std::path::absolute(p).map_err(io(p)))
            .transpose()
    };
    let sources = RunSources {
        data: absolute(&sources.data)?,
        val: absolute(&sources.val)?,
        ..sources.clone()
    };
    let json = serde_json::to_string_pretty(&sources).expect("sources serialise");
    write_atomic(&run.join("sources.json"), json.as_bytes())
}

/// Reads a run's `sources.json`; `None` for a run written before it existed.
pub fn read_sources(run: &Path) -> Result<Option<RunSources>> {
    let path = run.join("sources.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Checkpoint {
                path,
                message: format!("sources.json is not a valid list of image folders: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { path, source: e }),
    }
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run: &Path) -> Result<Option<PathBuf>> {
    let pointer = run.join("latest");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = run.join(name.trim());
            if dir.join("state.json").is_file() {
                Ok(Some(dir))
            } else {
                Err(Error::Checkpoint {
                    path: dir,
                    message: "named by `latest` but incomplete or missing".into(),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: pointer,
            source,
        }),
    }
}

/// Resolves `--checkpoint PATH`: a run folder (its latest checkpoint) or one `step-*` folder.
/// Returns the run folder and the checkpoint folder.
pub fn resolve(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if !path.exists() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: "does not exist".into(),
        });
    }
    if path.join("config.json").is_file() {
        let step = latest(path)?.ok_or_else(|| Error::Checkpoint {
            path: path.to_path_buf(),
            message: "the run has no checkpoint yet".into(),
        })?;
        return Ok((path.to_path_buf(), step));
    }
    if path.join("state.json").is_file() {
        if let Some(run) = path.parent().filter(|p| p.join("config.json").is_file()) {
            return Ok((run.to_path_buf(), path.to_path_buf()));
        }
    }
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        message: "not a run folder (no config.json) nor a checkpoint inside one".into(),
    })
}

/// Saves a checkpoint atomically and prunes all but the newest `keep`. Returns its folder.
pub fn save<B: Backend, R: burn::record::Record<B>>(
    run: &Path,
    model: &VqVae<B>,
    optimizer: R,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    let name = format!("step-{:08}", state.step);
    let tmp = run.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let recorder = CheckpointRecorder::new();
    let failed = |what: &str, e: burn::record::RecorderError| Error::Checkpoint {
        path: tmp.join(what),
        message: format!(
            "cannot be written: {} (the previous checkpoint is kept)",
            daam::record::recorder_message(&e)
        ),
    };
    model
        .clone()
        .save_file(tmp.join("model"), &recorder)
        .map_err(|e| failed("model.bin", e))?;
    recorder
        .record(optimizer, tmp.join("optimizer"))
        .map_err(|e| failed("optimizer.bin", e))?;
    let shapes = serde_json::to_string(&ParamList::of(model)).expect("shapes serialise");
    std::fs::write(tmp.join(PARAMS_FILE), shapes).map_err(io(&tmp))?;
    let json = serde_json::to_string(state).expect("states serialise");
    std::fs::write(tmp.join("state.json"), json).map_err(io(&tmp))?;
    let dir = run.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::rename(&tmp, &dir).map_err(io(&dir))?;
    write_atomic(&run.join("latest"), name.as_bytes())?;
    prune(run, keep.max(1))?;
    Ok(dir)
}

/// Deletes all but the newest `keep` complete checkpoints.
fn prune(run: &Path, keep: usize) -> Result<()> {
    let mut steps: Vec<PathBuf> = std::fs::read_dir(run)
        .map_err(io(run))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("step-"))
                && p.join("state.json").is_file()
        })
        .collect();
    steps.sort();
    let excess = steps.len().saturating_sub(keep);
    for old in &steps[..excess] {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// Reads a checkpoint's training state.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path,
        message: e.to_string(),
    })
}

/// Loads a checkpoint's weights into a model built from `config`.
///
/// # Errors
/// [`Error::Checkpoint`] naming the file when it is missing, truncated, corrupt, or was written
/// for another configuration (different widths, codebook, attention).
pub fn load_model<B: Backend>(
    config: &RunConfig,
    dir: &Path,
    device: &B::Device,
) -> Result<VqVae<B>> {
    let path = dir.join("model.bin");
    if !path.is_file() {
        return Err(Error::Checkpoint {
            path,
            message: "missing".into(),
        });
    }
    let fresh = config.model_config().init::<B>(device);
    // burn panics when a record's module lists have another length than the module's (e.g. a
    // width added to `model.hidden`), and loads a record with extra modules silently (DAAM
    // weights under `attention: none`): compare the parameter list the checkpoint was saved
    // with first. Checkpoints written before `model.json` existed skip this check.
    let params_path = dir.join(PARAMS_FILE);
    if let Ok(text) = std::fs::read_to_string(&params_path) {
        let saved: ParamList = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: params_path.clone(),
            message: format!("not a parameter list: {e}"),
        })?;
        if let Some(difference) = saved.difference(&ParamList::of(&fresh)) {
            return Err(Error::Checkpoint {
                path,
                message: format!(
                    "does not fit this configuration: {difference} (config.json was changed \
                     after the checkpoint was written, or the checkpoint comes from another run)"
                ),
            });
        }
    }
    let expected = param_shapes(&fresh);
    // Without `model.json` (checkpoints of earlier versions) a list of blocks of another length
    // reaches burn's loader, which asserts: contain that panic as the error it is.
    let load = || fresh.load_file(dir.join("model"), &CheckpointRecorder::new(), device);
    let loaded = if params_path.is_file() {
        Ok(load())
    } else {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
        std::panic::set_hook(hook);
        caught
    };
    let model = loaded
        .map_err(|_| Error::Checkpoint {
            path: path.clone(),
            message: "does not fit this configuration: it holds another number of blocks or \
                      layers than config.json describes"
                .into(),
        })?
        .map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: record_error(&e),
        })?;
    // burn loads tensors without checking their shapes against the module's: compare them.
    let loaded = param_shapes(&model);
    if loaded != expected {
        let first = expected
            .iter()
            .zip(&loaded)
            .position(|(a, b)| a != b)
            .unwrap_or(expected.len().min(loaded.len()));
        return Err(Error::Checkpoint {
            path,
            message: format!(
                "does not fit this configuration: parameter {first} has shape {:?} in the file, \
                 {:?} in the model config.json describes",
                loaded.get(first),
                expected.get(first)
            ),
        });
    }
    Ok(model)
}

/// The file in each checkpoint folder listing the saved model's parameters.
const PARAMS_FILE: &str = "model.json";

/// A model's parameters, by path (`encoder.blocks.0.conv.weight`) and shape, in visiting order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ParamList {
    parameters: Vec<(String, Vec<usize>)>,
}

impl ParamList {
    fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        struct Named {
            path: Vec<String>,
            parameters: Vec<(String, Vec<usize>)>,
        }
        impl<B: Backend> burn::module::ModuleVisitor<B> for Named {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(
                &mut self,
                param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
            ) {
                self.parameters
                    .push((self.path.join("."), param.dims().to_vec()));
            }
        }
        let mut named = Named {
            path: Vec::new(),
            parameters: Vec::new(),
        };
        module.visit(&mut named);
        Self {
            parameters: named.parameters,
        }
    }

    /// The first way `self` (saved) and `model` (built from the configuration) differ.
    fn difference(&self, model: &Self) -> Option<String> {
        let (saved, built) = (&self.parameters, &model.parameters);
        if let Some((s, b)) = saved.iter().zip(built).find(|(s, b)| s != b) {
            return Some(format!(
                "the file holds {} {:?} where the configuration builds {} {:?}",
                s.0, s.1, b.0, b.1
            ));
        }
        let common = saved.len().min(built.len());
        (saved.len() != built.len()).then(|| {
            let (which, first) = if saved.len() > built.len() {
                ("extra", &saved[common].0)
            } else {
                ("missing", &built[common].0)
            };
            format!(
                "the file holds {} parameters, the configuration builds {} (the first {which} \
                 one: {first})",
                saved.len(),
                built.len()
            )
        })
    }
}

/// The shapes of a module's parameters, in visiting order.
fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
        ) {
            self.0.push(param.dims().to_vec());
        }
    }
    let mut shapes = Shapes(Vec::new());
    module.visit(&mut shapes);
    shapes.0
}

/// Loads a checkpoint's optimizer record.
pub fn load_optimizer<B: Backend, R: burn::record::Record<B>>(
    dir: &Path,
    device: &B::Device,
) -> Result<R> {
    let path = dir.join("optimizer.bin");
    CheckpointRecorder::new()
        .load(dir.join("optimizer"), device)
        .map_err(|e| Error::Checkpoint {
            path,
            message: record_error(&e),
        })
}

/// What a record file that burn could not load is, in words (our own writes are atomic, so a
/// damaged file comes from a copy, a full disk or another program).
fn record_error(error: &burn::record::RecorderError) -> String {
    let fault = RecordFault::of(error);
    let text = fault.describe("this configuration");
    match fault {
        RecordFault::Other(_) => text,
        _ => format!("{text}; an earlier `step-*` checkpoint of the run may be intact"),
    }
}

#[cfg(test)]
mod tests {
    use super::ParamList;

    fn list(entries: &[(&str, &[usize])]) -> ParamList {
        ParamList {
            parameters: entries
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn parameter_lists_name_their_first_difference() {
        let a = list(&[("stem.weight", &[8, 3, 3, 3]), ("stem.bias", &[8])]);
        assert_eq!(a.difference(&a.clone()), None);
        let wider = list(&[("stem.weight", &[16, 3, 3, 3]), ("stem.bias", &[16])]);
        assert_eq!(
            a.difference(&wider).unwrap(),
            "the file holds stem.weight [8, 3, 3, 3] where the configuration builds stem.weight \
             [16, 3, 3, 3]"
        );
        let shorter = list(&[("stem.weight", &[8, 3, 3, 3])]);
        assert_eq!(
            a.difference(&shorter).unwrap(),
            "the file holds 2 parameters, the configuration builds 1 (the first extra one: \
             stem.bias)"
        );
        assert_eq!(
            shorter.difference(&a).unwrap(),
            "the file holds 1 parameters, the configuration builds 2 (the first missing one: \
             stem.bias)"
        );
    }
}
