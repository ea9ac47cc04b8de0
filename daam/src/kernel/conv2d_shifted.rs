//! Stride-1 convolution with few output channels, without an im2col matrix (the DAT head's
//! 512 → 24-channel 3×3 convolution).
//!
//! [`super::conv2d`] writes each image's im2col matrix (`in·kh·kw × out_h·out_w`: 4608 × 1024
//! floats, 19 MB, for the DAT head) and reads it back, in the forward and again in the
//! backward; with 24 output channels the multiply that follows is too thin (`N = 24`) to hide
//! that traffic, and runs at two thirds of the multiply's speed on wider shapes. Here every
//! kernel tap `k = (ky, kx)` is a 1×1 convolution whose output is shifted by the tap's offset,
//! and the taps are stacked into one multiply with `kh·kw·out` rows (216 for the DAT head).
//! Per image `x_b` (`[in, H·W]`, read in place) with `W_r[(k, o), c] = W[o, c, ky, kx]`:
//!
//! - forward: `G = W_r · x_b` (`[kh·kw·out, H·W]`), then
//!   `out[o, y, x] = bias[o] + Σ_k G[(k, o), y + ky − pad_h, x + kx − pad_w]` over the taps
//!   whose position lies inside the image (zero padding);
//! - backward: `D[(k, o), y', x'] = ∂out[o, y' − ky + pad_h, x' − kx + pad_w]` (zero outside),
//!   `∂W_r += D · x_bᵀ`, `∂x_b = W_rᵀ · D`, `∂bias += Σ ∂out`.
//!
//! The multiplies have `in`, `H·W` and `kh·kw·out` as their sizes, all large for the DAT head;
//! the shifted sums touch `kh·kw·out·H·W` floats, `in / out` times fewer than an im2col matrix.

use rayon::prelude::*;

use super::conv2d::{self, matmul, valid_range, Conv2dDims, Conv2dGradients};

/// Whether [`forward`] and [`backward`] compute `d`: stride 1.
pub fn supports(d: &Conv2dDims) -> bool {
    d.stride == [1, 1]
}

/// Whether this path beats the im2col kernel for `d`: [`supports`] and at least four times as
/// many input as output channels, where the stacked taps (`kh·kw·out` rows) are much smaller
/// than the im2col matrix (`kh·kw·in` rows).
pub fn preferred(d: &Conv2dDims) -> bool {
    supports(d) && 4 * d.out_channels <= d.in_channels
}

/// `[out, in, kh, kw]` → `W_r` `[(kh, kw, out), in]`.
fn stacked_taps(weight: &[f32], d: &Conv2dDims) -> Vec<f32> {
    let (ci, co, taps) = (d.in_channels, d.out_channels, d.kernel[0] * d.kernel[1]);
    let mut out = vec![0.0; weight.len()];
    for o in 0..co {
        for c in 0..ci {
            for k in 0..taps {
                out[(k * co + o) * ci + c] = weight[(o * ci + c) * taps + k];
            }
        }
    }
    out
}

/// `W_r` `[(kh, kw, out), in]` → `[out, in, kh, kw]`.
fn unstacked_taps(stacked: &[f32], d: &Conv2dDims) -> Vec<f32> {
    let (ci, co, taps) = (d.in_channels, d.out_channels, d.kernel[0] * d.kernel[1]);
    let mut out = vec![0.0; stacked.len()];
    for o in 0..co {
        for c in 0..ci {
            for k in 0..taps {
                out[(o * ci + c) * taps + k] = stacked[(k * co + o) * ci + c];
            }
        }
    }
    out
}

/// For tap offset `k` along `axis`: the output rows (or columns) whose input row lies inside
/// the image, and the input row of the first of them.
fn tap_ranges(d: &Conv2dDims, axis: usize, k: usize) -> (std::ops::Range<usize>, usize) {
    let out_len = d.output()[axis];
    let range = valid_range(out_len, d.input[axis], k, 1, d.padding[axis]);
    let first = (range.start + k).saturating_sub(d.padding[axis]);
    (range, first)
}

