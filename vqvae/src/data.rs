//! Training and validation images: an image folder or the embedded procedural set, in a
//! deterministic order, decoded on worker threads ahead of the training step.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use datasets::{load_image, procedural_image, Crop, ImageFolder, Preprocess, RgbImage};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

use crate::error::Result;

/// Where images come from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    /// `count` images of the embedded procedural set with `seed` (no files needed).
    Procedural {
        /// Seed of the set.
        seed: u64,
        /// Number of images.
        count: usize,
    },
    /// Image files.
    Folder(ImageFolder),
    /// Image files, kept decoded and resized in memory after their first use.
    Cached {
        /// The files.
        folder: ImageFolder,
        /// Their decoded images, filled as they are first read.
        cache: Arc<ImageCache>,
    },
}

/// Decoded images of a folder, resized so their shorter side is `resize`, kept up to a byte
/// budget. Filled lazily on first use (a large folder starts at once); an image that does
/// not fit the budget is decoded again each time it is used. A cached image gives the same
/// sample as the file ([`Preprocess::resize_image`]).
#[derive(Debug)]
pub struct ImageCache {
    resize: u32,
    cells: Vec<OnceLock<Arc<::image::RgbImage>>>,
    used: AtomicUsize,
    budget: usize,
}

impl ImageCache {
    /// An empty cache for `len` images resized to `resize`, holding at most `budget` bytes.
    pub fn new(len: usize, resize: u32, budget: usize) -> Self {
        Self {
            resize,
            cells: (0..len).map(|_| OnceLock::new()).collect(),
            used: AtomicUsize::new(0),
            budget,
        }
    }

    /// Bytes of pixels held.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Number of images held.
    pub fn cached(&self) -> usize {
        self.cells.iter().filter(|c| c.get().is_some()).count()
    }

    fn load(
        &self,
        path: &Path,
        index: usize,
        preprocess: &Preprocess,
        seed: u64,
    ) -> datasets::Result<RgbImage> {
        if preprocess.resize != self.resize {
            return load_image(path, preprocess, seed);
        }
        if let Some(image) = self.cells[index].get() {
            return Ok(preprocess.apply(image, seed));
        }
        let image = preprocess.resize_image(datasets::decode_rgb8(path)?);
        let sample = preprocess.apply(&image, seed);
        let bytes = image.as_raw().len();
        let reserved = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + bytes <= self.budget).then_some(used + bytes)
            })
            .is_ok();
        if reserved && self.cells[index].set(Arc::new(image)).is_err() {
            self.used.fetch_sub(bytes, Ordering::Relaxed); // another thread cached it first
        }
        Ok(sample)
    }
}

