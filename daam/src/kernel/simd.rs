//! Vectorisable building blocks and CPU-feature dispatch for the kernels.
//!
//! burn builds for the baseline x86-64 target (SSE2). The kernels' per-chunk bodies are
//! compiled a second time with AVX2 + FMA and picked at run time when the CPU has them; the
//! only `unsafe` in the crate is that call, behind the feature check.

#![allow(unsafe_code)]

/// Whether the running CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Defines `$name`, which runs `$body` compiled for AVX2 + FMA when the CPU has them and for
/// the baseline target otherwise. `$body` must be `#[inline(always)]`.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<F>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name<F: $crate::kernel::Real>($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2<F: $crate::kernel::Real>($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::kernel::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA, the features `avx2` is built for.
                    #[allow(unsafe_code)]
                    return unsafe { avx2::<F>($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// `e^x` in f64 to full precision: [`exp_degree`] with a degree-12 polynomial.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    exp_degree::<12>(x)
}

/// `e^x` in f64, branch-free so loops over it vectorise; 0 below `x = −708` (where the true
/// value is under 3.3e-308).
///
/// Range reduction `x = n ln2 + r`, `|r| ≤ ln2/2`, then a Taylor polynomial of degree `DEGREE`
/// for `e^r` and `2^n` built from its exponent bits. Truncation error `(ln2/2)^(D+1)/(D+1)!`:
/// below 1e-16 for degree 12 (f64 results), 6e-9 for degree 7 (results stored in f32, whose
/// rounding is 6e-8).
#[inline(always)]
pub fn exp_degree<const DEGREE: usize>(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split in two (fdlibm's exp): the high part has trailing zero bits, so n·LN2_HI is
    // exact for |n| < 2^11.
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    // 1.5 · 2^52: adding it rounds to an integer held in the low mantissa bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let xc = x.clamp(-708.0, 709.0);
    let t = xc * LOG2E + SHIFT;
    let n = t - SHIFT;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACTORIAL[DEGREE];
    for k in (0..DEGREE).rev() {
        p = p * r + INV_FACTORIAL[k];
    }
    // The low bits of `t` hold n (two's complement, mod 2^51): shifting them into the exponent
    // field and adding the bias gives the bits of 2^n.
    let scale = f64::from_bits((t.to_bits() << 52).wrapping_add(1023u64 << 52));
    let value = p * scale;
    if x < -708.0 {
        0.0
    } else {
        value
    }
}

/// `1/k!` for `k = 0..=12`.
const INV_FACTORIAL: [f64; 13] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5_040.0,
    1.0 / 40_320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -708.0;
        while x < 709.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-15, "worst relative error {worst:e}");
        for x in [0.0, -0.0, 1e-300, -1e-12, 0.5 * std::f64::consts::LN_2] {
            assert!(((exp(x) - x.exp()) / x.exp()).abs() < 2e-15, "x = {x}");
        }
        assert_eq!(exp(-709.0), 0.0);
        let mut worst7 = 0.0f64;
        let mut x = -100.0;
        while x < 0.0 {
            worst7 = worst7.max(((exp_degree::<7>(x) - x.exp()) / x.exp()).abs());
            x += 0.0071;
        }
        assert!(worst7 < 1e-8, "degree 7: worst relative error {worst7:e}");
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
    }
}
