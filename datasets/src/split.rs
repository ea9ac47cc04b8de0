//! The train/test split of a dataset release.

/// Which official split of a release to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split (`train.bin`, `train.csv`).
    Train,
    /// The test split (`test.bin`, `test.csv`).
    Test,
}

impl Split {
    /// The file name stem, `train` or `test`.
    pub fn stem(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}
