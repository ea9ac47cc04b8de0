#![allow(missing_docs)]
use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use std::time::Instant;
type B = Flex;

fn t<T>(label: &str, flops: f64, mut f: impl FnMut() -> T) -> T {
    let _ = f();
    let s = Instant::now();
    let n = 5;
    for _ in 0..n - 1 {
        let _ = f();
    }
    let r = f();
    let ms = s.elapsed().as_secs_f64() * 1e3 / n as f64;
    eprintln!("{label:>40}: {ms:8.2} ms {:6.1} GFLOP/s", flops / ms / 1e6);
    r
}

fn main() {
    let d = Default::default();
    for (m, k, n) in [
        (498, 1024, 4096),
        (498, 4096, 1024),
        (498, 1024, 1024),
        (1576, 1024, 4096),
        (1576, 4096, 1024),
        (1576, 1024, 1024),
        (2048, 2048, 2048),
    ] {
        let x = Tensor::<B, 2>::random([m, k], Distribution::Normal(0.0, 1.0), &d);
        let w = Tensor::<B, 2>::random([k, n], Distribution::Normal(0.0, 1.0), &d);
        let wt = Tensor::<B, 2>::random([n, k], Distribution::Normal(0.0, 1.0), &d).transpose();
        let fl = 2.0 * (m * k * n) as f64;
        t(&format!("{m}x{k}x{n} rhs row-major"), fl, || {
            x.clone().matmul(w.clone())
        });
        t(&format!("{m}x{k}x{n} rhs col-major"), fl, || {
            x.clone().matmul(wt.clone())
        });
    }
}
