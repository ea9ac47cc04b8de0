//! A bincode file recorder that refuses a corrupt file with an error instead of aborting.
//!
//! burn's [`BinFileRecorder`] decodes without a size limit, so a corrupt length prefix in a
//! record file makes bincode allocate whatever it says before reading a byte of it: a
//! 3,000-byte file of random bytes given to `vqvae reconstruct` as `model.bin` ended the
//! process with "memory allocation of 8222539802816737768 bytes failed" (an abort, not an
//! error). [`CheckedBinFileRecorder`] writes what [`BinFileRecorder`] writes (only the
//! recorder's name in the metadata differs, which burn reads only into error messages: either
//! recorder loads the other's files) and reads with bincode's limit set from the file's size: no
//! container may claim more than about twice the bytes the whole file holds, so a corrupt
//! length is a decode error naming the limit.
//!
//! Writing, burn's recorder drops its buffered writer without flushing it, so an error in the
//! last write (a full disk) is lost and a truncated file looks written; this one flushes and
//! syncs the file and returns the operating system's error.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::marker::PhantomData;
use std::path::PathBuf;

use burn::record::{BinFileRecorder, FileRecorder, PrecisionSettings, Recorder, RecorderError};
use burn::tensor::backend::Backend;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// [`BinFileRecorder`]'s format (`.bin`, bincode's standard configuration), read with a bound.
#[derive(Debug, Clone)]
pub struct CheckedBinFileRecorder<S: PrecisionSettings> {
    _settings: PhantomData<S>,
}

impl<S: PrecisionSettings> CheckedBinFileRecorder<S> {
    /// The recorder.
    pub fn new() -> Self {
        Self {
            _settings: PhantomData,
        }
    }
}

impl<S: PrecisionSettings> Default for CheckedBinFileRecorder<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: PrecisionSettings, B: Backend> FileRecorder<B> for CheckedBinFileRecorder<S> {
    fn file_extension() -> &'static str {
        <BinFileRecorder<S> as FileRecorder<B>>::file_extension()
    }
}

impl<S: PrecisionSettings, B: Backend> Recorder<B> for CheckedBinFileRecorder<S> {
    type Settings = S;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, mut file: PathBuf) -> Result<(), RecorderError> {
        file.set_extension(<Self as FileRecorder<B>>::file_extension());
        let io = |err: std::io::Error| match err.kind() {
            std::io::ErrorKind::NotFound => RecorderError::FileNotFound(err.to_string()),
            _ => RecorderError::Unknown(err.to_string()),
        };
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut writer = BufWriter::new(File::create(&file).map_err(io)?);
        // burn's `bin_config()`: bincode's standard configuration.
        bincode::serde::encode_into_std_write(&item, &mut writer, bincode::config::standard())
            .map_err(|err| match err {
                bincode::error::EncodeError::Io { inner, .. } => io(inner),
                other => RecorderError::Unknown(other.to_string()),
            })?;
        let file = writer.into_inner().map_err(|err| io(err.into_error()))?;
        file.sync_all().map_err(io)
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        file.set_extension(<Self as FileRecorder<B>>::file_extension());
        let opened = File::open(&*file).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => RecorderError::FileNotFound(err.to_string()),
            _ => RecorderError::Unknown(err.to_string()),
        })?;
        let size = opened
            .metadata()
            .map_err(|err| RecorderError::Unknown(err.to_string()))?
            .len();
        decode_bounded(BufReader::new(opened), claim_limit(size))
    }
}

/// Why a record file could not be loaded, from the recorder's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFault {
    /// The file ends before its record does (an interrupted copy, a full disk).
    Truncated,
    /// The bytes are not a record: a length claims more than the file can hold
    /// ([`CheckedBinFileRecorder`]'s limit), a string is not UTF-8, a tag names no variant. The
    /// text says which.
    Corrupt(String),
    /// Anything else, burn's message without its advice about record formats of burn ≤ 0.16
    /// (which misleads about files of this version): typically a record of another model.
    Other(String),
}

impl RecordFault {
    /// Classifies a recorder error.
    pub fn of(error: &RecorderError) -> Self {
        let text = error.to_string();
        if text.contains("UnexpectedEnd")
            || text.contains("UnexpectedEof")
            || text.contains("failed to fill whole buffer")
        {
            return Self::Truncated;
        }
        let corrupt = [
            (
                "LimitExceeded",
                "a length in it claims more data than the file holds",
            ),
            ("Utf8", "a string in it is not UTF-8"),
            ("UnexpectedVariant", "a tag in it names no variant"),
            ("InvalidBooleanValue", "a flag in it is neither 0 nor 1"),
            ("InvalidCharEncoding", "a character in it is not valid"),
        ];
        if let Some((_, what)) = corrupt.iter().find(|(tag, _)| text.contains(tag)) {
            return Self::Corrupt((*what).to_string());
        }
        let mut detail = text
            .split("The internal data format has changed")
            .next()
            .unwrap_or(&text);
        // The cut leaves the escaped line break before it (`\\n`, backslashes doubled by
        // nesting).
        loop {
            let trimmed = detail
                .trim_end_matches("\\n")
                .trim_end_matches(['\\', ' ', '\n']);
            if trimmed.len() == detail.len() {
                break;
            }
            detail = trimmed;
        }
        Self::Other(detail.to_string())
    }
}

