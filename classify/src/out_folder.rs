//! Where `classify replicate` may write: not among a store's files, and not over a folder
//! that is not a replication.

use std::path::Path;

use crate::error::{invalid, Result};

/// Refuses an `out` folder that is the `embeddings` folder or inside it (runs and reports
/// among the store's files), and a non-empty one that holds no `replicate.json`: it is not a
/// replication, and its own `report.md`, `report.csv`, `report.json` or `runs/` would be
/// written over. A store inside a replication's folder is left alone: replicate writes only
/// `runs/`, the report files, `replicate.json` and `.lock` there.
///
/// # Errors
/// [`crate::Error::InvalidSetting`] for `--out`, naming both folders or a few of the entries.
pub(crate) fn check_replication_out(out: &Path, embeddings: &Path) -> Result<()> {
    if let (Ok(store), Some(folder)) = (embeddings.canonicalize(), daam::paths::resolved(out).ok())
    {
        if folder.starts_with(&store) {
            let place = if folder == store { "is" } else { "is inside" };
            return Err(invalid(
                "--out",
                format!(
                    "{} {place} the --embeddings folder {}: runs/ and the report files would \
                     be written among the store's files; choose a folder outside it",
                    out.display(),
                    embeddings.display()
                ),
            ));
        }
    }
    if out.join("replicate.json").exists() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(out) else {
        // Not there yet (created later), or not a folder (its creation names the error).
        return Ok(());
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        // The lock of a replication refused or stopped before it wrote replicate.json.
        .filter(|name| name != ".lock")
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    const SHOWN: usize = 3;
    let mut list = names
        .iter()
        .take(SHOWN)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        list.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    Err(invalid(
        "--out",
        format!(
            "{} holds {list} but no replicate.json: it is not a replication, and runs/, \
             report.md, report.csv and report.json would be written among or over its files; \
             choose a new or empty folder",
            out.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `--out` message of refusing `out` for `embeddings`, or `None` when accepted.
    fn refusal(out: &Path, embeddings: &Path) -> Option<String> {
        check_replication_out(out, embeddings)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn a_new_empty_or_replication_folder_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        assert_eq!(refusal(&dir.path().join("new/rep"), &store), None);
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join(".lock"), "123").unwrap();
        assert_eq!(refusal(&empty, &store), None);
        // A replication may hold anything, the store itself included.
        let rep = dir.path().join("rep");
        std::fs::create_dir_all(rep.join("store")).unwrap();
        std::fs::write(rep.join("replicate.json"), "{}").unwrap();
        std::fs::write(rep.join("notes.txt"), "").unwrap();
        assert_eq!(refusal(&rep, &rep.join("store")), None);
        // A store that is not there is left to the store's own error.
        assert_eq!(refusal(&rep, &dir.path().join("none")), None);
    }

    #[test]
    fn other_files_or_the_store_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let notes = dir.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("report.md"), "mine").unwrap();
        let message = refusal(&notes, &store).unwrap();
        assert!(
            message.starts_with(&format!(
                "--out: {} holds `report.md` but no replicate.json",
                notes.display()
            )),
            "{message}"
        );
        for (out, place) in [
            (store.clone(), "is the"),
            (store.join("a/../b/c"), "is inside the"),
            (store.join("a/../../store"), "is the"),
            (dir.path().join("store/./x"), "is inside the"),
        ] {
            let message = refusal(&out, &store).unwrap();
            assert!(
                message.contains(&format!("{place} --embeddings folder")),
                "{}: {message}",
                out.display()
            );
        }
        assert_eq!(refusal(&store.join("a/b/../../../elsewhere"), &store), None);
        // Through a link to the store.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&store, &link).unwrap();
            let message = refusal(&link.join("rep"), &store).unwrap();
            assert!(
                message.contains("is inside the --embeddings folder"),
                "{message}"
            );
        }
    }
}
