//! `classify replicate`: every method over every fold or seed of a task, resumable (finished
//! runs are kept and skipped), then the Table-2 style report.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use daam::DaamBackend;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::finetune::{raw_stores, run_lora, FinetuneOptions, LoraMethod};
use crate::head::{DatHeadConfig, HeadKind, ParamCount};
use crate::out_folder::check_replication_out;
use crate::protocol::{plan_runs, RunPlan, Stores, StoresFingerprint};
use crate::report::{build_report, write_atomic, Report};
use crate::train::{train_run, Precision, Protocol, RunData, RunObserver, Task, TrainSettings};

/// What `classify replicate` runs.
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// The task (decides the protocol).
    pub task: Task,
    /// A store (folds) or a folder with `train/` and `test/` stores (seeds).
    pub embeddings: PathBuf,
    /// Heads to train.
    pub methods: Vec<HeadKind>,
    /// Output folder: `runs/<method>/<run>/`, the report files.
    pub out: PathBuf,
    /// Training settings (the task's defaults unless overridden).
    pub settings: TrainSettings,
    /// Number of seeded runs instead of the task's (5 CIFAR-100, 3 AG News).
    pub runs: Option<usize>,
    /// Encoder layers to keep (Importance Factor ablation); all when `None`.
    pub layers: Option<Vec<usize>>,
    /// LoRA / LoRA+ baselines to run on the same runs (they need `finetune`).
    pub lora_methods: Vec<LoraMethod>,
    /// The encoder and raw data the LoRA baselines fine-tune.
    pub finetune: Option<FinetuneOptions>,
}

/// What `replicate.json` records of a replication, so reports can find its runs' data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationRecord {
    /// Task.
    pub task: Task,
    /// The embeddings folder.
    pub embeddings: PathBuf,
    /// Methods asked for.
    pub methods: Vec<HeadKind>,
    /// Settings of every run (each run's seed is `seed + run index`, wrapping past `u64::MAX` to 0).
    pub settings: TrainSettings,
    /// Seeded-run count override.
    pub runs: Option<usize>,
    /// Layers kept.
    pub layers: Option<Vec<usize>>,
    /// LoRA baselines asked for.
    #[serde(default)]
    pub lora_methods: Vec<LoraMethod>,
    /// Their encoder and data.
    #[serde(default)]
    pub finetune: Option<FinetuneOptions>,
    /// What identifies the content of the stores the runs were trained on; `None` only in a
    /// `replicate.json` written before it was recorded.
    #[serde(default)]
    pub stores: Option<StoresFingerprint>,
}

/// How the stores a replication recorded compare with the stores at hand
/// ([`ReplicationRecord::compare_stores`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StoresCheck {
    /// The same items and features (the folder may have moved).
    Same,
    /// The record predates store fingerprints: nothing to compare with.
    Unrecorded,
    /// Other content: each difference as `path: recorded → now`.
    Changed(Vec<String>),
}

impl ReplicationRecord {
    /// Reads `dir/replicate.json`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Json`] naming the file.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("replicate.json");
        let text = std::fs::read_to_string(&path).map_err(crate::error::io_error(&path))?;
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
    }

    /// Compares the stores the replication recorded with `now`, the fingerprint of the stores
    /// at hand.
    pub fn compare_stores(&self, now: &StoresFingerprint) -> StoresCheck {
        match &self.stores {
            None => StoresCheck::Unrecorded,
            Some(recorded) if recorded == now => StoresCheck::Same,
            Some(recorded) => StoresCheck::Changed(daam::settings_diff::differences(recorded, now)),
        }
    }
}

