//! The store's `manifest.json`.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::write_atomic;
use crate::error::{io_error, Error, Result};

/// The manifest format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside a store folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Element type of the stored features (`"f16"` or `"f32"` in the manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDtype {
    /// IEEE half precision (2 bytes); values are rounded to nearest when written and widened to
    /// f32 when read.
    F16,
    /// IEEE single precision (4 bytes).
    F32,
}

impl StoreDtype {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Self::F16 => 2,
            Self::F32 => 4,
        }
    }

    /// The matching safetensors dtype.
    pub(crate) fn safetensors(self) -> safetensors::Dtype {
        match self {
            Self::F16 => safetensors::Dtype::F16,
            Self::F32 => safetensors::Dtype::F32,
        }
    }
}

impl fmt::Display for StoreDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F16 => "f16",
            Self::F32 => "f32",
        })
    }
}

/// What a store holds: everything in the manifest except the shard list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The encoder the features come from (e.g. `microsoft/wavlm-large`).
    pub encoder: String,
    /// The dataset the items come from (e.g. `iemocap`).
    pub dataset: String,
    /// The dataset split (e.g. `train`, `test`).
    pub split: String,
    /// Number of encoder layers kept per item (the embedding-layer output is not one of them).
    pub num_layers: usize,
    /// Width of each layer's pooled vector.
    pub d_model: usize,
    /// Element type of the stored features.
    pub dtype: StoreDtype,
    /// How each layer's output was pooled over time/tokens (e.g. `mean`).
    pub pooling: String,
    /// Class names; labels index into this list.
    pub class_names: Vec<String>,
    /// Audio stores: the chunk length, in samples at 16 kHz, each recording was cut into
    /// (`None` for other stores, and for audio stores written before it was recorded, which
    /// used 80,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_samples: Option<usize>,
    /// Text stores: the token limit texts were truncated to (`None` for other stores, and for
    /// text stores written before it was recorded, which used the default limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// A digest of the encoder checkpoint's files (`None` for stores not extracted, or
    /// written before it was recorded): the same folder name can hold other weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_digest: Option<String>,
    /// A digest of the dataset split's files or records (`None` as for `weights_digest`): the
    /// same record numbers can be other records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
}

impl StoreInfo {
    /// Number of feature values per item: `num_layers * d_model`.
    pub fn row_len(&self) -> usize {
        self.num_layers * self.d_model
    }
}

/// One shard in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the store folder (e.g. `shard-00000.safetensors`).
    pub file: String,
    /// Number of items in the shard.
    pub count: usize,
}

/// Every key a [`Manifest`] reads at the top level of `manifest.json`.
pub(crate) const MANIFEST_KEYS: &[&str] = &[
    "format_version",
    "encoder",
    "dataset",
    "split",
    "num_layers",
    "d_model",
    "dtype",
    "pooling",
    "class_names",
    "chunk_samples",
    "max_tokens",
    "weights_digest",
    "source_digest",
    "shard_size",
    "count",
    "shards",
];

/// Every key a [`ShardEntry`] reads.
pub(crate) const SHARD_KEYS: &[&str] = &["file", "count"];

/// The keys of the manifest JSON in `text` that [`MANIFEST_KEYS`] and [`SHARD_KEYS`] do not
/// name, top-level keys sorted, then each shard entry's as `shards[i].key`; empty when it does
/// not parse as an object.
pub(crate) fn unknown_manifest_keys(text: &str) -> Vec<String> {
    crate::json_keys::unknown_keys(text, MANIFEST_KEYS, "shards", SHARD_KEYS)
}

/// The content of `manifest.json`.
///
/// The [`StoreInfo`] fields sit at the top level of the JSON object, beside `format_version`,
/// `shard_size`, `count` and `shards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format, [`FORMAT_VERSION`].
    pub format_version: u32,
    /// What the store holds.
    #[serde(flatten)]
    pub info: StoreInfo,
    /// Items per shard the writer was created with (every shard but the last holds that many).
    pub shard_size: usize,
    /// Total number of items, the sum of the shard counts.
    pub count: usize,
    /// The completed shards, in item order.
    pub shards: Vec<ShardEntry>,
}

