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

/// The refusal of an output folder `out` that exists and is not a folder (creating it, the
/// system says only "File exists"); `None` when it is a folder or missing.
pub fn file_in_place_of_folder(out: &Path) -> Option<String> {
    (out.exists() && !out.is_dir()).then(|| {
        format!(
            "{} is a file, not a folder: choose a folder (it is created if missing)",
            out.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::resolved;

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
