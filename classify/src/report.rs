//! Table-2 style reports, recomputed from the per-run metrics CSVs: per fold/run accuracy and
//! mean ± population σ for every method, under both epoch-selection protocols.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{io_error, Error, Result};
use crate::head::HeadKind;
use crate::train::{read_metrics, EpochRecord};

/// A run's validation accuracy at one chosen epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 1-based epoch chosen.
    pub epoch: usize,
    /// Validation accuracy (WA) at that epoch.
    pub accuracy: f64,
    /// Validation mean per-class recall (UA) at that epoch.
    pub unweighted_accuracy: f64,
}

/// One run scored under both protocols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunScore {
    /// `fold-k` or `seed-k`.
    pub label: String,
    /// The paper's protocol: the epoch with the best validation accuracy.
    pub best_on_val: Score,
    /// The epoch with the best dev accuracy (absent without a dev split).
    pub chosen_on_dev: Option<Score>,
}

/// Scores a run from its epoch records; `None` when it has none.
pub fn score_run(label: &str, records: &[EpochRecord]) -> Option<RunScore> {
    let pick = |key: fn(&EpochRecord) -> f64| {
        records
            .iter()
            .filter(|r| key(r).is_finite())
            .fold(None::<&EpochRecord>, |best, r| match best {
                Some(b) if key(b) >= key(r) => Some(b),
                _ => Some(r),
            })
            .map(|r| Score {
                epoch: r.epoch,
                accuracy: r.val_accuracy,
                unweighted_accuracy: r.val_unweighted_accuracy,
            })
    };
    Some(RunScore {
        label: label.to_string(),
        best_on_val: pick(|r| r.val_accuracy)?,
        chosen_on_dev: pick(|r| r.dev_accuracy),
    })
}

/// Mean and population standard deviation (ddof 0, as the paper's σ).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A method's runs and summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRow {
    /// Head name.
    pub method: String,
    /// Its runs, in label order.
    pub runs: Vec<RunScore>,
    /// Mean and σ of the best-on-validation accuracies.
    pub best_on_val: (f64, f64),
    /// Mean and σ of the dev-chosen accuracies (NaN without dev splits).
    pub chosen_on_dev: (f64, f64),
    /// Mean and σ of the best-on-validation UA.
    pub best_on_val_unweighted: (f64, f64),
}

/// A replication report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Task name.
    pub task: String,
    /// One row per method.
    pub rows: Vec<MethodRow>,
    /// Runs left out of the table because they have not finished (no `result.json`: an
    /// interrupted run): `method/run (k epochs logged)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unfinished: Vec<String>,
}

fn run_order(label: &str) -> (String, usize) {
    match label.rsplit_once('-') {
        Some((prefix, n)) => (prefix.to_string(), n.parse().unwrap_or(usize::MAX)),
        None => (label.to_string(), 0),
    }
}

/// Builds the report of the replication in `out` from `out/runs/<method>/<run>/metrics.csv`.
///
/// # Errors
/// Unreadable folders or malformed CSVs (naming the file and line).
pub fn build_report(out: &Path, task: &str) -> Result<Report> {
    let runs_dir = out.join("runs");
    let mut methods: Vec<String> = list_dirs(&runs_dir)?;
    methods.sort_by_key(|m| {
        HeadKind::from_name(m)
            .and_then(|k| HeadKind::ALL.iter().position(|&a| a == k))
            .unwrap_or(usize::MAX)
    });
    let mut rows = Vec::new();
    let mut unfinished = Vec::new();
    for method in methods {
        let mut labels = list_dirs(&runs_dir.join(&method))?;
        labels.sort_by_key(|l| run_order(l));
        let mut runs = Vec::new();
        for label in labels {
            let run = runs_dir.join(&method).join(&label);
            let metrics = run.join("metrics.csv");
            if !metrics.exists() {
                continue;
            }
            let records = read_metrics(&metrics)?;
            // `result.json` marks a finished run (as `replicate` reads it): an interrupted
            // one's best epoch so far is no result.
            if !run.join("result.json").is_file() {
                unfinished.push(format!(
                    "{method}/{label} ({} epoch{} logged)",
                    records.len(),
                    if records.len() == 1 { "" } else { "s" }
                ));
                continue;
            }
            if let Some(score) = score_run(&label, &records) {
                runs.push(score);
            }
        }
        if runs.is_empty() {
            continue;
        }
        let collect = |f: &dyn Fn(&RunScore) -> Option<f64>| -> Vec<f64> {
            runs.iter().filter_map(f).collect()
        };
        let val = collect(&|r| Some(r.best_on_val.accuracy));
        let dev = collect(&|r| r.chosen_on_dev.map(|s| s.accuracy));
        let ua = collect(&|r| Some(r.best_on_val.unweighted_accuracy));
        rows.push(MethodRow {
            method,
            best_on_val: mean_std(&val),
            chosen_on_dev: if dev.len() == runs.len() {
                mean_std(&dev)
            } else {
                (f64::NAN, f64::NAN)
            },
            best_on_val_unweighted: mean_std(&ua),
            runs,
        });
    }
    Ok(Report {
        task: task.to_string(),
        rows,
        unfinished,
    })
}

fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}", 100.0 * v)
    } else {
        "–".into()
    }
}

fn pm((mean, std): (f64, f64)) -> String {
    if mean.is_finite() {
        format!("{:.1} ± {:.2}", 100.0 * mean, 100.0 * std)
    } else {
        "–".into()
    }
}

impl Report {
    /// The report as markdown: one table per protocol (and UA for the paper's protocol).
    pub fn markdown(&self) -> String {
        // One column per run label any method has, cells placed by label: a method missing a
        // run (an unfinished rerun, a later `--runs 3` beside an earlier 5) shows "–" there
        // instead of shifting its later runs left under the wrong fold or seed.
        let mut columns: Vec<&str> = Vec::new();
        for run in self.rows.iter().flat_map(|r| &r.runs) {
            if !columns.contains(&run.label.as_str()) {
                columns.push(&run.label);
            }
        }
        columns.sort_by_key(|l| run_order(l));
        let labels: Vec<String> = columns.iter().map(|l| short_label(l)).collect();
        let partial = self.rows.iter().any(|r| r.runs.len() < columns.len());
        let mut md = format!("# {} replication\n\n", self.task);
        let mut table = |title: &str,
                         cell: &dyn Fn(&RunScore) -> Option<f64>,
                         summary: &dyn Fn(&MethodRow) -> (f64, f64)| {
            let _ = writeln!(md, "## {title}\n");
            let _ = writeln!(md, "| method | {} | mean ± σ |", labels.join(" | "));
            let _ = writeln!(md, "|---|{}---|", "---|".repeat(labels.len()));
            for row in &self.rows {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|&label| {
                        row.runs
                            .iter()
                            .find(|r| r.label == label)
                            .and_then(cell)
                            .map_or("–".into(), pct)
                    })
                    .collect();
                let count = if row.runs.len() < columns.len() {
                    format!(" (n = {})", row.runs.len())
                } else {
                    String::new()
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {}{count} |",
                    row.method,
                    cells.join(" | "),
                    pm(summary(row))
                );
            }
            md.push('\n');
        };
        table(
            "Accuracy (%), epoch with the best validation accuracy (the paper's protocol)",
            &|r| Some(r.best_on_val.accuracy),
            &|row| row.best_on_val,
        );
        table(
            "Accuracy (%), epoch chosen on a dev split carved from the training items",
            &|r| r.chosen_on_dev.map(|s| s.accuracy),
            &|row| row.chosen_on_dev,
        );
        table(
            "Unweighted accuracy (mean per-class recall, %), paper's protocol",
            &|r| Some(r.best_on_val.unweighted_accuracy),
            &|row| row.best_on_val_unweighted,
        );
        md.push_str("σ is the population standard deviation over runs, as in the paper.\n");
        if !self.unfinished.is_empty() {
            let _ = writeln!(
                md,
                "Not in the tables, not finished (interrupted; rerun `replicate` to finish them): \
                 {}.",
                self.unfinished.join(", ")
            );
        }
        if partial {
            md.push_str(
                "(n = k): the method has k of the table's runs; its mean ± σ is over those k \
                 only, so it is not comparable run for run with the full rows.\n",
            );
        }
        md
    }

    /// One CSV line per method and run.
    pub fn csv(&self) -> String {
        let mut csv = String::from(
            "method,run,best_val_epoch,best_val_accuracy,best_val_unweighted_accuracy,\
             dev_epoch,dev_chosen_accuracy\n",
        );
        for row in &self.rows {
            for r in &row.runs {
                let (de, da) = r.chosen_on_dev.map_or((String::new(), String::new()), |s| {
                    (s.epoch.to_string(), s.accuracy.to_string())
                });
                let _ = writeln!(
                    csv,
                    "{},{},{},{},{},{de},{da}",
                    row.method,
                    r.label,
                    r.best_on_val.epoch,
                    r.best_on_val.accuracy,
                    r.best_on_val.unweighted_accuracy
                );
            }
        }
        csv
    }

    /// Writes `report.md`, `report.csv` and `report.json` to `dir` (each atomically).
    ///
    /// # Errors
    /// I/O failures.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            path: dir.join("report.json"),
            source,
        })?;
        for (name, text) in [
            ("report.md", self.markdown()),
            ("report.csv", self.csv()),
            ("report.json", json),
        ] {
            write_atomic(&dir.join(name), text.as_bytes())?;
        }
        Ok(())
    }
}

