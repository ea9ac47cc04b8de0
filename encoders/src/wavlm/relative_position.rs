//! WavLM's relative position bias before gating: a learned scalar per head and per
//! relative-position bucket (T5-style buckets: exact for short distances, log-spaced up to
//! `max_distance`, one set per direction). Only the first transformer layer has the table
//! (`encoder.layers.0.attention.rel_attn_embed`); the bias it gives is shared by every layer
//! (transformers' `WavLMAttention.compute_bias` / `_relative_positions_bucket`).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::Result;
use crate::weights::Weights;

/// The bucket of the relative position `key − query` (in frames).
///
/// With `half = num_buckets / 2` and `exact = half / 2`: keys after the query use buckets
/// `half..num_buckets`, the others `0..half`; distances below `exact` get their own bucket, longer
/// ones `exact + ⌊ln(d / exact) / ln(max_distance / exact) · (half − exact)⌋`, capped at
/// `half − 1`. The logarithm is taken in f32, as transformers does on a float32 tensor, so that
/// bucket edges agree exactly.
///
/// # Panics
/// When `num_buckets < 4` (no exact bucket); [`super::WavLMConfig::validate`] rejects such
/// configurations.
pub fn relative_position_bucket(
    relative_position: i64,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let half = num_buckets / 2;
    let exact = half / 2;
    assert!(exact > 0, "num_buckets {num_buckets} must be at least 4");
    let offset = if relative_position > 0 { half } else { 0 };
    let distance = relative_position.unsigned_abs() as usize;
    if distance < exact {
        return offset + distance;
    }
    // torch: log(d.float() / exact) / math.log(max_distance / exact) * (half - exact), all f32
    // (the Python float denominator is rounded to f32), then truncated.
    let log_ratio = (distance as f32 / exact as f32).ln();
    let log_range = (max_distance as f64 / exact as f64).ln() as f32;
    let scaled = log_ratio / log_range * (half - exact) as f32;
    let large = (exact as f32 + scaled) as usize;
    offset + large.min(half - 1)
}

/// The bucket index of every (query, key) pair of a `time`-frame sequence, row-major
/// `[query, key]`. The bucket depends on `key − query` only, so each of the `2·time − 1` offsets
/// is bucketed once.
pub fn bucket_grid(time: usize, num_buckets: usize, max_distance: usize) -> Vec<i64> {
    let span = time as i64 - 1;
    let by_offset: Vec<i64> = (-span..=span)
        .map(|r| relative_position_bucket(r, num_buckets, max_distance) as i64)
        .collect();
    let mut grid = Vec::with_capacity(time * time);
    for query in 0..time {
        // `by_offset[i]` is the bucket of `i − span`; key − query starts at −query.
        let start = time - 1 - query;
        grid.extend_from_slice(&by_offset[start..start + time]);
    }
    grid
}

/// The learned bias table (`rel_attn_embed`, an `nn.Embedding(num_buckets, num_heads)`).
#[derive(Module, Debug)]
pub struct RelativePositionBias<B: Backend> {
    /// Bias per bucket and head, `[num_buckets, num_heads]`.
    pub embedding: Param<Tensor<B, 2>>,
    /// Number of buckets, both directions together (`num_buckets`, 320 in WavLM).
    pub num_buckets: usize,
    /// Distance in frames where the log-spaced buckets saturate (`max_bucket_distance`, 800).
    pub max_distance: usize,
}

impl<B: Backend> RelativePositionBias<B> {
    /// Loads `{prefix}.weight`.
    ///
    /// # Errors
    /// As [`Weights::tensor`].
    pub fn load(
        weights: &Weights,
        prefix: &str,
        num_buckets: usize,
        num_heads: usize,
        max_distance: usize,
        device: &B::Device,
    ) -> Result<Self> {
        let embedding = weights.tensor(
            &format!("{prefix}.weight"),
            [num_buckets, num_heads],
            device,
        )?;
        Ok(Self {
            embedding: Param::from_tensor(embedding),
            num_buckets,
            max_distance,
        })
    }