impl RecordFault {
    /// The fault in words, to follow a file's name: `fits` says what the file was to hold
    /// (`"this configuration"`), for records of another model.
    pub fn describe(&self, fits: &str) -> String {
        match self {
            Self::Truncated => "is truncated (or was written for another configuration): the \
                                file ends before its record does"
                .into(),
            Self::Corrupt(what) => format!("is corrupt: {what}"),
            Self::Other(detail) => format!("does not fit {fits} (or is corrupt): {detail}"),
        }
    }
}

/// The text of a recorder error (burn's `Display` of [`RecorderError`] prints its `Debug`
/// form, `Unknown("…")`).
pub fn recorder_message(error: &RecorderError) -> &str {
    match error {
        RecorderError::FileNotFound(text)
        | RecorderError::DeserializeError(text)
        | RecorderError::Unknown(text) => text,
    }
}

/// The most bytes a record file of `size` bytes may claim: bincode counts every decoded integer
/// at its full width (a `usize` written in one varint byte claims 8), so a valid file claims
/// somewhat more than its size; twice the size plus 64 KiB leaves room for that.
pub fn claim_limit(size: u64) -> u64 {
    size.saturating_mul(2).saturating_add(64 << 10)
}

/// Decodes with bincode's standard configuration and the smallest power-of-two limit of at
/// least `limit` bytes (bincode takes the limit as a constant), unlimited past 2⁴⁶ bytes.
fn decode_bounded<I: DeserializeOwned, R: std::io::Read>(
    mut reader: R,
    limit: u64,
) -> Result<I, RecorderError> {
    fn decode<I: DeserializeOwned, R: std::io::Read, C: bincode::config::Config>(
        reader: &mut R,
        config: C,
    ) -> Result<I, RecorderError> {
        bincode::serde::decode_from_std_read(reader, config)
            .map_err(|err| RecorderError::Unknown(err.to_string()))
    }
    let standard = bincode::config::standard();
    macro_rules! bounded {
        ($($bits:literal)*) => {
            $(
                if limit <= 1u64 << $bits {
                    return decode(&mut reader, standard.with_limit::<{ 1usize << $bits }>());
                }
            )*
        };
    }
    bounded!(16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43
        44 45 46);
    decode(&mut reader, standard)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::record::FullPrecisionSettings;

    type R = CheckedBinFileRecorder<FullPrecisionSettings>;

    fn linear() -> Linear<Flex> {
        LinearConfig::new(40, 30).init(&Default::default())
    }

    #[test]
    fn reads_burns_files_and_burn_reads_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let model = linear();
        // Parameters initialise lazily, each clone on its own: draw them once before cloning.
        let expected = model.weight.val().into_data();
        let burns = BinFileRecorder::<FullPrecisionSettings>::new();
        model
            .clone()
            .save_file(dir.path().join("a"), &burns)
            .unwrap();
        model
            .clone()
            .save_file(dir.path().join("b"), &R::new())
            .unwrap();
        let device = Default::default();
        for loaded in [
            linear().load_file(dir.path().join("a"), &R::new(), &device),
            linear().load_file(dir.path().join("b"), &burns, &device),
        ] {
            loaded
                .unwrap()
                .weight
                .val()
                .into_data()
                .assert_eq(&expected, true);
        }
    }

    /// A write the disk refuses is an error naming the cause. `/dev/full` refuses every write
    /// with ENOSPC; the record fits the write buffer, so only the final flush writes (burn's
    /// recorder leaves it to the buffer's drop, which ignores errors).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join("m.bin")).unwrap();
        let err = linear()
            .save_file(dir.path().join("m"), &R::new())
            .unwrap_err();
        assert!(
            recorder_message(&err).contains("No space left on device"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        linear().save_file(dir.path().join("m"), &R::new()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // A length prefix of 2⁶³ (bincode's varint: 253 then eight little-endian bytes) right
        // at the start: burn's recorder would try to allocate it.
        let mut corrupt = vec![253u8, 0, 0, 0, 0, 0, 0, 0, 0x80];
        corrupt.extend_from_slice(&bytes[9..]);
        std::fs::write(&path, &corrupt).unwrap();
        let err = linear()
            .load_file(dir.path().join("m"), &R::new(), &Default::default())
            .unwrap_err();
        assert_eq!(
            RecordFault::of(&err),
            RecordFault::Corrupt("a length in it claims more data than the file holds".into()),
            "{err}"
        );
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = linear()
            .load_file(dir.path().join("m"), &R::new(), &Default::default())
            .unwrap_err();
        assert_eq!(RecordFault::of(&err), RecordFault::Truncated, "{err}");
    }

    #[test]
    fn the_limit_leaves_room_for_full_width_integers() {
        assert_eq!(claim_limit(0), 65_536);
        assert_eq!(claim_limit(1_000_000), 2_065_536);
        assert_eq!(claim_limit(u64::MAX), u64::MAX);
    }
}
