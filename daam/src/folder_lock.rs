//! One process per output folder: a lock on `DIR/.lock` that the operating system releases when
//! the process ends, however it ends (a killed process leaves no stale lock).
//!
//! Two processes writing one folder (a training run, an embedding store, a replication) would
//! delete or overwrite each other's files; the second one is refused, naming the first one's
//! process id, which the holder writes into the file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held while a process writes its folder; dropping it (or ending the process) releases it.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the folder.
    #[error("is in use by another process{}", holder.as_ref().map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    InUse {
        /// The holder's process id, as it wrote it.
        holder: Option<String>,
    },
    /// `DIR/.lock` is a link or a folder: the pid is never written through a link.
    #[error("{} is not a plain file (a link or a folder): remove it", path.display())]
    NotAFile {
        /// The lock file.
        path: PathBuf,
    },
    /// The folder or its lock file cannot be created, opened or written.
    #[error("cannot access {}", path.display())]
    Io {
        /// The folder or the lock file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}

/// Locks `dir` (creating it) for this process.
///
/// # Errors
/// [`LockError::InUse`] when another process holds it; [`LockError::NotAFile`] when its
/// `.lock` is a link or a folder; [`LockError::Io`].
pub fn lock_folder(dir: &Path) -> Result<FolderLock, LockError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LockError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(".lock");
    if path.symlink_metadata().is_ok_and(|m| !m.is_file()) {
        return Err(LockError::NotAFile { path });
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = Some(holder.trim().to_string()).filter(|h| !h.is_empty());
            return Err(LockError::InUse { holder });
        }
        Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
    }
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(io(&path))?;
    Ok(FolderLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_folder(dir.path()).unwrap();
        let err = lock_folder(dir.path()).unwrap_err();
        let pid = std::process::id().to_string();
        assert!(
            matches!(&err, LockError::InUse { holder: Some(h) } if *h == pid),
            "{err}"
        );
        drop(held);
        lock_folder(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_lock_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious.txt");
        std::fs::write(&target, "keep").unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::os::unix::fs::symlink(&target, run.join(".lock")).unwrap();
        let err = lock_folder(&run).unwrap_err();
        assert!(matches!(err, LockError::NotAFile { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
