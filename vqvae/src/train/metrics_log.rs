//! The per-step metrics CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StepReport;
use crate::error::{Error, Result};

const HEADER: &str = "step,epoch,loss,reconstruction,codebook,commitment,usage,perplexity,\
                      images_per_second,skipped_images";

/// Appends one row per step to `metrics.csv`.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens the log for a run resumed after `step` steps: rows of later steps (written after
    /// the checkpoint a crash or Ctrl-C fell back to) are dropped, so the file matches the run.
    pub fn open(path: &Path, step: u64) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let kept: Vec<String> = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .skip(1)
                .filter(|line| {
                    line.split(',')
                        .next()
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|s| s <= step)
                })
                .map(str::to_string)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let mut contents = format!("{HEADER}\n");
        for line in kept {
            contents.push_str(&line);
            contents.push('\n');
        }
        super::checkpoint::write_atomic(path, contents.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends a step.
    pub fn append(&mut self, r: &StepReport) -> Result<()> {
        writeln!(
            self.file,
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.4},{:.2},{:.2},{}",
            r.step,
            r.epoch,
            r.loss,
            r.reconstruction,
            r.codebook,
            r.commitment,
            r.usage,
            r.perplexity,
            r.images_per_second,
            r.skipped_images
        )
        .map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}
