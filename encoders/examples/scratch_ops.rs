#![allow(missing_docs)]
use burn::backend::Flex;
use burn::nn::{LayerNormConfig, LinearConfig};
use burn::tensor::{
    activation::{gelu, softmax},
    Distribution, Tensor,
};
use std::time::Instant;
type B = Flex;

fn t<T>(label: &str, mut f: impl FnMut() -> T) -> T {
    let _ = f();
    let s = Instant::now();
    let n = 5;
    for _ in 0..n - 1 {
        let _ = f();
    }
    let r = f();
    eprintln!(
        "{label:>32}: {:8.2} ms",
        s.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    r
}

fn main() {
    let d = Default::default();
    let (b, tt, dm, ff, h) = (2usize, 249usize, 1024usize, 4096usize, 16usize);
    let x = Tensor::<B, 3>::random([b, tt, dm], Distribution::Normal(0.0, 1.0), &d);
    let l1 = LinearConfig::new(dm, ff).init::<B>(&d);
    let l2 = LinearConfig::new(ff, dm).init::<B>(&d);
    let lq = LinearConfig::new(dm, dm).init::<B>(&d);
    let ln = LayerNormConfig::new(dm).init::<B>(&d);
    let mid = t("linear 1024->4096", || l1.forward(x.clone()));
    let w1 = l1.weight.val();
    let wt = w1.clone().transpose().transpose();
    let wc = Tensor::<B, 2>::from_data(w1.clone().into_data(), &d);
    t("matmul 2D [498,1024]x[1024,4096]", || {
        x.clone().reshape([b * tt, dm]).matmul(wc.clone())
    });
    t("matmul 3D x unsq(w)", || {
        x.clone().matmul(wc.clone().unsqueeze::<3>())
    });
    let _ = wt;
    let bias = l1.bias.as_ref().unwrap().val();
    let y = x.clone().reshape([b * tt, dm]).matmul(wc.clone());
    t("bias add bcast [498,4096]+[1,4096]", || {
        y.clone() + bias.clone().unsqueeze::<2>()
    });
    let bexp = bias.clone().unsqueeze::<2>().expand([b * tt, ff]);
    let bfull = Tensor::<B, 2>::from_data(bexp.clone().into_data(), &d);
    t("add same-shape [498,4096]", || y.clone() + bfull.clone());
    t("gelu [2,249,4096]", || gelu(mid.clone()));
    t("linear 4096->1024", || l2.forward(mid.clone()));
    t("linear 1024->1024", || lq.forward(x.clone()));
    t("layernorm [2,249,1024]", || ln.forward(x.clone()));
    t("residual add", || x.clone() + x.clone());
    let q = lq.forward(x.clone());
    t("split_heads+contig", || {
        let s = encoders::attention::split_heads(q.clone(), h);
        s.clone().reshape([b * h, tt, dm / h])
    });
    let qh = encoders::attention::split_heads(q.clone(), h);
    let scores = t("q k^T", || qh.clone().matmul(qh.clone().swap_dims(2, 3)));
    let bias4 = Tensor::<B, 4>::random([1, h, tt, tt], Distribution::Normal(0.0, 1.0), &d);
    t("scores*scale", || scores.clone().mul_scalar(0.125));
    t("scores + bias bcast [1,h,t,t]", || {
        scores.clone() + bias4.clone()
    });
    let g = Tensor::<B, 4>::random([b, h, tt, 1], Distribution::Normal(0.0, 1.0), &d);
    t("gate[b,h,t,1]*bias[1,h,t,t]", || g.clone() * bias4.clone());
    t("softmax", || softmax(scores.clone(), 3));
    let p = softmax(scores.clone(), 3);
    let ctx = t("p v", || p.clone().matmul(qh.clone()));
    t("merge_heads", || {
        encoders::attention::merge_heads(ctx.clone())
    });
    t("attention()", || {
        encoders::attention::attention(
            qh.clone(),
            qh.clone(),
            qh.clone(),
            0.125,
            Some(bias4.clone()),
            None,
        )
    });
}
