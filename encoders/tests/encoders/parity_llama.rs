//! Parity of `encoders::llama` with transformers 4.46.3's `LlamaModel` and tokenizers 0.20.3 on
//! the tiny random checkpoint `tests/fixtures/llama` (2 layers, 4 query heads over 2 key/value
//! heads, d_model 32, vocabulary 287), written by `tools/make_encoder_fixtures.py`.

use std::path::Path;

use crate::common::{fixture, relative_error, Reference, B, TOLERANCE};
use burn::tensor::{Int, Tensor, TensorData};
use encoders::llama::{Llama, LlamaTokenizer};
use encoders::Error;

const NAME: &str = "llama";

struct Fixture {
    model: Llama<B>,
    input_ids: Vec<i64>,
    lengths: Vec<usize>,
    /// `[batch_size, seq_length]`.
    shape: [usize; 2],
    reference: Reference,
}

fn load() -> Fixture {
    let device = Default::default();
    let model = Llama::<B>::load(fixture(NAME), &device).expect("fixture model");
    let reference = Reference::open(NAME, "reference.safetensors");
    let (input_ids, shape) = reference.int("input_ids");
    let (lengths, _) = reference.int("text_lengths");
    Fixture {
        model,
        input_ids,
        lengths: lengths.iter().map(|&n| n as usize).collect(),
        shape: [shape[0], shape[1]],
        reference,
    }
}

fn ids(values: Vec<i64>, shape: [usize; 2]) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// The real positions of each row, concatenated along the time axis: `[1, Σ lengths, d_model]`.
fn valid_positions(states: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 3> {
    let rows = lengths
        .iter()
        .enumerate()
        .map(|(row, &length)| states.clone().narrow(0, row, 1).narrow(1, 0, length))
        .collect();
    Tensor::cat(rows, 1)
}

#[test]
fn hidden_states_and_pooled_layers_match_transformers() {
    let f = load();
    let (mask, _) = f.reference.int("attention_mask");
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, f.shape), &Default::default());
    let out = f
        .model
        .forward(ids(f.input_ids.clone(), f.shape), Some(mask))
        .expect("forward");

    let expected: Tensor<B, 4> = f.reference.float("hidden_states");
    let num_states = expected.dims()[0];
    assert_eq!(out.states.len(), num_states, "L + 1 hidden states");
    for (layer, state) in out.states.iter().enumerate() {
        let reference = expected.clone().narrow(0, layer, 1).squeeze_dim::<3>(0);
        let error = relative_error(
            valid_positions(state.clone(), &f.lengths),
            valid_positions(reference, &f.lengths),
        );
        eprintln!("llama hidden_states[{layer}]: relative error {error:.3e} (valid positions)");
        assert!(error < TOLERANCE, "hidden_states[{layer}]: {error:.3e}");
    }

    let error = relative_error(out.pooled_layers(), f.reference.float::<3>("pooled"));
    eprintln!("llama pooled [batch, L, d_model]: relative error {error:.3e}");
    assert!(error < TOLERANCE, "pooled: {error:.3e}");
}

#[test]
fn each_row_alone_equals_its_real_positions_in_the_padded_batch() {
    let f = load();
    let [batch_size, seq_length] = f.shape;
    let (mask, _) = f.reference.int("attention_mask");
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, f.shape), &Default::default());
    let batched = f
        .model
        .forward(ids(f.input_ids.clone(), f.shape), Some(mask))
        .expect("padded batch");
    for row in 0..batch_size {
        let length = f.lengths[row];
        let row_ids = f.input_ids[row * seq_length..row * seq_length + length].to_vec();
        let alone = f
            .model
            .forward(ids(row_ids, [1, length]), None)
            .expect("single row");
        for (layer, (single, padded)) in alone.states.iter().zip(&batched.states).enumerate() {
            let padded = padded.clone().narrow(0, row, 1).narrow(1, 0, length);
            let error = relative_error(single.clone(), padded);
            eprintln!(
                "llama row {row} alone ({length} tokens) vs padded batch, state {layer}: \
                 relative error {error:.3e}"
            );
            assert!(error < TOLERANCE, "row {row}, state {layer}: {error:.3e}");
        }
    }
}

#[test]
fn tokenizer_reproduces_the_reference_ids() {
    let tokenizer = LlamaTokenizer::from_dir(fixture(NAME)).expect("tokenizer.json");
    let path = fixture(NAME).join("texts.json");
    let texts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("texts.json")).expect("json");
    let expected: Vec<Vec<u32>> = serde_json::from_value(texts["ids"].clone()).expect("ids");
    let texts: Vec<String> = serde_json::from_value(texts["texts"].clone()).expect("texts");
    for (text, expected) in texts.iter().zip(&expected) {
        let got = tokenizer.encode(text, true).expect("encode");
        assert_eq!(&got, expected, "{text:?}");
    }

    // The batch helper reproduces the reference's padded ids and mask.
    let f = Reference::open(NAME, "reference.safetensors");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = tokenizer
        .encode_batch::<B>(&refs, &Default::default())
        .expect("batch");
    let (ids, shape) = f.int("input_ids");
    let (mask, _) = f.int("attention_mask");
    batch
        .input_ids
        .into_data()
        .assert_eq(&TensorData::new(ids, shape.clone()).convert::<i32>(), false);
    let mask: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
    batch
        .attention_mask
        .into_data()
        .assert_eq(&TensorData::new(mask, shape), false);
}

#[test]
fn tokenizer_truncates_keeping_the_bos() {
    let tokenizer = LlamaTokenizer::from_dir(fixture(NAME))
        .and_then(|t| t.with_max_length(5))
        .expect("tokenizer.json");
    let ids = tokenizer.encode("the sand is wet.", true).expect("encode");
    assert_eq!(ids, [1, 281, 285, 282, 270]);
}

#[test]
fn a_missing_tokenizer_file_is_named() {
    let path = fixture(NAME).join("no-such-tokenizer.json");
    let err = LlamaTokenizer::from_file(&path).unwrap_err();
    assert!(
        matches!(&err, Error::Tokenizer { path: p, .. } if p == &path),
        "{err}"
    );
}

/// A copy of the fixture in a temporary folder, with `edit` applied to `config.json` and
/// `drop` left out of `model.safetensors`.
fn edited_fixture(edit: impl Fn(&mut serde_json::Value), drop: &str) -> tempfile::TempDir {
    let source = fixture(NAME);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json")).unwrap())
            .unwrap();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<_> = tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != drop)
        .collect();
    let written = safetensors::serialize(kept, &None).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), written).unwrap();
    dir
}

fn load_error(dir: &Path) -> Error {
    Llama::<B>::load(dir, &Default::default()).unwrap_err()
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = edited_fixture(|_| {}, "layers.1.mlp.up_proj.weight");
    let err = load_error(dir.path());
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name == "layers.1.mlp.up_proj.weight"),
        "{err}"
    );
}

#[test]
fn rope_scaling_is_unsupported() {
    let dir = edited_fixture(
        |config| config["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 2.0}),
        "",
    );
    let err = load_error(dir.path());
    assert!(
        matches!(&err, Error::Unsupported { path, message }
            if path.ends_with("config.json") && message.contains("rope_scaling")),
        "{err}"
    );
}

#[test]
fn out_of_vocabulary_ids_are_an_input_error() {
    let f = load();
    let err = f
        .model
        .forward(ids(vec![1, 287], [1, 2]), None)
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
}
