//! CPU kernels for the extraction forward on burn's Flex backend, behind generic entry points.
//!
//! burn 0.21's Flex backend is what `classify extract` runs on a CPU. Four of its paths dominated
//! a real-size BEiT-Large / WavLM-Large forward (BENCHMARKS.md, issue #5): broadcasting binary
//! ops over the batch (the attention bias, the WavLM gate), the single-threaded exact GELU, the
//! per-clip batched matmuls of `Linear` on `[batch, time, d]`, and its 1-D convolution. The
//! kernels here replace those on Flex with `f32` tensors: one `gemm` call (the crate and version
//! Flex itself uses) per linear map, fused attention per (batch, head), a vectorised parallel
//! GELU, and the feature encoder's strided convolutions as single `gemm` calls over a
//! frames-first view.
//!
//! The entry points ([`linear()`], [`gelu()`], [`attention::fused_attention`], ...) are generic over
//! `B: Backend` so that the encoders keep their `B: Backend` bound: when `B` is [`Flex`] (checked
//! by `TypeId`, so `Autodiff<Flex>` and every other backend take burn's own ops and stay
//! differentiable) the primitive is moved into the kernel and back, with no copy.
//! `DAAM_KERNELS=composed` turns them off ([`kernels_run`]), so the CPU runs burn's ops as a
//! CUDA build does.

#![allow(unsafe_code)]

pub mod attention;
pub mod conv;
pub mod gelu;
pub mod gemm;
pub mod grouped_conv;
pub mod linear;
pub(crate) mod simd;

use std::any::{Any, TypeId};

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};

pub use gelu::gelu;
pub use linear::linear;

/// Whether `B` is exactly the Flex backend (not `Autodiff<Flex>`).
pub fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Flex>()
}

/// Whether the kernels run for backend `B`: `B` is Flex ([`is_flex`]) and `DAAM_KERNELS` does
/// not turn the CPU kernels off ([`daam::cpu_kernels_enabled`], the switch of `daam`'s kernels).
pub fn kernels_run<B: Backend>() -> bool {
    is_flex::<B>() && daam::cpu_kernels_enabled()
}

/// Moves a tensor's primitive out as a Flex `f32` tensor, or gives the tensor back when the
/// kernels do not run for `B` ([`kernels_run`]) or the values are not `f32`.
pub(crate) fn into_flex<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> std::result::Result<FlexTensor, Tensor<B, D>> {
    if !kernels_run::<B>() {
        return Err(tensor);
    }
    let primitive: Box<dyn Any> = Box::new(tensor.into_primitive().tensor());
    let flex = *primitive
        .downcast::<FlexTensor>()
        .expect("B is Flex, so its float primitive is FlexTensor");
    if flex.dtype() == DType::F32 {
        Ok(flex)
    } else {
        Err(from_flex(flex))
    }
}

/// The inverse of [`into_flex`].
///
/// # Panics
/// When `B` is not Flex (callers only hand back what [`into_flex`] gave them).
pub(crate) fn from_flex<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    let primitive: Box<dyn Any> = Box::new(tensor);
    let primitive = *primitive
        .downcast::<B::FloatTensorPrimitive>()
        .expect("from_flex is only called with B = Flex");
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The values of a Flex `f32` tensor in row-major order: borrowed when the tensor is a
/// contiguous view of its whole buffer, copied otherwise.
pub(crate) fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    let n = tensor.shape().num_elements();
    if tensor.is_contiguous() && tensor.layout().start_offset() == 0 {
        std::borrow::Cow::Borrowed(&tensor.storage::<f32>()[..n])
    } else {
        std::borrow::Cow::Owned(tensor.to_contiguous().storage::<f32>()[..n].to_vec())
    }
}

/// [`into_flex`] of an optional tensor: `Some(None)` for `None`, `None` when the tensor cannot
/// take the Flex path.
pub(crate) fn into_flex_optional<B: Backend, const D: usize>(
    tensor: Option<Tensor<B, D>>,
) -> Option<Option<FlexTensor>> {
    match tensor {
        None => Some(None),
        Some(tensor) => into_flex(tensor).ok().map(Some),
    }
}

/// A contiguous Flex `f32` tensor over `values`.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Deterministic pseudo-random test tensors (the kernels' tests must not depend on the global
/// RNG, which parallel tests share).
#[cfg(test)]
pub(crate) fn test_tensor<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<Flex, D> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            // xorshift64*, then the sum of two uniforms minus one: mean 0, spread about ±1.
            let mut next = || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
            };
            (next() + next() - 1.0) * 2.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}
