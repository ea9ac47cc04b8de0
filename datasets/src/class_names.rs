//! Class-name files: one name per line (`fine_label_names.txt`, AG News `classes.txt`).

use std::fs;
use std::path::Path;

use crate::error::{io_error, Error, Result};

/// Reads the non-blank lines of `path`, trimmed, and checks there are `expected` of them, all
/// different.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Malformed`] naming the file when the
/// number of names is not `expected` (at its last line, 1 for an empty file) or a name repeats
/// (at the repeat's line: two classes of one name could not be told apart in reports).
pub(crate) fn read_class_names(path: &Path, expected: usize) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let named: Vec<(u64, &str)> = text
        .lines()
        .zip(1..)
        .map(|(line, number)| (number, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .collect();
    if named.len() != expected {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            line: (text.lines().count() as u64).max(1),
            message: format!(
                "expected {expected} class names, one per line, got {}",
                named.len()
            ),
        });
    }
    let mut seen = std::collections::HashMap::new();
    for &(line, name) in &named {
        if let Some(first) = seen.insert(name, line) {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                line,
                message: format!("class name {name:?} repeats the one on line {first}"),
            });
        }
    }
    Ok(named.into_iter().map(|(_, name)| name.to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_are_ignored_and_count_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.txt");
        fs::write(&path, "apple\r\n  aquarium_fish \n\nbaby\n\n").unwrap();
        assert_eq!(
            read_class_names(&path, 3).unwrap(),
            ["apple", "aquarium_fish", "baby"]
        );
        let message = read_class_names(&path, 4).unwrap_err().to_string();
        assert!(
            message.contains("names.txt:5: expected 4 class names"),
            "{message}"
        );
        fs::write(&path, "apple\nbaby\n\napple\n").unwrap();
        let message = read_class_names(&path, 3).unwrap_err().to_string();
        assert!(
            message.contains("names.txt:4: class name \"apple\" repeats the one on line 1"),
            "{message}"
        );
        fs::write(&path, "").unwrap();
        let message = read_class_names(&path, 3).unwrap_err().to_string();
        assert!(
            message.contains("names.txt:1: expected 3 class names, one per line, got 0"),
            "{message}"
        );
    }
}
