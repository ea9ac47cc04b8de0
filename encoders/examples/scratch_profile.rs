#![allow(missing_docs)]
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use encoders::beit::Beit;
use encoders::WavLM;
use std::time::Instant;
type B = Flex;

fn t<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let s = Instant::now();
    let r = f();
    eprintln!("{label:>24}: {:8.1} ms", s.elapsed().as_secs_f64() * 1e3);
    r
}

fn main() {
    let which = std::env::args().nth(1).unwrap();
    let device = Default::default();
    if which == "wavlm" {
        let m = WavLM::<B>::load("/tmp/encoders-bench/wavlm-large", &device).unwrap();
        let x = Tensor::<B, 2>::random([2, 80000], Distribution::Normal(0.0, 1.0), &device);
        for _ in 0..2 {
            let mut h = x.clone().reshape([2, 1, 80000]);
            for (i, l) in m.feature_encoder.layers.iter().enumerate() {
                h = t(&format!("conv{i}"), || {
                    let y = l.forward(h.clone());
                    let _ = y.clone().into_data();
                    y
                });
            }
            let f = h.swap_dims(1, 2);
            let mut hid = t("proj", || m.feature_projection.forward(f));
            hid = t("posconv", || {
                hid.clone() + m.positional_conv.forward(hid.clone())
            });
            let seq = hid.dims()[1];
            let pb = t("relbias", || m.relative_position_bias.forward(seq));
            let s = Instant::now();
            for (i, l) in m.layers.iter().enumerate() {
                if i < 2 {
                    let a = t("layer.attn", || {
                        l.attention
                            .forward(l.layer_norm.forward(hid.clone()), pb.clone(), None)
                    });
                    let _ = t("layer.gate", || l.attention.gate(hid.clone()) * pb.clone());
                    let _ = t("layer.ff", || l.feed_forward.forward(a.clone()));
                }
                hid = l.forward(hid, pb.clone(), None);
            }
            eprintln!(
                "{:>24}: {:8.1} ms",
                "layers",
                s.elapsed().as_secs_f64() * 1e3
            );
            eprintln!("---");
        }
    } else {
        let m = Beit::<B>::load("/tmp/encoders-bench/beit-large", &device).unwrap();
        let x = Tensor::<B, 4>::random([8, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
        for _ in 0..2 {
            let mut h = t("embed", || m.embed(x.clone()));
            let s = Instant::now();
            for (i, l) in m.layers.iter().enumerate() {
                if i < 2 {
                    let _ = t("relbias", || {
                        l.relative_position.as_ref().unwrap().forward()
                    });
                    let n = t("ln", || l.norm_before.forward(h.clone()));
                    let _ = t("q", || l.query.forward(n.clone()));
                    let mid = t("intermediate", || l.intermediate.forward(n.clone()));
                    let g = t("gelu", || burn::tensor::activation::gelu(mid.clone()));
                    let _ = t("output", || l.output.forward(g));
                    h = t("layer", || l.forward(h, None));
                } else {
                    h = l.forward(h, None);
                }
            }
            eprintln!(
                "{:>24}: {:8.1} ms",
                "layers",
                s.elapsed().as_secs_f64() * 1e3
            );
            eprintln!("---");
        }
    }
}
