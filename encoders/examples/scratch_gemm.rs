#![allow(missing_docs, unsafe_code)]
use gemm::Parallelism;
use std::time::Instant;

unsafe fn mm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    drs: isize,
    lhs: *const f32,
    lrs: isize,
    rhs: *const f32,
    rcs: isize,
    rrs: isize,
    par: Parallelism,
) {
    gemm::gemm(
        m, n, k, dst, 1, drs, false, lhs, 1, lrs, rhs, rcs, rrs, 0.0f32, 1.0f32, false, false,
        false, par,
    );
}

fn bench(label: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let s = Instant::now();
    let n = 5;
    for _ in 0..n {
        f();
    }
    let ms = s.elapsed().as_secs_f64() * 1e3 / n as f64;
    eprintln!("{label:>48}: {ms:8.2} ms {:6.1} GFLOP/s", flops / ms / 1e6);
}

struct P(*mut f32);
unsafe impl Send for P {}
unsafe impl Sync for P {}
impl P {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

fn main() {
    let shapes: [(usize, usize, usize); 5] = [
        (498, 1024, 4096),
        (498, 4096, 1024),
        (498, 1024, 1024),
        (1576, 1024, 4096),
        (1576, 4096, 1024),
    ];
    for (m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * n];
        let fl = 2.0 * (m * k * n) as f64;
        for (cm, rcs, rrs) in [
            ("rowmajor", 1isize, n as isize),
            ("colmajor", k as isize, 1isize),
        ] {
            bench(&format!("{m}x{k}x{n} {cm} gemm rayon"), fl, || unsafe {
                mm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    n as isize,
                    x.as_ptr(),
                    k as isize,
                    w.as_ptr(),
                    rcs,
                    rrs,
                    Parallelism::Rayon(0),
                )
            });
            bench(&format!("{m}x{k}x{n} {cm} single"), fl, || unsafe {
                mm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    n as isize,
                    x.as_ptr(),
                    k as isize,
                    w.as_ptr(),
                    rcs,
                    rrs,
                    Parallelism::None,
                )
            });
            let o = P(out.as_mut_ptr());
            let (xp, wp) = (x.as_ptr() as usize, w.as_ptr() as usize);
            bench(&format!("{m}x{k}x{n} {cm} split N"), fl, || {
                let h = n / 2;
                rayon::join(
                    || unsafe {
                        mm(
                            m,
                            h,
                            k,
                            o.get(),
                            n as isize,
                            xp as *const f32,
                            k as isize,
                            wp as *const f32,
                            rcs,
                            rrs,
                            Parallelism::None,
                        )
                    },
                    || unsafe {
                        mm(
                            m,
                            n - h,
                            k,
                            o.get().add(h),
                            n as isize,
                            xp as *const f32,
                            k as isize,
                            (wp as *const f32).offset(h as isize * rcs),
                            rcs,
                            rrs,
                            Parallelism::None,
                        )
                    },
                );
            });
            bench(&format!("{m}x{k}x{n} {cm} split M"), fl, || {
                let h = m / 2;
                rayon::join(
                    || unsafe {
                        mm(
                            h,
                            n,
                            k,
                            o.get(),
                            n as isize,
                            xp as *const f32,
                            k as isize,
                            wp as *const f32,
                            rcs,
                            rrs,
                            Parallelism::None,
                        )
                    },
                    || unsafe {
                        mm(
                            m - h,
                            n,
                            k,
                            o.get().add(h * n),
                            n as isize,
                            (xp as *const f32).add(h * k),
                            k as isize,
                            wp as *const f32,
                            rcs,
                            rrs,
                            Parallelism::None,
                        )
                    },
                );
            });
        }
    }
}
