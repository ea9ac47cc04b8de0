//! What `classify extract` reads: the items of a task's split, in a fixed order, each with the
//! id, label and group it gets in the store.

use std::path::{Path, PathBuf};

use datasets::{chunk_waveform, read_wav, resample, AgNews, Cifar100, Iemocap, Split, WavCheck};
use image::RgbImage;

use crate::error::{invalid, Result};

/// The sample rate the speech encoders take.
pub const SAMPLE_RATE: u32 = 16_000;

/// The longest audio chunk accepted, in seconds: longer than any IEMOCAP utterance (≈35 s).
/// WavLM's self-attention holds `batch_size × heads × frames²` scores, so a chunk of 60 s
/// (3,000 frames) already needs gigabytes per batch on WavLM-Large, and 100,000 s would need
/// more memory than any machine has.
pub const MAX_CHUNK_SECONDS: f64 = 60.0;

/// Samples per audio chunk of `seconds` at [`SAMPLE_RATE`].
///
/// # Errors
/// [`Error::InvalidSetting`](crate::Error::InvalidSetting) for `--chunk-seconds` when `seconds` is not finite, rounds to no
/// sample at 16 kHz, or exceeds [`MAX_CHUNK_SECONDS`].
pub fn chunk_samples(seconds: f64) -> Result<usize> {
    let setting = "--chunk-seconds";
    // `5e-324` displays as a 330-digit decimal.
    let shown = seconds.to_string();
    let seconds_shown = if shown.len() > 12 {
        format!("{seconds:e}")
    } else {
        shown
    };
    let seconds_shown = seconds_shown.as_str();
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(invalid(
            setting,
            format!("must be a positive finite number of seconds, got {seconds_shown}"),
        ));
    }
    if seconds > MAX_CHUNK_SECONDS {
        return Err(invalid(
            setting,
            format!(
                "{seconds_shown} s is longer than the {MAX_CHUNK_SECONDS} s allowed (the encoder's \
                 attention memory grows with the square of the chunk length)"
            ),
        ));
    }
    let samples = (seconds * f64::from(SAMPLE_RATE)).round() as usize;
    if samples == 0 {
        return Err(invalid(
            setting,
            format!("{seconds_shown} s is less than one sample at {SAMPLE_RATE} Hz"),
        ));
    }
    Ok(samples)
}

/// A dataset of the paper's experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataTask {
    /// IEMOCAP (`IEMOCAP_full_release/`), 4 classes, one store, session as the group.
    Iemocap,
    /// CIFAR-100 binary release (`cifar-100-binary/`), fine labels, `train/` and `test/` stores.
    Cifar100,
    /// AG News CSV (`ag_news_csv/`), `train/` and `test/` stores.
    AgNews,
}

impl DataTask {
    /// The dataset name written to the store manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Iemocap => "iemocap",
            Self::Cifar100 => "cifar100",
            Self::AgNews => "agnews",
        }
    }

    /// Whether the task's stores are one folded store (IEMOCAP) or `train/` + `test/`.
    pub fn has_splits(self) -> bool {
        !matches!(self, Self::Iemocap)
    }

    /// What the dataset's records are: `audio`, `images` or `text`.
    pub fn modality(self) -> &'static str {
        match self {
            Self::Iemocap => "audio",
            Self::Cifar100 => "images",
            Self::AgNews => "text",
        }
    }
}

/// The model input of one item.
#[derive(Debug, Clone)]
pub enum Input {
    /// A 16 kHz waveform and how many of its samples are real (the rest is zero padding).
    Audio {
        /// The samples.
        samples: Vec<f32>,
        /// Real samples at the start of `samples`.
        real: usize,
    },
    /// An RGB image, before the encoder's preprocessing.
    Image(RgbImage),
    /// A text, before tokenization.
    Text(String),
}

/// One item of a store.
#[derive(Debug, Clone)]
pub struct Item {
    /// The store id (unique within the store).
    pub id: String,
    /// Class index.
    pub label: u32,
    /// Group (IEMOCAP session; 0 otherwise).
    pub group: u32,
    /// The model input.
    pub input: Input,
}

/// A unit of reading: one source record, which gives one item (an image, a text) or several
/// (the 5-s chunks of an IEMOCAP utterance).
#[derive(Debug, Clone)]
enum Unit {
    Utterance {
        id: String,
        label: u32,
        session: u32,
        wav: PathBuf,
    },
    Image(usize),
    Text(usize),
}

