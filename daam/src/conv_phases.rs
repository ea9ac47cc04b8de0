//! A transposed convolution as `stride_h · stride_w` stride-1 convolutions, one per output
//! phase, interleaved: the route for kernels that have no strided data gradient (cubek's
//! implicit GEMM; [`crate::conv_implicit`]), and so neither the transposed convolution nor a
//! strided convolution's data gradient.
//!
//! Along one axis, with kernel `K`, stride `s` and padding `p`, output row `o = s·q + a` (phase
//! `a < s`) receives only the taps `k ≡ a + p (mod s)`: `k = s·t + r` with `r = (a + p) mod s`,
//! `t < T = ⌈(K − r)/s⌉`, from input rows `q + d − t` where `d = ⌊(a + p)/s⌋`. That is a
//! stride-1 correlation of the input with the phase's taps reversed, `v[j] = w[s·(T − 1 − j) +
//! r]`, whose window for `q` starts at row `q + d − (T − 1)`. Each phase reads the input rows
//! it needs (cropped, or padded with zeros, symmetrically, the surplus outputs dropped) and
//! computes `⌈out / s⌉` rows; the phases are then interleaved and the output cropped to
//! `out`. The phases together multiply exactly the taps the transposed convolution does, with
//! no unfolded or scattered intermediate: for the VQ-VAE's 4×4 stride-2 up-sampling, four 2×2
//! convolutions.

use burn::tensor::backend::Backend;
use burn::tensor::{s, Slice, Tensor};

use crate::conv_gemm::transposed_full;

/// The geometry of one phase along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Phase {
    /// First tap, `(a + p) mod s`.
    first_tap: usize,
    /// Taps, `⌈(K − first_tap)/s⌉` (0 where the kernel is smaller than the stride).
    taps: usize,
    /// The input rows read, `start..end` (clamped to the input).
    rows: (usize, usize),
    /// The stride-1 convolution's symmetric padding of those rows.
    padding: usize,
    /// Where the phase's outputs start in that convolution's output.
    offset: usize,
}

/// The phase `a` of an axis of `size` input rows, `kernel`, `stride`, `padding`, computing
/// `outputs` rows (`⌈out / stride⌉`).
fn phase(
    a: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    outputs: usize,
) -> Phase {
    let first_tap = (a + padding) % stride;
    let shift = (a + padding) / stride;
    let taps = kernel.saturating_sub(first_tap).div_ceil(stride);
    // Rows `shift + 1 − taps ..= outputs − 1 + shift`, as signed positions in the input.
    let start = shift as isize + 1 - taps as isize;
    let end = (outputs + shift) as isize; // exclusive
    let lo = start.clamp(0, size as isize);
    let hi = end.clamp(lo, size as isize);
    let before = (lo - start) as usize;
    let after = (end - hi) as usize;
    let padding = before.max(after);
    Phase {
        first_tap,
        taps,
        rows: (lo as usize, hi as usize),
        padding,
        offset: padding - before,
    }
}