/// Reads a run's `head.json` in `run_dir` and checks it builds a head that fits the
/// replication: positive sizes, the method the run is filed under, and the layers, width and
/// classes of its stores (a hand-edited or foreign file would otherwise fail deep inside the
/// model).
///
/// # Errors
/// [`Error::Io`] or [`Error::Json`] naming the file; [`Error::Store`] naming the file and the
/// field that does not fit.
pub fn read_run_head(
    run_dir: &Path,
    method: &str,
    num_layers: usize,
    stores: &Stores,
) -> Result<DatHeadConfig> {
    let path = run_dir.join("head.json");
    let text = std::fs::read_to_string(&path).map_err(crate::error::io_error(&path))?;
    let head: DatHeadConfig = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    let bad = |message: String| Error::Store {
        path: path.clone(),
        message,
    };
    head.check().map_err(bad)?;
    if head.kind.name() != method {
        return Err(bad(format!(
            "kind is `{}`, but the run is filed under method `{method}`",
            head.kind.name()
        )));
    }
    for (field, got, expected, what) in [
        ("num_layers", head.num_layers, num_layers, "layers"),
        (
            "d_model",
            head.d_model,
            stores.train.d_model(),
            "features per layer",
        ),
        (
            "num_classes",
            head.num_classes,
            stores.train.class_names().len(),
            "classes",
        ),
    ] {
        if got != expected {
            return Err(bad(format!(
                "{field} is {got}, but the replication's store has {expected} {what}"
            )));
        }
    }
    Ok(head)
}

/// What a finished run leaves in `result.json` (its presence marks the run done).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Head name.
    pub method: String,
    /// Run label.
    pub run: String,
    /// Seed.
    pub seed: u64,
    /// Parameter counts of the head.
    pub params: ParamCount,
    /// Items trained on, held out as dev, validated on.
    pub items: [usize; 3],
    /// Epochs trained.
    pub epochs: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Why a replication in `precision` cannot run `lora_methods`, if it cannot: mixed precision
/// is for the DAT heads; the LoRA baselines train the encoder in f32.
pub fn precision_conflict(precision: Precision, lora_methods: &[LoraMethod]) -> Option<String> {
    (precision != Precision::F32 && !lora_methods.is_empty()).then(|| {
        format!(
            "--precision {} applies to the DAT heads; the LoRA baselines train the encoder in \
             f32: run them in a replication of their own",
            precision.name()
        )
    })
}

/// Checks what can be checked of `options` without the stores: the training settings, the
/// run count, methods and layers named twice, and the LoRA methods' needs.
///
/// # Errors
/// [`Error::InvalidSetting`] naming the option.
pub fn check_options(options: &ReplicateOptions) -> Result<()> {
    options
        .settings
        .validate()
        .map_err(|message| invalid("training settings", message))?;
    if let Some(message) = precision_conflict(options.settings.precision, &options.lora_methods) {
        return Err(invalid("--precision", message));
    }
    if options.runs == Some(0) {
        return Err(invalid("--runs", "must be at least 1, got 0"));
    }
    if let (Some(runs), Protocol::GroupFolds) = (options.runs, options.task.protocol()) {
        return Err(invalid(
            "--runs",
            format!(
                "{runs} given, but {} runs leave-one-group-out folds: one per group (session) \
                 of the store, as many as it has groups; --runs sets the number of seeded runs \
                 of cifar100 (5 by default) and agnews (3)",
                options.task.name()
            ),
        ));
    }
    let names: Vec<String> = options
        .methods
        .iter()
        .map(|k| k.name().to_owned())
        .chain(options.lora_methods.iter().map(LoraMethod::name))
        .collect();
    if let Some(twice) = first_repeated(&names) {
        return Err(invalid(
            "--methods",
            format!("`{twice}` is named twice: each method runs once"),
        ));
    }
    if options.methods.is_empty() && options.lora_methods.is_empty() {
        return Err(invalid("--methods", "no method given"));
    }
    if let Some(layers) = &options.layers {
        if layers.is_empty() {
            return Err(invalid("--layers", "no layer given"));
        }
        if let Some(twice) = first_repeated(layers) {
            return Err(invalid("--layers", format!("layer {twice} is named twice")));
        }
    }
    if !options.lora_methods.is_empty() && options.finetune.is_none() {
        return Err(invalid(
            "--methods",
            "LoRA methods fine-tune the encoder: give its weights and the raw data \
             (--encoder, --weights, --data)",
        ));
    }
    if options.layers.is_some() && !options.lora_methods.is_empty() {
        return Err(invalid(
            "--layers",
            "--layers selects store layers for the DAT heads; LoRA methods use the whole \
             encoder",
        ));
    }
    Ok(())
}

