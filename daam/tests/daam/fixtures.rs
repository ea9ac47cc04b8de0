//! Forward outputs and every gradient against the PyTorch reference fixtures
//! (`tools/make_daam_fixtures.py`, computed in float64 and rounded to f32).

use crate::common::{assert_close, to_vec, Fixture, B};
use burn::module::Param;
use burn::tensor::Tensor;
use daam::{
    DensityAdaptiveAttentionConfig, DensityBlockConfig, GaussianForm, GqDaamConfig,
    GroupedQueryAttention, GroupedQueryAttentionConfig, MixtureDensityAttentionConfig,
};

/// f32 against a float64 reference rounded to f32: relative error < 1e-5 (issue #2).
const TOLERANCE: f64 = 1e-5;

fn form(fixture: &Fixture) -> GaussianForm {
    match fixture.meta("form") {
        "variance" => GaussianForm::Variance,
        "stddev" => GaussianForm::StdDev,
        other => panic!("unknown form {other}"),
    }
}

fn param<const D: usize>(fixture: &Fixture, key: &str) -> Param<Tensor<B, D>> {
    Param::from_tensor(fixture.tensor::<B, D>(key).require_grad())
}

fn check_daam(name: &str) {
    let f = Fixture::load(name);
    let x = f.tensor::<B, 3>("x").require_grad();
    let [_, _, d_model] = x.dims();
    let mut module = DensityAdaptiveAttentionConfig::new(d_model)
        .with_num_heads(f.usize("num_heads"))
        .with_form(form(&f))
        .init::<B>(&Default::default());
    module.mean_offset = param(&f, "mean_offset");
    module.scaled_variance = param(&f, "scaled_variance");
    let out = module.forward_with_weights(x.clone());
    assert_close(
        name,
        "output",
        &to_vec(out.output.clone()),
        f.values("output"),
        TOLERANCE,
    );
    assert_close(
        name,
        "weights",
        &to_vec(out.weights),
        f.values("weights"),
        TOLERANCE,
    );
    let grads = (out.output * f.tensor::<B, 3>("grad_out")).sum().backward();
    let gx = to_vec(x.grad(&grads).unwrap());
    assert_close(name, "grad_x", &gx, f.values("grad_x"), TOLERANCE);
    let gd = to_vec(module.mean_offset.grad(&grads).unwrap());
    assert_close(
        name,
        "grad_mean_offset",
        &gd,
        f.values("grad_mean_offset"),
        TOLERANCE,
    );
    let gs = to_vec(module.scaled_variance.grad(&grads).unwrap());
    let expected = f.values("grad_scaled_variance");
    assert_close(name, "grad_scaled_variance", &gs, expected, TOLERANCE);
}

#[test]
fn daam_eight_heads() {
    check_daam("daam_b2_s24_d16_h8_var_s1.safetensors");
}

#[test]
fn daam_one_head() {
    check_daam("daam_b3_s6_d10_h1_var_s2.safetensors");
}

#[test]
fn daam_stddev_form() {
    check_daam("daam_b2_s12_d8_h4_std_s3.safetensors");
}

fn check_mixture<const D: usize>(name: &str) {
    let f = Fixture::load(name);
    let x = f.tensor::<B, D>("x").require_grad();
    let mut module = MixtureDensityAttentionConfig::new(f.usize("norm_axis"))
        .with_num_heads(f.usize("num_heads"))
        .with_num_gaussians(f.usize("num_gaussians"))
        .init::<B>(&Default::default());
    module.mean_offsets = param(&f, "mean_offsets");
    module.c = param(&f, "c");
    let out = module.forward_with_weights(x.clone());
    assert_close(
        name,
        "output",
        &to_vec(out.output.clone()),
        f.values("output"),
        TOLERANCE,
    );
    assert_close(
        name,
        "weights",
        &to_vec(out.weights),
        f.values("weights"),
        TOLERANCE,
    );
    let grads = (out.output * f.tensor::<B, D>("grad_out")).sum().backward();
    let gx = to_vec(x.grad(&grads).unwrap());
    assert_close(name, "grad_x", &gx, f.values("grad_x"), TOLERANCE);
    let gm = to_vec(module.mean_offsets.grad(&grads).unwrap());
    assert_close(
        name,
        "grad_mean_offsets",
        &gm,
        f.values("grad_mean_offsets"),
        TOLERANCE,
    );
    let gc = to_vec(module.c.grad(&grads).unwrap());
    assert_close(name, "grad_c", &gc, f.values("grad_c"), TOLERANCE);
}

