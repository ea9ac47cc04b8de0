//! A grouped 1-D convolution over time with "same" zero padding of `kernel / 2` on both sides,
//! the first `time` outputs kept, then bias and GELU, frames first (WavLM's convolutional
//! positional embedding: 16 groups of 64 channels, kernel 128).
//!
//! With the input of group `g` copied into a zero-padded `[time + 2·pad, group_width]` block,
//! the receptive field of output frame `t` is the contiguous run of `kernel · group_width`
//! values starting at row `t`, so each (clip, group) is one `gemm` call over a strided view
//! (row stride `group_width`) against that group's kernel rearranged to
//! `[kernel · group_width, group_width]`. burn's Flex `conv1d` with groups was about 25% slower
//! than PyTorch on WavLM-Large's shape.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::gemm::{matmul, MatMut, MatRef};
use super::simd::{dispatch, erf};
use super::{flex_tensor, from_flex, into_flex, values};

/// Per output channel `o` of group `g`, the kernel `[group_width, kernel]` transposed to
/// `[kernel, group_width]`: group `g` becomes the row-major `[kernel · group_width, group_width]`
/// matrix (row `j · group_width + c`, column `o`).
fn rearrange_kernel(weight: &[f32], groups: usize, width: usize, kernel: usize) -> Vec<f32> {
    let block = kernel * width * width;
    let mut out = vec![0.0; groups * block];
    out.par_chunks_mut(block).enumerate().for_each(|(g, dst)| {
        for o in 0..width {
            let filter = &weight[(g * width + o) * width * kernel..][..width * kernel];
            for c in 0..width {
                for j in 0..kernel {
                    dst[(j * width + c) * width + o] = filter[c * kernel + j];
                }
            }
        }
    });
    out
}

#[inline(always)]
fn bias_gelu_body(row: &mut [f32], bias: &[f32]) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for (v, &b) in row.iter_mut().zip(bias) {
        let x = *v + b;
        let h = 0.5 * x;
        *v = h + h * erf(x * FRAC_1_SQRT_2);
    }
}

dispatch!(fn bias_gelu(row: &mut [f32], bias: &[f32]) => bias_gelu_body);

/// The kernel on row-major values: `x` `[batch, time, channels]`, `weight`
/// `[channels, channels / groups, kernel]`; returns `gelu(conv(x) + bias)` `[batch, time,
/// channels]`.
fn forward_values(
    x: &[f32],
    [batch, time, channels]: [usize; 3],
    weight: &[f32],
    bias: &[f32],
    groups: usize,
    kernel: usize,
) -> Vec<f32> {
    let width = channels / groups;
    let pad = kernel / 2;
    let padded = time + 2 * pad;
    let kernels = rearrange_kernel(weight, groups, width, kernel);
    // [batch, groups, time, width]
    let mut heads = vec![0.0; batch * groups * time * width];
    heads
        .par_chunks_mut(time * width)
        .enumerate()
        .for_each(|(task, out)| {
            let (b, g) = (task / groups, task % groups);
            let mut block = vec![0.0; padded * width];
            for (t, row) in block[pad * width..(pad + time) * width]
                .chunks_exact_mut(width)
                .enumerate()
            {
                row.copy_from_slice(&x[(b * time + t) * channels + g * width..][..width]);
            }
            matmul(
                MatMut::row_major(out, time, width),
                false,
                MatRef::new(&block, 0, [time, kernel * width], [width, 1]),
                MatRef::row_major(
                    &kernels[g * kernel * width * width..],
                    kernel * width,
                    width,
                ),
                1.0,
                false,
            );
        });
    let mut y = vec![0.0; batch * time * channels];
    y.par_chunks_mut(time * channels)
        .enumerate()
        .for_each(|(b, clip)| {
            for (t, row) in clip.chunks_exact_mut(channels).enumerate() {
                for g in 0..groups {
                    let src = &heads[((b * groups + g) * time + t) * width..][..width];
                    row[g * width..(g + 1) * width].copy_from_slice(src);
                }
                bias_gelu(row, bias);
            }
        });
    y
}

/// `gelu(conv1d(x, weight, bias, groups, padding kernel / 2)[..time])` on Flex; gives `x` back
/// on other backends.
///
/// # Shapes
/// - `x`: `[batch_size, seq_length, d_model]`
/// - `weight`: `[d_model, d_model / num_groups, kernel]`; `bias`: `[d_model]`
/// - output: `[batch_size, seq_length, d_model]`
///
/// # Panics
/// When `d_model` is not `num_groups` times the weight's input channels.
pub fn same_grouped_conv_gelu<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 1>,
    num_groups: usize,
) -> std::result::Result<Tensor<B, 3>, Tensor<B, 3>> {
    let dims = x.dims();
    let [d_out, width, kernel] = weight.dims();
    assert!(
        d_out == dims[2] && width * num_groups == dims[2],
        "grouped conv: kernel [{d_out}, {width}, {kernel}] with {num_groups} groups for \
         {} channels",
        dims[2]
    );
    let flex = into_flex(x)?;
    let (Ok(w), Ok(b)) = (into_flex(weight), into_flex(bias)) else {
        return Err(from_flex(flex));
    };
    let y = forward_values(
        &values(&flex),
        dims,
        &values(&w),
        &values(&b),
        num_groups,
        kernel,
    );
    Ok(from_flex(flex_tensor(y, &dims)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_tensor;
    use burn::backend::Flex;
    use burn::tensor::activation::gelu;
    use burn::tensor::module::conv1d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::Tolerance;

    fn random<const D: usize>(seed: u64, shape: [usize; D]) -> Tensor<Flex, D> {
        test_tensor(shape, seed)
    }

    #[test]
    fn matches_burns_grouped_conv1d_for_even_and_odd_kernels() {
        let (batch, time, channels, groups) = (2, 9, 6, 3);
        for kernel in [4, 5] {
            let x = random(1, [batch, time, channels]);
            let weight = random(2, [channels, channels / groups, kernel]);
            let bias = random(3, [channels]);
            let options = ConvOptions::new([1], [kernel / 2], [1], groups);
            let y = conv1d(
                x.clone().swap_dims(1, 2),
                weight.clone(),
                Some(bias.clone()),
                options,
            );
            let expected = gelu(y.slice([0..batch, 0..channels, 0..time])).swap_dims(1, 2);
            let got = same_grouped_conv_gelu(x, weight, bias, groups).expect("Flex");
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }
}
