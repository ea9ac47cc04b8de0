//! Exact (erf) GELU, `x·Φ(x) = x/2 · (1 + erf(x/√2))`, as transformers' `"gelu"`: on Flex a
//! vectorised loop over chunks in parallel, in place when the tensor owns its buffer (burn's
//! Flex GELU evaluates `libm::erff` on one thread).

use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::simd::{dispatch, erf};
use super::{flex_tensor, from_flex, into_flex, values};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for v in x.iter_mut() {
        let h = 0.5 * *v;
        *v = h + h * erf(*v * FRAC_1_SQRT_2);
    }
}

dispatch!(fn gelu_chunk(x: &mut [f32]) => gelu_body);

/// GELU of every element, in place, in parallel.
pub fn gelu_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

/// The exact GELU of `x` (burn's [`activation::gelu`] on backends other than Flex).
///
/// # Shapes
/// - `x`: any; output: the same
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let mut flex = match into_flex(x) {
        Ok(flex) => flex,
        Err(x) => return activation::gelu(x),
    };
    let whole = flex.is_contiguous()
        && flex.layout().start_offset() == 0
        && flex.storage::<f32>().len() == flex.layout().num_elements();
    if whole {
        if let Some(storage) = flex.try_storage_mut::<f32>() {
            gelu_in_place(storage);
            return from_flex(flex);
        }
    }
    let shape = flex.layout().shape().to_vec();
    let mut out = values(&flex).into_owned();
    gelu_in_place(&mut out);
    from_flex(flex_tensor(out, &shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tolerance;

    /// `x/2 · erf(x/√2)` carries erf's absolute error (below 5e-7) times `|x|/2`, at most
    /// 2.9 where erf is not yet clamped to ±1.
    fn tolerance() -> Tolerance<f32> {
        Tolerance::rel_abs(1e-6, 1.5e-6)
    }

    #[test]
    fn matches_burns_exact_gelu_on_fresh_and_shared_and_strided_tensors() {
        let x = crate::kernels::test_tensor([3, 5, 4099], 7) * 2.0;
        let expected = activation::gelu(x.clone()).into_data();
        // Shared buffer (x is still alive): computed into a copy, x unchanged.
        let shared = gelu(x.clone());
        shared
            .into_data()
            .assert_approx_eq::<f32>(&expected, tolerance());
        // Unique buffer: in place.
        let fresh = gelu(x.clone() * 1.0);
        fresh
            .into_data()
            .assert_approx_eq::<f32>(&expected, tolerance());
        // Strided view.
        let swapped = gelu(x.clone().swap_dims(0, 2)).swap_dims(0, 2);
        swapped
            .into_data()
            .assert_approx_eq::<f32>(&expected, tolerance());
    }
}
