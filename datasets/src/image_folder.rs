//! A folder of image files, scanned recursively.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// File extensions (compared case-insensitively) that [`ImageFolder::open`] picks up.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Every image file under a folder, recursively (COCO `train2017/` works as is), sorted by path.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<PathBuf>,
    /// Files the scan passed over (other extensions), by lower-case extension; hidden files
    /// (`.DS_Store`) not counted.
    ignored: BTreeMap<String, usize>,
    /// Where the symbolic links the scan followed lead (canonical paths).
    links: Vec<PathBuf>,
}

impl ImageFolder {
    /// Scans `root` recursively for files with extensions png, jpg, jpeg (case-insensitive).
    ///
    /// Symbolic links are followed (a folder reached twice is scanned once); paths are kept as
    /// `root` joined with the relative path, sorted. Files are not opened: a corrupt image is
    /// only found when it is loaded.
    ///
    /// # Errors
    /// [`Error::NotADirectory`] when `root` is not a folder, [`Error::Empty`] when no image file
    /// is found, [`Error::Io`] (naming the folder or entry) on unreadable directories.
    pub fn open(root: &Path) -> Result<Self> {
        let metadata = fs::metadata(root).map_err(|source| Error::Io {
            path: root.to_path_buf(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(Error::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut files = Vec::new();
        let mut visited = HashSet::new();
        let mut ignored = BTreeMap::new();
        let mut links = Vec::new();
        scan(root, &mut visited, &mut files, &mut ignored, &mut links)?;
        files.sort();
        let folder = Self {
            root: root.to_path_buf(),
            files,
            ignored,
            links,
        };
        if folder.files.is_empty() {
            return Err(Error::Empty {
                path: root.to_path_buf(),
                others: folder.ignored_summary(),
            });
        }
        Ok(folder)
    }

    /// A folder made of an explicit list of files (used for single-file inputs), kept in the
    /// given order. Nothing is checked on disk.
    pub fn from_files(root: PathBuf, files: Vec<PathBuf>) -> Self {
        Self {
            root,
            files,
            ignored: BTreeMap::new(),
            links: Vec::new(),
        }
    }

    /// Where the symbolic links [`ImageFolder::open`] followed lead (canonical paths, files
    /// and folders): how a folder reaches outside itself.
    pub fn links(&self) -> &[PathBuf] {
        &self.links
    }

    /// The files [`ImageFolder::open`] passed over for their extension, in words (`3 other
    /// files were not read (.txt: 2, .webp: 1)`); `None` when there were none.
    pub fn ignored_summary(&self) -> Option<String> {
        let total: usize = self.ignored.values().sum();
        (total > 0).then(|| {
            let kinds: Vec<String> = self
                .ignored
                .iter()
                .map(|(ext, n)| format!("{ext}: {n}"))
                .collect();
            format!(
                "{total} other {} not read ({}): only png, jpg and jpeg files are images here",
                if total == 1 { "file was" } else { "files were" },
                kinds.join(", ")
            )
        })
    }

    /// The folder the files were found under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image files, sorted by path.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Number of image files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file (only possible through [`ImageFolder::from_files`] or
    /// [`ImageFolder::split`]).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Deterministic split: `holdout` files chosen by a seeded shuffle go to the second folder
    /// (same root); the first keeps the rest. Both keep their files sorted by path.
    ///
    /// # Panics
    /// If `holdout >= len()` (the first folder would be empty).
    pub fn split(&self, holdout: usize, seed: u64) -> (ImageFolder, ImageFolder) {
        assert!(
            holdout < self.len(),
            "cannot hold out {holdout} of {} image files: at least one must stay for training",
            self.len()
        );
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (held, kept) = order.split_at(holdout);
        let pick = |indices: &[usize]| {
            let mut indices = indices.to_vec();
            indices.sort_unstable();
            let files = indices.iter().map(|&i| self.files[i].clone()).collect();
            ImageFolder::from_files(self.root.clone(), files)
        };
        (pick(kept), pick(held))
    }
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`], case-insensitively.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

fn scan(
    dir: &Path,
    visited: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    ignored: &mut BTreeMap<String, usize>,
    links: &mut Vec<PathBuf>,
) -> Result<()> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    // Canonical paths guard against symbolic-link cycles.
    let canonical = fs::canonicalize(dir).map_err(io_error(dir))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let mut file_type = entry.file_type().map_err(io_error(&path))?;
        if file_type.is_symlink() {
            match (fs::metadata(&path), fs::canonicalize(&path)) {
                (Ok(target), Ok(canonical)) => {
                    file_type = target.file_type();
                    links.push(canonical);
                }
                // A dangling link is not an image file.
                _ => continue,
            }
        }
        if file_type.is_dir() {
            scan(&path, visited, files, ignored, links)?;
        } else if file_type.is_file() && has_image_extension(&path) {
            files.push(path);
        } else if file_type.is_file() && !entry.file_name().as_encoded_bytes().starts_with(b".") {
            let kind = path
                .extension()
                .map(|ext| format!(".{}", ext.to_string_lossy().to_lowercase()))
                .unwrap_or_else(|| "no extension".into());
            *ignored.entry(kind).or_default() += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent folder");
        }
        fs::write(path, b"").expect("write file");
    }

    #[test]
    fn extensions_are_case_insensitive() {
        for name in ["a.png", "b.JPG", "c.jpeg", "d.JpEg", "e.PNG"] {
            assert!(has_image_extension(Path::new(name)), "{name}");
        }
        for name in ["a.txt", "png", "b.gif", "c.png.txt", ".jpg"] {
            assert!(!has_image_extension(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn open_finds_nested_files_sorted() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in [
            "b/z.png",
            "a.JPG",
            "b/c/d.jpeg",
            "notes.txt",
            "b/c/e.txt",
            "c.png",
            "b/LICENSE",
            "b/f.WebP",
            ".DS_Store",
        ] {
            touch(&dir.path().join(name));
        }
        let folder = ImageFolder::open(dir.path()).expect("open folder");
        let relative: Vec<_> = folder
            .files()
            .iter()
            .map(|f| {
                f.strip_prefix(dir.path())
                    .expect("under root")
                    .to_path_buf()
            })
            .collect();
        let expected: Vec<PathBuf> = ["a.JPG", "b/c/d.jpeg", "b/z.png", "c.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(relative, expected);
        assert_eq!(folder.root(), dir.path());
        assert_eq!(folder.len(), 4);
        assert!(!folder.is_empty());
        // The other files are counted by extension, hidden ones left out.
        assert_eq!(
            folder.ignored_summary().as_deref(),
            Some(
                "4 other files were not read (.txt: 2, .webp: 1, no extension: 1): only png, \
                 jpg and jpeg files are images here"
            )
        );
        assert_eq!(
            ImageFolder::from_files(PathBuf::from("r"), vec![]).ignored_summary(),
            None
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlink_cycles_terminate() {
        let dir = tempfile::tempdir().expect("temp dir");
        touch(&dir.path().join("sub/a.png"));
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop")).expect("symlink");
        let folder = ImageFolder::open(dir.path()).expect("open folder");
        assert_eq!(folder.len(), 1);
    }

    #[test]
    fn split_partitions_deterministically() {
        let files: Vec<PathBuf> = (0..10)
            .map(|i| PathBuf::from(format!("{i:02}.png")))
            .collect();
        let folder = ImageFolder::from_files(PathBuf::from("root"), files.clone());
        let (train, held) = folder.split(3, 7);
        assert_eq!((train.len(), held.len()), (7, 3));
        assert_eq!(train.root(), Path::new("root"));
        assert_eq!(held.root(), Path::new("root"));
        let mut union: Vec<_> = train.files().iter().chain(held.files()).cloned().collect();
        union.sort();
        assert_eq!(union, files);
        assert!(train.files().is_sorted() && held.files().is_sorted());

        let (train_again, held_again) = folder.split(3, 7);
        assert_eq!(train_again.files(), train.files());
        assert_eq!(held_again.files(), held.files());
        let differs = (0..20).any(|seed| folder.split(3, seed).1.files() != held.files());
        assert!(differs, "every seed held out the same files");

        let (all, none) = folder.split(0, 1);
        assert_eq!(all.files(), folder.files());
        assert!(none.is_empty());
    }

    #[test]
    #[should_panic = "cannot hold out 4 of 4 image files"]
    fn split_rejects_holding_out_everything() {
        let files = (0..4).map(|i| PathBuf::from(format!("{i}.png"))).collect();
        ImageFolder::from_files(PathBuf::from("r"), files).split(4, 0);
    }
}
