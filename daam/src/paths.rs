//! Where a path leads: output folders are compared with input and store folders by where they
//! really lie, through links and `..`, also before they are created.

use std::path::{Component, Path, PathBuf};

/// `path` made absolute, with links and `..` resolved as the system would where it exists and
/// by name past that: where a folder not created yet will lie.
///
/// # Errors
/// When the current folder cannot be read (a relative `path` has no absolute form).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let inside = dir.path().join("a/../b/new");
/// let resolved = daam::paths::resolved(&inside).unwrap();
/// assert_eq!(resolved, dir.path().canonicalize().unwrap().join("b/new"));
/// ```
pub fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let mut resolved = PathBuf::new();
    for component in std::path::absolute(path)?.components() {
        match component {
            // `resolved` is canonical where it exists: `..` leaves a link's target.
            Component::ParentDir => {
                resolved.pop();
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
        if let Ok(canonical) = resolved.canonicalize() {
            resolved = canonical;
        }
    }
    Ok(resolved)
}

/// The refusal of an output folder `out` that cannot be created or used as one: `out`, or a
/// folder on the way to it, exists and is not a folder, or is a symbolic link to nothing
/// (creating it, the system says only "File exists"); `None` when it is a folder or can be
/// created.
pub fn file_in_place_of_folder(out: &Path) -> Option<String> {
    if out.exists() && !out.is_dir() {
        return Some(format!(
            "{} is a file, not a folder: choose a folder (it is created if missing)",
            out.display()
        ));
    }
    for place in out.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(entry) = std::fs::symlink_metadata(place) else {
            continue; // missing: created
        };
        if entry.file_type().is_symlink() && std::fs::metadata(place).is_err() {
            let target = std::fs::read_link(place).unwrap_or_default();
            return Some(format!(
                "{} is a symbolic link to {}, which does not exist: create it or choose another \
                 folder",
                place.display(),
                target.display()
            ));
        }
        if place != out && std::fs::metadata(place).is_ok_and(|m| !m.is_dir()) {
            return Some(format!(
                "{} is a file, not a folder, so {} cannot be created in it",
                place.display(),
                out.display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{file_in_place_of_folder, resolved};

    /// A dangling link or a file on the way to an output folder is named (creating the folder,
    /// the system said only "File exists").
    #[cfg(unix)]
    #[test]
    fn what_stands_in_place_of_an_output_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(file_in_place_of_folder(&root.join("new/run")), None);
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangl")).unwrap();
        let message = file_in_place_of_folder(&root.join("dangl/run")).unwrap();
        assert!(
            message.contains("dangl is a symbolic link to")
                && message
                    .ends_with("nowhere, which does not exist: create it or choose another folder"),
            "{message}"
        );
        std::fs::write(root.join("file"), "x").unwrap();
        let message = file_in_place_of_folder(&root.join("file/run")).unwrap();
        assert!(
            message.contains("file is a file, not a folder, so"),
            "{message}"
        );
        assert!(file_in_place_of_folder(&root.join("file"))
            .unwrap()
            .contains("is a file, not a folder: choose a folder"));
    }

    /// A link is followed, and `..` after it leaves the link's target, as the system does.
    #[cfg(unix)]
    #[test]
    fn links_are_followed_before_parent_components() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real/inner")).unwrap();
        std::os::unix::fs::symlink(root.join("real/inner"), root.join("link")).unwrap();
        assert_eq!(
            resolved(&root.join("link/../out/x")).unwrap(),
            root.join("real/out/x")
        );
        assert_eq!(
            resolved(&root.join("link/./y")).unwrap(),
            root.join("real/inner/y")
        );
    }
}