    /// The ungated bias of every (query, key) pair.
    ///
    /// # Shapes
    /// - output: `[1, num_heads, seq_length, seq_length]` (query, then key)
    pub fn forward(&self, seq_length: usize) -> Tensor<B, 4> {
        let table = self.embedding.val();
        let [_, num_heads] = table.dims();
        let device = table.device();
        let grid = bucket_grid(seq_length, self.num_buckets, self.max_distance);
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(grid, [seq_length * seq_length]),
            &device,
        );
        table
            .select(0, index) // [seq_length · seq_length, num_heads]
            .reshape([seq_length, seq_length, num_heads])
            .permute([2, 0, 1])
            .reshape([1, num_heads, seq_length, seq_length])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// For each bucket above the exact ones, the first distance that falls in it, from
    /// transformers 4.46.3 / torch 2.5.1 (`_relative_positions_bucket` over distances 0..3000).
    const LARGE_EDGES: [usize; 79] = [
        83, 85, 88, 90, 93, 96, 98, 101, 104, 107, 110, 114, 117, 120, 124, 127, 131, 135, 139,
        143, 147, 151, 156, 160, 165, 170, 175, 180, 185, 190, 196, 201, 207, 213, 220, 226, 233,
        239, 246, 253, 261, 268, 276, 284, 293, 301, 310, 319, 328, 338, 348, 358, 368, 379, 390,
        401, 413, 425, 438, 450, 464, 477, 491, 505, 520, 535, 551, 567, 583, 600, 618, 636, 655,
        674, 693, 714, 734, 756, 778,
    ];

    /// The bucket a distance falls in according to a list of edges above `exact`.
    fn expected(distance: usize, exact: usize, edges: &[usize]) -> usize {
        if distance < exact {
            distance
        } else {
            exact + edges.iter().filter(|&&e| e <= distance).count()
        }
    }

    #[test]
    fn wavlm_large_buckets_match_transformers_in_both_directions() {
        for distance in 0..3000usize {
            let want = expected(distance, 80, &LARGE_EDGES);
            let d = distance as i64;
            assert_eq!(relative_position_bucket(-d, 320, 800), want, "−{distance}");
            let ahead = if distance == 0 { 0 } else { 160 + want };
            assert_eq!(relative_position_bucket(d, 320, 800), ahead, "+{distance}");
        }
    }

    #[test]
    fn fixture_buckets_match_transformers() {
        let edges = [11, 14, 18, 23, 30, 39, 50];
        for distance in 0..200usize {
            let want = expected(distance, 8, &edges);
            assert_eq!(relative_position_bucket(-(distance as i64), 32, 64), want);
        }
        assert_eq!(relative_position_bucket(1, 32, 64), 17);
        assert_eq!(relative_position_bucket(10_000, 32, 64), 31);
    }

    #[test]
    fn grid_rows_are_shifted_offsets() {
        let grid = bucket_grid(5, 32, 64);
        for query in 0..5 {
            for key in 0..5 {
                let r = key as i64 - query as i64;
                assert_eq!(
                    grid[query * 5 + key],
                    relative_position_bucket(r, 32, 64) as i64
                );
            }
        }
    }

    #[test]
    fn bias_looks_up_the_table_per_head() {
        let device = Default::default();
        let values: Vec<f32> = (0..32 * 3).map(|i| i as f32).collect();
        let bias = RelativePositionBias::<Flex> {
            embedding: Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [32, 3]),
                &device,
            )),
            num_buckets: 32,
            max_distance: 64,
        };
        let out = bias.forward(4);
        assert_eq!(out.dims(), [1, 3, 4, 4]);
        let out: Vec<f32> = out.into_data().to_vec().unwrap();
        // head 2, query 3, key 0: relative position −3 → bucket 3 → table[3][2] = 11.
        assert_eq!(out[2 * 16 + 3 * 4], 11.0);
        // head 1, query 0, key 2: +2 → bucket 18 → table[18][1] = 55.
        assert_eq!(out[16 + 2], 55.0);
    }
}
