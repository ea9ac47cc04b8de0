//! Codebook usage and perplexity over a window of steps, and which codes are dead.

use serde::{Deserialize, Serialize};

/// Per-code bookkeeping, saved in checkpoints so a resumed run restarts the same codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodebookStats {
    /// `step + 1` of the last step that used each code; 0 for never.
    last_used: Vec<u64>,
    /// Exponential moving average (rate `1/window`) of each code's share of assignments.
    frequency: Vec<f64>,
    /// Window in steps.
    window: u64,
    /// `step + 1` of the last restart of each code; 0 for never. A restart resets the code's
    /// dead-code timer but is not a use: usage counts only codes latents chose. (Empty in
    /// checkpoints written before it existed, where restarts were recorded as uses.)
    #[serde(default)]
    restarted: Vec<u64>,
}

impl CodebookStats {
    /// Fresh statistics for `num_codes` codes.
    pub fn new(num_codes: usize, window: u64) -> Self {
        Self {
            last_used: vec![0; num_codes],
            frequency: vec![0.0; num_codes],
            window: window.max(1),
            restarted: vec![0; num_codes],
        }
    }

    /// Records the code counts of `step`.
    pub fn update(&mut self, step: u64, counts: &[u64]) {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return;
        }
        let rate = 1.0 / self.window as f64;
        for ((last, freq), &count) in self
            .last_used
            .iter_mut()
            .zip(&mut self.frequency)
            .zip(counts)
        {
            if count > 0 {
                *last = step + 1;
            }
            *freq = (1.0 - rate) * *freq + rate * count as f64 / total as f64;
        }
    }

    /// Fraction of codes used in the last `window` steps up to `step`.
    pub fn usage(&self, step: u64) -> f64 {
        let since = (step + 1).saturating_sub(self.window);
        let used = self.last_used.iter().filter(|&&l| l > since).count();
        used as f64 / self.last_used.len() as f64
    }

    /// `exp(entropy)` of the smoothed code distribution: the effective number of codes in use.
    pub fn perplexity(&self) -> f64 {
        let total: f64 = self.frequency.iter().sum();
        if total == 0.0 {
            return 0.0;
        }
        let entropy: f64 = self
            .frequency
            .iter()
            .filter(|&&f| f > 0.0)
            .map(|&f| {
                let p = f / total;
                -p * p.ln()
            })
            .sum();
        entropy.exp()
    }

    /// Codes unused and not restarted for at least `after` steps as of `step` (never-used codes
    /// count from 0).
    pub fn dead(&self, step: u64, after: u64) -> Vec<usize> {
        self.last_used
            .iter()
            .enumerate()
            .map(|(i, &l)| l.max(self.restarted.get(i).copied().unwrap_or(0)))
            .enumerate()
            .filter(|&(_, l)| step + 1 - l.min(step + 1) >= after)
            .map(|(i, _)| i)
            .collect()
    }

    /// Marks codes as just restarted (at `step`): their dead-code timer starts again.
    pub fn revive(&mut self, step: u64, codes: &[usize]) {
        if self.restarted.len() != self.last_used.len() {
            self.restarted = vec![0; self.last_used.len()];
        }
        for &c in codes {
            self.restarted[c] = step + 1;
        }
    }
}

/// Counts of each code among `indices`.
pub fn code_counts(indices: &[i64], num_codes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; num_codes];
    for &i in indices {
        counts[i as usize] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_perplexity_and_dead_codes() {
        let mut stats = CodebookStats::new(4, 2);
        stats.update(0, &[5, 5, 0, 0]);
        assert_eq!(stats.usage(0), 0.5);
        assert!((stats.perplexity() - 2.0).abs() < 1e-12);
        stats.update(1, &[0, 0, 1, 0]);
        stats.update(2, &[0, 0, 1, 0]);
        // Window 2 at step 2: only code 2 was used in steps 1..=2.
        assert_eq!(stats.usage(2), 0.25);
        assert_eq!(stats.dead(2, 3), [3]); // code 3 never used: 3 steps
        assert_eq!(stats.dead(2, 2), [0, 1, 3]);
        stats.revive(2, &[3]);
        assert_eq!(stats.dead(2, 1), [0, 1]);
        // A restart is not a use: usage still counts only code 2.
        assert_eq!(stats.usage(2), 0.25);
        assert_eq!(stats.dead(3, 2), [0, 1]);
        assert_eq!(stats.dead(4, 2), [0, 1, 2, 3]);
    }

    #[test]
    fn statistics_saved_before_restarts_were_kept_apart_still_load_and_revive() {
        let mut json = serde_json::to_value(CodebookStats::new(3, 2)).unwrap();
        json.as_object_mut().unwrap().remove("restarted");
        let mut stats: CodebookStats = serde_json::from_value(json).unwrap();
        assert_eq!(stats.dead(0, 1), [0, 1, 2]);
        stats.revive(0, &[1]);
        assert_eq!(stats.dead(0, 1), [0, 2]);
    }

    #[test]
    fn counts() {
        assert_eq!(code_counts(&[0, 2, 2], 3), [1, 0, 2]);
    }
}