impl ImageSource {
    /// Opens a folder (recursively), or names the procedural set when `path` is `None`.
    ///
    /// # Errors
    /// The folder's [`datasets::Error`] (not a directory, no image in it, unreadable).
    pub fn open(path: Option<&Path>, procedural_seed: u64, count: usize) -> Result<Self> {
        Ok(match path {
            Some(path) => Self::Folder(ImageFolder::open(path)?),
            None => Self::Procedural {
                seed: procedural_seed,
                count,
            },
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Self::Procedural { count, .. } => *count,
            Self::Folder(folder) | Self::Cached { folder, .. } => folder.len(),
        }
    }

    /// The same images, kept decoded (resized so their shorter side is `resize`) in up to
    /// `budget_bytes` of memory after first use. Procedural images and a zero budget are
    /// returned as they are.
    pub fn cached(self, resize: u32, budget_bytes: usize) -> Self {
        match self {
            Self::Folder(folder) if budget_bytes > 0 => Self::Cached {
                cache: Arc::new(ImageCache::new(folder.len(), resize, budget_bytes)),
                folder,
            },
            Self::Cached { folder, .. } => Self::Folder(folder).cached(resize, budget_bytes),
            other => other,
        }
    }

    /// The image files; `None` for the procedural set.
    pub fn folder(&self) -> Option<&ImageFolder> {
        match self {
            Self::Procedural { .. } => None,
            Self::Folder(folder) | Self::Cached { folder, .. } => Some(folder),
        }
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A name for image `index` in logs: its path or `procedural #index`.
    pub fn name(&self, index: usize) -> String {
        match self {
            Self::Procedural { .. } => format!("procedural #{index}"),
            Self::Folder(folder) | Self::Cached { folder, .. } => {
                folder.files()[index].display().to_string()
            }
        }
    }

    /// Decodes and preprocesses image `index`; `seed` drives random crops and flips.
    ///
    /// # Errors
    /// The file's [`datasets::Error`] (unreadable, corrupt, truncated).
    pub fn load(
        &self,
        index: usize,
        preprocess: &Preprocess,
        seed: u64,
    ) -> datasets::Result<RgbImage> {
        match self {
            Self::Procedural { seed: set_seed, .. } => {
                let image = procedural_image(*set_seed, index as u64, preprocess.size);
                Ok(if preprocess.flip && seed % 2 == 1 {
                    flip(&image)
                } else {
                    image
                })
            }
            Self::Folder(folder) => load_image(&folder.files()[index], preprocess, seed),
            Self::Cached { folder, cache } => {
                cache.load(&folder.files()[index], index, preprocess, seed)
            }
        }
    }

    /// Splits off `holdout` images for validation (folders: a seeded choice of files;
    /// procedural: a disjoint set of at least 8 images drawn with another seed).
    pub fn split(self, holdout: usize, seed: u64) -> (Self, Self) {
        match self {
            Self::Procedural { seed: s, count } => (
                Self::Procedural { seed: s, count },
                Self::Procedural {
                    seed: s ^ 0x5EED_0000_0000_0001,
                    count: holdout.max(8),
                },
            ),
            Self::Cached { folder, .. } => Self::Folder(folder).split(holdout, seed),
            Self::Folder(folder) if holdout == 0 || folder.len() < 2 => {
                (Self::Folder(folder.clone()), Self::Folder(folder))
            }
            Self::Folder(folder) => {
                let holdout = holdout.min(folder.len() - 1);
                let (train, val) = folder.split(holdout, seed);
                (Self::Folder(train), Self::Folder(val))
            }
        }
    }
}

/// Horizontal mirror.
fn flip(image: &RgbImage) -> RgbImage {
    let (h, w) = (image.height, image.width);
    let mut data = image.data.clone();
    for row in data.chunks_exact_mut(w) {
        row.reverse();
    }
    debug_assert_eq!(data.len(), 3 * h * w);
    RgbImage::new(h, w, data)
}

/// The shuffled image order of `epoch` (the same for the same seed and epoch, so a resumed run
/// sees what an uninterrupted one would).
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// A per-sample seed for crops and flips.
fn sample_seed(seed: u64, epoch: u64, index: usize) -> u64 {
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
        ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// One training step's images; unreadable images are skipped and reported.
#[derive(Debug)]
pub struct Batch {
    /// Global step this batch belongs to.
    pub step: u64,
    /// Epoch of the step.
    pub epoch: u64,
    /// The decoded images.
    pub images: Vec<RgbImage>,
    /// `(image name, error)` of the images that could not be read.
    pub skipped: Vec<(String, String)>,
}

/// Stacks images into a tensor.
///
/// # Shapes
/// - output: `[images.len(), 3, height, width]`
///
/// # Panics
/// If `images` is empty or their sizes differ.
pub fn to_tensor<B: Backend>(images: &[RgbImage], device: &B::Device) -> Tensor<B, 4> {
    let (h, w) = (images[0].height, images[0].width);
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for image in images {
        assert_eq!(
            (image.height, image.width),
            (h, w),
            "images of different sizes"
        );
        data.extend_from_slice(&image.data);
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), device)
}

/// Images of a tensor (values clamped to [−1, 1]).
///
/// # Shapes
/// - `images`: `[batch_size, 3, height, width]`
pub fn from_tensor<B: Backend>(images: Tensor<B, 4>) -> Vec<RgbImage> {
    let [n, _, h, w] = images.dims();
    let values = images
        .clamp(-1.0, 1.0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data");
    values
        .chunks_exact(3 * h * w)
        .take(n)
        .map(|chunk| RgbImage::new(h, w, chunk.to_vec()))
        .collect()
}

/// Decodes batches on a background thread (with its own worker pool), two steps ahead.
pub struct Prefetcher {
    receiver: Receiver<Batch>,
    _worker: JoinHandle<()>,
}

impl Prefetcher {
    /// Streams the batches of steps `start_step..total_steps`; step `s` is batch
    /// `s % steps_per_epoch` of epoch `s / steps_per_epoch`.
    pub fn start(
        source: ImageSource,
        preprocess: Preprocess,
        batch_size: usize,
        seed: u64,
        start_step: u64,
        total_steps: u64,
        workers: usize,
    ) -> Self {
        let (sender, receiver) = sync_channel(2);
        let worker = std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build()
                .expect("a decoding thread pool");
            let len = source.len();
            let steps_per_epoch = len.div_ceil(batch_size) as u64;
            let mut order_epoch = u64::MAX;
            let mut order = Vec::new();
            for step in start_step..total_steps {
                let epoch = step / steps_per_epoch;
                if epoch != order_epoch {
                    order = epoch_order(len, seed, epoch);
                    order_epoch = epoch;
                }
                let b = (step % steps_per_epoch) as usize;
                let indices = &order[b * batch_size..((b + 1) * batch_size).min(len)];
                let loaded: Vec<_> = pool.install(|| {
                    use rayon::prelude::*;
                    indices
                        .par_iter()
                        .map(|&i| {
                            source
                                .load(i, &preprocess, sample_seed(seed, epoch, i))
                                .map_err(|e| (source.name(i), datasets::error::with_causes(&e)))
                        })
                        .collect()
                });
                let (mut images, mut skipped) = (Vec::new(), Vec::new());
                for result in loaded {
                    match result {
                        Ok(image) => images.push(image),
                        Err(failure) => skipped.push(failure),
                    }
                }
                let batch = Batch {
                    step,
                    epoch,
                    images,
                    skipped,
                };
                if sender.send(batch).is_err() {
                    return; // the trainer stopped
                }
            }
        });
        Self {
            receiver,
            _worker: worker,
        }
    }

    /// The next batch, or `None` when the stream ended.
    pub fn next(&self) -> Option<Batch> {
        self.receiver.recv().ok()
    }
}

/// Images loaded by name, and the ones that could not be read with their errors.
#[derive(Debug, Default)]
pub struct LoadedImages {
    /// `(name, image)` of the readable images.
    pub images: Vec<(String, RgbImage)>,
    /// `(name, error)` of the unreadable ones.
    pub skipped: Vec<(String, String)>,
}

/// Loads every image of a source centre-cropped to `size` (validation and reconstruction
/// inputs), skipping unreadable ones.
pub fn load_all(source: &ImageSource, size: u32) -> LoadedImages {
    load_all_until(source, size, &std::sync::atomic::AtomicBool::new(false)).expect("never stopped")
}

/// [`load_all`], checking `stop` before each image: `None` once it is set (Ctrl-C while a
/// large validation folder loads stops at once; there is nothing to save yet).
pub fn load_all_until(
    source: &ImageSource,
    size: u32,
    stop: &std::sync::atomic::AtomicBool,
) -> Option<LoadedImages> {
    let preprocess = Preprocess {
        size,
        resize: size,
        crop: Crop::Center,
        flip: false,
    };
    let (mut images, mut skipped) = (Vec::new(), Vec::new());
    for i in 0..source.len() {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        match source.load(i, &preprocess, 0) {
            Ok(image) => images.push((source.name(i), image)),
            Err(e) => skipped.push((source.name(i), datasets::error::with_causes(&e))),
        }
    }
    Some(LoadedImages { images, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_stops_when_told() {
        let source = ImageSource::open(None, 0, 4).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(true);
        assert!(load_all_until(&source, 8, &stop).is_none());
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(load_all_until(&source, 8, &stop).unwrap().images.len(), 4);
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(10, 3, 0);
        assert_eq!(a, epoch_order(10, 3, 0));
        assert_ne!(a, epoch_order(10, 3, 1));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn prefetcher_streams_whole_epochs() {
        let source = ImageSource::Procedural { seed: 1, count: 5 };
        let prefetch = Prefetcher::start(source, Preprocess::eval(8), 2, 0, 0, 6, 1);
        let sizes: Vec<_> = std::iter::from_fn(|| prefetch.next())
            .map(|b| b.images.len())
            .collect();
        // 5 images, batch 2: steps per epoch 3 (2, 2, 1), two epochs.
        assert_eq!(sizes, [2, 2, 1, 2, 2, 1]);
    }

    #[test]
    fn cached_folder_gives_the_files_samples_and_keeps_to_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3u32 {
            let img = ::image::RgbImage::from_fn(40 + i, 30, |x, y| {
                ::image::Rgb([(x * 5 + i) as u8, (y * 7) as u8, (x * y) as u8])
            });
            img.save(dir.path().join(format!("{i}.png"))).unwrap();
        }
        let folder = ImageSource::open(Some(dir.path()), 0, 0).unwrap();
        let preprocess = Preprocess::train(8).with_resize(16);
        // Room for two resized images (16 high, 21-22 wide, 3 bytes each), not three.
        let cached = folder.clone().cached(16, 2 * 16 * 22 * 3);
        for pass in 0..2 {
            for i in 0..3 {
                let seed = 10 * pass + i as u64;
                assert_eq!(
                    cached.load(i, &preprocess, seed).unwrap(),
                    folder.load(i, &preprocess, seed).unwrap(),
                    "image {i}, pass {pass}"
                );
            }
        }
        let ImageSource::Cached { cache, .. } = &cached else {
            panic!("a folder with a budget is cached")
        };
        assert_eq!(cache.cached(), 2);
        assert!(cache.used_bytes() <= 2 * 16 * 22 * 3);
    }

    #[test]
    fn tensor_round_trip() {
        let source = ImageSource::Procedural { seed: 1, count: 2 };
        let images: Vec<_> = load_all(&source, 8)
            .images
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        let tensor = to_tensor::<crate::tests::TestBackend>(&images, &Default::default());
        assert_eq!(tensor.dims(), [2, 3, 8, 8]);
        assert_eq!(from_tensor(tensor), images);
    }
}
