//! Encoding and decoding one safetensors shard of the store.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use half::f16;
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensors};

use super::StoreDtype;
use crate::error::{Error, Result};

/// Name of the features tensor, `[n, num_layers, d_model]`.
pub(crate) const FEATURES: &str = "features";
/// Name of the labels tensor, `[n]`.
pub(crate) const LABELS: &str = "labels";
/// Name of the groups tensor, `[n]`.
pub(crate) const GROUPS: &str = "groups";
/// Header metadata key holding the ids as a JSON array of strings.
pub(crate) const IDS: &str = "ids";

/// The items of one shard, ready to encode.
pub(crate) struct ShardItems<'a> {
    /// Item ids, `n` of them.
    pub ids: &'a [String],
    /// Labels, `n`.
    pub labels: &'a [u32],
    /// Groups, `n`.
    pub groups: &'a [u32],
    /// Features, `n * num_layers * d_model` values, row-major.
    pub features: &'a [f32],
}

/// Encodes a shard as safetensors bytes, features converted to `dtype`.
pub(crate) fn encode_shard(
    path: &Path,
    dtype: StoreDtype,
    num_layers: usize,
    d_model: usize,
    items: &ShardItems<'_>,
) -> Result<Vec<u8>> {
    let n = items.ids.len();
    let features: Vec<u8> = match dtype {
        StoreDtype::F32 => items
            .features
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        StoreDtype::F16 => items
            .features
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
    };
    let labels: Vec<u8> = items.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let groups: Vec<u8> = items.groups.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ids = serde_json::to_string(items.ids).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let safetensors_error = |source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    };
    let tensors = [
        (
            FEATURES,
            TensorView::new(dtype.safetensors(), vec![n, num_layers, d_model], &features)
                .map_err(safetensors_error)?,
        ),
        (
            LABELS,
            TensorView::new(Dtype::U32, vec![n], &labels).map_err(safetensors_error)?,
        ),
        (
            GROUPS,
            TensorView::new(Dtype::U32, vec![n], &groups).map_err(safetensors_error)?,
        ),
    ];
    let metadata = Some(HashMap::from([(IDS.to_owned(), ids)]));
    safetensors::serialize(tensors, &metadata).map_err(safetensors_error)
}

/// A decoded shard: small tensors copied out, features located in the file's bytes.
#[derive(Debug)]
pub(crate) struct ShardContents {
    /// Element type of the features.
    pub dtype: StoreDtype,
    /// Shape of the features tensor, `[n, num_layers, d_model]`.
    pub features_shape: [usize; 3],
    /// Byte range of the features within the whole file.
    pub features_bytes: Range<usize>,
    /// Labels, `n`.
    pub labels: Vec<u32>,
    /// Groups, `n`.
    pub groups: Vec<u32>,
    /// Item ids, `n`.
    pub ids: Vec<String>,
}

/// Decodes the bytes of a whole shard file, checking that its tensors agree with each other.
///
/// # Errors
/// [`Error::Safetensors`] on a bad header or truncated data, [`Error::MissingEntry`] when a
/// tensor or the ids are absent, [`Error::TensorDtype`] on an unaccepted dtype,
/// [`Error::Shape`] when the tensors disagree on `n`, [`Error::Json`] on unparsable ids,
/// [`Error::Format`] on a negative or too large label or group.
pub(crate) fn decode_shard(path: &Path, bytes: &[u8]) -> Result<ShardContents> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    let data_start = 8 + header_len;
    let info = |name: &str| {
        metadata.info(name).ok_or_else(|| Error::MissingEntry {
            path: path.to_path_buf(),
            name: name.to_owned(),
        })
    };

    let features = info(FEATURES)?;
    let dtype = match features.dtype {
        Dtype::F16 => StoreDtype::F16,
        Dtype::F32 => StoreDtype::F32,
        other => {
            return Err(Error::TensorDtype {
                path: path.to_path_buf(),
                tensor: FEATURES.to_owned(),
                expected: "F16 or F32".to_owned(),
                got: format!("{other:?}"),
            })
        }
    };
    let features_shape: [usize; 3] =
        features
            .shape
            .as_slice()
            .try_into()
            .map_err(|_| Error::Shape {
                path: path.to_path_buf(),
                tensor: FEATURES.to_owned(),
                expected: vec![features.shape.first().copied().unwrap_or(0), 0, 0],
                got: features.shape.clone(),
            })?;
    let n = features_shape[0];
    let (start, end) = features.data_offsets;
    let features_bytes = data_start + start..data_start + end;

    let labels = read_indices(path, bytes, data_start, LABELS, info(LABELS)?, n)?;
    let groups = read_indices(path, bytes, data_start, GROUPS, info(GROUPS)?, n)?;
    let ids = read_ids(path, &metadata, n)?;
    Ok(ShardContents {
        dtype,
        features_shape,
        features_bytes,
        labels,
        groups,
        ids,
    })
}

