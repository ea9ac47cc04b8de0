//! The learning-rate schedule: linear warm-up, a constant phase, then an optional decay that
//! ends at the run's last step (warm-up / stable / decay).
//!
//! The rate is a pure function of the step and the run's length, so a resumed run follows the
//! same schedule as an uninterrupted one, and a finished run can be continued with a decay
//! phase of its own (`--resume --max-steps N --lr-decay cosine --decay-start S`).

use serde::{Deserialize, Serialize};

/// Shape of the decay phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrDecay {
    /// No decay: the rate stays at `learning_rate` after the warm-up.
    #[default]
    None,
    /// Half a cosine from `learning_rate` down to `final_fraction × learning_rate`.
    Cosine,
    /// A straight line from `learning_rate` down to `final_fraction × learning_rate`.
    Linear,
}

/// When and how the learning rate changes over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrSchedule {
    /// Steps of linear warm-up from `learning_rate / warmup_steps` to `learning_rate`; 0: none.
    pub warmup_steps: u64,
    /// Shape of the decay phase.
    pub decay: LrDecay,
    /// Step at which the decay begins (it ends at the run's last step); 0: right after the
    /// warm-up.
    pub decay_start: u64,
    /// Rate at the last step, as a fraction of `learning_rate`.
    pub final_fraction: f64,
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self {
            warmup_steps: 0,
            decay: LrDecay::None,
            decay_start: 0,
            final_fraction: 0.0,
        }
    }
}

impl LrSchedule {
    /// What in this schedule a run of `total_steps` steps never reaches: a warm-up longer than
    /// the run (the rate never gets to the base rate) and a decay that starts at or after its
    /// last step (no decay).
    pub fn notes(&self, total_steps: u64) -> Vec<String> {
        let mut notes = Vec::new();
        if self.warmup_steps > total_steps {
            notes.push(format!(
                "the warm-up ({} steps) is longer than the run ({total_steps} steps): the rate \
                 never reaches --lr",
                self.warmup_steps
            ));
        }
        if self.decay != LrDecay::None && self.decay_start >= total_steps {
            notes.push(format!(
                "the decay starts at step {}, at or after the run's last ({total_steps}): the \
                 rate does not decay",
                self.decay_start
            ));
        }
        notes
    }

    /// The rate of the step that follows `step` completed steps, in a run of `total_steps`.
    pub fn rate(&self, base: f64, step: u64, total_steps: u64) -> f64 {
        if step < self.warmup_steps {
            return base * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let start = self.decay_start.max(self.warmup_steps);
        if self.decay == LrDecay::None || step < start || total_steps <= start + 1 {
            return base;
        }
        // 0 at the first decayed step, 1 at the last step of the run.
        let t = ((step - start) as f64 / (total_steps - start - 1) as f64).min(1.0);
        let floor = base * self.final_fraction;
        let shape = match self.decay {
            LrDecay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * t).cos()),
            LrDecay::Linear => 1.0 - t,
            LrDecay::None => 1.0,
        };
        floor + (base - floor) * shape
    }

    /// Why the schedule is not usable, if it is not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(0.0..=1.0).contains(&self.final_fraction) {
            return Err(format!(
                "train.schedule.final_fraction ({}) must be in [0, 1]",
                self.final_fraction
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_the_run_never_reaches_are_noted() {
        let schedule = LrSchedule {
            warmup_steps: 100,
            decay: LrDecay::Cosine,
            decay_start: 50,
            final_fraction: 0.1,
        };
        assert!(schedule.notes(200).is_empty());
        let notes = schedule.notes(40);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("the warm-up (100 steps) is longer than the run (40 steps)"));
        assert!(notes[1].contains("the decay starts at step 50, at or after the run's last (40)"));
        assert!(LrSchedule::default().notes(1).is_empty());
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn default_is_constant() {
        let s = LrSchedule::default();
        for step in [0, 1, 50, 99, 1000] {
            assert_eq!(s.rate(1e-3, step, 100), 1e-3);
        }
    }

    #[test]
    fn warmup_is_linear_and_reaches_the_base_rate() {
        let s = LrSchedule {
            warmup_steps: 4,
            ..LrSchedule::default()
        };
        let rates: Vec<f64> = (0..6).map(|i| s.rate(1.0, i, 100)).collect();
        assert_eq!(rates, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn cosine_decays_from_its_start_to_the_floor_at_the_last_step() {
        let s = LrSchedule {
            decay: LrDecay::Cosine,
            decay_start: 10,
            final_fraction: 0.1,
            ..LrSchedule::default()
        };
        assert_eq!(s.rate(2.0, 9, 21), 2.0);
        assert!(close(s.rate(2.0, 10, 21), 2.0));
        assert!(close(s.rate(2.0, 15, 21), 0.2 + 1.8 * 0.5));
        assert!(close(s.rate(2.0, 20, 21), 0.2));
        // Past the end (a run continued without a new schedule) it stays at the floor.
        assert!(close(s.rate(2.0, 40, 21), 0.2));
        let rates: Vec<f64> = (10..21).map(|i| s.rate(2.0, i, 21)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
    }

    #[test]
    fn linear_decay_after_warmup() {
        let s = LrSchedule {
            warmup_steps: 2,
            decay: LrDecay::Linear,
            ..LrSchedule::default()
        };
        // Decay starts after the warm-up and reaches 0 at step 10 of 11.
        assert!(close(s.rate(1.0, 2, 11), 1.0));
        assert!(close(s.rate(1.0, 6, 11), 0.5));
        assert!(close(s.rate(1.0, 10, 11), 0.0));
    }

    #[test]
    fn rejects_a_final_fraction_outside_zero_one() {
        let s = LrSchedule {
            final_fraction: 1.5,
            ..LrSchedule::default()
        };
        assert!(s.validate().unwrap_err().contains("final_fraction"));
    }
}
