//! A `Linear` layer over the last axis of a rank-3 tensor, run as one 2-D multiply.
//!
//! burn 0.21 applies `Linear` to `[batch_size, seq_length, d_input]` as a batched multiply and
//! computes the weight gradient as `batch_size` separate `[d_input, d_output]` products that it
//! then sums: for the DAT heads' `[32, 24, 1024]` inputs that is 32 × 4 MB of partial gradients
//! per projection. Folding the leading axes into rows first makes the weight gradient one
//! `[d_input, rows] · [rows, d_output]` product.

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `linear(x)` with `x`'s leading axes folded into rows.
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_input]`
/// - output: `[batch_size, seq_length, d_output]`
pub fn linear_rows<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [batch_size, seq_length, d_input] = x.dims();
    let y = linear.forward(x.reshape([batch_size * seq_length, d_input]));
    let [_, d_output] = y.dims();
    y.reshape([batch_size, seq_length, d_output])
}
