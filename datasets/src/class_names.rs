//! Class-name files: one name per line (`fine_label_names.txt`, AG News `classes.txt`).

use std::fs;
use std::path::Path;

use crate::error::{io_error, Error, Result};

/// Reads the non-blank lines of `path`, trimmed, and checks there are `expected` of them.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Malformed`] naming the file when the
/// number of names is not `expected`.
pub(crate) fn read_class_names(path: &Path, expected: usize) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() != expected {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            line: text.lines().count() as u64,
            message: format!(
                "expected {expected} class names, one per line, got {}",
                names.len()
            ),
        });
    }
    Ok(names)
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
    }
}
