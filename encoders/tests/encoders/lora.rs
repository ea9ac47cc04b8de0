//! LoRA adapters and the sequence-classification heads on the tiny fixtures: zero-`B` adapters
//! leave every hidden state unchanged, nonzero ones equal merged weights, the heads (with and
//! without adapters) match transformers 4.46.3 (`tools/make_lora_fixtures.py`), only adapters
//! and heads get gradients, and the trainable counts are the formula's and the authors'.

use std::path::Path;

use crate::common::{fixture, relative_error, Reference, B, TOLERANCE};
use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param, ParamId};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use encoders::beit::{Beit, BeitConfig};
use encoders::classification::{
    beit_head_param_count, llama_head_param_count, wavlm_head_param_count, AudioBatch,
    BeitForImageClassification, ClassificationHeadConfig, HeadTraining,
    LlamaForSequenceClassification, SequenceClassifier, WavLMForSequenceClassification,
};
use encoders::llama::{Llama, LlamaConfig, TokenBatch};
use encoders::lora::{
    lora_param_count, split_grads, LoraAdaptable, LoraAdapter, LoraConfig, LoraLinear, LoraScaling,
    LoraTarget,
};
use encoders::wavlm::{WavLM, WavLMConfig};
use encoders::{read_config, HiddenStates};

type A = Autodiff<Flex>;

/// Adapters on every projection, so that all three kinds are exercised.
fn all_targets(rank: usize) -> LoraConfig {
    LoraConfig::new(rank).with_targets(vec![LoraTarget::Query, LoraTarget::Key, LoraTarget::Value])
}

/// A tensor of the test reference on another backend.
fn on<Bk: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<Bk, D> {
    Tensor::from_data(t.into_data(), &Default::default())
}

