//! The fine-tuning baselines `classify replicate` runs beside the DAT heads: LoRA and LoRA+ at
//! rank 4 or 8 (paper Table 2).

use serde::{Deserialize, Serialize};

/// A LoRA baseline: the encoder frozen, rank-`r` adapters on its attention projections, the
/// classification head trained; LoRA+ trains the adapters' `B` at `λ` times the learning rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoraMethod {
    /// The adapter rank `r` (the paper: 4 and 8).
    pub rank: usize,
    /// LoRA+ (`B` at `λ · lr`) rather than LoRA.
    pub plus: bool,
}

impl LoraMethod {
    /// The method's name: `lora-r4`, `loraplus-r8`, ...
    pub fn name(&self) -> String {
        format!(
            "{}-r{}",
            if self.plus { "loraplus" } else { "lora" },
            self.rank
        )
    }

    /// Parses `lora-rN` / `loraplus-rN` (N ≥ 1).
    pub fn from_name(name: &str) -> Option<Self> {
        let (kind, rank) = name.split_once("-r")?;
        let plus = match kind {
            "lora" => false,
            "loraplus" => true,
            _ => return None,
        };
        let rank: usize = rank.parse().ok()?;
        (rank >= 1).then_some(Self { rank, plus })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_rejected() {
        for name in ["lora-r4", "lora-r8", "loraplus-r4", "loraplus-r16"] {
            assert_eq!(LoraMethod::from_name(name).unwrap().name(), name);
        }
        for bad in ["lora", "lora-r0", "lora-rx", "qlora-r4", "daam-v1"] {
            assert!(LoraMethod::from_name(bad).is_none(), "{bad}");
        }
    }
}