#[test]
fn mixture_last_axis() {
    check_mixture::<3>("mixture_r3_axis2_h2_n3_s4.safetensors");
}

#[test]
fn mixture_remainder_head() {
    check_mixture::<3>("mixture_r3_axis1_h3_n2_s5.safetensors");
}

#[test]
fn mixture_channel_axis_of_a_feature_map() {
    check_mixture::<4>("mixture_r4_axis1_h4_n3_s6.safetensors");
}

#[test]
fn mixture_chunks_of_one() {
    check_mixture::<3>("mixture_r3_axis1_h4_n2_chunk1_s7.safetensors");
}

#[test]
fn density_block_two_layers() {
    let name = "density_block_r4_axis1_h2_n3_l2_s8.safetensors";
    let f = Fixture::load(name);
    let x = f.tensor::<B, 4>("x").require_grad();
    let num_layers = f.usize("num_layers");
    let layer = MixtureDensityAttentionConfig::new(f.usize("norm_axis"))
        .with_num_heads(f.usize("num_heads"))
        .with_num_gaussians(f.usize("num_gaussians"));
    let mut block = DensityBlockConfig::repeated(layer, num_layers).init::<B>(&Default::default());
    for (j, layer) in block.layers.iter_mut().enumerate() {
        layer.mean_offsets = param(&f, &format!("layers.{j}.mean_offsets"));
        layer.c = param(&f, &format!("layers.{j}.c"));
    }
    let out = block.forward(x.clone());
    assert_close(
        name,
        "output",
        &to_vec(out.clone()),
        f.values("output"),
        TOLERANCE,
    );
    let grads = (out * f.tensor::<B, 4>("grad_out")).sum().backward();
    let gx = to_vec(x.grad(&grads).unwrap());
    assert_close(name, "grad_x", &gx, f.values("grad_x"), TOLERANCE);
    for (j, layer) in block.layers.iter().enumerate() {
        for (key, grad) in [
            ("mean_offsets", layer.mean_offsets.grad(&grads)),
            ("c", layer.c.grad(&grads)),
        ] {
            let key = format!("grad_layers.{j}.{key}");
            assert_close(
                name,
                &key,
                &to_vec(grad.unwrap()),
                f.values(&key),
                TOLERANCE,
            );
        }
    }
}

/// Loads PyTorch-layout (`[out, in]`) projections into a GQA.
fn load_gqa(f: &Fixture, gqa: &mut GroupedQueryAttention<B>, prefix: &str) {
    for (name, linear) in [
        ("q_proj", &mut gqa.q_proj),
        ("k_proj", &mut gqa.k_proj),
        ("v_proj", &mut gqa.v_proj),
        ("out_proj", &mut gqa.out_proj),
    ] {
        let w = f
            .tensor::<B, 2>(&format!("{prefix}{name}.weight"))
            .transpose();
        linear.weight = Param::from_tensor(w.detach().require_grad());
        linear.bias = Some(param(f, &format!("{prefix}{name}.bias")));
    }
}

fn check_gqa_grads(
    name: &str,
    f: &Fixture,
    gqa: &GroupedQueryAttention<B>,
    grads: &<B as burn::tensor::backend::AutodiffBackend>::Gradients,
) {
    for (key, linear) in [
        ("q_proj", &gqa.q_proj),
        ("k_proj", &gqa.k_proj),
        ("v_proj", &gqa.v_proj),
        ("out_proj", &gqa.out_proj),
    ] {
        let gw = to_vec(linear.weight.grad(grads).unwrap().transpose());
        let wkey = format!("grad_{key}.weight");
        assert_close(name, &wkey, &gw, f.values(&wkey), TOLERANCE);
        let gb = to_vec(linear.bias.as_ref().unwrap().grad(grads).unwrap());
        let bkey = format!("grad_{key}.bias");
        assert_close(name, &bkey, &gb, f.values(&bkey), TOLERANCE);
    }
}

