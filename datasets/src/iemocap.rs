//! The IEMOCAP release (`IEMOCAP_full_release/`): the 4-class speech emotion labels and the
//! segmented turn WAVs (classify-anchors §6.1).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_error, Error, Result};

/// Class names in label order, the s3prl order: `neu` 0, `hap` (with `exc`) 1, `ang` 2, `sad` 3.
pub const IEMOCAP_CLASS_NAMES: [&str; 4] = ["neu", "hap", "ang", "sad"];

/// Every category the release's consensus lines use; only `neu hap exc ang sad` are kept.
pub const IEMOCAP_CATEGORIES: [&str; 11] = [
    "neu", "hap", "exc", "sad", "ang", "fru", "fea", "sur", "dis", "oth", "xxx",
];

/// The standard 4-class IEMOCAP label set, `exc` merged into `hap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion4 {
    /// `neu`, label 0.
    Neutral,
    /// `hap` and `exc`, label 1.
    Happy,
    /// `ang`, label 2.
    Angry,
    /// `sad`, label 3.
    Sad,
}

impl Emotion4 {
    /// The classes in label order.
    pub const ALL: [Self; 4] = [Self::Neutral, Self::Happy, Self::Angry, Self::Sad];

    /// The class index, into [`IEMOCAP_CLASS_NAMES`].
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The class name (`neu`, `hap`, `ang`, `sad`).
    pub fn name(self) -> &'static str {
        IEMOCAP_CLASS_NAMES[self as usize]
    }

    /// The class of a release category: `neu`, `hap`, `exc` (merged into `hap`), `ang`, `sad`;
    /// `None` for the others (`fru fea sur dis oth xxx`).
    pub fn from_category(category: &str) -> Option<Self> {
        match category {
            "neu" => Some(Self::Neutral),
            "hap" | "exc" => Some(Self::Happy),
            "ang" => Some(Self::Angry),
            "sad" => Some(Self::Sad),
            _ => None,
        }
    }
}

/// The speaker's gender; each session has one female and one male speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `F` in the turn name.
    Female,
    /// `M` in the turn name.
    Male,
}

impl Gender {
    /// `'F'` or `'M'`.
    pub fn letter(self) -> char {
        match self {
            Self::Female => 'F',
            Self::Male => 'M',
        }
    }
}

/// One labelled turn of the 4-class set.
#[derive(Debug, Clone, PartialEq)]
pub struct IemocapUtterance {
    /// The turn name, e.g. `Ses01F_impro01_F000`.
    pub id: String,
    /// The session, 1..=5 (the cross-validation fold).
    pub session: u8,
    /// The speaker of the turn: the last `F`/`M` of the turn name's final `_` part
    /// (`F000` → female), not the dialog prefix (`Ses01F` names who wore the markers).
    pub gender: Gender,
    /// The class.
    pub label: Emotion4,
    /// `Session{N}/sentences/wav/<dialog>/<turn>.wav`.
    pub wav_path: PathBuf,
    /// Start of the turn in the dialog recording, in seconds.
    pub start_s: f64,
    /// End of the turn in the dialog recording, in seconds.
    pub end_s: f64,
    /// Consensus `[valence, activation, dominance]`, 1–5 scale.
    pub vad: [f32; 3],
    /// The `EmoEvaluation` file the label comes from.
    pub label_file: PathBuf,
    /// The label's line in that file, 1-based.
    pub line: u64,
}

/// Whether [`Iemocap::open`] checks that every utterance's WAV file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavCheck {
    /// Parse the labels only.
    Skip,
    /// Fail with [`Error::MissingWav`] on the first utterance without its WAV file.
    RequireExists,
}

/// The 4-class utterances of an IEMOCAP release.
#[derive(Debug, Clone)]
pub struct Iemocap {
    root: PathBuf,
    utterances: Vec<IemocapUtterance>,
    dropped: BTreeMap<String, usize>,
}

