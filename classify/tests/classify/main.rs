//! The `classify` integration tests, in one test binary (one link of burn's generic code instead
//! of one per file): the binary end to end, head training and the protocols, and the embedding
//! extraction and LoRA baselines on the `encoders` crate's tiny checkpoints.

mod cli;
mod extract;
mod training;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Starts `classify ARGS` with its output captured.
pub(crate) fn spawn_classify(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start classify")
}

/// Waits (at most 120 s) until `ready()` while `child` runs.
pub(crate) fn wait_until(child: &mut Child, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the command ended before it could be stopped"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`-INT`, `-TERM`) to `child` and returns its output.
#[cfg(unix)]
pub(crate) fn signal(child: Child, signal: &str) -> Output {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

/// Checks that commands are refused cleanly, collecting every case that is not (so one run
/// shows each case that fails, not only the first).
#[derive(Default)]
pub(crate) struct Refusals {
    failures: Vec<String>,
}

impl Refusals {
    /// Records a failure unless `output` is an error with `expected` in its message, no panic,
    /// and nothing at `nothing_at`.
    pub(crate) fn check(&mut self, output: &Output, expected: &str, nothing_at: &Path) {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let problem = if output.status.success() {
            Some("succeeded")
        } else if text.contains("panicked") {
            Some("panicked")
        } else if !text.contains(expected) {
            Some("other message")
        } else if nothing_at.exists() {
            Some("wrote its output")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.failures.push(format!(
                "{problem} (expected `{expected}`, nothing at {}):\n{text}",
                nothing_at.display()
            ));
        }
    }

    /// Records `failure` unless `ok`.
    pub(crate) fn expect(&mut self, ok: bool, failure: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(failure());
        }
    }

    /// Panics listing every failed case.
    pub(crate) fn assert_all(self) {
        assert!(
            self.failures.is_empty(),
            "{} case(s) not refused as expected:\n\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }
}
