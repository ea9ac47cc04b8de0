//! CIFAR-100, binary version (`cifar-100-binary/`, classify-anchors §6.2).

use std::fs;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::class_names::read_class_names;
use crate::error::{io_error, Error, Result};
use crate::mmap::map_file;
use crate::split::Split;

/// Side of a CIFAR image, in pixels.
pub const CIFAR100_SIDE: u32 = 32;
/// Pixel bytes per record: 1024 R, then 1024 G, then 1024 B, each 32×32 row-major.
pub const CIFAR100_PIXEL_BYTES: usize = 3 * 32 * 32;
/// Bytes per record: coarse label, fine label, pixels.
pub const CIFAR100_RECORD_BYTES: usize = 2 + CIFAR100_PIXEL_BYTES;
/// Number of fine classes (the classification target).
pub const CIFAR100_NUM_FINE: usize = 100;
/// Number of coarse classes (superclasses).
pub const CIFAR100_NUM_COARSE: usize = 20;

/// One split of CIFAR-100's binary release, memory-mapped.
///
/// `train.bin` holds 50,000 records and `test.bin` 10,000, each 3074 bytes: the coarse label,
/// the fine label, then 3072 pixel bytes (CHW: R, G, B planes of 32×32).
#[derive(Debug)]
pub struct Cifar100 {
    path: PathBuf,
    data: Mmap,
    len: usize,
    class_names: Vec<String>,
    coarse_class_names: Option<Vec<String>>,
}

impl Cifar100 {
    /// Opens `dir/train.bin` or `dir/test.bin` with `dir/fine_label_names.txt` (and
    /// `dir/coarse_label_names.txt` when present), checking every record's labels.
    ///
    /// # Errors
    /// [`Error::Io`] naming a missing or unreadable file; [`Error::Truncated`] when the size is
    /// not a whole number of 3074-byte records; [`Error::Format`] naming the record whose fine
    /// label is not below 100 or coarse label not below 20, or an empty file;
    /// [`Error::Malformed`] when a names file does not hold 100 (20) names.
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        let class_names = read_class_names(&dir.join("fine_label_names.txt"), CIFAR100_NUM_FINE)?;
        let coarse_path = dir.join("coarse_label_names.txt");
        let coarse_class_names = if coarse_path.exists() {
            Some(read_class_names(&coarse_path, CIFAR100_NUM_COARSE)?)
        } else {
            None
        };