impl Iemocap {
    /// Reads the labels of `root` (the `IEMOCAP_full_release/` folder).
    ///
    /// Each `Session{1..5}/dialog/EmoEvaluation/*.txt` (top level only; macOS `._*` files are
    /// skipped) is read; its consensus lines, the ones starting with `[`, are tab-separated
    /// `[start - end]`, turn name, category, `[v, a, d]`. `exc` is merged into `hap`; turns of
    /// other categories are dropped and counted in [`Self::dropped`]. Utterances come in session
    /// order, then label file name, then line order.
    ///
    /// # Errors
    /// [`Error::Layout`] when a `Session{N}/dialog/EmoEvaluation` folder is missing;
    /// [`Error::Malformed`] naming the file and line of a consensus line that does not parse, has
    /// no speaker letter, or repeats a turn; [`Error::MissingWav`] with
    /// [`WavCheck::RequireExists`]; [`Error::Io`] on unreadable files.
    pub fn open(root: &Path, wav_check: WavCheck) -> Result<Self> {
        let mut utterances = Vec::new();
        let mut dropped = BTreeMap::new();
        let mut first_line: HashMap<String, (PathBuf, u64)> = HashMap::new();
        for session in 1..=5u8 {
            let session_dir = root.join(format!("Session{session}"));
            let labels_dir = session_dir.join("dialog").join("EmoEvaluation");
            if !labels_dir.is_dir() {
                return Err(Error::Layout {
                    path: labels_dir,
                    message: "missing: an IEMOCAP release holds Session1..Session5, each with \
                              dialog/EmoEvaluation/*.txt"
                        .to_owned(),
                });
            }
            for label_file in label_files(&labels_dir)? {
                let dialog = file_stem(&label_file);
                let wav_dir = session_dir.join("sentences").join("wav").join(&dialog);
                let text = fs::read_to_string(&label_file).map_err(io_error(&label_file))?;
                for (index, raw) in text.lines().enumerate() {
                    let line = index as u64 + 1;
                    if !raw.starts_with('[') {
                        continue;
                    }
                    let malformed = |message: String| Error::Malformed {
                        path: label_file.clone(),
                        line,
                        message,
                    };
                    let consensus = parse_consensus_line(raw).map_err(malformed)?;
                    let Some(label) = Emotion4::from_category(&consensus.category) else {
                        *dropped.entry(consensus.category).or_insert(0) += 1;
                        continue;
                    };
                    if let Some((file, at)) = first_line.get(&consensus.turn) {
                        return Err(malformed(format!(
                            "turn {} is already labelled at {}:{at}",
                            consensus.turn,
                            file.display()
                        )));
                    }
                    let gender = speaker_gender(&consensus.turn).ok_or_else(|| {
                        malformed(format!(
                            "turn name {} has no F/M speaker letter in its last `_` part",
                            consensus.turn
                        ))
                    })?;
                    let wav_path = wav_dir.join(format!("{}.wav", consensus.turn));
                    if wav_check == WavCheck::RequireExists && !wav_path.is_file() {
                        return Err(Error::MissingWav {
                            label_file: label_file.clone(),
                            line,
                            id: consensus.turn,
                            wav: wav_path,
                        });
                    }
                    first_line.insert(consensus.turn.clone(), (label_file.clone(), line));
                    utterances.push(IemocapUtterance {
                        id: consensus.turn,
                        session,
                        gender,
                        label,
                        wav_path,
                        start_s: consensus.start_s,
                        end_s: consensus.end_s,
                        vad: consensus.vad,
                        label_file: label_file.clone(),
                        line,
                    });
                }
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            utterances,
            dropped,
        })
    }

    /// The release folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The 4-class utterances.
    pub fn utterances(&self) -> &[IemocapUtterance] {
        &self.utterances
    }

    /// Number of 4-class utterances (5531 in the full release).
    pub fn len(&self) -> usize {
        self.utterances.len()
    }

    /// Whether no utterance has a 4-class label.
    pub fn is_empty(&self) -> bool {
        self.utterances.is_empty()
    }

    /// How many turns of each other category (`fru`, `xxx`, ...) were dropped.
    pub fn dropped(&self) -> &BTreeMap<String, usize> {
        &self.dropped
    }

    /// The class names in label order, [`IEMOCAP_CLASS_NAMES`].
    pub fn class_names(&self) -> [&'static str; 4] {
        IEMOCAP_CLASS_NAMES
    }
}

/// The top-level `*.txt` files of an `EmoEvaluation` folder, sorted, without `._*` files.
fn label_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".txt") && !name.starts_with("._") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A parsed consensus line.
#[derive(Debug, PartialEq)]
struct ConsensusLine {
    start_s: f64,
    end_s: f64,
    turn: String,
    category: String,
    vad: [f32; 3],
}