/// `out_b[o, y, x] = Σ_k G[(k, o), y + ky − pad_h, x + kx − pad_w]` for one image.
fn shifted_sum(taps: &[f32], d: &Conv2dDims, out: &mut [f32]) {
    let ([h, w], [oh, ow], [kh, kw]) = (d.input, d.output(), d.kernel);
    let co = d.out_channels;
    out.fill(0.0);
    for ky in 0..kh {
        let (rows, iy0) = tap_ranges(d, 0, ky);
        for kx in 0..kw {
            let (cols, ix0) = tap_ranges(d, 1, kx);
            if cols.is_empty() {
                continue;
            }
            for (o, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
                let src = &taps[((ky * kw + kx) * co + o) * h * w..][..h * w];
                for (i, y) in rows.clone().enumerate() {
                    let dst = &mut plane[y * ow..][cols.clone()];
                    let row = &src[(iy0 + i) * w + ix0..][..dst.len()];
                    dst.iter_mut().zip(row).for_each(|(a, &b)| *a += b);
                }
            }
        }
    }
}

/// `D[(k, o), y', x'] = ∂out_b[o, y' − ky + pad_h, x' − kx + pad_w]` (zero outside).
fn spread_gradient(grad_out: &[f32], d: &Conv2dDims, spread: &mut [f32]) {
    let ([h, w], [oh, ow], [kh, kw]) = (d.input, d.output(), d.kernel);
    let co = d.out_channels;
    spread.fill(0.0);
    for ky in 0..kh {
        let (rows, iy0) = tap_ranges(d, 0, ky);
        for kx in 0..kw {
            let (cols, ix0) = tap_ranges(d, 1, kx);
            if cols.is_empty() {
                continue;
            }
            for (o, plane) in grad_out.chunks_exact(oh * ow).enumerate() {
                let dst = &mut spread[((ky * kw + kx) * co + o) * h * w..][..h * w];
                for (i, y) in rows.clone().enumerate() {
                    let src = &plane[y * ow..][cols.clone()];
                    dst[(iy0 + i) * w + ix0..][..src.len()].copy_from_slice(src);
                }
            }
        }
    }
}

/// Convolution forward (as [`conv2d::forward`]) for a `d` that [`supports`].
///
/// # Panics
/// If `d` is not supported or a slice length does not fit it.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    d: &Conv2dDims,
    out: &mut [f32],
) {
    let (ci, co, plane) = check(x, weight, d);
    let [oh, ow] = d.output();
    let rows = d.kernel[0] * d.kernel[1] * co;
    assert_eq!(
        out.len(),
        d.batch * co * oh * ow,
        "shifted conv2d: output of {d:?}"
    );
    let stacked = stacked_taps(weight, d);
    out.par_chunks_mut(co * oh * ow)
        .zip(x.par_chunks(ci * plane))
        .with_min_len(conv2d::images_per_task(d.batch))
        .for_each_init(
            || vec![0.0; rows * plane],
            |taps, (out_b, x_b)| {
                // G [(k, o), H·W] = W_r [(k, o), in] · x_b [in, H·W]
                matmul(
                    [rows, plane, ci],
                    taps,
                    (plane, 1),
                    &stacked,
                    (ci, 1),
                    x_b,
                    (plane, 1),
                    false,
                    d.batch == 1,
                );
                shifted_sum(taps, d, out_b);
                conv2d::epilogue(out_b, oh * ow, bias, relu);
            },
        );
}

