//! Rotary position embeddings in Hugging Face Llama's "rotate-half" layout.
//!
//! Frequency `i < head_dim/2` rotates the pair `(x[i], x[i + head_dim/2])` (the two halves of a
//! head), not the interleaved pair `(x[2i], x[2i+1])` of the original RoPE paper and of burn's
//! `RotaryEncoding`; HF's converted Llama checkpoints permute the q/k projections to match
//! `rotate_half` (`modeling_llama.py`: `rotate_half`, `apply_rotary_pos_emb`).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The cosine and sine tables of positions `0..seq_length`, shared by all layers.
#[derive(Debug, Clone)]
pub struct RotaryTables<B: Backend> {
    /// `[seq_length, head_dim]`: `cos(p · ω_i)` with `ω` repeated for both halves.
    cos: Tensor<B, 2>,
    /// `[seq_length, head_dim]`: `sin(p · ω_i)` with `ω` repeated for both halves.
    sin: Tensor<B, 2>,
}

/// The inverse frequencies `ω_i = 1 / θ^(2i / head_dim)`, `i < head_dim/2`, in f32 as
/// transformers' `_compute_default_rope_parameters`.
pub fn inverse_frequencies(head_dim: usize, theta: f64) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

impl<B: Backend> RotaryTables<B> {
    /// The tables of positions `0..seq_length`.
    ///
    /// The angles `p · ω_i` are rounded to f32 as HF computes them (`inv_freq @ position_ids` in
    /// f32), then their cosine and sine are taken exactly.
    ///
    /// # Panics
    /// When `head_dim` is odd.
    pub fn new(seq_length: usize, head_dim: usize, theta: f64, device: &B::Device) -> Self {
        assert!(
            head_dim.is_multiple_of(2),
            "rotary embeddings need an even head_dim, got {head_dim}"
        );
        let frequencies = inverse_frequencies(head_dim, theta);
        let mut cos = Vec::with_capacity(seq_length * head_dim);
        let mut sin = Vec::with_capacity(seq_length * head_dim);
        for position in 0..seq_length {
            // `torch.cat((freqs, freqs), dim=-1)`: both halves use the same frequencies.
            for _half in 0..2 {
                for &omega in &frequencies {
                    let angle = f64::from(position as f32 * omega);
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let table =
            |values| Tensor::from_data(TensorData::new(values, [seq_length, head_dim]), device);
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// `x · cos + rotate_half(x) · sin` at positions `0..seq_length`.
    ///
    /// # Shapes
    /// - `x`: `[batch_size, num_heads, seq_length, head_dim]`
    /// - output: `[batch_size, num_heads, seq_length, head_dim]`
    ///
    /// # Panics
    /// When `x`'s sequence length or head width differ from the tables'.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [seq_length, head_dim] = self.cos.dims();
        let [_, _, x_length, x_head_dim] = x.dims();
        assert_eq!(
            [x_length, x_head_dim],
            [seq_length, head_dim],
            "rotary tables are [seq_length, head_dim] = {:?}, input has {:?}",
            [seq_length, head_dim],
            [x_length, x_head_dim]
        );
        let cos = self.cos.clone().reshape([1, 1, seq_length, head_dim]);
        let sin = self.sin.clone().reshape([1, 1, seq_length, head_dim]);
        x.clone() * cos + rotate_half(x) * sin
    }
}

/// `[x₁, x₂] ↦ [−x₂, x₁]` on the last axis, split into halves (`modeling_llama.rotate_half`).
///
/// # Shapes
/// - `x`: `[batch_size, num_heads, seq_length, head_dim]`
/// - output: `[batch_size, num_heads, seq_length, head_dim]`
pub fn rotate_half<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, _, head_dim] = x.dims();
    let half = head_dim / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.narrow(3, half, half);
    Tensor::cat(vec![second.neg(), first], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn rotates_each_half_pair_by_its_angle() {
        let device = Default::default();
        let (batch, heads, seq, head_dim, theta) = (2, 3, 5, 6, 500.0);
        let x = Tensor::<B, 4>::random(
            [batch, heads, seq, head_dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let rotated = RotaryTables::<B>::new(seq, head_dim, theta, &device).apply(x.clone());

        let input = x.into_data().to_vec::<f32>().expect("f32");
        let half = head_dim / 2;
        let mut expected = vec![0.0f32; input.len()];
        for row in 0..batch * heads * seq {
            let position = (row % seq) as f64;
            let base = row * head_dim;
            for i in 0..half {
                let omega = 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64);
                let (s, c) = (position * omega).sin_cos();
                let (a, b) = (
                    f64::from(input[base + i]),
                    f64::from(input[base + i + half]),
                );
                expected[base + i] = (a * c - b * s) as f32;
                expected[base + i + half] = (b * c + a * s) as f32;
            }
        }
        rotated.into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [batch, heads, seq, head_dim]),
            Tolerance::absolute(1e-5),
        );
    }

    #[test]
    fn position_zero_is_the_identity() {
        let device = Default::default();
        let x = Tensor::<B, 4>::random([1, 2, 1, 8], Distribution::Normal(0.0, 1.0), &device);
        let y = RotaryTables::<B>::new(1, 8, 10_000.0, &device).apply(x.clone());
        x.into_data()
            .assert_approx_eq::<f32>(&y.into_data(), Tolerance::absolute(1e-7));
    }

    #[test]
    fn scores_depend_only_on_the_relative_position() {
        // ⟨R_m q, R_n k⟩ = ⟨R_{m+s} q, R_{n+s} k⟩: shift both positions by s = 3.
        let device = Default::default();
        let (seq, head_dim) = (7, 8);
        let q =
            Tensor::<B, 4>::random([1, 1, 1, head_dim], Distribution::Normal(0.0, 1.0), &device);
        let k =
            Tensor::<B, 4>::random([1, 1, 1, head_dim], Distribution::Normal(0.0, 1.0), &device);
        let tables = RotaryTables::<B>::new(seq, head_dim, 10_000.0, &device);
        let at = |x: &Tensor<B, 4>| tables.apply(x.clone().repeat_dim(2, seq));
        let (q, k) = (at(&q), at(&k));
        let dot = |m: usize, n: usize| -> f32 {
            (q.clone().narrow(2, m, 1) * k.clone().narrow(2, n, 1))
                .sum()
                .into_scalar()
        };
        assert!((dot(1, 0) - dot(4, 3)).abs() < 1e-5);
        assert!((dot(0, 2) - dot(3, 5)).abs() < 1e-5);
    }

    #[test]
    fn rotate_half_negates_the_second_half_into_the_first() {
        let device = Default::default();
        let x = Tensor::<B, 4>::from_floats([[[[1.0, 2.0, 3.0, 4.0]]]], &device);
        let y = rotate_half(x);
        y.into_data()
            .assert_eq(&TensorData::from([[[[-3.0f32, -4.0, 1.0, 2.0]]]]), false);
    }

    #[test]
    #[should_panic = "rotary tables are [seq_length, head_dim] = [3, 4], input has [2, 4]"]
    fn apply_checks_the_length() {
        let device = Default::default();
        let x = Tensor::<B, 4>::zeros([1, 1, 2, 4], &device);
        RotaryTables::<B>::new(3, 4, 10_000.0, &device).apply(x);
    }
}