fn mask<Bk: Backend>(reference: &Reference, key: &str) -> Tensor<Bk, 2> {
    let (values, shape) = reference.int(key);
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

fn wavlm_input<Bk: Backend>(reference: &Reference) -> AudioBatch<Bk> {
    AudioBatch {
        input_values: on(reference.float("input_values")),
        attention_mask: Some(mask(reference, "attention_mask")),
    }
}

fn llama_input<Bk: Backend>(reference: &Reference) -> TokenBatch<Bk> {
    let (ids, shape) = reference.int("input_ids");
    let (lengths, _) = reference.int("text_lengths");
    TokenBatch {
        input_ids: Tensor::<Bk, 2, Int>::from_data(
            TensorData::new(ids, shape),
            &Default::default(),
        ),
        attention_mask: mask(reference, "attention_mask"),
        lengths: lengths.into_iter().map(|n| n as usize).collect(),
    }
}

fn exactly_equal(a: &HiddenStates<B>, b: &HiddenStates<B>) {
    assert_eq!(a.states.len(), b.states.len());
    for (x, y) in a.states.iter().zip(&b.states) {
        x.to_data().assert_eq(&y.to_data(), true);
    }
}

fn max_error(a: &HiddenStates<B>, b: &HiddenStates<B>) -> f32 {
    a.states
        .iter()
        .zip(&b.states)
        .map(|(x, y)| relative_error(x.clone(), y.clone()))
        .fold(0.0, f32::max)
}

/// Every adapter's `B` set to random values (`B = 0` adapters change nothing).
fn randomise_b<M: LoraAdaptable<B>>(model: M) -> M {
    model.map_projections(|_, mut projection| {
        if let Some(adapter) = projection.adapter.as_mut() {
            let dims = adapter.lora_b.dims();
            adapter.lora_b = Param::from_tensor(Tensor::random(
                dims,
                Distribution::Normal(0.0, 0.3),
                &Default::default(),
            ));
        }
        projection
    })
}

/// The adapters folded into the weights: `W' = W + s · A B`, no adapter.
fn merged<M: LoraAdaptable<B>>(model: M) -> M {
    model.map_projections(|_, projection| {
        let Some(adapter) = projection.adapter else {
            return projection;
        };
        let update = adapter
            .lora_a
            .val()
            .matmul(adapter.lora_b.val())
            .mul_scalar(adapter.scale);
        LoraLinear::from(Linear {
            weight: Param::from_tensor(projection.base.weight.val() + update),
            bias: projection.base.bias,
        })
    })
}

/// Zero-`B` adapters give exactly the frozen encoder's hidden states; random `B` changes them,
/// and equals the merged weights.
fn check_adapters<M: LoraAdaptable<B>>(frozen: M, forward: impl Fn(&M) -> HiddenStates<B>) {
    let adapted = frozen
        .clone()
        .with_lora(&all_targets(3), &Default::default());
    let reference = forward(&frozen);
    exactly_equal(&forward(&adapted), &reference);

    let adapted = randomise_b(adapted);
    let out = forward(&adapted);
    let change = max_error(&out, &reference);
    assert!(
        change > 1e-2,
        "nonzero B must change the output: {change:.3e}"
    );
    let error = max_error(&out, &forward(&merged(adapted)));
    eprintln!("adapters vs merged weights: relative error {error:.2e} (change {change:.2e})");
    assert!(error < TOLERANCE, "adapters vs merged weights: {error}");
}

#[test]
fn beit_adapters_with_b_zero_change_nothing_and_equal_merged_weights() {
    let model = Beit::<B>::load(fixture("beit"), &Default::default()).expect("load");
    let pixels: Tensor<B, 4> =
        Reference::open("beit", "reference.safetensors").float("pixel_values");
    check_adapters(model, |m| m.forward(pixels.clone()).expect("forward"));
}

#[test]
fn wavlm_adapters_with_b_zero_change_nothing_and_equal_merged_weights() {
    let model = WavLM::<B>::load(fixture("wavlm"), &Default::default()).expect("load");
    let reference = Reference::open("wavlm", "reference_masked.safetensors");
    let input = wavlm_input::<B>(&reference);
    check_adapters(model, |m| {
        m.forward(input.input_values.clone(), input.attention_mask.clone())
            .expect("forward")
    });
}

#[test]
fn llama_adapters_with_b_zero_change_nothing_and_equal_merged_weights() {
    let model = Llama::<B>::load(fixture("llama"), &Default::default()).expect("load");
    let reference = Reference::open("llama", "reference.safetensors");
    let input = llama_input::<B>(&reference);
    check_adapters(model, |m| {
        m.forward(input.input_ids.clone(), Some(input.attention_mask.clone()))
            .expect("forward")
    });
}

#[test]
fn an_adapted_projection_is_the_base_plus_the_scaled_low_rank_product() {
    let model = Beit::<B>::load(fixture("beit"), &Default::default()).expect("load");
    let lora = LoraConfig::new(2).with_scaling(LoraScaling::Paper);
    let model = randomise_b(model.with_lora(&lora, &Default::default()));
    let layer = &model.layers[1];
    let h = Tensor::<B, 3>::random(
        [2, 5, 32],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    );
    let adapter = layer.value.adapter.as_ref().expect("value is adapted");
    assert!(layer.key.adapter.is_none(), "key is not a default target");
    assert_eq!(adapter.scale, 16.0);
    let base = layer.value.base.forward(h.clone());
    let low_rank = h
        .clone()
        .matmul(adapter.lora_a.val().unsqueeze())
        .matmul(adapter.lora_b.val().unsqueeze());
    let expected = base + low_rank.mul_scalar(16.0);
    let error = relative_error(layer.value.forward(h), expected);
    assert!(error < 1e-6, "{error}");
}

/// The `A`, `B` of the reference file in place of the adapters of `model` (query and value).
fn reference_adapters<M: LoraAdaptable<B>>(model: M, reference: &Reference) -> M {
    let mut index = 0;
    model.map_projections(|target, projection| {
        let layer = index / 3;
        index += 1;
        let name = match target {
            LoraTarget::Query => "query",
            LoraTarget::Value => "value",
            LoraTarget::Key => return projection,
        };
        let adapter = projection.adapter.as_ref().expect("adapted");
        let replaced = LoraAdapter {
            lora_a: Param::from_tensor(reference.float(&format!("lora.{layer}.{name}.a"))),
            lora_b: Param::from_tensor(reference.float(&format!("lora.{layer}.{name}.b"))),
            scale: adapter.scale,
        };
        projection.with_adapter(replaced)
    })
}

/// The reference's adapter configuration: rank 2, scale α = 4 (the paper's convention).
fn reference_lora(reference: &Reference) -> LoraConfig {
    let scale: Tensor<B, 1> = reference.float("lora_scale");
    LoraConfig::new(2)
        .with_alpha(scale.into_scalar() as f64)
        .with_scaling(LoraScaling::Paper)
}

fn check_logits(name: &str, logits: Tensor<B, 2>, reference: &Reference, key: &str) {
    let error = relative_error(logits, reference.float(key));
    eprintln!("{name} {key}: relative error {error:.2e}");
    assert!(error < TOLERANCE, "{name} {key}: {error}");
}

fn head(num_classes: usize) -> ClassificationHeadConfig {
    ClassificationHeadConfig::new(num_classes)
}

#[test]
fn wavlm_head_matches_transformers_with_and_without_adapters() {
    let dir = fixture("wavlm-classifier");
    let reference = Reference::open("wavlm-classifier", "reference.safetensors");
    let mut model =
        WavLMForSequenceClassification::<B>::load(&dir, &head(3), &Default::default()).unwrap();
    assert!(model.initialised.is_empty(), "{:?}", model.initialised);
    assert_eq!(
        model.projector.weight.dims(),
        [32, 7],
        "classifier_proj_size is read"
    );
    check_logits(
        "wavlm",
        model.logits(wavlm_input(&reference)).unwrap(),
        &reference,
        "logits",
    );
    model = model.with_lora(&reference_lora(&reference), &Default::default());
    model.wavlm = reference_adapters(model.wavlm, &reference);
    let logits = model.logits(wavlm_input(&reference)).unwrap();
    check_logits("wavlm", logits, &reference, "logits_lora");
}

#[test]
fn beit_head_matches_transformers_with_and_without_adapters() {
    let dir = fixture("beit-classifier");
    let reference = Reference::open("beit-classifier", "reference.safetensors");
    let mut model =
        BeitForImageClassification::<B>::load(&dir, &head(3), &Default::default()).unwrap();
    assert!(model.initialised.is_empty(), "{:?}", model.initialised);
    let pixels = || reference.float::<4>("pixel_values");
    check_logits(
        "beit",
        model.logits(pixels()).unwrap(),
        &reference,
        "logits",
    );
    model = model.with_lora(&reference_lora(&reference), &Default::default());
    model.beit = reference_adapters(model.beit, &reference);
    check_logits(
        "beit",
        model.logits(pixels()).unwrap(),
        &reference,
        "logits_lora",
    );
}

#[test]
fn llama_head_matches_transformers_with_and_without_adapters() {
    let dir = fixture("llama-classifier");
    let reference = Reference::open("llama-classifier", "reference.safetensors");
    let mut model =
        LlamaForSequenceClassification::<B>::load(&dir, &head(3), &Default::default()).unwrap();
    assert!(model.initialised.is_empty(), "{:?}", model.initialised);
    check_logits(
        "llama",
        model.logits(llama_input(&reference)).unwrap(),
        &reference,
        "logits",
    );
    model = model.with_lora(&reference_lora(&reference), &Default::default());
    model.model = reference_adapters(model.model, &reference);
    let logits = model.logits(llama_input(&reference)).unwrap();
    check_logits("llama", logits, &reference, "logits_lora");
}

#[test]
fn a_bare_encoder_checkpoint_gets_a_seeded_fresh_head() {
    let device = Default::default();
    let load = |seed| {
        BeitForImageClassification::<B>::load(fixture("beit"), &head(5).with_seed(seed), &device)
            .unwrap()
    };
    let (a, b, c) = (load(1), load(1), load(2));
    assert_eq!(a.initialised, ["classifier.weight", "classifier.bias"]);
    assert_eq!(a.classifier.weight.dims(), [32, 5]);
    let weight = |m: &BeitForImageClassification<B>| m.classifier.weight.val();
    weight(&a)
        .into_data()
        .assert_eq(&weight(&b).into_data(), true);
    let diff: f32 = (weight(&a) - weight(&c)).abs().max().into_scalar();
    assert!(diff > 0.0, "another seed, other weights");
    // transformers' _init_weights: N(0, initializer_range²), zero bias.
    let std: f32 = weight(&a).square().mean().sqrt().into_scalar();
    assert!((std - 0.02).abs() < 0.005, "std {std}");
    let pixels: Tensor<B, 4> =
        Reference::open("beit", "reference.safetensors").float("pixel_values");
    assert_eq!(a.logits(pixels).unwrap().dims(), [2, 5]);
}

#[test]
fn a_head_with_another_class_count_is_replaced() {
    let model = WavLMForSequenceClassification::<B>::load(
        fixture("wavlm-classifier"),
        &head(4),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(model.initialised, ["classifier.weight", "classifier.bias"]);
    assert_eq!(model.classifier.weight.dims(), [7, 4]);
}

/// The ids of the parameters that got a gradient, checked against `expected`: exactly those.
fn assert_gradients_exactly<M: AutodiffModule<A>>(
    model: &M,
    loss: Tensor<A, 1>,
    expected: &[ParamId],
    trainable: usize,
) {
    let grads = GradientsParams::from_grads(loss.backward(), model);
    assert_eq!(
        grads.len(),
        expected.len(),
        "gradients beyond the adapters and head"
    );
    let mut elements = 0;
    for &id in expected {
        // The rank parameter only types the handle; the shape is the stored one.
        let grad = grads.get::<Flex, 2>(id);
        let grad = grad.unwrap_or_else(|| panic!("no gradient for trainable {id:?}"));
        elements += grad.shape().num_elements();
    }
    assert_eq!(
        elements, trainable,
        "gradient elements = trainable_params()"
    );
}

fn expected_ids<M: SequenceClassifier<A>>(model: &M) -> Vec<ParamId> {
    let mut ids = model.lora_a_ids();
    ids.extend(model.lora_b_ids());
    ids.extend(model.head_ids());
    ids
}

#[test]
fn only_adapters_and_the_wavlm_head_get_gradients() {
    let device = Default::default();
    let reference = Reference::open("wavlm-classifier", "reference.safetensors");
    for training in [HeadTraining::Whole, HeadTraining::ClassifierOnly] {
        let config = head(3).with_training(training);
        let model = WavLMForSequenceClassification::<A>::load(fixture("wavlm"), &config, &device)
            .unwrap()
            .with_lora(&LoraConfig::new(2), &device);
        let loss = model
            .logits(wavlm_input(&reference))
            .unwrap()
            .square()
            .sum();
        let expected = expected_ids(&model);
        let head = if training == HeadTraining::Whole {
            4
        } else {
            2
        };
        assert_eq!(expected.len(), 2 * 2 * 2 + head, "{training:?}");
        assert_gradients_exactly(&model, loss, &expected, model.trainable_params());
    }
}

#[test]
fn only_adapters_and_the_beit_head_get_gradients() {
    let device = Default::default();
    let pixels: Tensor<B, 4> =
        Reference::open("beit", "reference.safetensors").float("pixel_values");
    let model = BeitForImageClassification::<A>::load(fixture("beit"), &head(3), &device)
        .unwrap()
        .with_lora(&all_targets(2), &device);
    let loss = model.logits(on(pixels)).unwrap().square().sum();
    let expected = expected_ids(&model);
    assert_eq!(expected.len(), 2 * 3 * 2 + 2);
    assert_gradients_exactly(&model, loss, &expected, model.trainable_params());
}

#[test]
fn only_adapters_and_the_llama_head_get_gradients() {
    let device = Default::default();
    let reference = Reference::open("llama", "reference.safetensors");
    for training in [HeadTraining::Whole, HeadTraining::ClassifierOnly] {
        let config = head(3).with_training(training);
        let model = LlamaForSequenceClassification::<A>::load(fixture("llama"), &config, &device)
            .unwrap()
            .with_lora(&LoraConfig::new(2), &device);
        let loss = model
            .logits(llama_input(&reference))
            .unwrap()
            .square()
            .sum();
        let expected = expected_ids(&model);
        let head = if training == HeadTraining::Whole {
            1
        } else {
            0
        };
        assert_eq!(expected.len(), 2 * 2 * 2 + head, "{training:?}");
        assert_gradients_exactly(&model, loss, &expected, model.trainable_params());
    }
}

#[test]
fn lora_plus_split_takes_exactly_the_b_matrices() {
    let device = Default::default();
    let pixels: Tensor<B, 4> =
        Reference::open("beit", "reference.safetensors").float("pixel_values");
    let model = BeitForImageClassification::<A>::load(fixture("beit"), &head(3), &device)
        .unwrap()
        .with_lora(&LoraConfig::new(2), &device);
    let loss = model.logits(on(pixels)).unwrap().sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let b_ids = model.lora_b_ids();
    assert_eq!(b_ids.len(), 2 * 2, "layers × targets");
    let split = split_grads::<Flex>(grads, &b_ids);
    assert_eq!(split.lora_b.len(), b_ids.len());
    for id in &b_ids {
        assert!(split.lora_b.get::<Flex, 2>(*id).is_some());
    }
    assert_eq!(
        split.rest.len(),
        b_ids.len() + 2,
        "A matrices and the classifier"
    );
}

#[test]
fn fixture_counts_equal_the_formula() {
    let device = Default::default();
    let lora = LoraConfig::new(3);
    let config: BeitConfig = read_config(fixture("beit")).unwrap();
    let model = BeitForImageClassification::<B>::load(fixture("beit"), &head(5), &device)
        .unwrap()
        .with_lora(&lora, &device);
    // 2 layers × 2 targets × 3 · (32 + 32), and 32 · 5 + 5.
    assert_eq!(lora_param_count(&config, &lora), 768);
    assert_eq!(model.beit.lora_param_count(), 768);
    assert_eq!(model.trainable_params(), 768 + beit_head_param_count(32, 5));

    let config: WavLMConfig = read_config(fixture("wavlm")).unwrap();
    let model = WavLMForSequenceClassification::<B>::load(fixture("wavlm"), &head(4), &device)
        .unwrap()
        .with_lora(&all_targets(3), &device);
    let adapters = lora_param_count(&config, &all_targets(3));
    assert_eq!(adapters, 2 * 3 * 3 * 64);
    let head_count = wavlm_head_param_count(32, 256, 4, HeadTraining::Whole);
    assert_eq!(model.trainable_params(), adapters + head_count);

    // Grouped key/value heads: keys and values are 16 wide, queries 32.
    let config = LlamaConfig::read(fixture("llama")).unwrap();
    let model = LlamaForSequenceClassification::<B>::load(fixture("llama"), &head(3), &device)
        .unwrap()
        .with_lora(&all_targets(3), &device);
    let adapters = lora_param_count(&config, &all_targets(3));
    assert_eq!(adapters, 2 * 3 * ((32 + 32) + 2 * (32 + 16)));
    let head_count = llama_head_param_count(32, 3, HeadTraining::Whole);
    assert_eq!(model.trainable_params(), adapters + head_count);
}

fn config_from<T: serde::de::DeserializeOwned>(json: &str) -> T {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), json).unwrap();
    read_config(Path::new(dir.path())).unwrap()
}

