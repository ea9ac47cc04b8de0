//! Reading Hugging Face weight files: `model.safetensors`, or sharded safetensors with
//! `model.safetensors.index.json` (Llama-2-13B), memory-mapped.
//!
//! PyTorch `pytorch_model.bin` files are not read. WavLM-Large's safetensors are on the hub's
//! `refs/pr/6` branch of `microsoft/wavlm-large`; `microsoft/beit-large-patch16-224` and
//! `TheBloke/Llama-2-13B-fp16` publish safetensors.
//!
//! Parameter names are the Hugging Face names of the bare model (`encoder.layer.0...`). A
//! checkpoint of a task model carries a prefix (`beit.`, `wavlm.`, `model.`): [`Weights::open`]
//! takes the candidate prefixes and a probe name, and uses the first prefix under which the probe
//! exists.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;

use crate::error::{Error, Result};

/// One memory-mapped safetensors file with its parsed header.
struct SafetensorsFile {
    path: PathBuf,
    map: Mmap,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

/// The files and, per parameter name, the index of the file holding it.
struct Source {
    files: Vec<SafetensorsFile>,
    names: HashMap<String, usize>,
}

/// The weights of one checkpoint folder.
pub struct Weights {
    dir: PathBuf,
    source: Source,
    prefix: String,
    prefixes: Vec<String>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("tensors", &self.names().len())
            .finish()
    }
}

fn open_safetensors(path: &Path) -> Result<SafetensorsFile> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let map = mmap_readonly(&file).map_err(io)?;
    let (header_len, metadata) =
        SafeTensors::read_metadata(&map).map_err(|e| Error::WeightFile {
            path: path.to_path_buf(),
            message: format!("{e:?}"),
        })?;
    let tensors = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, info.clone()))
        .collect();
    Ok(SafetensorsFile {
        path: path.to_path_buf(),
        map,
        data_start: 8 + header_len,
        tensors,
    })
}

#[allow(unsafe_code)]
fn mmap_readonly(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the mapping is read-only and private to this process; weight files are not
    // modified while a model is loaded from them (the same contract as safetensors' and burn's
    // own memory-mapped readers).
    unsafe { Mmap::map(file) }
}

/// Drops the mapped pages of a copied tensor from this process's resident set (they stay in the
/// page cache). Without it, loading holds every weight twice, mapped and copied: WavLM-Large's
/// 1.2 GB checkpoint peaked at 2.5 GB resident. Best effort: an error leaves the pages mapped.
#[allow(unsafe_code)]
fn release_pages(map: &Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    {
        // SAFETY: the mapping is private and read-only, so its pages are never dirty:
        // MADV_DONTNEED only unmaps them, and a later read (of a neighbouring tensor sharing a
        // page) faults the same bytes back in from the file. No reference into the range
        // outlives this call: the tensor was copied out above.
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
    }
    #[cfg(not(unix))]
    let _ = (map, offset, len);
}

