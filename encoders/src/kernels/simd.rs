//! Vectorisable `exp` and `erf` in `f32`, and the AVX2 + FMA dispatch of the kernels' loops.
//!
//! burn builds for the baseline x86-64 target (SSE2). Loop bodies are compiled a second time
//! with AVX2 + FMA and picked at run time when the CPU has them; the `unsafe` is that call,
//! behind the feature check. The functions are branch-free so that LLVM vectorises the loops
//! that call them.

/// Whether the running CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Defines `fn $name($args) -> $ret`, which runs `$body` (an `#[inline(always)]` function of
/// the same arguments) compiled for AVX2 + FMA when the CPU has them and for the baseline target
/// otherwise.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::kernels::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA, the features `avx2` is built for.
                    #[allow(unsafe_code)]
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// `e^x` in `f32`, relative error below 2e-7 (Cephes `expf`: range reduction `x = n·ln2 + r`,
/// `|r| ≤ ln2/2`, a degree-7 polynomial for `e^r`, and `2^n` from exponent bits); exactly 0 below
/// `x = −87.3` (where `e^x` is under the smallest normal `f32`), `e^88` above 88.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.0);
    let t = xc * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_2e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // The low bits of `t` hold n (two's complement): shifted into the exponent field with the
    // bias added they give the bits of 2^n.
    let scale = f32::from_bits((t.to_bits() << 23).wrapping_add(127 << 23));
    let value = er * scale;
    if x < -87.3 {
        0.0
    } else {
        value
    }
}

/// `erf(x)` in `f32`, absolute error below 5e-7 (4.4e-7 measured, about 7 `f32` ulps near ±1): the rational approximation `x·P(x²)/Q(x²)` on
/// `[−4, 4]` that Eigen and XLA use for `float` (`erf` is ±1 in `f32` outside), with no `exp`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_600_2e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329_2e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

/// Lanes of the reductions below: eight independent partial results, so that the loops
/// vectorise (a single running `f32` total fixes the order of the additions and does not).
const LANES: usize = 8;

/// `Σ f(xᵢ)` over eight interleaved partial sums.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    let mut total = acc.iter().sum::<f32>();
    for &v in tail {
        total += f(v);
    }
    total
}

/// `max xᵢ` (−∞ for an empty slice) over eight interleaved partial maxima.
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut best = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &v in tail {
        best = best.max(v);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_equal_the_plain_ones() {
        let x: Vec<f32> = (0..37).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        assert_eq!(max(&x), 50.0);
        assert_eq!(
            max(&x[..3]),
            x[..3].iter().copied().fold(f32::MIN, f32::max)
        );
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        let plain: f32 = x.iter().map(|v| v * v).sum();
        assert!((sum_map(&x, |v| v * v) - plain).abs() <= 1e-6 * plain);
    }

    #[test]
    fn exp_matches_the_f64_exponential() {
        let mut worst = 0.0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            if want > 1e-37 {
                worst = worst.max(((got - want) / want).abs());
            }
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp(-1e9), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erf_matches_libm_within_5e_7() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let want = libm_erf(x as f64);
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        assert!(worst < 5e-7, "worst absolute error {worst:e}");
        assert!((erf(10.0) - 1.0).abs() < 2e-7);
        assert!((erf(-10.0) + 1.0).abs() < 2e-7);
    }

    /// `erf` in f64 by its Taylor series (|x| < 3) and continued fraction (|x| ≥ 3), to 1e-12.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 3.0 {
            let mut term = a;
            let mut sum = a;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = e^{-a²}/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        value.copysign(x)
    }
}
