//! WAV decoding to mono f32 and the fixed-length chunking of the IEMOCAP pipeline.

use std::path::Path;

use hound::{SampleFormat, WavReader};

use crate::error::{Error, Result};

/// Samples per chunk of the reference IEMOCAP pipeline: 5 s at 16 kHz.
pub const CHUNK_SAMPLES_16K: usize = 80_000;

/// A decoded mono waveform.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    /// Samples in [-1, 1] (integer PCM divided by 2^(bits - 1); float WAVs as stored).
    pub samples: Vec<f32>,
    /// Samples per second, as stored in the file (not resampled).
    pub sample_rate: u32,
}

impl Waveform {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Reads a WAV file (8/16/24/32-bit integer PCM or 32-bit float) as mono f32.
///
/// Channels are averaged frame by frame (IEMOCAP's segmented turns are mono already; its
/// `dialog/wav/` sessions are stereo). Integer samples are scaled by 1/2^(bits-1), so 16-bit PCM
/// maps to [-1, 1) as in torchaudio and soundfile. The sample rate is returned as stored:
/// resampling is the caller's job.
///
/// # Errors
/// [`Error::Wav`] naming the file when it is not a regular file (a FIFO would block the reader
/// for ever), its header is bad (a sample rate of 0 included), its encoding unsupported, its
/// data shorter than the header says (a truncated file), it holds no samples, or a float
/// sample is NaN, infinite or beyond ±1000 (it would poison every embedding of the clip).
pub fn read_wav(path: &Path) -> Result<Waveform> {
    // The largest magnitude taken from a float WAV (nominal range ±1; loud masters clip a little
    // past it, nothing real reaches this).
    const MAX_FLOAT_SAMPLE: f32 = 1000.0;
    let wav_error = |source| Error::Wav {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(|e| wav_error(hound::Error::IoError(e)))?;
    if !metadata.is_file() {
        return Err(wav_error(hound::Error::FormatError(
            "not a regular file (a folder, a FIFO or a device)",
        )));
    }
    let mut reader = WavReader::open(path).map_err(wav_error)?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(wav_error(hound::Error::FormatError(
            "the header gives a sample rate of 0 Hz",
        )));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(wav_error)?,
        SampleFormat::Int => {
            let scale = 1.0 / (1u64 << spec.bits_per_sample.saturating_sub(1)) as f32;
            reader
                .samples::<i32>()
                .map(|sample| sample.map(|value| value as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(wav_error)?
        }
    };
    if interleaved.iter().any(|sample| !sample.is_finite()) {
        return Err(wav_error(hound::Error::FormatError(
            "a sample is NaN or infinite",
        )));
    }
    // Float WAVs hold [-1, 1]; a sample of ±3e38 is finite here but overflows the encoder.
    if interleaved
        .iter()
        .any(|sample| sample.abs() > MAX_FLOAT_SAMPLE)
    {
        return Err(wav_error(hound::Error::FormatError(
            "a sample is beyond ±1000 (float WAVs hold -1 to 1)",
        )));
    }
    if interleaved.is_empty() {
        // A valid header over no audio: nothing to extract, said rather than dropped silently.
        return Err(wav_error(hound::Error::FormatError(
            "the file holds no samples",
        )));
    }
    let channels = usize::from(spec.channels.max(1));
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Waveform {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Cuts a waveform into consecutive `chunk`-sample pieces, zero-padding the last one.
///
/// This is the reference IEMOCAP pipeline's chunking (classify-anchors §8): pydub's
/// `make_chunks(audio, 5000)` then padding every chunk to 80,000 samples (pass
/// [`CHUNK_SAMPLES_16K`] for 16 kHz audio). As there, a tail of any length is kept and padded,
/// however short (a single sample makes a chunk of its own); there is no minimum-length
/// threshold. Empty input gives no chunk.
///
/// # Shapes
/// Returns `ceil(samples.len() / chunk)` vectors of exactly `chunk` samples.
///
/// # Panics
/// When `chunk` is zero.
///
/// ```
/// use datasets::chunk_waveform;
///
/// let chunks = chunk_waveform(&[1.0, 2.0, 3.0, 4.0, 5.0], 2);
/// assert_eq!(chunks, [vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 0.0]]);
/// ```
pub fn chunk_waveform(samples: &[f32], chunk: usize) -> Vec<Vec<f32>> {
    assert!(chunk > 0, "chunk length must be positive, got 0");
    samples
        .chunks(chunk)
        .map(|piece| {
            let mut padded = piece.to_vec();
            padded.resize(chunk, 0.0);
            padded
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use hound::{WavSpec, WavWriter};

    use super::*;

    /// Writes 16-bit PCM samples (interleaved when `channels > 1`) to `path`.
    pub fn write_wav_i16(path: &Path, sample_rate: u32, channels: u16, samples: &[i16]) {
        let spec = WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let mut writer = WavWriter::create(path, spec).unwrap();
        for &sample in samples {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
    }

    #[test]
    fn a_file_without_samples_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        write_wav_i16(&path, 16_000, 1, &[]);
        let error = read_wav(&path).unwrap_err();
        assert!(
            crate::error::with_causes(&error).ends_with("the file holds no samples"),
            "{}",
            crate::error::with_causes(&error)
        );
    }

    /// The reason [`read_wav`] gives for the file at `path`.
    fn refusal(path: &Path) -> String {
        crate::error::with_causes(&read_wav(path).unwrap_err())
    }

    /// A header with a 0 Hz rate (it panicked in the resampler), a NaN sample (it aborted a
    /// whole extraction as a non-finite embedding, where other bad files are skipped) and a
    /// FIFO (the reader blocked for ever, past Ctrl-C) are errors naming the file.
    #[test]
    fn zero_rates_non_finite_samples_and_fifos_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let zero_rate = dir.path().join("zero_rate.wav");
        write_wav_i16(&zero_rate, 16_000, 1, &[1, 2, 3]);
        let mut bytes = std::fs::read(&zero_rate).unwrap();
        // The sample rate (bytes 24..28) and byte rate (28..32) of the fmt chunk.
        bytes[24..32].fill(0);
        std::fs::write(&zero_rate, bytes).unwrap();
        assert!(
            refusal(&zero_rate).ends_with("the header gives a sample rate of 0 Hz"),
            "{}",
            refusal(&zero_rate)
        );

        let nan = dir.path().join("nan.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(&nan, spec).unwrap();
        for sample in [0.1, f32::NAN, 0.2] {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
        let message = refusal(&nan);
        assert!(message.contains("nan.wav"), "{message}");
        assert!(
            message.ends_with("a sample is NaN or infinite"),
            "{message}"
        );
        // Finite but absurd: it overflowed the encoder and aborted the extraction.
        let huge = dir.path().join("huge.wav");
        let mut writer = hound::WavWriter::create(&huge, spec).unwrap();
        for sample in [0.1, 3e38, 0.2] {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
        assert!(
            refusal(&huge).ends_with("a sample is beyond ±1000 (float WAVs hold -1 to 1)"),
            "{}",
            refusal(&huge)
        );

        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo.wav");
            crate::error::test_support::make_fifo(&fifo);
            assert!(
                refusal(&fifo).ends_with("not a regular file (a folder, a FIFO or a device)"),
                "{}",
                refusal(&fifo)
            );
        }
    }

    #[test]
    fn mono_i16_is_scaled_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav_i16(&path, 16_000, 1, &[0, 16_384, -32_768, 32_767]);
        let wave = read_wav(&path).unwrap();
        assert_eq!(wave.sample_rate, 16_000);
        assert_eq!(wave.samples, [0.0, 0.5, -1.0, 32_767.0 / 32_768.0]);
        assert_eq!(wave.duration_s(), 4.0 / 16_000.0);
    }

    #[test]
    fn stereo_is_averaged_and_rate_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        write_wav_i16(&path, 44_100, 2, &[16_384, 0, -8_192, -8_192, 0, 32_767]);
        let wave = read_wav(&path).unwrap();
        assert_eq!(wave.sample_rate, 44_100);
        assert_eq!(wave.samples, [0.25, -0.25, 32_767.0 / 65_536.0]);
    }

    #[test]
    fn float_wav_is_read_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        let spec = WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        };
        let mut writer = WavWriter::create(&path, spec).unwrap();
        for sample in [0.125f32, -0.75] {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
        assert_eq!(read_wav(&path).unwrap().samples, [0.125, -0.75]);
    }

    #[test]
    fn truncated_wav_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        write_wav_i16(&path, 16_000, 1, &[1; 100]);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 51]).unwrap();
        let error = read_wav(&path).unwrap_err();
        assert!(matches!(error, Error::Wav { .. }), "{error}");
        assert!(error.to_string().contains("cut.wav"), "{error}");
    }

    #[test]
    fn not_a_wav_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.wav");
        fs::write(&path, b"RIFX1234").unwrap();
        let error = read_wav(&path).unwrap_err();
        assert!(error.to_string().contains("junk.wav"), "{error}");
    }

    #[test]
    fn chunks_are_padded_and_short_tails_kept() {
        let samples: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        let chunks = chunk_waveform(&samples, 3);
        assert_eq!(
            chunks,
            [
                vec![1.0, 2.0, 3.0],
                vec![4.0, 5.0, 6.0],
                vec![7.0, 0.0, 0.0]
            ]
        );
        assert_eq!(chunk_waveform(&samples[..6], 3).len(), 2);
        assert_eq!(chunk_waveform(&samples[..2], 3), [vec![1.0, 2.0, 0.0]]);
        assert!(chunk_waveform(&[], 3).is_empty());
        let long = vec![0.5; CHUNK_SAMPLES_16K + 1];
        let chunks = chunk_waveform(&long, CHUNK_SAMPLES_16K);
        assert_eq!(chunks.len(), 2);
        assert!(chunks.iter().all(|c| c.len() == CHUNK_SAMPLES_16K));
        assert_eq!(chunks[1][..2], [0.5, 0.0]);
    }

    #[test]
    #[should_panic = "chunk length must be positive, got 0"]
    fn zero_chunk_panics() {
        chunk_waveform(&[1.0], 0);
    }
}
