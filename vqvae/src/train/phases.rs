//! Per-phase wall time of a training step, for finding where a step's time goes (or where a
//! step that never ends is stuck) on any backend.

use std::time::Instant;

use burn::tensor::backend::Backend;

/// Per-phase wall time of one training step, on only where `RUST_LOG` enables debug events for
/// `vqvae::train` (`RUST_LOG=vqvae::train=debug`): each mark waits for the device ([`Backend::sync`])
/// so that a phase's GPU work is counted in it, and a step that never finishes shows which phase
/// it is stuck in (the mark is logged before the next phase starts).
pub(crate) struct Phases<'a, B: Backend> {
    device: &'a B::Device,
    enabled: bool,
    last: Instant,
    marks: Vec<(&'static str, f64)>,
}

impl<'a, B: Backend> Phases<'a, B> {
    pub(crate) fn new(device: &'a B::Device) -> Self {
        Self {
            device,
            enabled: tracing::enabled!(tracing::Level::DEBUG),
            last: Instant::now(),
            marks: Vec::new(),
        }
    }

    pub(crate) fn mark(&mut self, phase: &'static str) {
        if !self.enabled {
            return;
        }
        if let Err(error) = B::sync(self.device) {
            tracing::warn!("device sync after {phase} failed: {error:?}");
        }
        let seconds = self.last.elapsed().as_secs_f64();
        tracing::debug!("{phase} done in {seconds:.3} s");
        self.marks.push((phase, seconds));
        self.last = Instant::now();
    }

    pub(crate) fn report(&self, step: u64) {
        if self.enabled {
            let phases: Vec<String> = self
                .marks
                .iter()
                .map(|(phase, s)| format!("{phase} {:.1} ms", s * 1e3))
                .collect();
            tracing::debug!("step {step} phases: {}", phases.join(", "));
        }
    }
}