        let path = dir.join(format!("{}.bin", split.stem()));
        let file_len = fs::metadata(&path).map_err(io_error(&path))?.len();
        if file_len == 0 {
            return Err(Error::Format {
                path,
                record: 0,
                message: "the file holds no record".to_owned(),
            });
        }
        let record_size = CIFAR100_RECORD_BYTES as u64;
        if file_len % record_size != 0 {
            return Err(Error::Truncated {
                path,
                record: (file_len / record_size) as usize,
                record_size: CIFAR100_RECORD_BYTES,
                len: file_len,
            });
        }
        let data = map_file(&path)?;
        let len = data.len() / CIFAR100_RECORD_BYTES;
        for (record, bytes) in data.chunks_exact(CIFAR100_RECORD_BYTES).enumerate() {
            let (coarse, fine) = (usize::from(bytes[0]), usize::from(bytes[1]));
            if fine >= CIFAR100_NUM_FINE || coarse >= CIFAR100_NUM_COARSE {
                return Err(Error::Format {
                    path,
                    record,
                    message: format!(
                        "fine label {fine} (must be below {CIFAR100_NUM_FINE}), coarse label \
                         {coarse} (must be below {CIFAR100_NUM_COARSE})"
                    ),
                });
            }
        }
        Ok(Self {
            path,
            data,
            len,
            class_names,
            coarse_class_names,
        })
    }

    /// The `.bin` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no image (never true: an empty file is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The 100 fine class names, in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The 20 coarse class names, when `coarse_label_names.txt` is present.
    pub fn coarse_class_names(&self) -> Option<&[String]> {
        self.coarse_class_names.as_deref()
    }

    /// Image `index`'s fine label, 0..100 (the classification target).
    ///
    /// # Panics
    /// When `index` is not below [`Self::len`].
    pub fn fine_label(&self, index: usize) -> u32 {
        u32::from(self.record(index)[1])
    }

    /// Image `index`'s coarse label, 0..20.
    ///
    /// # Panics
    /// When `index` is not below [`Self::len`].
    pub fn coarse_label(&self, index: usize) -> u32 {
        u32::from(self.record(index)[0])
    }

    /// Image `index`'s pixel bytes as stored: R, G, B planes of 32×32, row-major.
    ///
    /// # Shapes
    /// `[channels = 3, height = 32, width = 32]`.
    ///
    /// # Panics
    /// When `index` is not below [`Self::len`].
    pub fn pixels(&self, index: usize) -> &[u8] {
        &self.record(index)[2..]
    }

    /// Image `index` as a 32×32 8-bit RGB image (the `image` crate's type, not
    /// [`crate::RgbImage`]).
    ///
    /// # Panics
    /// When `index` is not below [`Self::len`].
    pub fn image(&self, index: usize) -> ::image::RgbImage {
        let pixels = self.pixels(index);
        let plane = (CIFAR100_SIDE * CIFAR100_SIDE) as usize;
        ::image::RgbImage::from_fn(CIFAR100_SIDE, CIFAR100_SIDE, |x, y| {
            let at = (y * CIFAR100_SIDE + x) as usize;
            ::image::Rgb([pixels[at], pixels[plane + at], pixels[2 * plane + at]])
        })
    }

    fn record(&self, index: usize) -> &[u8] {
        assert!(
            index < self.len,
            "image index {index} is out of range for {} images",
            self.len
        );
        &self.data[index * CIFAR100_RECORD_BYTES..(index + 1) * CIFAR100_RECORD_BYTES]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixel at (x, y) has R = x + 32y (mod 256), G = 255 - R, B = seed.
    fn record(coarse: u8, fine: u8, seed: u8) -> Vec<u8> {
        let mut bytes = vec![coarse, fine];
        let red: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
        bytes.extend(&red);
        bytes.extend(red.iter().map(|r| 255 - r));
        bytes.extend(std::iter::repeat_n(seed, 1024));
        bytes
    }

    fn write_release(dir: &Path, train: &[Vec<u8>]) {
        let names: String = (0..100).map(|i| format!("class_{i}\n")).collect();
        fs::write(dir.join("fine_label_names.txt"), names + "\n\n").unwrap();
        let coarse: String = (0..20).map(|i| format!("super_{i}\n")).collect();
        fs::write(dir.join("coarse_label_names.txt"), coarse).unwrap();
        fs::write(dir.join("train.bin"), train.concat()).unwrap();
        fs::write(dir.join("test.bin"), record(19, 99, 7)).unwrap();
    }

    #[test]
    fn reads_labels_and_chw_pixels() {
        let dir = tempfile::tempdir().unwrap();
        write_release(
            dir.path(),
            &[record(4, 30, 1), record(0, 0, 2), record(11, 72, 3)],
        );
        let train = Cifar100::open(dir.path(), Split::Train).unwrap();
        assert_eq!(train.len(), 3);
        assert_eq!(train.class_names().len(), 100);
        assert_eq!(train.class_names()[72], "class_72");
        assert_eq!(train.coarse_class_names().unwrap()[19], "super_19");
        assert_eq!((train.fine_label(0), train.coarse_label(0)), (30, 4));
        assert_eq!((train.fine_label(2), train.coarse_label(2)), (72, 11));
        let image = train.image(2);
        assert_eq!(image.dimensions(), (32, 32));
        // (x, y) = (5, 3): flat index 101.
        assert_eq!(image.get_pixel(5, 3).0, [101, 154, 3]);
        assert_eq!(image.get_pixel(31, 31).0, [255, 0, 3]);
        assert_eq!(train.pixels(1).len(), CIFAR100_PIXEL_BYTES);

        let test = Cifar100::open(dir.path(), Split::Test).unwrap();
        assert_eq!((test.len(), test.fine_label(0)), (1, 99));
    }

    #[test]
    fn truncated_file_names_the_incomplete_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = [record(1, 1, 0), record(2, 2, 0)].concat();
        bytes.truncate(CIFAR100_RECORD_BYTES + 100);
        write_release(dir.path(), &[bytes]);
        let error = Cifar100::open(dir.path(), Split::Train).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("train.bin is truncated: 3174 bytes"),
            "{message}"
        );
        assert!(message.contains("record 1 is incomplete"), "{message}");
    }

    #[test]
    fn out_of_range_labels_name_the_record() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), &[record(1, 1, 0), record(2, 100, 0)]);
        let message = Cifar100::open(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("train.bin: record 1: fine label 100"),
            "{message}"
        );

        write_release(dir.path(), &[record(20, 5, 0)]);
        let message = Cifar100::open(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("record 0: fine label 5 (must be below 100), coarse label 20"),
            "{message}"
        );
    }

    #[test]
    fn missing_names_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), &[record(1, 1, 0)]);
        fs::remove_file(dir.path().join("fine_label_names.txt")).unwrap();
        let message = Cifar100::open(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(message.contains("fine_label_names.txt"), "{message}");
    }

    #[test]
    #[should_panic = "image index 1 is out of range for 1 images"]
    fn index_out_of_range_panics() {
        let dir = tempfile::tempdir().unwrap();
        write_release(dir.path(), &[record(1, 1, 0)]);
        Cifar100::open(dir.path(), Split::Train).unwrap().image(1);
    }
}