/// The first element of `items` that an earlier one equals.
fn first_repeated<T: PartialEq>(items: &[T]) -> Option<&T> {
    items
        .iter()
        .enumerate()
        .find(|(i, item)| items[..*i].contains(item))
        .map(|(_, item)| item)
}

/// Runs every method over every run of the task, skipping runs whose `result.json` exists,
/// then writes and returns the report.
///
/// # Errors
/// Store errors, a head that does not fit the store, training errors
/// ([`Error::Interrupted`] leaves the finished runs in place), I/O failures.
pub fn replicate<B>(
    options: &ReplicateOptions,
    device: &B::Device,
    observer: &mut dyn RunObserver,
) -> Result<Report>
where
    B: AutodiffBackend + DaamBackend,
    B::InnerBackend: DaamBackend,
{
    check_options(options)?;
    check_replication_out(&options.out, &options.embeddings)?;
    let protocol = options.task.protocol();
    // Opening validates every item: a store `classify validate` rejects is refused here.
    let stores = Stores::open(&options.embeddings, protocol)?;
    let num_layers = match &options.layers {
        Some(layers) => {
            if let Some(&bad) = layers.iter().find(|&&l| l >= stores.train.num_layers()) {
                return Err(Error::Store {
                    path: options.embeddings.clone(),
                    message: format!(
                        "layer {bad} requested, the store has {} (0-based)",
                        stores.train.num_layers()
                    ),
                });
            }
            layers.len()
        }
        None => stores.train.num_layers(),
    };
    for &kind in &options.methods {
        kind.fits(num_layers, stores.train.d_model())
            .map_err(|message| Error::Store {
                path: options.embeddings.clone(),
                message,
            })?;
    }
    if let Some(finetune) = &options.finetune {
        finetune.check(options.task, &options.lora_methods, &stores)?;
    }
    let plans = plan_runs(&stores, protocol, &options.settings, options.runs);
    // Everything is checked: only now is anything written to `out`.
    crate::error::out_is_a_folder(&options.out)?;
    std::fs::create_dir_all(&options.out).map_err(crate::error::io_error(&options.out))?;
    let _lock = crate::error::lock_out(&options.out, "the replication")?;
    let record = ReplicationRecord {
        task: options.task,
        // Absolute: `report` runs from anywhere.
        embeddings: options
            .embeddings
            .canonicalize()
            .unwrap_or_else(|_| options.embeddings.clone()),
        methods: options.methods.clone(),
        settings: options.settings.clone(),
        runs: options.runs,
        layers: options.layers.clone(),
        lora_methods: options.lora_methods.clone(),
        finetune: options.finetune.clone(),
        stores: Some(stores.fingerprint()),
    };
    let path = options.out.join("replicate.json");
    if path.exists() {
        let stored = ReplicationRecord::read(&options.out)?;
        /// What a rerun into the same folder must keep.
        #[derive(PartialEq, Serialize)]
        struct Kept {
            task: Task,
            settings: TrainSettings,
            layers: Option<Vec<usize>>,
        }
        let kept = |r: &ReplicationRecord| Kept {
            task: r.task,
            settings: r.settings.clone(),
            layers: r.layers.clone(),
        };
        if kept(&stored) != kept(&record) {
            let changed = daam::settings_diff::differences(&kept(&stored), &kept(&record));
            return Err(Error::Store {
                path,
                message: format!(
                    "this --out folder holds a replication with other settings ({}); choose \
                     another --out",
                    changed.join("; ")
                ),
            });
        }
        // Finished runs are kept by name (`runs/mha/fold-1`): on another store they would be
        // reported as if trained on it. The path alone cannot tell: a store regenerated in
        // place keeps it, and one moved keeps its content.
        match stored.compare_stores(&stores.fingerprint()) {
            StoresCheck::Same => {}
            // Written before fingerprints were recorded: refusing would strand every older
            // replication, and nothing can be compared, so its runs are kept as before, with a
            // note; the fingerprint recorded now guards the reruns to come.
            StoresCheck::Unrecorded => {
                // Nothing recorded to compare but the item counts each finished run wrote: a
                // run on another store mostly split another number of items.
                if let Some(mismatch) = legacy_run_mismatch(&options.out.join("runs"), &plans)? {
                    return Err(Error::Store {
                        path,
                        message: format!(
                            "this --out folder holds a replication of another store (written \
                             by an older classify, without a fingerprint of its store): {mismatch}; \
                             its finished runs would be reported as runs on --embeddings {}: \
                             choose another --out",
                            options.embeddings.display()
                        ),
                    });
                }
                observer.on_message(&format!(
                    "note: {} records no fingerprint of its store (written by an older classify): \
                 its finished runs are kept on trust that they were trained on {}; the \
                 store's fingerprint is recorded from now on",
                    path.display(),
                    options.embeddings.display()
                ));
            }
            StoresCheck::Changed(changes) => {
                return Err(Error::Store {
                    path,
                    message: format!(
                        "this --out folder holds a replication of another store: its runs were \
                         trained on {} as it was then, and --embeddings {} holds other data \
                         ({}); its finished runs would be reported as runs on this store: \
                         choose another --out",
                        stored.embeddings.display(),
                        options.embeddings.display(),
                        changes.join("; ")
                    ),
                });
            }
        }
    }
    for warning in stores.warnings() {
        observer.on_message(&warning);
    }
    let mut planned: Vec<String> = options.methods.iter().map(|k| k.name().into()).collect();
    planned.extend(options.lora_methods.iter().map(|m| m.name()));
    let labels: Vec<&str> = plans.iter().map(|p| p.label.as_str()).collect();
    if let Some(note) = runs_outside_plan(&options.out.join("runs"), &planned, &labels) {
        observer.on_message(&note);
    }
    let json = serde_json::to_string_pretty(&record).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, json.as_bytes())?;
    let total = plans.len() * (options.methods.len() + options.lora_methods.len());
    let mut index = 0;
    for &kind in &options.methods {
        for plan in &plans {
            index += 1;
            let dir = options.out.join("runs").join(kind.name()).join(&plan.label);
            if dir.join("result.json").exists() {
                observer.on_message(&format!(
                    "[{index}/{total}] {} {}: done before, kept",
                    kind.name(),
                    plan.label
                ));
                continue;
            }
            observer.on_run_start(kind.name(), &plan.label, index, total);
            run_one::<B>(
                kind, plan, &stores, num_layers, options, &dir, device, observer,
            )?;
        }
    }
    if let Some(finetune) = &options.finetune {
        let mut raw = None;
        for &method in &options.lora_methods {
            for plan in &plans {
                index += 1;
                let name = method.name();
                let dir = options.out.join("runs").join(&name).join(&plan.label);
                if dir.join("result.json").exists() {
                    observer.on_message(&format!(
                        "[{index}/{total}] {name} {}: done before, kept",
                        plan.label
                    ));
                    continue;
                }
                if raw.is_none() {
                    raw = Some(raw_stores(&stores, options.task, finetune)?);
                }
                let raw = raw.as_ref().expect("opened above");
                observer.on_run_start(&name, &plan.label, index, total);
                run_lora::<B>(
                    method,
                    plan,
                    raw,
                    finetune,
                    &options.settings,
                    &dir,
                    device,
                    observer,
                )?;
            }
        }
    }
    let report = build_report(&options.out, options.task.name())?;
    report.write(&options.out)?;
    Ok(report)
}