/// Reads a `[n]` integer tensor (U32, I32 or I64) as u32.
fn read_indices(
    path: &Path,
    bytes: &[u8],
    data_start: usize,
    name: &str,
    info: &TensorInfo,
    n: usize,
) -> Result<Vec<u32>> {
    if info.shape != [n] {
        return Err(Error::Shape {
            path: path.to_path_buf(),
            tensor: name.to_owned(),
            expected: vec![n],
            got: info.shape.clone(),
        });
    }
    let data = &bytes[data_start + info.data_offsets.0..data_start + info.data_offsets.1];
    let values: Vec<i64> = match info.dtype {
        Dtype::U32 => data
            .chunks_exact(4)
            .map(|b| i64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
            .collect(),
        other => {
            return Err(Error::TensorDtype {
                path: path.to_path_buf(),
                tensor: name.to_owned(),
                expected: "U32, I32 or I64".to_owned(),
                got: format!("{other:?}"),
            })
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(record, value)| {
            u32::try_from(value).map_err(|_| Error::Format {
                path: path.to_path_buf(),
                record,
                message: format!("{name} value {value} is not in 0..=4294967295"),
            })
        })
        .collect()
}

/// Reads the ids from the header metadata and checks there are `n` of them.
fn read_ids(path: &Path, metadata: &Metadata, n: usize) -> Result<Vec<String>> {
    let text = metadata
        .metadata()
        .as_ref()
        .and_then(|entries| entries.get(IDS))
        .ok_or_else(|| Error::MissingEntry {
            path: path.to_path_buf(),
            name: IDS.to_owned(),
        })?;
    let ids: Vec<String> = serde_json::from_str(text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    if ids.len() != n {
        return Err(Error::Shape {
            path: path.to_path_buf(),
            tensor: IDS.to_owned(),
            expected: vec![n],
            got: vec![ids.len()],
        });
    }
    Ok(ids)
}

/// Widens one stored row (`out.len()` elements of `dtype`, little-endian) into `out`.
pub(crate) fn decode_row(dtype: StoreDtype, bytes: &[u8], out: &mut [f32]) {
    debug_assert_eq!(bytes.len(), out.len() * dtype.size_bytes());
    match dtype {
        StoreDtype::F32 => {
            for (value, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        StoreDtype::F16 => {
            for (value, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *value = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items_bytes(dtype: StoreDtype) -> Vec<u8> {
        let ids = vec!["x".to_owned(), "y \"quoted\"".to_owned()];
        let features: Vec<f32> = (0..2 * 3 * 5).map(|v| v as f32 * 0.25 - 1.0).collect();
        let items = ShardItems {
            ids: &ids,
            labels: &[2, 0],
            groups: &[4, 1],
            features: &features,
        };
        encode_shard(Path::new("s.safetensors"), dtype, 3, 5, &items).unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        for dtype in [StoreDtype::F16, StoreDtype::F32] {
            let bytes = items_bytes(dtype);
            let shard = decode_shard(Path::new("s.safetensors"), &bytes).unwrap();
            assert_eq!(shard.dtype, dtype);
            assert_eq!(shard.features_shape, [2, 3, 5]);
            assert_eq!(shard.labels, [2, 0]);
            assert_eq!(shard.groups, [4, 1]);
            assert_eq!(shard.ids, ["x", "y \"quoted\""]);
            let mut row = vec![0.0; 15];
            let row_bytes = 15 * dtype.size_bytes();
            let start = shard.features_bytes.start + row_bytes;
            decode_row(dtype, &bytes[start..start + row_bytes], &mut row);
            // Multiples of 0.25 in [-1, 7] are exact in f16 too.
            let expected: Vec<f32> = (15..30).map(|v| v as f32 * 0.25 - 1.0).collect();
            assert_eq!(row, expected);
        }
    }

    fn i64_shard(groups: [i64; 2]) -> Vec<u8> {
        let features = vec![0u8; 2 * 2 * 4];
        let labels: Vec<u8> = [3i64, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let groups: Vec<u8> = groups.iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensors = [
            (
                FEATURES,
                TensorView::new(Dtype::F32, vec![2, 1, 2], &features).unwrap(),
            ),
            (
                LABELS,
                TensorView::new(Dtype::I64, vec![2], &labels).unwrap(),
            ),
            (
                GROUPS,
                TensorView::new(Dtype::I64, vec![2], &groups).unwrap(),
            ),
        ];
        let metadata = Some(HashMap::from([(IDS.to_owned(), r#"["a","b"]"#.to_owned())]));
        safetensors::serialize(tensors, &metadata).unwrap()
    }

    #[test]
    fn i64_labels_and_groups_are_read() {
        let shard = decode_shard(Path::new("i64.safetensors"), &i64_shard([5, 0])).unwrap();
        assert_eq!(shard.labels, [3, 1]);
        assert_eq!(shard.groups, [5, 0]);
    }

    #[test]
    fn negative_group_names_file_and_record() {
        let bytes = i64_shard([1, -1]);
        let error = decode_shard(Path::new("i64.safetensors"), &bytes).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("i64.safetensors: record 1"), "{message}");
        assert!(message.contains("groups value -1"), "{message}");
    }

    #[test]
    fn missing_ids_are_named() {
        let features = vec![0u8; 4];
        let tensors = [(
            FEATURES,
            TensorView::new(Dtype::F32, vec![1, 1, 1], &features).unwrap(),
        )];
        let bytes = safetensors::serialize(tensors, &None).unwrap();
        let message = decode_shard(Path::new("s.safetensors"), &bytes)
            .unwrap_err()
            .to_string();
        assert_eq!(message, "s.safetensors: no `labels` entry");
    }
}
