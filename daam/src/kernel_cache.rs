//! Where burn's CUDA backend keeps the kernels it compiles, across runs. cubecl compiles every
//! kernel with NVRTC on first use and, with autotune, compiles and times several candidates per
//! matmul shape: the forward of a `vqvae train --preset small` step had compiled 166 kernels
//! (about 1.5 per second on an H200) and was not done after 100 s (BENCHMARKS.md, GPU section).
//! cubecl can keep the compiled PTX and the autotune choices on disk, but by default keeps no
//! PTX at all and the autotune results under the `target/` of the nearest Cargo project, so
//! every run of an installed binary pays the whole warm-up again. `configure` (with the `cuda`
//! feature) turns both caches on in one directory before the first CUDA kernel, unless a cubecl
//! configuration file (`cubecl.toml`, `burn.toml`) is found, which then wins.
//!
//! The directory: `DAAM_KERNEL_CACHE` if set (empty turns the cache off), else
//! `$XDG_CACHE_HOME/daam/cubecl`, else `$HOME/.cache/daam/cubecl`.

use std::path::{Path, PathBuf};

/// The environment variable that names the cache directory (empty: no cache).
pub const ENV: &str = "DAAM_KERNEL_CACHE";

/// The configuration files cubecl reads, in the working directory or any directory above it.
const CONFIG_FILES: [&str; 4] = ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"];

/// What `configure` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCache {
    /// Compiled kernels and autotune results are kept in this directory.
    Directory(PathBuf),
    /// A cubecl configuration file was found and configures cubecl instead.
    ConfigFile(PathBuf),
    /// `DAAM_KERNEL_CACHE` is empty, or no home directory: kernels are compiled on every run.
    Off,
    /// cubecl's configuration had been read or set before (by the program itself).
    AlreadyConfigured,
}

impl std::fmt::Display for KernelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(dir) => write!(f, "kept in {} for later runs", dir.display()),
            Self::ConfigFile(file) => write!(f, "cached as {} says", file.display()),
            Self::Off => write!(
                f,
                "not cached ({ENV} is empty or there is no home directory)"
            ),
            Self::AlreadyConfigured => write!(f, "cached as the program configured cubecl"),
        }
    }
}

/// The first cubecl configuration file in `dir` or the directories above it.
pub fn find_config_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .flat_map(|d| CONFIG_FILES.iter().map(move |name| d.join(name)))
        .find(|path| path.is_file())
}

/// The cache directory from the values of `DAAM_KERNEL_CACHE`, `XDG_CACHE_HOME` and `HOME`
/// (`None`: no cache).
pub fn directory(
    explicit: Option<&str>,
    xdg_cache_home: Option<&str>,
    home: Option<&str>,
) -> Option<PathBuf> {
    if let Some(dir) = explicit {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let base = match (xdg_cache_home, home) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg),
        (_, Some(home)) if !home.is_empty() => Path::new(home).join(".cache"),
        _ => return None,
    };
    Some(base.join("daam").join("cubecl"))
}

/// What the environment and the working directory ask for, before cubecl is touched.
pub fn decide() -> KernelCache {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if let Some(file) = find_config_file(&cwd) {
        return KernelCache::ConfigFile(file);
    }
    let var = |name: &str| std::env::var(name).ok();
    match directory(
        var(ENV).as_deref(),
        var("XDG_CACHE_HOME").as_deref(),
        var("HOME").as_deref(),
    ) {
        Some(dir) => KernelCache::Directory(dir),
        None => KernelCache::Off,
    }
}

/// Sets cubecl's configuration (once per process, before any CUDA kernel) from [`decide`]:
/// both caches in the directory, cubecl's environment overrides (`CUBECL_DEBUG_LOG`,
/// `CUBECL_AUTOTUNE_LEVEL`, ...) kept. Later calls return the first answer.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
pub fn configure() -> KernelCache {
    use cubecl_runtime::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    static DECIDED: std::sync::OnceLock<KernelCache> = std::sync::OnceLock::new();
    DECIDED
        .get_or_init(|| {
            let decided = decide();
            let KernelCache::Directory(dir) = &decided else {
                return decided;
            };
            if let Err(error) = std::fs::create_dir_all(dir) {
                eprintln!(
                    "CUDA: cannot create the kernel cache {}: {error}; kernels are compiled \
                     on every run",
                    dir.display()
                );
                return KernelCache::Off;
            }
            let mut config = CubeClRuntimeConfig::default().override_from_env();
            config.compilation.cache = Some(CacheConfig::File(dir.clone()));
            config.autotune.cache = CacheConfig::File(dir.clone());
            // `set` panics where cubecl read or set its configuration already.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let set = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config));
            std::panic::set_hook(hook);
            match set {
                Ok(()) => decided,
                Err(_) => KernelCache::AlreadyConfigured,
            }
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_follows_the_environment() {
        let dir = |e, x, h| directory(e, x, h);
        assert_eq!(
            dir(Some("/c"), Some("/x"), Some("/h")),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(dir(Some(""), Some("/x"), Some("/h")), None);
        assert_eq!(
            dir(None, Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/daam/cubecl"))
        );
        assert_eq!(
            dir(None, Some(""), Some("/h")),
            Some(PathBuf::from("/h/.cache/daam/cubecl"))
        );
        assert_eq!(dir(None, None, None), None);
    }

    #[test]
    fn a_config_file_above_the_working_directory_wins() {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("a").join("b");
        std::fs::create_dir_all(&inner).unwrap();
        assert_eq!(find_config_file(&inner), None);
        std::fs::write(root.path().join("a").join("burn.toml"), "").unwrap();
        assert_eq!(
            find_config_file(&inner),
            Some(root.path().join("a").join("burn.toml"))
        );
        std::fs::write(inner.join("cubecl.toml"), "").unwrap();
        assert_eq!(find_config_file(&inner), Some(inner.join("cubecl.toml")));
    }
}
