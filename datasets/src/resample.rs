//! Band-limited resampling of mono audio (the encoders take 16 kHz).

use std::f64::consts::PI;

/// Zero crossings of the windowed sinc on each side, at the lower of the two rates.
const ZERO_CROSSINGS: f64 = 16.0;

/// Resamples `samples` from `from` Hz to `to` Hz with a Hann-windowed sinc low-pass at 95% of
/// the lower Nyquist frequency (16 zero crossings a side). The output has
/// `round(len · to / from)` samples; equal rates return the input unchanged.
///
/// # Panics
/// When a rate is zero.
///
/// ```
/// use datasets::resample;
///
/// let tone: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.01).sin()).collect();
/// assert_eq!(resample(&tone, 48_000, 16_000).len(), 16_000);
/// ```
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    assert!(from > 0 && to > 0, "sample rates must be positive");
    if from == to {
        return samples.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let out_len = (samples.len() as f64 * ratio).round() as usize;
    // Cut-off relative to the input rate's Nyquist frequency.
    let cutoff = 0.95 * ratio.min(1.0);
    let half_width = ZERO_CROSSINGS / cutoff;
    (0..out_len)
        .map(|n| {
            let centre = n as f64 / ratio;
            let first = (centre - half_width).ceil().max(0.0) as usize;
            let last =
                ((centre + half_width).floor() as usize).min(samples.len().saturating_sub(1));
            let mut acc = 0.0f64;
            for (k, &s) in samples.iter().enumerate().take(last + 1).skip(first) {
                let t = k as f64 - centre;
                let x = cutoff * t;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    (PI * x).sin() / (PI * x)
                };
                let window = 0.5 + 0.5 * (PI * t / half_width).cos();
                acc += f64::from(s) * cutoff * sinc * window;
            }
            acc as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn a_tone_below_nyquist_survives_downsampling() {
        let out = resample(&tone(440.0, 48_000, 0.5), 48_000, 16_000);
        let want = tone(440.0, 16_000, 0.5);
        assert_eq!(out.len(), want.len());
        // Away from the edges the resampled tone is the tone at the new rate.
        let err: f64 = out[200..7800]
            .iter()
            .zip(&want[200..7800])
            .map(|(a, b)| f64::from(a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 2e-3, "max error {err}");
    }

    #[test]
    fn a_tone_above_the_new_nyquist_is_removed() {
        let out = resample(&tone(12_000.0, 48_000, 0.5), 48_000, 16_000);
        assert!(rms(&out[200..7800]) < 0.01, "rms {}", rms(&out[200..7800]));
    }

    #[test]
    fn upsampling_keeps_a_tone_and_equal_rates_are_the_identity() {
        let out = resample(&tone(300.0, 8_000, 0.25), 8_000, 16_000);
        let want = tone(300.0, 16_000, 0.25);
        let err: f64 = out[200..3800]
            .iter()
            .zip(&want[200..3800])
            .map(|(a, b)| f64::from(a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 2e-3, "max error {err}");
        let x = [0.1f32, -0.2, 0.3];
        assert_eq!(resample(&x, 16_000, 16_000), x);
    }
}