impl Weights {
    /// Opens the weights in `dir` and picks the parameter-name prefix: the first of `prefixes`
    /// (e.g. `["", "beit."]`) under which `probe` exists.
    ///
    /// # Errors
    /// [`Error::NoWeights`] when the folder has no weight file, [`Error::Io`] /
    /// [`Error::WeightFile`] / [`Error::Json`] for unreadable files, [`Error::MissingTensor`]
    /// when `probe` exists under none of the prefixes.
    pub fn open(dir: impl AsRef<Path>, prefixes: &[&str], probe: &str) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let source = if single.is_file() {
            let file = open_safetensors(&single)?;
            let names = file.tensors.keys().map(|k| (k.clone(), 0)).collect();
            Source {
                files: vec![file],
                names,
            }
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
                path: index.clone(),
                source,
            })?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Json {
                    path: index.clone(),
                    message: e.to_string(),
                })?;
            let map = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Json {
                    path: index.clone(),
                    message: "no `weight_map` object".into(),
                })?;
            let mut shard_names: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            shard_names.sort();
            shard_names.dedup();
            let mut files = Vec::new();
            let mut names = HashMap::new();
            for (i, shard) in shard_names.iter().enumerate() {
                let file = open_safetensors(&dir.join(shard))?;
                for k in file.tensors.keys() {
                    names.insert(k.clone(), i);
                }
                files.push(file);
            }
            Source { files, names }
        } else {
            return Err(Error::NoWeights { dir });
        };
        let mut weights = Self {
            dir,
            source,
            prefix: String::new(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        };
        let prefix = prefixes
            .iter()
            .find(|p| weights.raw_shape(&format!("{p}{probe}")).is_some())
            .ok_or_else(|| weights.missing(probe))?;
        weights.prefix = prefix.to_string();
        Ok(weights)
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The prefix in use (`""` for a bare model's checkpoint).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The same files read under `prefix` instead: `""` for the head of a task checkpoint
    /// (`classifier.weight`) beside its encoder (`wavlm.encoder...`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// All parameter names in the files, with their prefixes.
    pub fn names(&self) -> Vec<String> {
        self.source.names.keys().cloned().collect()
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            dir: self.dir.clone(),
            name: name.to_string(),
            prefixes: self.prefixes.clone(),
        }
    }

    fn raw_shape(&self, full: &str) -> Option<Vec<usize>> {
        let source = &self.source;
        source
            .names
            .get(full)
            .map(|&i| source.files[i].tensors[full].shape.clone())
    }

    /// Whether parameter `name` (without prefix) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.shape(name).is_some()
    }

    /// The shape of parameter `name` (without prefix), if it exists.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.raw_shape(&format!("{}{name}", self.prefix))
    }

    /// The data of parameter `name` in its stored dtype, checked against `expected`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], [`Error::Shape`], [`Error::Dtype`].
    pub fn data(&self, name: &str, expected: &[usize]) -> Result<TensorData> {
        let full = format!("{}{name}", self.prefix);
        let found = self.raw_shape(&full).ok_or_else(|| self.missing(name))?;
        if found != expected {
            return Err(Error::Shape {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found,
            });
        }
        let file = &self.source.files[self.source.names[&full]];
        let info = &file.tensors[&full];
        let dtype = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::Dtype {
                    dir: self.dir.clone(),
                    name: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let (start, end) = info.data_offsets;
        let bytes = file
            .map
            .get(file.data_start + start..file.data_start + end)
            .ok_or_else(|| Error::WeightFile {
                path: file.path.clone(),
                message: format!("tensor `{full}` lies past the end of the file"),
            })?;
        let data = TensorData::from_bytes_vec(bytes.to_vec(), found, dtype);
        release_pages(&file.map, file.data_start + start, end - start);
        Ok(data)
    }

    /// Parameter `name` as a float tensor of the backend's float type.
    ///
    /// # Errors
    /// As [`Weights::data`].
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>> {
        Ok(Tensor::from_data(self.data(name, &expected)?, device))
    }

    /// A `Linear(d_input → d_output)` from `{prefix}.weight` (`[d_output, d_input]`, transposed
    /// on load) and, when `bias`, `{prefix}.bias`.
    ///
    /// # Errors
    /// As [`Weights::data`].
    pub fn linear<B: Backend>(
        &self,
        prefix: &str,
        d_input: usize,
        d_output: usize,
        bias: bool,
        device: &B::Device,
    ) -> Result<Linear<B>> {
        let weight: Tensor<B, 2> =
            self.tensor(&format!("{prefix}.weight"), [d_output, d_input], device)?;
        let bias = if bias {
            Some(Param::from_tensor(self.tensor(
                &format!("{prefix}.bias"),
                [d_output],
                device,
            )?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight.transpose()),
            bias,
        })
    }

    /// A `LayerNorm(d_model, epsilon)` from `{prefix}.weight` and `{prefix}.bias`.
    ///
    /// # Errors
    /// As [`Weights::data`].
    pub fn layer_norm<B: Backend>(
        &self,
        prefix: &str,
        d_model: usize,
        epsilon: f64,
        device: &B::Device,
    ) -> Result<LayerNorm<B>> {
        let mut norm = LayerNormConfig::new(d_model)
            .with_epsilon(epsilon)
            .init(device);
        norm.gamma =
            Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d_model], device)?);
        norm.beta = Some(Param::from_tensor(self.tensor(
            &format!("{prefix}.bias"),
            [d_model],
            device,
        )?));
        Ok(norm)
    }
}

/// Reads and parses a checkpoint's `config.json` into `T`.
///
/// # Errors
/// [`Error::Io`] when unreadable, [`Error::Json`] naming the field serde rejects.
pub fn read_config<T: serde::de::DeserializeOwned>(dir: impl AsRef<Path>) -> Result<T> {
    let path = dir.as_ref().join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path,
        message: e.to_string(),
    })
}