/// Convolution backward (as [`conv2d::backward`]) for a `d` that [`supports`].
///
/// # Panics
/// If `d` is not supported or a slice length does not fit it.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    relu_output: Option<&[f32]>,
    d: &Conv2dDims,
) -> Conv2dGradients {
    let (ci, co, plane) = check(x, weight, d);
    let [oh, ow] = d.output();
    let rows = d.kernel[0] * d.kernel[1] * co;
    assert_eq!(
        grad_out.len(),
        d.batch * co * oh * ow,
        "shifted conv2d: grad_out of {d:?}"
    );
    // Few output channels: masking the whole ∂out up front is cheap.
    let grad_out = conv2d::masked_gradient(grad_out, relu_output);
    let stacked = stacked_taps(weight, d);
    let parallel = d.batch == 1;
    let mut grad_x = vec![0.0; x.len()];
    let (grad_w, grad_b) = grad_x
        .par_chunks_mut(ci * plane)
        .zip(x.par_chunks(ci * plane))
        .zip(grad_out.par_chunks(co * oh * ow))
        .with_min_len(conv2d::images_per_task(d.batch))
        .fold(
            || (vec![0.0; rows * plane], vec![0.0; rows * ci], vec![0.0; co]),
            |(mut spread, mut gw, mut gb), ((dx_b, x_b), go_b)| {
                spread_gradient(go_b, d, &mut spread);
                // ∂W_r [(k, o), in] += D [(k, o), H·W] · x_bᵀ [H·W, in]
                matmul(
                    [rows, ci, plane],
                    &mut gw,
                    (ci, 1),
                    &spread,
                    (plane, 1),
                    x_b,
                    (1, plane),
                    true,
                    parallel,
                );
                // ∂x_b [in, H·W] = W_rᵀ [in, (k, o)] · D [(k, o), H·W]
                matmul(
                    [ci, plane, rows],
                    dx_b,
                    (plane, 1),
                    &stacked,
                    (1, ci),
                    &spread,
                    (plane, 1),
                    false,
                    parallel,
                );
                for (g, p) in gb.iter_mut().zip(go_b.chunks_exact(oh * ow)) {
                    *g += p.iter().sum::<f32>();
                }
                (spread, gw, gb)
            },
        )
        .map(|(_, gw, gb)| (gw, gb))
        .reduce(
            || (vec![0.0; rows * ci], vec![0.0; co]),
            |(mut w, mut b), (w2, b2)| {
                w.iter_mut().zip(&w2).for_each(|(a, v)| *a += v);
                b.iter_mut().zip(&b2).for_each(|(a, v)| *a += v);
                (w, b)
            },
        );
    Conv2dGradients {
        x: grad_x,
        weight: unstacked_taps(&grad_w, d),
        bias: grad_b,
    }
}