/// The first finished run in `runs_dir` (any method) whose `result.json` records other item
/// counts (train, dev, validation) than this replication's plan for its label, described;
/// `None` when every one matches.
///
/// # Errors
/// An unreadable or malformed `result.json`, naming it.
fn legacy_run_mismatch(runs_dir: &Path, plans: &[RunPlan]) -> Result<Option<String>> {
    let Ok(methods) = std::fs::read_dir(runs_dir) else {
        return Ok(None);
    };
    let mut methods: Vec<PathBuf> = methods.flatten().map(|e| e.path()).collect();
    methods.sort();
    for method in methods {
        for plan in plans {
            let path = method.join(&plan.label).join("result.json");
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(crate::error::io_error(&path))?;
            #[derive(Deserialize)]
            struct Items {
                items: [usize; 3],
            }
            let recorded: Items = serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
            let planned = [plan.train.len(), plan.dev.len(), plan.val.len()];
            if recorded.items != planned {
                return Ok(Some(format!(
                    "{} trained on {} items, held out {} as dev and validated on {}, where this \
                     store gives {} run {} / {} / {}",
                    path.display(),
                    recorded.items[0],
                    recorded.items[1],
                    recorded.items[2],
                    plan.label,
                    planned[0],
                    planned[1],
                    planned[2]
                )));
            }
        }
    }
    Ok(None)
}

