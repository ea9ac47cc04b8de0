//! BEiT against Hugging Face `BeitModel` (transformers 4.46.3) on the tiny random checkpoints of
//! `tools/make_encoder_fixtures.py`: a per-layer relative position bias (`beit`, as
//! beit-large-patch16-224) and a shared one (`beit-shared`, as the -pt22k checkpoints).

use crate::common::{fixture, relative_error, Reference, B, TOLERANCE};
use burn::tensor::Tensor;
use encoders::beit::Beit;
use encoders::Error;

fn check(name: &str) {
    let device = Default::default();
    let model = Beit::<B>::load(fixture(name), &device).expect("load");
    let reference = Reference::open(name, "reference.safetensors");
    let pixels: Tensor<B, 4> = reference.float("pixel_values");
    let expected: Tensor<B, 4> = reference.float("hidden_states");
    let out = model.forward(pixels).expect("forward");
    assert_eq!(out.states.len(), expected.dims()[0]);
    for (i, state) in out.states.iter().enumerate() {
        let [_, b, t, d] = expected.dims();
        let want: Tensor<B, 3> = expected.clone().narrow(0, i, 1).reshape([b, t, d]);
        let err = relative_error(state.clone(), want);
        eprintln!("{name}: hidden state {i}: relative error {err:.2e}");
        assert!(err < TOLERANCE, "{name}: hidden state {i}: {err}");
    }
    let err = relative_error(out.pooled_layers(), reference.float("pooled"));
    eprintln!("{name}: pooled layers: relative error {err:.2e}");
    assert!(err < TOLERANCE, "{name}: pooled: {err}");
}

#[test]
fn per_layer_relative_position_bias_matches_transformers() {
    check("beit");
}

#[test]
fn shared_relative_position_bias_matches_transformers() {
    check("beit-shared");
}

#[test]
fn a_wrong_image_size_is_an_input_error() {
    let device = Default::default();
    let model = Beit::<B>::load(fixture("beit"), &device).expect("load");
    let pixels = Tensor::<B, 4>::zeros([1, 3, 48, 48], &device);
    match model.forward(pixels) {
        Err(Error::Input(message)) => assert!(message.contains("48"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn a_checkpoint_without_a_layer_tensor_names_it() {
    let dir = std::env::temp_dir().join(format!("beit-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("beit").join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(fixture("beit").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != "encoder.layer.1.lambda_2")
        .collect();
    safetensors::serialize_to_file(kept, &None, &dir.join("model.safetensors")).unwrap();
    let result = Beit::<B>::load(&dir, &Default::default());
    std::fs::remove_dir_all(&dir).ok();
    match result {
        Err(Error::MissingTensor { name, .. }) => assert_eq!(name, "encoder.layer.1.lambda_2"),
        other => panic!("expected a missing tensor, got {other:?}"),
    }
}
