//! Helpers shared by the integration tests: fixture loading and error measures.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;

/// The backend the integration tests train on.
pub type B = Autodiff<Flex>;

/// A fixture written by `tools/make_daam_fixtures.py`.
pub struct Fixture {
    pub name: String,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

impl Fixture {
    pub fn load(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let metadata = meta.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).expect("safetensors body");
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
                let values = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        Self {
            name: name.to_string(),
            tensors,
            metadata,
        }
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("{}: no metadata {key}", self.name))
    }

    pub fn usize(&self, key: &str) -> usize {
        self.meta(key).parse().expect("integer metadata")
    }

    pub fn tensor<Bk: Backend, const D: usize>(&self, key: &str) -> Tensor<Bk, D> {
        let (shape, values) = self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name));
        Tensor::from_data(
            TensorData::new(values.clone(), shape.clone()),
            &Default::default(),
        )
    }

    pub fn values(&self, key: &str) -> &[f32] {
        &self
            .tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
            .1
    }
}

/// `max |a − b| / max |b|`: the error relative to the tensor's scale. Element-wise relative
/// error is meaningless where the reference crosses zero.
pub fn relative_error(actual: &[f32], expected: &[f32]) -> f64 {
    assert_eq!(actual.len(), expected.len(), "length");
    let scale = expected
        .iter()
        .fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let diff = actual.iter().zip(expected).fold(0.0f64, |m, (&a, &b)| {
        m.max((f64::from(a) - f64::from(b)).abs())
    });
    assert!(actual.iter().all(|v| v.is_finite()), "non-finite values");
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

pub fn to_vec<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

/// Asserts a relative error under `tolerance`, naming the fixture and tensor.
pub fn assert_close(fixture: &str, what: &str, actual: &[f32], expected: &[f32], tolerance: f64) {
    let err = relative_error(actual, expected);
    assert!(
        err < tolerance,
        "{fixture}: {what} relative error {err:.3e} ≥ {tolerance:.0e}"
    );
}

/// Standard normal samples from a seeded generator (burn's own generator is global, shared by
/// tests running in parallel).
pub fn seeded_normal<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = TensorData::random::<f32, _, _>(
        shape,
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &mut rng,
    );
    Tensor::from_data(data, &Default::default())
}