/// A note naming the finished runs in `runs_dir` that this replication does not plan (an
/// earlier `--runs 5` under a rerun with `--runs 3`, or a method not named now): the report is
/// built from every run in the folder, so they are in it. `None` when there are none.
fn runs_outside_plan(runs_dir: &Path, methods: &[String], labels: &[&str]) -> Option<String> {
    let mut outside = Vec::new();
    for method in std::fs::read_dir(runs_dir).ok()?.flatten() {
        let name = method.file_name().to_string_lossy().into_owned();
        let Ok(runs) = std::fs::read_dir(method.path()) else {
            continue;
        };
        let mut extra: Vec<String> = runs
            .flatten()
            .filter(|run| run.path().join("result.json").is_file())
            .map(|run| run.file_name().to_string_lossy().into_owned())
            .filter(|label| !(methods.contains(&name) && labels.contains(&label.as_str())))
            .collect();
        if !extra.is_empty() {
            extra.sort();
            outside.push(format!("{name} ({})", extra.join(", ")));
        }
    }
    if outside.is_empty() {
        return None;
    }
    outside.sort();
    Some(format!(
        "note: this --out folder also holds finished runs this replication does not plan: {}; \
         the report includes them (a method with fewer runs than the table shows its count)",
        outside.join("; ")
    ))
}

#[allow(clippy::too_many_arguments)]
fn run_one<B>(
    kind: HeadKind,
    plan: &RunPlan,
    stores: &Stores,
    num_layers: usize,
    options: &ReplicateOptions,
    dir: &Path,
    device: &B::Device,
    observer: &mut dyn RunObserver,
) -> Result<()>
where
    B: AutodiffBackend + DaamBackend,
    B::InnerBackend: DaamBackend,
{
    let head = DatHeadConfig::new(
        kind,
        num_layers,
        stores.train.d_model(),
        stores.train.class_names().len(),
    );
    let settings = TrainSettings {
        seed: plan.seed,
        ..options.settings.clone()
    };
    let data = RunData {
        train: &stores.train,
        train_indices: plan.train.clone(),
        dev_indices: plan.dev.clone(),
        val: stores.val_store(),
        val_indices: plan.val.clone(),
        layers: options.layers.clone(),
    };
    let started = std::time::Instant::now();
    std::fs::create_dir_all(dir).map_err(crate::error::io_error(dir))?;
    let head_json = serde_json::to_string_pretty(&head).map_err(|source| Error::Json {
        path: dir.join("head.json"),
        source,
    })?;
    write_atomic(&dir.join("head.json"), head_json.as_bytes())?;
    let records = train_run::<B>(&head, &settings, &data, dir, device, observer)?;
    let result = RunResult {
        method: kind.name().into(),
        run: plan.label.clone(),
        seed: plan.seed,
        params: ParamCount::of_config(&head),
        items: [plan.train.len(), plan.dev.len(), plan.val.len()],
        epochs: records.len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = dir.join("result.json");
    let json = serde_json::to_string_pretty(&result).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, json.as_bytes())
}
