//! Sums and means over a long last axis, in two passes.
//!
//! burn's cubecl backends built without `autotune` (CUDA and wgpu builds of this workspace:
//! `--no-default-features`) reduce with one GPU thread per output value. A reduction with few
//! outputs and long rows, such as GroupNorm's statistics (`batch · groups` outputs of
//! `channels / groups · H · W` values each) or a bias gradient (`batch · channels` outputs of
//! `H · W`), then runs on a few thousand threads that each walk a row alone. On an H100 such
//! reductions took up to 11 ms each: 101 of them, 375 of the 1,525 ms of kernel time of a
//! `paper` VQ-VAE step at batch 32 (BENCHMARKS.md, GPU session 18). Splitting the axis into
//! `[k, m]` and summing `k` first gives `outputs · m` threads whose neighbours read
//! neighbouring values; the second pass sums `m` partial sums per output. The result is the
//! same sum in another order; the step took 1.32× less time.

use burn::tensor::{backend::Backend, Tensor};

/// Rows shorter than this are summed in one pass.
const SPLIT_FROM: usize = 16_384;
/// The widest and narrowest column count tried for the first pass.
const COLUMNS: (usize, usize) = (2_048, 128);

/// `[k, m]` with `k · m = len`, `m` the largest divisor of `len` in `128..=2048`, when `len`
/// is long enough to gain from two passes.
fn split(len: usize) -> Option<(usize, usize)> {
    if len < SPLIT_FROM {
        return None;
    }
    (COLUMNS.1..=COLUMNS.0)
        .rev()
        .find(|m| len.is_multiple_of(*m))
        .map(|m| (len / m, m))
}

/// The sum over the last axis, kept with size 1 (as `sum_dim(D - 1)`).
///
/// # Shapes
/// - `x`: `[..., len]`
/// - output: `[..., 1]`
pub fn sum_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let dims = x.dims();
    let Some((rows, columns)) = split(dims[D - 1]) else {
        return x.sum_dim(D - 1);
    };
    let outer = dims[..D - 1].iter().product::<usize>();
    let mut kept = dims;
    kept[D - 1] = 1;
    x.reshape([outer, rows, columns])
        .sum_dim(1)
        .sum_dim(2)
        .reshape(kept)
}

/// The mean over the last axis, kept with size 1 (as `mean_dim(D - 1)`).
///
/// # Shapes
/// - `x`: `[..., len]`
/// - output: `[..., 1]`
pub fn mean_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let len = x.dims()[D - 1];
    sum_last(x).div_scalar(len as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestBackend;
    use burn::tensor::{Distribution, Tolerance};

    #[test]
    fn long_rows_are_split_short_ones_are_not() {
        assert_eq!(split(SPLIT_FROM - 1), None);
        assert_eq!(split(4 * 65_536), Some((128, 2_048)));
        assert_eq!(split(3 * 7 * 1_000), Some((12, 1_750)));
        // A prime length has no divisor in range: one pass.
        assert_eq!(split(65_537), None);
    }

    #[test]
    fn two_passes_give_the_one_pass_sum_and_mean() {
        let device = Default::default();
        for len in [100, 3 * 7 * 1_000, 65_537, 2 * 65_536] {
            let x = Tensor::<TestBackend, 3>::random([2, 3, len], Distribution::Default, &device);
            let expected = x.clone().sum_dim(2);
            let sum = sum_last(x.clone());
            assert_eq!(sum.dims(), [2, 3, 1]);
            sum.into_data().assert_approx_eq::<f32>(
                &expected.clone().into_data(),
                Tolerance::rel_abs(1e-5, 1e-3),
            );
            mean_last(x).into_data().assert_approx_eq::<f32>(
                &expected.div_scalar(len as f64).into_data(),
                Tolerance::rel_abs(1e-5, 1e-6),
            );
        }
    }
}