impl Manifest {
    /// An empty manifest for a new store.
    pub(crate) fn new(info: StoreInfo, shard_size: usize) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            info,
            shard_size,
            count: 0,
            shards: Vec::new(),
        }
    }

    /// The file name of shard `index`: `shard-00000.safetensors` and so on.
    pub fn shard_file_name(index: usize) -> String {
        format!("shard-{index:05}.safetensors")
    }

    /// Reads and checks `dir/manifest.json`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Json`] when it does not parse,
    /// [`Error::Manifest`] on another format version, zero `num_layers`/`d_model`/`shard_size`
    /// (or a `chunk_samples`/`max_tokens` of 0), no class names, or a `count` that is not the
    /// sum of the shard counts.
    pub fn read(dir: &Path) -> Result<Self> {
        let manifest = Self::read_without_count_check(dir)?;
        let total: usize = manifest.shards.iter().map(|shard| shard.count).sum();
        if total != manifest.count {
            return Err(Error::Manifest {
                path: dir.join(MANIFEST_FILE),
                message: format!(
                    "count is {} but the shards listed hold {total} items",
                    manifest.count
                ),
            });
        }
        Ok(manifest)
    }

    /// [`Self::read`] without the check of `count` against the shard list (the validator
    /// reports that one as a problem).
    pub(crate) fn read_without_count_check(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        let manifest: Self = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        let problem = |message: String| Error::Manifest {
            path: path.clone(),
            message,
        };
        if manifest.format_version != FORMAT_VERSION {
            return Err(problem(format!(
                "format_version is {}, this reader reads {FORMAT_VERSION}",
                manifest.format_version
            )));
        }
        let info = &manifest.info;
        if info.num_layers == 0 || info.d_model == 0 || manifest.shard_size == 0 {
            return Err(problem(format!(
                "num_layers ({}), d_model ({}) and shard_size ({}) must be positive",
                info.num_layers, info.d_model, manifest.shard_size
            )));
        }
        if info.class_names.is_empty() {
            return Err(problem("class_names is empty".to_owned()));
        }
        for (field, value) in [
            ("chunk_samples", info.chunk_samples),
            ("max_tokens", info.max_tokens),
        ] {
            if value == Some(0) {
                return Err(problem(format!(
                    "{field} is 0: it must be positive when given"
                )));
            }
        }
        // A shard is a file of the store folder: a path out of it (`..`, absolute, a
        // subfolder) would read, or later overwrite, another store's files.
        if let Some(entry) = manifest
            .shards
            .iter()
            .find(|e| !is_plain_file_name(&e.file))
        {
            return Err(problem(format!(
                "shard file `{}` is not a file name inside the store folder",
                entry.file
            )));
        }
        Ok(manifest)
    }

    /// Writes `dir/manifest.json` atomically (temporary file + rename).
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        write_atomic(&path, text.as_bytes())
    }
}

/// Whether `name` is one plain file name (no folder, no `..`, not absolute).
fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::super::test_support::info;
    use super::*;

    #[test]
    fn json_round_trip_with_flat_fields() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::new(info(StoreDtype::F16, 3, 5), 7);
        manifest.shards.push(ShardEntry {
            file: Manifest::shard_file_name(0),
            count: 7,
        });
        manifest.count = 7;
        manifest.write(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["dtype"], "f16");
        assert_eq!(value["num_layers"], 3);
        assert_eq!(value["shards"][0]["file"], "shard-00000.safetensors");
        assert_eq!(Manifest::read(dir.path()).unwrap(), manifest);
    }

    #[test]
    fn the_known_keys_are_every_key_a_manifest_writes() {
        let mut info = info(StoreDtype::F32, 2, 3);
        info.chunk_samples = Some(16_000);
        info.max_tokens = Some(64);
        info.weights_digest = Some("w".into());
        info.source_digest = Some("s".into());
        let mut manifest = Manifest::new(info, 4);
        manifest.shards.push(ShardEntry {
            file: Manifest::shard_file_name(0),
            count: 4,
        });
        let text = serde_json::to_string(&manifest).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut written: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = MANIFEST_KEYS.to_vec();
        written.sort_unstable();
        known.sort_unstable();
        assert_eq!(written, known);
        let shard: Vec<&str> = value["shards"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(shard, ["count", "file"]);
        assert!(unknown_manifest_keys(&text).is_empty());

        let mut edited = value.clone();
        edited["chunk_sample"] = 8000.into();
        edited["shards"][0]["items"] = 4.into();
        assert_eq!(
            unknown_manifest_keys(&edited.to_string()),
            ["chunk_sample", "shards[0].items"]
        );
        assert!(unknown_manifest_keys("not json").is_empty());
    }

    #[test]
    fn count_disagreeing_with_shards_names_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::new(info(StoreDtype::F32, 2, 2), 4);
        manifest.count = 3;
        manifest.write(dir.path()).unwrap();
        let error = Manifest::read(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("manifest.json"), "{message}");
        assert!(message.contains("count is 3"), "{message}");
    }

    /// A chunk length or token limit of 0 describes no extraction (an edited manifest).
    #[test]
    fn zero_chunk_lengths_and_token_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (chunk, tokens, field) in [
            (Some(0), None, "chunk_samples"),
            (None, Some(0), "max_tokens"),
        ] {
            let mut info = info(StoreDtype::F32, 2, 2);
            info.chunk_samples = chunk;
            info.max_tokens = tokens;
            Manifest::new(info, 4).write(dir.path()).unwrap();
            let message = Manifest::read(dir.path()).unwrap_err().to_string();
            assert!(
                message.contains(&format!("{field} is 0: it must be positive when given")),
                "{message}"
            );
        }
    }

    #[test]
    fn shard_paths_out_of_the_store_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "../../x/shard-00000.safetensors",
            "/tmp/shard-00000.safetensors",
            "sub/shard-00000.safetensors",
            "..",
            "",
        ] {
            let mut manifest = Manifest::new(info(StoreDtype::F32, 2, 2), 4);
            manifest.shards.push(ShardEntry {
                file: file.to_owned(),
                count: 0,
            });
            manifest.write(dir.path()).unwrap();
            let message = Manifest::read(dir.path()).unwrap_err().to_string();
            assert!(
                message.contains("manifest.json")
                    && message.contains(&format!("shard file `{file}` is not a file name")),
                "{file}: {message}"
            );
        }
    }

    #[test]
    fn other_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::new(info(StoreDtype::F32, 2, 2), 4);
        manifest.format_version = 99;
        manifest.write(dir.path()).unwrap();
        let message = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(message.contains("format_version is 99"), "{message}");
    }
}
