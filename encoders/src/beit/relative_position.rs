//! BEiT's relative position bias: a learned table of `(2·Wh−1)(2·Ww−1) + 3` rows × heads, indexed
//! by the relative offset of two patches, with three extra rows for CLS→token, token→CLS and
//! CLS→CLS.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// The table index of every (query token, key token) pair for a `grid × grid` window with a
/// leading CLS token, exactly as `BeitRelativePositionBias.generate_relative_position_index`.
///
/// # Shapes
/// - output: `(grid² + 1)²` indices, row-major over (query, key)
pub fn relative_position_index(grid: usize) -> Vec<i64> {
    let area = grid * grid;
    let num_relative = (2 * grid - 1) * (2 * grid - 1) + 3;
    let tokens = area + 1;
    let mut index = vec![0i64; tokens * tokens];
    for i in 0..area {
        for j in 0..area {
            let (yi, xi) = ((i / grid) as i64, (i % grid) as i64);
            let (yj, xj) = ((j / grid) as i64, (j % grid) as i64);
            let dy = yi - yj + grid as i64 - 1;
            let dx = xi - xj + grid as i64 - 1;
            index[(i + 1) * tokens + (j + 1)] = dy * (2 * grid as i64 - 1) + dx;
        }
    }
    index[..tokens].fill(num_relative as i64 - 3); // CLS → token
    for i in 0..tokens {
        index[i * tokens] = num_relative as i64 - 2; // token → CLS
    }
    index[0] = num_relative as i64 - 1; // CLS → CLS
    index
}

/// A relative position bias table with its precomputed index.
#[derive(Module, Debug)]
pub struct RelativePositionBias<B: Backend> {
    /// `[(2·grid−1)² + 3, heads]`: `relative_position_bias_table`.
    pub table: Param<Tensor<B, 2>>,
    /// `[(grid² + 1)²]`: the row of `table` for each (query, key) pair.
    pub index: Tensor<B, 1, Int>,
    /// Tokens per image (`grid² + 1`).
    pub tokens: usize,
}

impl<B: Backend> RelativePositionBias<B> {
    /// Wraps a loaded table for a `grid × grid` patch window.
    pub fn new(table: Tensor<B, 2>, grid: usize) -> Self {
        let tokens = grid * grid + 1;
        let device = table.device();
        let index = Tensor::from_data(
            TensorData::new(relative_position_index(grid), [tokens * tokens]),
            &device,
        );
        Self {
            table: Param::from_tensor(table),
            index,
            tokens,
        }
    }

    /// The additive attention bias.
    ///
    /// # Shapes
    /// - output: `[1, heads, tokens, tokens]`
    pub fn forward(&self) -> Tensor<B, 4> {
        let [_, heads] = self.table.dims();
        self.table
            .val()
            .select(0, self.index.clone())
            .reshape([self.tokens, self.tokens, heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_the_reference_construction_for_a_2x2_window() {
        // torch: generate_relative_position_index((2, 2)); num_relative_distance = 12.
        let expected: Vec<i64> = vec![
            11, 9, 9, 9, 9, //
            10, 4, 3, 1, 0, //
            10, 5, 4, 2, 1, //
            10, 7, 6, 4, 3, //
            10, 8, 7, 5, 4,
        ];
        assert_eq!(relative_position_index(2), expected);
    }
}