/// `conv_transpose2d(x, weight) + bias` (one group, no dilation) as `stride_h · stride_w`
/// stride-1 convolutions by `conv(input, weight, padding)` (`weight` `[out, in, kh, kw]`,
/// symmetric zero `padding`, no bias), interleaved ([module docs](self)).
///
/// # Shapes
/// - `x`: `[batch_size, in_channels, height, width]`
/// - `weight`: `[in_channels, out_channels, kernel_h, kernel_w]`; `bias`: `[out_channels]`
/// - output: `[batch_size, out_channels, out_h, out_w]`, `out_h = (height − 1)·stride_h −
///   2·padding_h + kernel_h + padding_out_h`
///
/// # Panics
/// If the channel counts disagree, a stride is zero or the padding crops the whole output.
pub fn conv_transpose2d_phases<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: [usize; 2],
    padding: [usize; 2],
    padding_out: [usize; 2],
    mut conv: impl FnMut(Tensor<B, 4>, Tensor<B, 4>, [usize; 2]) -> Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch_size, in_channels, height, width] = x.dims();
    let [weight_in, out_channels, kernel_h, kernel_w] = weight.dims();
    assert_eq!(
        in_channels, weight_in,
        "conv_transpose2d_phases: input has {in_channels} channels, the weight expects {weight_in}"
    );
    assert!(
        stride[0] > 0 && stride[1] > 0,
        "conv_transpose2d_phases: zero stride"
    );
    let size = [height, width];
    let kernel = [kernel_h, kernel_w];
    let full = transposed_full(size, kernel, stride, padding_out);
    assert!(
        full[0] > 2 * padding[0] && full[1] > 2 * padding[1],
        "conv_transpose2d_phases: padding {padding:?} crops the whole output"
    );
    let out: [usize; 2] = std::array::from_fn(|a| full[a] - 2 * padding[a]);
    let outputs: [usize; 2] = std::array::from_fn(|a| out[a].div_ceil(stride[a]));
    let phases = |axis: usize| -> Vec<Phase> {
        (0..stride[axis])
            .map(|a| {
                phase(
                    a,
                    size[axis],
                    kernel[axis],
                    stride[axis],
                    padding[axis],
                    outputs[axis],
                )
            })
            .collect()
    };
    let (rows, cols) = (phases(0), phases(1));
    let (device, dtype) = (x.device(), x.dtype());
    let mut parts = Vec::with_capacity(rows.len() * cols.len());
    for row in &rows {
        for col in &cols {
            let part = if row.taps == 0
                || col.taps == 0
                || row.rows.0 == row.rows.1
                || col.rows.0 == col.rows.1
                || row.rows.0 + row.taps > row.rows.1 + 2 * row.padding
                || col.rows.0 + col.taps > col.rows.1 + 2 * col.padding
            {
                // No tap reaches this phase, or no window fits its rows: only the bias.
                Tensor::zeros(
                    [batch_size, out_channels, outputs[0], outputs[1]],
                    (&device, dtype),
                )
            } else {
                let input =
                    x.clone()
                        .slice(s![.., .., row.rows.0..row.rows.1, col.rows.0..col.rows.1]);
                let taps = weight
                    .clone()
                    .slice([
                        Slice::full(),
                        Slice::full(),
                        Slice::new(row.first_tap as isize, None, stride[0] as isize),
                        Slice::new(col.first_tap as isize, None, stride[1] as isize),
                    ])
                    .flip([2, 3])
                    .swap_dims(0, 1);
                conv(input, taps, [row.padding, col.padding]).slice(s![
                    ..,
                    ..,
                    row.offset..row.offset + outputs[0],
                    col.offset..col.offset + outputs[1]
                ])
            };
            parts.push(part);
        }
    }
    let [stride_h, stride_w] = stride;
    let interleaved = Tensor::stack::<5>(parts, 2)
        .reshape([
            batch_size,
            out_channels,
            stride_h,
            stride_w,
            outputs[0],
            outputs[1],
        ])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([
            batch_size,
            out_channels,
            outputs[0] * stride_h,
            outputs[1] * stride_w,
        ]);
    let output = if outputs[0] * stride_h == out[0] && outputs[1] * stride_w == out[1] {
        interleaved
    } else {
        interleaved.slice(s![.., .., 0..out[0], 0..out[1]])
    };
    match bias {
        Some(bias) => output + bias.reshape([1, out_channels, 1, 1]),
        None => output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::module::{conv2d, conv_transpose2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
    use burn::tensor::{Distribution, Tolerance};

    type B = Flex;

    fn random<const D: usize>(dims: [usize; D]) -> Tensor<B, D> {
        Tensor::random(dims, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    /// Every phase's window lies in its padded rows and its outputs in the convolution's.
    #[test]
    fn phases_cover_their_outputs() {
        for (size, kernel, stride, padding) in
            [(5usize, 4, 2, 1), (6, 3, 2, 1), (4, 1, 3, 0), (7, 5, 3, 2)]
        {
            let full = (size - 1) * stride + kernel;
            let outputs = (full - 2 * padding).div_ceil(stride);
            for a in 0..stride {
                let p = phase(a, size, kernel, stride, padding, outputs);
                if p.taps == 0 {
                    continue;
                }
                let rows = p.rows.1 - p.rows.0 + 2 * p.padding;
                assert!(rows + 1 >= p.taps, "{p:?}");
                let conv_outputs = rows + 1 - p.taps;
                assert!(p.offset + outputs <= conv_outputs, "{p:?}, {outputs}");
            }
        }
    }

    /// The VQ-VAE's geometry: 4×4, stride 2, padding 1 gives two 2×2 phases per axis.
    #[test]
    fn up_sampling_phases() {
        let p0 = phase(0, 8, 4, 2, 1, 8);
        let p1 = phase(1, 8, 4, 2, 1, 8);
        assert_eq!(
            (p0.first_tap, p0.taps, p0.rows, p0.padding, p0.offset),
            (1, 2, (0, 8), 1, 0)
        );
        assert_eq!(
            (p1.first_tap, p1.taps, p1.rows, p1.padding, p1.offset),
            (0, 2, (0, 8), 1, 1)
        );
    }

    /// The output equals burn's `conv_transpose2d` over strides, kernels smaller and
    /// larger than the stride, paddings, output paddings and odd sizes.
    #[test]
    fn phases_match_burn() {
        let tol = Tolerance::<f32>::default();
        for (size, kernel, stride, padding, padding_out) in [
            ([5, 6], [4, 4], [2, 2], [1, 1], [0, 0]),
            ([4, 4], [3, 3], [2, 2], [1, 1], [1, 1]),
            ([3, 5], [3, 2], [1, 2], [0, 0], [0, 1]),
            ([4, 3], [2, 5], [3, 2], [0, 2], [2, 0]),
            ([3, 3], [1, 1], [3, 3], [0, 0], [0, 0]),
            ([6, 5], [5, 5], [1, 1], [2, 1], [0, 0]),
            ([5, 5], [4, 4], [2, 2], [3, 3], [1, 0]),
        ] {
            let x = random([2, 3, size[0], size[1]]);
            let weight = random([3, 4, kernel[0], kernel[1]]);
            let bias = random([4]);
            let expected = conv_transpose2d(
                x.clone(),
                weight.clone(),
                Some(bias.clone()),
                ConvTransposeOptions::new(stride, padding, padding_out, [1, 1], 1),
            );
            let mut calls = 0;
            let ours = conv_transpose2d_phases(
                x,
                weight,
                Some(bias),
                stride,
                padding,
                padding_out,
                |input, taps, padding| {
                    calls += 1;
                    conv2d(
                        input,
                        taps,
                        None,
                        ConvOptions::new([1, 1], padding, [1, 1], 1),
                    )
                },
            );
            let what = format!("size {size:?} kernel {kernel:?} stride {stride:?} padding {padding:?} out {padding_out:?}");
            assert_eq!(ours.dims(), expected.dims(), "{what}");
            ours.into_data()
                .assert_approx_eq(&expected.into_data(), tol);
            assert!(calls <= stride[0] * stride[1], "{what}: {calls} calls");
        }
    }
}