/// Parses `[start - end]<TAB>turn<TAB>category<TAB>[v, a, d]`; the error is the message.
fn parse_consensus_line(line: &str) -> std::result::Result<ConsensusLine, String> {
    let fields: Vec<&str> = line.trim_end().split('\t').map(str::trim).collect();
    let [times, turn, category, vad] = fields[..] else {
        return Err(format!(
            "expected 4 tab-separated fields ([start - end], turn, category, [v, a, d]), got {}: {line:?}",
            fields.len()
        ));
    };
    let (start, end) = bracketed(times)
        .and_then(|inner| inner.split_once('-'))
        .ok_or_else(|| format!("expected `[start - end]`, got {times:?}"))?;
    let seconds = |text: &str| {
        text.trim()
            .parse::<f64>()
            .map_err(|_| format!("time {:?} is not a number", text.trim()))
    };
    let vad_values: Vec<&str> = bracketed(vad)
        .ok_or_else(|| format!("expected `[v, a, d]`, got {vad:?}"))?
        .split(',')
        .map(str::trim)
        .collect();
    let [v, a, d] = vad_values[..] else {
        return Err(format!("expected 3 values in `[v, a, d]`, got {vad:?}"));
    };
    let score = |text: &str| {
        text.parse::<f32>()
            .map_err(|_| format!("VAD value {text:?} is not a number"))
    };
    if turn.is_empty() || category.is_empty() {
        return Err(format!("empty turn name or category: {line:?}"));
    }
    Ok(ConsensusLine {
        start_s: seconds(start)?,
        end_s: seconds(end)?,
        turn: turn.to_owned(),
        category: category.to_owned(),
        vad: [score(v)?, score(a)?, score(d)?],
    })
}

/// The text between a leading `[` and a trailing `]`.
fn bracketed(text: &str) -> Option<&str> {
    text.strip_prefix('[')?.strip_suffix(']')
}

