//! AG News, CSV version (`ag_news_csv/`, classify-anchors §6.3).

use std::path::{Path, PathBuf};

use crate::class_names::read_class_names;
use crate::error::{io_error, Error, Result};
use crate::split::Split;

/// Number of AG News classes.
pub const AG_NEWS_NUM_CLASSES: usize = 4;

/// One news item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgNewsItem {
    /// Class index 0..4 (the file's 1..=4 minus one): World, Sports, Business, Sci/Tech.
    pub label: u32,
    /// The title, as stored (HTML entities and backslash escapes are not cleaned, as in the
    /// reference).
    pub title: String,
    /// The description, as stored.
    pub description: String,
}

impl AgNewsItem {
    /// The model's input text, `title + " " + description` (torchtext's `" ".join(t[1:])`).
    pub fn text(&self) -> String {
        format!("{} {}", self.title, self.description)
    }
}

/// One split of AG News with its class names.
#[derive(Debug, Clone)]
pub struct AgNews {
    path: PathBuf,
    items: Vec<AgNewsItem>,
    class_names: Vec<String>,
}

impl AgNews {
    /// Reads `dir/train.csv` or `dir/test.csv` (120,000 and 7,600 items in the release) and
    /// `dir/classes.txt` (4 names).
    ///
    /// # Errors
    /// The [`read_ag_news_csv`] errors; [`Error::Io`] when `classes.txt` is missing and
    /// [`Error::Malformed`] when it does not hold 4 names.
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        let class_names = read_class_names(&dir.join("classes.txt"), AG_NEWS_NUM_CLASSES)?;
        let path = dir.join(format!("{}.csv", split.stem()));
        let items = read_ag_news_csv(&path)?;
        Ok(Self {
            path,
            items,
            class_names,
        })
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The items, in file order.
    pub fn items(&self) -> &[AgNewsItem] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the file holds no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The class names from `classes.txt`, in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

/// Reads an AG News CSV file: no header, three quoted fields per record (class 1–4, title,
/// description; quotes inside a field doubled, newlines and commas allowed inside quotes).
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Csv`] on broken quoting or a read
/// error; [`Error::Malformed`] naming the file and the line a record starts on when it does not
/// have 3 fields, its class is not a number in 1..=4, or a field is not valid UTF-8.
pub fn read_ag_news_csv(path: &Path) -> Result<Vec<AgNewsItem>> {
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut items = Vec::new();
    let mut last_line = 0;
    // Physical line numbers from byte offsets: the reader's own count skips blank lines.
    let (mut counted_to, mut line_at) = (0usize, 1u64);
    for record in reader.byte_records() {
        let record = record.map_err(|source| Error::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let mut start = record
            .position()
            .map_or(counted_to, |position| position.byte() as usize);
        // The reader's position is where it began to read, before the blank lines it skipped.
        while matches!(bytes.get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        line_at += bytes[counted_to..start.max(counted_to)]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted_to = start.max(counted_to);
        let line = line_at;
        last_line = line;
        let malformed = |message: String| Error::Malformed {
            path: path.to_path_buf(),
            line,
            message,
        };
        if record.len() != 3 {
            return Err(malformed(format!(
                "expected 3 fields (class, title, description), got {}",
                record.len()
            )));
        }
        let field = |index: usize| {
            std::str::from_utf8(&record[index]).map_err(|error| {
                malformed(format!("field {} is not valid UTF-8: {error}", index + 1))
            })
        };
        let class = field(0)?;
        let label = match class.trim().parse::<u32>() {
            Ok(class @ 1..=4) => class - 1,
            _ => {
                return Err(malformed(format!(
                    "class {class:?} is not a number in 1..={AG_NEWS_NUM_CLASSES}"
                )))
            }
        };
        items.push(AgNewsItem {
            label,
            title: field(1)?.to_owned(),
            description: field(2)?.to_owned(),
        });
    }
    // Quoted fields open and close a quote and double the quotes inside, so a well-formed file
    // has an even number of them. The csv reader takes a quote left open at the end of the
    // file as a field running to the end, and read such a file without a word.
    if bytes.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            line: last_line,
            message: "a quoted field of this record is not closed before the end of the file"
                .into(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    const TRAIN: &str = concat!(
        "\"3\",\"Wall St. Bears Claw Back Into the Black (Reuters)\",",
        "\"Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics.\"\n",
        "\"4\",\"A \"\"quoted\"\" title, with a comma\",\"line one\nline two #39;s &lt;b&gt;\"\n",
        "\"1\",\"\",\"empty title\"\n",
    );

    fn write_release(dir: &Path, train: &[u8]) {
        fs::write(
            dir.join("classes.txt"),
            "World\nSports\nBusiness\nSci/Tech\n",
        )
        .unwrap();
        fs::write(dir.join("train.csv"), train).unwrap();
        fs::write(dir.join("test.csv"), "\"2\",\"t\",\"d\"\n").unwrap();
    }

    #[test]
    fn reads_quoted_fields_and_zero_based_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), TRAIN.as_bytes());
        let train = AgNews::open(dir.path(), Split::Train).unwrap();
        assert_eq!(
            train.class_names(),
            ["World", "Sports", "Business", "Sci/Tech"]
        );
        let labels: Vec<u32> = train.items().iter().map(|item| item.label).collect();
        assert_eq!(labels, [2, 3, 0]);
        let second = &train.items()[1];
        assert_eq!(second.title, "A \"quoted\" title, with a comma");
        assert_eq!(second.description, "line one\nline two #39;s &lt;b&gt;");
        assert_eq!(
            train.items()[0].text(),
            "Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, \
             Wall Street's dwindling\\band of ultra-cynics."
        );
        assert_eq!(train.items()[2].text(), " empty title");
        let test = AgNews::open(dir.path(), Split::Test).unwrap();
        assert_eq!(test.items()[0].label, 1);
    }

    fn error_for(contents: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), contents);
        AgNews::open(dir.path(), Split::Train)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        // The bad record starts on line 4: the second record spans lines 2–3.
        let head = "\"1\",\"a\",\"b\"\n\"2\",\"multi\nline\",\"c\"\n";
        let message = error_for(format!("{head}\"3\",\"only two\"\n").as_bytes());
        assert!(
            message.contains("train.csv:4: expected 3 fields (class, title, description), got 2"),
            "{message}"
        );
        let message = error_for(format!("{head}\"5\",\"t\",\"d\"\n").as_bytes());
        assert!(
            message.contains("train.csv:4: class \"5\" is not a number in 1..=4"),
            "{message}"
        );
        let message = error_for(format!("{head}\"World\",\"t\",\"d\"\n").as_bytes());
        assert!(
            message.contains("train.csv:4: class \"World\""),
            "{message}"
        );
        // Blank lines count: the bad record is on physical line 4.
        let message = error_for(b"\"1\",\"a\",\"b\"\n\n\n\"2\",\"x\",\"y\",\"extra\"\n");
        assert!(
            message.contains("train.csv:4: expected 3 fields"),
            "{message}"
        );
        // A quote left open at the end of the file (the csv reader took the rest as a field).
        let message = error_for(format!("{head}\"2\",\"a\",\"unterminated\n").as_bytes());
        assert!(
            message.contains(
                "train.csv:4: a quoted field of this record is not closed before the end of the file"
            ),
            "{message}"
        );
        let message = error_for(b"\"1\",\"t\",\"bad \xff byte\"\n");
        assert!(
            message.contains("train.csv:1: field 3 is not valid UTF-8"),
            "{message}"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), TRAIN.as_bytes());
        fs::remove_file(dir.path().join("test.csv")).unwrap();
        let message = AgNews::open(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(message.contains("test.csv"), "{message}");
        fs::write(dir.path().join("classes.txt"), "World\nSports\n").unwrap();
        let message = AgNews::open(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("classes.txt:2: expected 4 class names"),
            "{message}"
        );
    }
}