/// Checks the lengths; returns `(in, out, H·W)`.
fn check(x: &[f32], weight: &[f32], d: &Conv2dDims) -> (usize, usize, usize) {
    assert!(supports(d), "shifted conv2d: needs stride 1, got {d:?}");
    let plane = d.input[0] * d.input[1];
    assert_eq!(
        x.len(),
        d.batch * d.in_channels * plane,
        "shifted conv2d: input of {d:?}"
    );
    assert_eq!(
        weight.len(),
        d.out_channels * d.patch_len(),
        "shifted conv2d: weight of {d:?}"
    );
    (d.in_channels, d.out_channels, plane)
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::tests::{naive, values};
    use super::*;

    fn cases() -> Vec<Conv2dDims> {
        let d = |batch, in_channels, out_channels, input, kernel, padding| Conv2dDims {
            batch,
            in_channels,
            out_channels,
            input,
            kernel,
            stride: [1, 1],
            padding,
        };
        vec![
            d(2, 90, 5, [7, 6], [3, 3], [1, 1]),
            d(1, 7, 3, [5, 4], [2, 2], [1, 0]),
            d(3, 4, 2, [6, 5], [5, 3], [2, 1]),
            d(2, 6, 4, [4, 7], [1, 1], [0, 0]),
            d(1, 5, 2, [4, 5], [3, 3], [3, 2]),
            d(2, 3, 2, [3, 4], [1, 2], [1, 0]),
        ]
    }

    #[test]
    fn support_and_preference() {
        let dat = Conv2dDims {
            batch: 32,
            in_channels: 512,
            out_channels: 24,
            input: [32, 32],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
        };
        assert!(preferred(&dat));
        assert!(!preferred(&Conv2dDims {
            in_channels: 24,
            out_channels: 512,
            ..dat
        }));
        assert!(!supports(&Conv2dDims {
            stride: [2, 2],
            ..dat
        }));
    }

    #[test]
    fn weight_reorders_round_trip() {
        let d = cases()[2];
        let w = values(d.out_channels * d.patch_len(), 9);
        assert_eq!(unstacked_taps(&stacked_taps(&w, &d), &d), w);
    }

    #[test]
    fn forward_matches_the_definition() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 1);
            let w = values(d.out_channels * d.patch_len(), 2);
            let b = values(d.out_channels, 3);
            let [oh, ow] = d.output();
            let mut out = vec![0.0; d.batch * d.out_channels * oh * ow];
            forward(&x, &w, Some(&b), false, &d, &mut out);
            let expected = naive(&x, &w, &b, &d);
            for (i, (a, e)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                    "{d:?} at {i}: {a} vs {e}"
                );
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences_of_the_definition() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 4);
            let w = values(d.out_channels * d.patch_len(), 5);
            let b = values(d.out_channels, 6);
            let [oh, ow] = d.output();
            let g = values(d.batch * d.out_channels * oh * ow, 7);
            let grads = backward(&x, &w, &g, None, &d);
            // L = Σ g ⊙ conv(x, w, b) is linear in each argument: a unit step gives the exact
            // derivative.
            let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
                naive(x, w, b, &d)
                    .iter()
                    .zip(&g)
                    .map(|(o, g)| f64::from(*o) * f64::from(*g))
                    .sum()
            };
            let base = loss(&x, &w, &b);
            let step = |v: &[f32], i: usize| {
                let mut v = v.to_vec();
                v[i] += 1.0;
                v
            };
            let close = |got: f32, fd: f64, what: &str| {
                assert!(
                    (f64::from(got) - fd).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{d:?} {what}: {got} vs {fd}"
                );
            };
            for i in (0..x.len()).step_by(7) {
                close(grads.x[i], loss(&step(&x, i), &w, &b) - base, "dx");
            }
            for i in (0..w.len()).step_by(5) {
                close(grads.weight[i], loss(&x, &step(&w, i), &b) - base, "dw");
            }
            for i in 0..b.len() {
                close(grads.bias[i], loss(&x, &w, &step(&b, i)) - base, "db");
            }
        }
    }

    /// With a ReLU the forward is `max(conv, 0)` and the backward equals the plain backward of
    /// `∂out` zeroed where that output is not positive.
    #[test]
    fn relu_forward_and_backward_match_the_masked_convolution() {
        for d in cases() {
            let x = values(d.batch * d.in_channels * d.input[0] * d.input[1], 11);
            let w = values(d.out_channels * d.patch_len(), 12);
            let b = values(d.out_channels, 13);
            let [oh, ow] = d.output();
            let g = values(d.batch * d.out_channels * oh * ow, 14);
            let (mut plain, mut fused) = (vec![0.0; g.len()], vec![0.0; g.len()]);
            forward(&x, &w, Some(&b), false, &d, &mut plain);
            forward(&x, &w, Some(&b), true, &d, &mut fused);
            assert!(
                plain.iter().any(|&v| v < 0.0),
                "{d:?}: no negative output to mask"
            );
            for (f, p) in fused.iter().zip(&plain) {
                assert_eq!(*f, p.max(0.0), "{d:?}");
            }
            let masked: Vec<f32> = g
                .iter()
                .zip(&plain)
                .map(|(&g, &p)| if p > 0.0 { g } else { 0.0 })
                .collect();
            assert_eq!(
                backward(&x, &w, &g, Some(&fused), &d),
                backward(&x, &w, &masked, None, &d),
                "{d:?}"
            );
        }
    }
}
