//! Reducing a sequence to one vector per item: the mean over real positions (WavLM's and BEiT's
//! heads) and the last real position (Llama's).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::error::{Error, Result};

/// The mean over the positions where `valid` is 1.0 (all positions when `None`).
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_model]`
/// - `valid`: `[batch_size, seq_length]`, 1.0 at real positions, 0.0 at padding
/// - output: `[batch_size, d_model]`
///
/// # Panics
/// When `valid` has another `[batch_size, seq_length]` than `x`.
pub fn masked_mean<B: Backend>(x: Tensor<B, 3>, valid: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
    let [batch_size, seq_length, d_model] = x.dims();
    let Some(valid) = valid else {
        return x.mean_dim(1).reshape([batch_size, d_model]);
    };
    assert_eq!(
        valid.dims(),
        [batch_size, seq_length],
        "mask [batch_size, seq_length] {:?} differs from the input's {:?}",
        valid.dims(),
        [batch_size, seq_length]
    );
    let count = valid.clone().sum_dim(1); // [batch_size, 1]
    let sum = (x * valid.unsqueeze_dim(2)).sum_dim(1); // [batch_size, 1, d_model]
    sum.reshape([batch_size, d_model]) / count
}

/// The vector at position `lengths[b] − 1` of each item `b`: the last real token of a
/// right-padded batch.
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_model]`
/// - output: `[batch_size, d_model]`
///
/// # Errors
/// [`Error::Input`] when `lengths` does not have `batch_size` entries, or one is 0 or longer
/// than `seq_length`.
pub fn last_positions<B: Backend>(x: Tensor<B, 3>, lengths: &[usize]) -> Result<Tensor<B, 2>> {
    let [batch_size, seq_length, d_model] = x.dims();
    if lengths.len() != batch_size {
        return Err(Error::Input(format!(
            "{} sequence lengths for a batch of {batch_size}",
            lengths.len()
        )));
    }
    if let Some((b, &n)) = lengths
        .iter()
        .enumerate()
        .find(|(_, &n)| n == 0 || n > seq_length)
    {
        return Err(Error::Input(format!(
            "sequence {b} has length {n}, outside 1..={seq_length}"
        )));
    }
    let last: Vec<i64> = lengths.iter().map(|&n| n as i64 - 1).collect();
    let indices =
        Tensor::<B, 3, Int>::from_data(TensorData::new(last, [batch_size, 1, 1]), &x.device())
            .expand([batch_size, 1, d_model]);
    Ok(x.gather(1, indices).reshape([batch_size, d_model]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    #[test]
    fn masked_mean_averages_only_the_real_positions() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &device);
        let valid = Tensor::<B, 2>::from_floats(
            [[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0, 0.0]],
            &device,
        );
        let pooled = masked_mean(x.clone(), Some(valid));
        let first = x.clone().narrow(0, 0, 1).mean_dim(1).reshape([1, 3]);
        let second = x
            .narrow(0, 1, 1)
            .narrow(1, 0, 2)
            .mean_dim(1)
            .reshape([1, 3]);
        pooled.into_data().assert_approx_eq::<f32>(
            &Tensor::cat(vec![first, second], 0).into_data(),
            Tolerance::absolute(1e-6),
        );
    }

    #[test]
    fn last_positions_pick_each_rows_last_real_token() {
        let device = Default::default();
        let x = Tensor::<B, 3>::random([3, 4, 2], Distribution::Normal(0.0, 1.0), &device);
        let picked = last_positions(x.clone(), &[4, 1, 2]).expect("lengths fit");
        let expected = Tensor::cat(
            vec![
                x.clone().slice([0..1, 3..4]).reshape([1, 2]),
                x.clone().slice([1..2, 0..1]).reshape([1, 2]),
                x.slice([2..3, 1..2]).reshape([1, 2]),
            ],
            0,
        );
        picked.into_data().assert_eq(&expected.into_data(), true);
    }

    #[test]
    fn a_zero_length_is_an_input_error() {
        let x = Tensor::<B, 3>::zeros([2, 4, 2], &Default::default());
        let err = last_positions(x, &[3, 0]).unwrap_err();
        assert!(err.to_string().contains("sequence 1 has length 0"), "{err}");
    }

    #[test]
    #[should_panic = "mask [batch_size, seq_length] [2, 4] differs from the input's [2, 5]"]
    fn a_misshapen_mask_panics() {
        let device = Default::default();
        masked_mean(
            Tensor::<B, 3>::zeros([2, 5, 3], &device),
            Some(Tensor::ones([2, 4], &device)),
        );
    }
}
