//! `ImageFolder` on folders written to a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

use datasets::{load_image, write_procedural_folder, Error, ImageFolder, Preprocess};

fn touch(path: &Path) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("create parent folder");
    fs::write(path, b"").expect("write file");
}

fn relative(folder: &ImageFolder) -> Vec<String> {
    folder
        .files()
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(folder.root()).expect("file under root");
            rel.to_str().expect("utf-8 path").replace('\\', "/")
        })
        .collect()
}

#[test]
fn scans_recursively_filters_and_sorts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [
        "train2017/000000000139.jpg",
        "train2017/000000000009.jpg",
        "extra/deep/er/img.PNG",
        "extra/readme.txt",
        "cover.jpeg",
        "labels.json",
        "anim.gif",
    ] {
        touch(&dir.path().join(name));
    }
    let folder = ImageFolder::open(dir.path()).expect("open");
    assert_eq!(
        relative(&folder),
        [
            "cover.jpeg",
            "extra/deep/er/img.PNG",
            "train2017/000000000009.jpg",
            "train2017/000000000139.jpg",
        ]
    );
    assert_eq!(folder.len(), 4);
    assert!(!folder.is_empty());
}

#[test]
fn empty_folder_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    touch(&dir.path().join("sub/notes.txt"));
    match ImageFolder::open(dir.path()) {
        Err(err @ Error::Empty { .. }) => {
            let message = err.to_string();
            assert!(message.contains(&dir.path().display().to_string()));
            assert!(
                message.ends_with(": 1 other file was not read (.txt: 1): only png, jpg and jpeg files are images here"),
                "{message}"
            );
        }
        other => panic!("expected Error::Empty, got {other:?}"),
    }
}

#[test]
fn a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("single.png");
    touch(&file);
    assert!(matches!(
        ImageFolder::open(&file),
        Err(Error::NotADirectory { path }) if path == file
    ));
}

#[test]
fn a_missing_folder_is_an_io_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing");
    assert!(matches!(
        ImageFolder::open(&missing),
        Err(Error::Io { path, .. }) if path == missing
    ));
}

#[test]
fn from_files_keeps_the_given_list() {
    let files = vec![PathBuf::from("b.png"), PathBuf::from("a.png")];
    let folder = ImageFolder::from_files(PathBuf::from("."), files.clone());
    assert_eq!(folder.files(), files.as_slice());
    assert_eq!(folder.root(), Path::new("."));
}

#[test]
fn split_sizes_and_determinism() {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..25 {
        touch(&dir.path().join(format!("{}/{i:03}.png", i % 3)));
    }
    let folder = ImageFolder::open(dir.path()).expect("open");
    let (train, holdout) = folder.split(5, 11);
    assert_eq!((train.len(), holdout.len()), (20, 5));
    assert_eq!(train.root(), folder.root());
    assert_eq!(holdout.root(), folder.root());
    assert!(holdout.files().iter().all(|f| !train.files().contains(f)));
    let (train_again, holdout_again) = folder.split(5, 11);
    assert_eq!(train_again.files(), train.files());
    assert_eq!(holdout_again.files(), holdout.files());
    let (_, other) = folder.split(5, 12);
    assert_ne!(other.files(), holdout.files());
}

#[test]
fn procedural_folder_loads_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = write_procedural_folder(&dir.path().join("proc"), 7, 4, 24).expect("write");
    let folder = ImageFolder::open(dir.path()).expect("open");
    assert_eq!(folder.files(), written.as_slice());
    for (index, path) in folder.files().iter().enumerate() {
        let loaded = load_image(path, &Preprocess::eval(24), 0).expect("load");
        let expected = datasets::procedural_image(7, index as u64, 24);
        assert_eq!(loaded.to_rgb8(), expected.to_rgb8());
    }
}