/// The opened source of one store: the ordered units and the class names.
#[derive(Debug)]
pub struct Source {
    units: Vec<Unit>,
    cifar: Option<Cifar100>,
    news: Option<AgNews>,
    /// Class names, in label order.
    pub class_names: Vec<String>,
    /// `train`, `test` or `all`.
    pub split: String,
    /// Samples per audio chunk at 16 kHz (80,000: 5 s).
    pub chunk_samples: usize,
    /// A digest of the whole split (every record, whatever `--limit`): its data file, or for
    /// IEMOCAP each turn's id, label, session and WAV length.
    pub digest: String,
}

impl Source {
    /// Opens `split` of `task` under `data` (`None` for IEMOCAP's single store), keeping the first
    /// `limit` records when given.
    ///
    /// # Errors
    /// The readers' errors, naming the file and record.
    pub fn open(
        task: DataTask,
        data: &Path,
        split: Option<Split>,
        limit: Option<usize>,
        chunk_samples: usize,
    ) -> Result<Self> {
        let take = |n: usize| limit.map_or(n, |l| l.min(n));
        let split_name = split.map_or("all", Split::stem).to_string();
        let source = match task {
            DataTask::Iemocap => {
                let corpus = Iemocap::open(data, WavCheck::Skip)?;
                let mut records = Vec::new();
                for u in corpus.utterances() {
                    let wav_len = std::fs::metadata(&u.wav_path).map_or(0, |m| m.len());
                    records.extend_from_slice(u.id.as_bytes());
                    records.push(0);
                    records.extend_from_slice(&u.label.index().to_le_bytes());
                    records.push(u.session);
                    records.extend_from_slice(&wav_len.to_le_bytes());
                }
                let digest = super::digest::data_digest(&[], &records)?;
                let class_names = corpus.class_names().iter().map(|s| s.to_string()).collect();
                let units = corpus
                    .utterances()
                    .iter()
                    .take(take(corpus.len()))
                    .map(|u| Unit::Utterance {
                        id: u.id.clone(),
                        label: u.label.index(),
                        session: u32::from(u.session),
                        wav: u.wav_path.clone(),
                    })
                    .collect();
                Self {
                    units,
                    cifar: None,
                    news: None,
                    class_names,
                    split: split_name,
                    chunk_samples,
                    digest,
                }
            }
            DataTask::Cifar100 => {
                let split = split.unwrap_or(Split::Train);
                let cifar = Cifar100::open(data, split)?;
                let file = data.join(format!("{}.bin", split.stem()));
                let digest = super::digest::data_digest(&[&file], &[])?;
                let units = (0..take(cifar.len())).map(Unit::Image).collect();
                Self {
                    units,
                    class_names: cifar.class_names().to_vec(),
                    cifar: Some(cifar),
                    news: None,
                    split: split_name,
                    chunk_samples,
                    digest,
                }
            }
            DataTask::AgNews => {
                let split = split.unwrap_or(Split::Train);
                let news = AgNews::open(data, split)?;
                let file = data.join(format!("{}.csv", split.stem()));
                let digest = super::digest::data_digest(&[&file], &[])?;
                let units = (0..take(news.len())).map(Unit::Text).collect();
                Self {
                    units,
                    class_names: news.class_names().to_vec(),
                    cifar: None,
                    news: Some(news),
                    split: split_name,
                    chunk_samples,
                    digest,
                }
            }
        };
        Ok(source)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// The ids record `index` gives without reading it, when they are known in advance (images
    /// and texts); `None` for utterances, whose chunk count needs the audio.
    pub fn known_id(&self, index: usize) -> Option<String> {
        match &self.units[index] {
            Unit::Utterance { .. } => None,
            Unit::Image(i) => Some(format!("{}/{i}", self.split)),
            Unit::Text(i) => Some(format!("{}/{i}", self.split)),
        }
    }

    /// Reads record `index` into its items. Utterances are resampled to 16 kHz and cut into
    /// chunks zero-padded to `chunk_samples` (5 s, 80,000 samples, as the reference code does),
    /// with ids `<turn>#<k>`.
    ///
    /// # Errors
    /// [`datasets::Error::Wav`] naming the file of an unreadable or empty utterance.
    pub fn read(&self, index: usize) -> Result<Vec<Item>> {
        Ok(match &self.units[index] {
            Unit::Utterance {
                id,
                label,
                session,
                wav,
            } => {
                let wave = read_wav(wav)?;
                let samples = resample(&wave.samples, wave.sample_rate, SAMPLE_RATE);
                let total = samples.len();
                chunk_waveform(&samples, self.chunk_samples)
                    .into_iter()
                    .enumerate()
                    .map(|(k, chunk)| Item {
                        id: format!("{id}#{k}"),
                        label: *label,
                        group: *session,
                        input: Input::Audio {
                            samples: chunk,
                            real: (total - k * self.chunk_samples).min(self.chunk_samples),
                        },
                    })
                    .collect()
            }
            Unit::Image(i) => {
                let cifar = self
                    .cifar
                    .as_ref()
                    .expect("CIFAR units come with the reader");
                vec![Item {
                    id: format!("{}/{i}", self.split),
                    label: cifar.fine_label(*i),
                    group: 0,
                    input: Input::Image(cifar.image(*i)),
                }]
            }
            Unit::Text(i) => {
                let news = self.news.as_ref().expect("text units come with the reader");
                let item = &news.items()[*i];
                vec![Item {
                    id: format!("{}/{i}", self.split),
                    label: item.label,
                    group: 0,
                    input: Input::Text(item.text()),
                }]
            }
        })
    }

    /// The record and the position within its items of the item with store id `id`
    /// (`train/3` → record 3, item 0; `Ses01F_impro01_F000#2` → that turn's record, chunk 2).
    pub fn locate(&self, id: &str) -> Option<(usize, usize)> {
        match self.units.first()? {
            Unit::Utterance { .. } => {
                let (turn, chunk) = id.rsplit_once('#')?;
                let chunk: usize = chunk.parse().ok()?;
                let index = self
                    .units
                    .iter()
                    .position(|u| matches!(u, Unit::Utterance { id, .. } if id == turn))?;
                Some((index, chunk))
            }
            Unit::Image(_) | Unit::Text(_) => {
                let (split, index) = id.split_once('/')?;
                let index: usize = index.parse().ok()?;
                (split == self.split && index < self.units.len()).then_some((index, 0))
            }
        }
    }

    /// [`Source::locate`] of each of `ids`, the turns looked up in an index built once (a
    /// store holds thousands of IEMOCAP chunks).
    pub fn locate_all(&self, ids: &[String]) -> Vec<Option<(usize, usize)>> {
        let turns: std::collections::HashMap<&str, usize> = (0..self.units.len())
            .filter_map(|unit| self.turn_id(unit).map(|turn| (turn, unit)))
            .collect();
        ids.iter()
            .map(|id| {
                if turns.is_empty() {
                    return self.locate(id);
                }
                let (turn, chunk) = id.rsplit_once('#')?;
                Some((*turns.get(turn)?, chunk.parse::<usize>().ok()?))
            })
            .collect()
    }

    /// The turn name of record `index` when it is an IEMOCAP utterance.
    pub fn turn_id(&self, index: usize) -> Option<&str> {
        match &self.units[index] {
            Unit::Utterance { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The file a record comes from, for messages.
    pub fn describe(&self, index: usize) -> String {
        match &self.units[index] {
            Unit::Utterance { wav, .. } => wav.display().to_string(),
            Unit::Image(i) => format!(
                "{} record {i}",
                self.cifar
                    .as_ref()
                    .map_or(String::new(), |c| c.path().display().to_string())
            ),
            Unit::Text(i) => format!(
                "{} record {i}",
                self.news
                    .as_ref()
                    .map_or(String::new(), |n| n.path().display().to_string())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lengths_are_finite_at_least_one_sample_and_bounded() {
        assert_eq!(chunk_samples(5.0).unwrap(), 80_000);
        assert_eq!(chunk_samples(1.0 / 16_000.0).unwrap(), 1);
        assert_eq!(chunk_samples(MAX_CHUNK_SECONDS).unwrap(), 960_000);
        for (seconds, expected) in [
            (
                f64::NAN,
                "must be a positive finite number of seconds, got NaN",
            ),
            (
                f64::INFINITY,
                "must be a positive finite number of seconds, got inf",
            ),
            (0.0, "must be a positive finite number of seconds, got 0"),
            (-1.0, "must be a positive finite number of seconds, got -1"),
            (0.00001, "0.00001 s is less than one sample at 16000 Hz"),
            (60.5, "60.5 s is longer than the 60 s allowed"),
            (100_000.0, "100000 s is longer than the 60 s allowed"),
        ] {
            let message = chunk_samples(seconds).unwrap_err().to_string();
            assert!(
                message.starts_with("--chunk-seconds: ") && message.contains(expected),
                "{seconds}: {message}"
            );
        }
    }
}
