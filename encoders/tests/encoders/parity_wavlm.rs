//! Parity of `encoders::wavlm` with transformers 4.46.3's `WavLMModel` on the tiny random
//! checkpoint of `tests/fixtures/wavlm` (pre-norm, layer-norm feature encoder, even positional
//! kernel; written by `tools/make_encoder_fixtures.py`).

use std::path::{Path, PathBuf};

use crate::common::{fixture, relative_error, Reference, B, TOLERANCE};
use burn::tensor::{Tensor, TensorData};
use encoders::wavlm::WavLM;
use encoders::{Error, HiddenStates};
use safetensors::SafeTensors;

fn load(dir: &Path) -> WavLM<B> {
    WavLM::load(dir, &Default::default()).expect("load the WavLM fixture")
}

/// Reference `hidden_states[layer]` as `[batch, time, d_model]`.
fn reference_state(hidden_states: &Tensor<B, 4>, layer: usize) -> Tensor<B, 3> {
    let [_, batch, time, d_model] = hidden_states.dims();
    hidden_states
        .clone()
        .narrow(0, layer, 1)
        .reshape([batch, time, d_model])
}

/// A copy of the fixture in a fresh temp folder whose tensor names are `rename`d (`None` drops
/// the tensor).
fn rewritten_copy(label: &str, rename: impl Fn(&str) -> Option<String>) -> PathBuf {
    let source = fixture("wavlm");
    let dir = std::env::temp_dir().join(format!(
        "encoders-parity-wavlm-{}-{label}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(source.join("config.json"), dir.join("config.json")).unwrap();
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, _)> = tensors
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| rename(&name).map(|new| (new, view)))
        .collect();
    let data = safetensors::serialize(renamed, &None).unwrap();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
    dir
}

fn max_state_error(a: &HiddenStates<B>, b: &HiddenStates<B>) -> f32 {
    a.states
        .iter()
        .zip(&b.states)
        .map(|(x, y)| relative_error(x.clone(), y.clone()))
        .fold(0.0, f32::max)
}

#[test]
fn every_hidden_state_and_the_pooled_layers_match_transformers() {
    let model = load(&fixture("wavlm"));
    let reference = Reference::open("wavlm", "reference.safetensors");
    let input: Tensor<B, 2> = reference.float("input_values");
    let expected: Tensor<B, 4> = reference.float("hidden_states");
    let [num_states, _, time, _] = expected.dims();
    assert_eq!(model.frames(1600), time);

    let out = model.forward(input, None).unwrap();
    assert_eq!(out.states.len(), num_states);
    assert!(out.valid.is_none());
    for (layer, state) in out.states.iter().enumerate() {
        let error = relative_error(state.clone(), reference_state(&expected, layer));
        eprintln!("wavlm unmasked hidden_states[{layer}]: relative error {error:.3e}");
        assert!(error < TOLERANCE, "hidden_states[{layer}]: {error}");
    }
    let error = relative_error(out.pooled_layers(), reference.float("pooled"));
    eprintln!("wavlm unmasked pooled: relative error {error:.3e}");
    assert!(error < TOLERANCE, "pooled: {error}");
}

#[test]
fn padded_clip_matches_transformers_at_its_valid_frames() {
    let model = load(&fixture("wavlm"));
    let reference = Reference::open("wavlm", "reference_masked.safetensors");
    let input: Tensor<B, 2> = reference.float("input_values");
    let (mask, mask_shape) = reference.int("attention_mask");
    let mask: Vec<f32> = mask.into_iter().map(|m| m as f32).collect();
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, mask_shape), &Default::default());
    let (valid, valid_shape) = reference.int("valid");
    let expected: Tensor<B, 4> = reference.float("hidden_states");
    let [_, batch, time, d_model] = expected.dims();
    assert_eq!(valid_shape, [batch, time]);

    let out = model.forward(input, Some(mask)).unwrap();
    let got_valid: Vec<f32> = out.valid.clone().unwrap().into_data().to_vec().unwrap();
    let want_valid: Vec<f32> = valid.iter().map(|&v| v as f32).collect();
    assert_eq!(got_valid, want_valid, "frame mask");

    // Clip 0 is unpadded; clip 1 is compared on its valid frames only.
    let lengths: Vec<usize> = (0..batch)
        .map(|b| valid[b * time..(b + 1) * time].iter().sum::<i64>() as usize)
        .collect();
    eprintln!("wavlm masked: valid frames per clip {lengths:?} of {time}");
    let valid_part = |x: Tensor<B, 3>| -> Tensor<B, 3> {
        let parts = lengths
            .iter()
            .enumerate()
            .map(|(b, &n)| x.clone().slice([b..b + 1, 0..n, 0..d_model]))
            .collect();
        Tensor::cat(parts, 1)
    };
    for (layer, state) in out.states.iter().enumerate() {
        let error = relative_error(
            valid_part(state.clone()),
            valid_part(reference_state(&expected, layer)),
        );
        eprintln!("wavlm masked hidden_states[{layer}] (valid frames): relative error {error:.3e}");
        assert!(error < TOLERANCE, "masked hidden_states[{layer}]: {error}");
    }
    let error = relative_error(out.pooled_layers(), reference.float("pooled"));
    eprintln!("wavlm masked pooled: relative error {error:.3e}");
    assert!(error < TOLERANCE, "masked pooled: {error}");
}

