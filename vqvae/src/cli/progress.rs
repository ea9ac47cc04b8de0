//! indicatif progress bars for training (plain lines when stderr is not a terminal).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use vqvae::train::{StepReport, TrainObserver};

/// Draws a bar with the loss terms, codebook usage, throughput and ETA.
pub struct Bars {
    bar: Option<ProgressBar>,
    every: u64,
}

impl Bars {
    /// A bar on a terminal; periodic lines otherwise.
    pub fn new() -> Self {
        Self {
            bar: None,
            every: 1,
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn summary(r: &StepReport) -> String {
    format!(
        "loss {:.4} (rec {:.4} cb {:.4} com {:.4}) usage {:.0}% ppl {:.0} lr {:.1e} {:.1} img/s{}",
        r.loss,
        r.reconstruction,
        r.codebook,
        r.commitment,
        100.0 * r.usage,
        r.perplexity,
        r.learning_rate,
        r.images_per_second,
        if r.skipped_images > 0 {
            format!(" skipped {}", r.skipped_images)
        } else {
            String::new()
        }
    )
}

impl TrainObserver for Bars {
    fn on_start(&mut self, start_step: u64, total_steps: u64) {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} steps (ETA {eta}) {msg}",
                )
                .expect("a valid template"),
            );
            bar.set_position(start_step);
            bar.reset_eta();
            self.bar = Some(bar);
        } else {
            self.every = (total_steps / 20).max(1);
            eprintln!("training steps {start_step}..{total_steps}");
        }
    }

    fn on_step(&mut self, r: &StepReport) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.step);
                bar.set_message(summary(r));
            }
            None if r.step.is_multiple_of(self.every) || r.step == r.total_steps => {
                eprintln!(
                    "step {}/{} epoch {} {}",
                    r.step,
                    r.total_steps,
                    r.epoch,
                    summary(r)
                );
            }
            None => {}
        }
    }

    fn on_event(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}