#[test]
fn real_configurations_give_the_authors_trainable_counts() {
    let wavlm_large: WavLMConfig = config_from(
        r#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
            "intermediate_size": 4096, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
            "feat_extract_norm": "layer", "do_stable_layer_norm": true,
            "conv_dim": [512, 512, 512, 512, 512, 512, 512],
            "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2],
            "conv_bias": false, "num_conv_pos_embeddings": 128,
            "num_conv_pos_embedding_groups": 16, "num_buckets": 320, "max_bucket_distance": 800,
            "feat_extract_activation": "gelu"}"#,
    );
    let beit_large: BeitConfig = config_from(
        r#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
            "intermediate_size": 4096, "image_size": 224, "patch_size": 16,
            "layer_scale_init_value": 0.1, "use_relative_position_bias": true}"#,
    );
    let llama_13b: LlamaConfig = config_from(
        r#"{"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
            "num_attention_heads": 40, "num_key_value_heads": 40, "rms_norm_eps": 1e-5,
            "vocab_size": 32000, "max_position_embeddings": 4096}"#,
    );
    let paper = HeadTraining::ClassifierOnly;
    for (rank, wavlm, beit) in [(4, 394_244, 495_716), (8, 787_460, 888_932)] {
        let lora = LoraConfig::new(rank);
        // IEMOCAP: 4 classes through the 256-wide projector (frozen in the authors' code).
        let count =
            lora_param_count(&wavlm_large, &lora) + wavlm_head_param_count(1024, 256, 4, paper);
        assert_eq!(count, wavlm, "WavLM-Large r = {rank}");
        // CIFAR-100.
        let count = lora_param_count(&beit_large, &lora) + beit_head_param_count(1024, 100);
        assert_eq!(count, beit, "BEiT-Large r = {rank}");
    }
    // AG News: the adapters alone (the `score` head stays frozen in the authors' code).
    let count =
        lora_param_count(&llama_13b, &LoraConfig::new(8)) + llama_head_param_count(5120, 4, paper);
    assert_eq!(count, 6_553_600);
    assert_eq!(count, 40 * 2 * (5120 * 8 * 2));
    assert_eq!(lora_param_count(&llama_13b, &LoraConfig::new(4)), 3_276_800);
    // The corrected baseline trains the whole head.
    assert_eq!(
        wavlm_head_param_count(1024, 256, 4, HeadTraining::Whole),
        1024 * 256 + 256 + 256 * 4 + 4
    );
}