#[test]
fn weight_g_weight_v_and_prefixed_checkpoints_give_the_same_output() {
    let reference = Reference::open("wavlm", "reference.safetensors");
    let input: Tensor<B, 2> = reference.float("input_values");
    let baseline = load(&fixture("wavlm"))
        .forward(input.clone(), None)
        .unwrap();

    let legacy = rewritten_copy("weight-g-v", |name| {
        Some(
            name.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"),
        )
    });
    let out = load(&legacy).forward(input.clone(), None).unwrap();
    let error = max_state_error(&out, &baseline);
    eprintln!("wavlm weight_g/weight_v vs parametrizations: max relative error {error:.3e}");
    assert_eq!(error, 0.0);
    let _ = std::fs::remove_dir_all(&legacy);

    let prefixed = rewritten_copy("prefixed", |name| Some(format!("wavlm.{name}")));
    let model = load(&prefixed);
    let error = max_state_error(&model.forward(input, None).unwrap(), &baseline);
    assert_eq!(error, 0.0, "wavlm.-prefixed checkpoint");
    let _ = std::fs::remove_dir_all(&prefixed);
}

#[test]
fn a_missing_tensor_is_named() {
    let missing = "encoder.layers.1.feed_forward.output_dense.weight";
    let dir = rewritten_copy("missing", |name| {
        (name != missing).then(|| name.to_string())
    });
    let err = WavLM::<B>::load(&dir, &Default::default()).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    match err {
        Error::MissingTensor { name, .. } => assert_eq!(name, missing),
        other => panic!("expected MissingTensor, got {other}"),
    }
}

#[test]
fn a_checkpoint_without_the_positional_kernel_names_its_modern_spelling() {
    let dir = rewritten_copy("no-pos-conv", |name| {
        (!name.contains("pos_conv_embed.conv.parametrizations")).then(|| name.to_string())
    });
    let err = WavLM::<B>::load(&dir, &Default::default()).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    match err {
        Error::MissingTensor { name, .. } => assert_eq!(
            name,
            "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
        ),
        other => panic!("expected MissingTensor, got {other}"),
    }
}

#[test]
fn a_clip_shorter_than_the_receptive_field_is_an_input_error() {
    let model = load(&fixture("wavlm"));
    let device = Default::default();
    // Kernels 10, 3, 3 with strides 5, 2, 2: 40 samples make one frame.
    assert_eq!(model.frames(40), 1);
    assert_eq!(model.frames(39), 0);
    let err = model
        .forward(Tensor::<B, 2>::zeros([1, 39], &device), None)
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(err.to_string().contains("39"), "{err}");
    let one = model
        .forward(Tensor::<B, 2>::zeros([2, 40], &device), None)
        .unwrap();
    assert_eq!(one.states[0].dims(), [2, 1, 32]);
}

#[test]
fn a_padded_clip_with_too_few_real_samples_or_a_misshaped_mask_is_an_input_error() {
    let model = load(&fixture("wavlm"));
    let device = Default::default();
    let input = Tensor::<B, 2>::zeros([2, 100], &device);
    let mut mask = vec![1.0f32; 200];
    mask[100 + 30..].fill(0.0);
    let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [2, 100]), &device);
    let err = model.forward(input.clone(), Some(mask)).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    let err = model
        .forward(input, Some(Tensor::ones([2, 99], &device)))
        .unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
}