fn short_label(label: &str) -> String {
    match run_order(label) {
        (p, n) if p == "fold" => format!("F{n}"),
        (p, n) if p == "seed" => format!("R{n}"),
        _ => label.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
///
/// # Errors
/// I/O failures, naming the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize, val: f64, dev: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0,
            learning_rate: 1e-4,
            val_accuracy: val,
            val_unweighted_accuracy: val / 2.0,
            dev_accuracy: dev,
            seconds: 0.1,
        }
    }

    #[test]
    fn protocols_pick_their_epochs() {
        let records = [rec(1, 0.5, 0.9), rec(2, 0.7, 0.6), rec(3, 0.6, 0.95)];
        let s = score_run("fold-1", &records).unwrap();
        assert_eq!(s.best_on_val.epoch, 2);
        assert_eq!(s.best_on_val.accuracy, 0.7);
        let dev = s.chosen_on_dev.unwrap();
        assert_eq!((dev.epoch, dev.accuracy), (3, 0.6));
        let no_dev = score_run("seed-1", &[rec(1, 0.5, f64::NAN)]).unwrap();
        assert!(no_dev.chosen_on_dev.is_none());
    }

    fn row(method: &str, runs: &[(&str, f64)]) -> MethodRow {
        let runs: Vec<RunScore> = runs
            .iter()
            .map(|&(label, acc)| score_run(label, &[rec(1, acc, f64::NAN)]).unwrap())
            .collect();
        let accs: Vec<f64> = runs.iter().map(|r| r.best_on_val.accuracy).collect();
        MethodRow {
            method: method.into(),
            best_on_val: mean_std(&accs),
            chosen_on_dev: (f64::NAN, f64::NAN),
            best_on_val_unweighted: mean_std(&accs),
            runs,
        }
    }

    #[test]
    fn cells_sit_under_their_own_run_and_partial_rows_say_how_many() {
        let report = Report {
            task: "cifar100".into(),
            rows: vec![
                row("daam-v1", &[("seed-1", 0.5), ("seed-3", 0.7)]),
                row("mha", &[("seed-1", 0.1), ("seed-2", 0.2), ("seed-3", 0.3)]),
            ],
            unfinished: Vec::new(),
        };
        let md = report.markdown();
        let line = |method: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {method} |")))
                .unwrap()
                .to_string()
        };
        assert!(md.contains("| method | R1 | R2 | R3 | mean ± σ |"), "{md}");
        // seed-3's 70 % under R3, not shifted left under R2.
        assert_eq!(
            line("daam-v1"),
            "| daam-v1 | 50.0 | – | 70.0 | 60.0 ± 10.00 (n = 2) |"
        );
        assert_eq!(line("mha"), "| mha | 10.0 | 20.0 | 30.0 | 20.0 ± 8.16 |");
        assert!(md.contains("(n = k): the method has k of the table's runs"));
        let full = Report {
            task: "cifar100".into(),
            rows: vec![row("mha", &[("seed-1", 0.1), ("seed-2", 0.2)])],
            unfinished: Vec::new(),
        };
        assert!(!full.markdown().contains("(n ="));
    }

    #[test]
    fn population_std_matches_the_paper() {
        // DAAMv1 on IEMOCAP: 67.2, 64.6, 68.1, 67.9, 69.0 -> 67.36 ± 1.495 (reported 67.4 ± 1.49).
        let (m, s) = mean_std(&[67.2, 64.6, 68.1, 67.9, 69.0]);
        assert!((m - 67.36).abs() < 1e-9);
        assert!((s - 1.4948).abs() < 1e-3, "{s}");
    }
}