/// The last `F`/`M` in the turn name's final `_` part (`Ses01M_impro01_F012` → female).
fn speaker_gender(turn: &str) -> Option<Gender> {
    let last = turn.rsplit('_').next()?;
    last.chars().rev().find_map(|c| match c {
        'F' => Some(Gender::Female),
        'M' => Some(Gender::Male),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tests::write_wav_i16;
    use crate::audio::{chunk_waveform, read_wav};

    const S1_IMPRO: &str = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\
        \n\
        [6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\n\
        C-E2:\tNeutral;\t()\n\
        A-E3:\tval 3; act 2; dom  2;\t()\n\
        \n\
        [10.0100 - 11.3925]\tSes01F_impro01_M000\texc\t[3.5000, 3.0000, 3.0000]\n\
        \n\
        [14.8872 - 18.0175]\tSes01F_impro01_F001\tfru\t[2.0000, 3.5000, 3.5000]\n\
        \n\
        [19.2900 - 20.7875]\tSes01F_impro01_M001\txxx\t[2.5000, 2.0000, 2.5000]\n";

    /// Writes an `IEMOCAP_full_release/`-like tree: 5 sessions, a few turns, tiny WAVs.
    fn write_release(root: &Path) {
        for session in 1..=5 {
            fs::create_dir_all(root.join(format!("Session{session}/dialog/EmoEvaluation")))
                .unwrap();
        }
        let labels = root.join("Session1/dialog/EmoEvaluation");
        fs::write(labels.join("Ses01F_impro01.txt"), S1_IMPRO).unwrap();
        fs::write(labels.join("._Ses01F_impro01.txt"), b"\x00\x05\x16\x07junk").unwrap();
        // Per-annotator files in subfolders are not read.
        fs::create_dir_all(labels.join("Categorical")).unwrap();
        fs::write(
            labels.join("Categorical/Ses01F_impro01_e2_cat.txt"),
            "[1.0 - 2.0]\tbroken\n",
        )
        .unwrap();
        let labels3 = root.join("Session3/dialog/EmoEvaluation");
        fs::write(
            labels3.join("Ses03M_script01_1.txt"),
            "[1.5 - 4.25]\tSes03M_script01_1_F003\tang\t[1.5, 4.5, 4.0]\r\n\
             [5.0 - 6.0]\tSes03M_script01_1_M004\tsad\t[2.0, 1.5, 2.0]\r\n\
             [7.0 - 8.0]\tSes03M_script01_1_M005\thap\t[4.0, 3.0, 3.0]\r\n",
        )
        .unwrap();

        for (session, dialog, turns) in [
            (
                1,
                "Ses01F_impro01",
                &["Ses01F_impro01_F000", "Ses01F_impro01_M000"][..],
            ),
            (
                3,
                "Ses03M_script01_1",
                &[
                    "Ses03M_script01_1_F003",
                    "Ses03M_script01_1_M004",
                    "Ses03M_script01_1_M005",
                ][..],
            ),
        ] {
            let dir = root.join(format!("Session{session}/sentences/wav/{dialog}"));
            fs::create_dir_all(&dir).unwrap();
            for turn in turns {
                write_wav_i16(&dir.join(format!("{turn}.wav")), 16_000, 1, &[0, 100, -100]);
            }
        }
    }

    #[test]
    fn parses_labels_merges_exc_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path());
        let release = Iemocap::open(dir.path(), WavCheck::RequireExists).unwrap();
        let summary: Vec<(&str, u8, char, &str)> = release
            .utterances()
            .iter()
            .map(|u| (u.id.as_str(), u.session, u.gender.letter(), u.label.name()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Ses01F_impro01_F000", 1, 'F', "neu"),
                ("Ses01F_impro01_M000", 1, 'M', "hap"),
                ("Ses03M_script01_1_F003", 3, 'F', "ang"),
                ("Ses03M_script01_1_M004", 3, 'M', "sad"),
                ("Ses03M_script01_1_M005", 3, 'M', "hap"),
            ]
        );
        assert_eq!(
            release.dropped(),
            &BTreeMap::from([("fru".to_owned(), 1), ("xxx".to_owned(), 1)])
        );
        let first = &release.utterances()[0];
        assert_eq!((first.start_s, first.end_s), (6.2901, 8.2357));
        assert_eq!(first.vad, [2.5, 2.5, 2.5]);
        assert_eq!(first.line, 3);
        assert_eq!(
            first.wav_path,
            dir.path()
                .join("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
        );
        let labels: Vec<u32> = release
            .utterances()
            .iter()
            .map(|u| u.label.index())
            .collect();
        assert_eq!(labels, [0, 1, 2, 3, 1]);
        assert_eq!(release.class_names(), ["neu", "hap", "ang", "sad"]);

        let wave = read_wav(&first.wav_path).unwrap();
        assert_eq!(wave.sample_rate, 16_000);
        let chunks = chunk_waveform(&wave.samples, 2);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1], [-100.0 / 32_768.0, 0.0]);
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path());
        let path = dir
            .path()
            .join("Session2/dialog/EmoEvaluation/Ses02F_impro02.txt");
        fs::write(
            &path,
            "% header\n[1.0 - 2.0]\tSes02F_impro02_F000\tneu\t[2.0, 2.0, 2.0]\n\
             [3.0 - x]\tSes02F_impro02_F001\tneu\t[2.0, 2.0, 2.0]\n",
        )
        .unwrap();
        let error = Iemocap::open(dir.path(), WavCheck::Skip).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("Ses02F_impro02.txt:3: time \"x\""),
            "{message}"
        );

        fs::write(
            &path,
            "[1.0 - 2.0] Ses02F_impro02_F000 neu [2.0, 2.0, 2.0]\n",
        )
        .unwrap();
        let message = Iemocap::open(dir.path(), WavCheck::Skip)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("Ses02F_impro02.txt:1: expected 4 tab-separated fields"),
            "{message}"
        );
    }

    #[test]
    fn missing_wav_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path());
        fs::remove_file(
            dir.path()
                .join("Session3/sentences/wav/Ses03M_script01_1/Ses03M_script01_1_M004.wav"),
        )
        .unwrap();
        assert_eq!(Iemocap::open(dir.path(), WavCheck::Skip).unwrap().len(), 5);
        let error = Iemocap::open(dir.path(), WavCheck::RequireExists).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("Ses03M_script01_1.txt:2: utterance Ses03M_script01_1_M004"),
            "{message}"
        );
    }

    #[test]
    fn missing_session_is_a_layout_error() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path());
        fs::remove_dir_all(dir.path().join("Session4")).unwrap();
        let error = Iemocap::open(dir.path(), WavCheck::Skip).unwrap_err();
        assert!(matches!(error, Error::Layout { .. }), "{error}");
        assert!(error.to_string().contains("Session4"), "{error}");
    }

    #[test]
    fn repeated_turn_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path());
        fs::write(
            dir.path()
                .join("Session5/dialog/EmoEvaluation/Ses05F_impro01.txt"),
            "[1.0 - 2.0]\tSes01F_impro01_F000\tneu\t[2.0, 2.0, 2.0]\n",
        )
        .unwrap();
        let message = Iemocap::open(dir.path(), WavCheck::Skip)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("Ses05F_impro01.txt:1: turn Ses01F_impro01_F000 is already labelled"),
            "{message}"
        );
    }

    #[test]
    fn speaker_is_the_last_letter_before_the_index() {
        assert_eq!(speaker_gender("Ses01M_impro01_F012"), Some(Gender::Female));
        assert_eq!(speaker_gender("Ses01F_script02_1_M003"), Some(Gender::Male));
        assert_eq!(
            speaker_gender("Ses05F_script01_1b_MXX0"),
            Some(Gender::Male)
        );
        assert_eq!(speaker_gender("Ses01F_impro01_000"), None);
    }

    #[test]
    fn categories_map_to_four_classes() {
        let mapped: Vec<Option<Emotion4>> = IEMOCAP_CATEGORIES
            .iter()
            .map(|c| Emotion4::from_category(c))
            .collect();
        assert_eq!(mapped.iter().flatten().count(), 5);
        assert_eq!(Emotion4::from_category("exc"), Some(Emotion4::Happy));
        for class in Emotion4::ALL {
            assert_eq!(Emotion4::from_category(class.name()), Some(class));
            assert_eq!(IEMOCAP_CLASS_NAMES[class.index() as usize], class.name());
        }
    }
}