fn check_gqa(name: &str) {
    let f = Fixture::load(name);
    let x = f.tensor::<B, 3>("x").require_grad();
    let [_, _, d_model] = x.dims();
    let mut gqa = GroupedQueryAttentionConfig::new(d_model)
        .with_num_heads(f.usize("num_heads"))
        .with_num_kv_heads(f.usize("num_kv_heads"))
        .init::<B>(&Default::default());
    load_gqa(&f, &mut gqa, "");
    let out = gqa.forward(x.clone());
    assert_close(
        name,
        "output",
        &to_vec(out.clone()),
        f.values("output"),
        TOLERANCE,
    );
    let grads = (out * f.tensor::<B, 3>("grad_out")).sum().backward();
    assert_close(
        name,
        "grad_x",
        &to_vec(x.grad(&grads).unwrap()),
        f.values("grad_x"),
        TOLERANCE,
    );
    check_gqa_grads(name, &f, &gqa, &grads);
}

#[test]
fn gqa_four_query_two_kv_heads() {
    check_gqa("gqa_b2_s5_d16_q4_kv2_s9.safetensors");
}

#[test]
fn gqa_six_query_three_kv_heads() {
    check_gqa("gqa_b1_s7_d24_q6_kv3_s10.safetensors");
}

#[test]
fn gq_daam() {
    let name = "gqdaam_b2_s8_d12_s11.safetensors";
    let f = Fixture::load(name);
    let x = f.tensor::<B, 3>("x").require_grad();
    let [_, _, d_model] = x.dims();
    let [d_embed, _] = f.tensor::<B, 2>("embed.weight").dims();
    let mut model = GqDaamConfig::new(
        DensityAdaptiveAttentionConfig::new(d_model).with_num_heads(f.usize("num_daam_heads")),
    )
    .with_d_embed(d_embed)
    .with_num_heads(f.usize("num_heads"))
    .with_num_kv_heads(f.usize("num_kv_heads"))
    .init::<B>(&Default::default());
    model.daam.mean_offset = param(&f, "mean_offset");
    model.daam.scaled_variance = param(&f, "scaled_variance");
    let w = f.tensor::<B, 2>("embed.weight").transpose();
    model.embed.weight = Param::from_tensor(w.detach().require_grad());
    model.embed.bias = Some(param(&f, "embed.bias"));
    load_gqa(&f, &mut model.gqa, "");
    let out = model.forward(x.clone());
    assert_close(
        name,
        "output",
        &to_vec(out.clone()),
        f.values("output"),
        TOLERANCE,
    );
    let grads = (out * f.tensor::<B, 3>("grad_out")).sum().backward();
    assert_close(
        name,
        "grad_x",
        &to_vec(x.grad(&grads).unwrap()),
        f.values("grad_x"),
        TOLERANCE,
    );
    let gd = to_vec(model.daam.mean_offset.grad(&grads).unwrap());
    assert_close(
        name,
        "grad_mean_offset",
        &gd,
        f.values("grad_mean_offset"),
        TOLERANCE,
    );
    let gs = to_vec(model.daam.scaled_variance.grad(&grads).unwrap());
    assert_close(
        name,
        "grad_scaled_variance",
        &gs,
        f.values("grad_scaled_variance"),
        TOLERANCE,
    );
    let ge = to_vec(model.embed.weight.grad(&grads).unwrap().transpose());
    assert_close(
        name,
        "grad_embed.weight",
        &ge,
        f.values("grad_embed.weight"),
        TOLERANCE,
    );
    check_gqa_grads(name, &f, &model.gqa, &grads);
}
