//! Shared helpers of the parity tests: the fixtures' reference tensors and the relative-error
//! comparison.

#![allow(dead_code)]

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;

/// The test backend.
pub type B = Flex;

/// `encoders/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One tensor of a fixture's reference file, as (f32 or i64 values, shape).
pub struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    /// Reads `tests/fixtures/<name>/<file>`.
    pub fn open(name: &str, file: &str) -> Self {
        let path = fixture(name).join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { bytes }
    }

    fn view(&self, key: &str) -> (Vec<u8>, Vec<usize>, safetensors::Dtype) {
        let st = SafeTensors::deserialize(&self.bytes).expect("reference file");
        let t = st
            .tensor(key)
            .unwrap_or_else(|_| panic!("no `{key}` in the reference"));
        (t.data().to_vec(), t.shape().to_vec(), t.dtype())
    }

    /// A float tensor.
    pub fn float<const D: usize>(&self, key: &str) -> Tensor<B, D> {
        let (bytes, shape, dtype) = self.view(key);
        assert_eq!(dtype, safetensors::Dtype::F32, "{key}");
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    /// An i64 tensor's values and shape.
    pub fn int(&self, key: &str) -> (Vec<i64>, Vec<usize>) {
        let (bytes, shape, dtype) = self.view(key);
        assert_eq!(dtype, safetensors::Dtype::I64, "{key}");
        let values = bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (values, shape)
    }
}

/// `max|actual − expected| / max|expected|`.
pub fn relative_error<const D: usize>(actual: Tensor<B, D>, expected: Tensor<B, D>) -> f32 {
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let diff: f32 = (actual - expected.clone()).abs().max().into_scalar();
    let scale: f32 = expected.abs().max().into_scalar();
    diff / scale.max(f32::MIN_POSITIVE)
}

/// The acceptance bound of issue #5: relative error < 1e-4 in f32.
pub const TOLERANCE: f32 = 1e-4;
