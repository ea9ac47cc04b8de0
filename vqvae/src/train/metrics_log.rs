//! The per-step metrics CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::StepReport;
use crate::error::{Error, Result};

const HEADER: &str = "step,epoch,loss,reconstruction,codebook,commitment,usage,perplexity,\
                      images_per_second,skipped_images,learning_rate,restarted_codes";

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
        // Rows of logs written before `learning_rate` or `restarted_codes` existed have fewer
        // fields: they get empty last fields.
        let columns = HEADER.split(',').count();
        for line in kept {
            contents.push_str(&line);
            for _ in line.split(',').count()..columns {
                contents.push(',');
            }
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
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.4},{:.2},{:.2},{},{:.3e},{}",
            r.step,
            r.epoch,
            r.loss,
            r.reconstruction,
            r.codebook,
            r.commitment,
            r.usage,
            r.perplexity,
            r.images_per_second,
            r.skipped_images,
            r.learning_rate,
            r.restarted_codes
        )
        .map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(step: u64) -> StepReport {
        StepReport {
            step,
            total_steps: 10,
            epoch: 0,
            loss: 0.5,
            reconstruction: 0.25,
            codebook: 0.125,
            commitment: 0.125,
            usage: 1.0,
            perplexity: 3.0,
            images_per_second: 10.0,
            skipped_images: 0,
            learning_rate: 1e-3,
            restarted_codes: 0,
        }
    }

    #[test]
    fn reopening_drops_later_rows_and_pads_rows_of_older_logs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        // A log written before the learning_rate column existed.
        std::fs::write(
            &path,
            "step,epoch,loss,reconstruction,codebook,commitment,usage,perplexity,\
             images_per_second,skipped_images\n\
             1,0,0.5,0.25,0.125,0.125,1.0,3.0,10.0,0\n\
             2,0,0.5,0.25,0.125,0.125,1.0,3.0,10.0,0\n\
             3,0,0.5,0.25,0.125,0.125,1.0,3.0,10.0,0\n",
        )
        .unwrap();
        let mut log = MetricsLog::open(&path, 2).unwrap();
        log.append(&report(3)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(lines.len(), 4, "{text}");
        // The old rows get empty learning_rate and restarted_codes fields.
        assert!(
            lines[1].starts_with("1,") && lines[1].ends_with(",0,,"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("3,") && lines[3].ends_with(",0,1.000e-3,0"),
            "{text}"
        );
        assert!(lines.iter().all(|l| l.split(',').count() == 12), "{text}");
    }
}
