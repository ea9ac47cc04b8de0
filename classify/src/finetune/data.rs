//! The raw items behind an embedding store's ids: fine-tuning runs use the same folds, seeds
//! and dev splits as the DAT heads (planned over the store), reading each item's waveform,
//! image or text from the dataset instead of its features.

use std::path::Path;

use datasets::{EmbeddingStore, Split};

use crate::error::{Error, Result};
use crate::extract::{DataTask, Item, Source};

/// One store with the dataset records behind its items.
#[derive(Debug)]
pub struct RawStore<'a> {
    store: &'a EmbeddingStore,
    source: Source,
    /// `(record, position)` of each store item.
    located: Vec<(usize, usize)>,
}

impl<'a> RawStore<'a> {
    /// Opens the dataset split behind `store` and finds every store id in it.
    ///
    /// # Errors
    /// Reader errors; [`Error::Store`] naming the store when one of its ids is not in the
    /// dataset (a store extracted from other data).
    pub fn open(
        store: &'a EmbeddingStore,
        task: DataTask,
        data: &Path,
        split: Option<Split>,
        chunk_samples: usize,
    ) -> Result<Self> {
        let source = Source::open(task, data, split, None, chunk_samples)?;
        let located = store
            .ids()
            .iter()
            .zip(source.locate_all(store.ids()))
            .map(|(id, found)| {
                found.ok_or_else(|| Error::Store {
                    path: store.dir().to_path_buf(),
                    message: format!(
                        "item `{id}` is not in the {} data at {}: was the store extracted from \
                         other data?",
                        task.name(),
                        data.display()
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            store,
            source,
            located,
        })
    }

    /// The store.
    pub fn store(&self) -> &EmbeddingStore {
        self.store
    }

    /// The raw items of store positions `indices`, with the store's labels.
    ///
    /// # Errors
    /// [`Error::Store`] when a record no longer gives the item (a changed file); reader errors.
    pub fn items(&self, indices: &[usize]) -> Result<Vec<Item>> {
        indices
            .iter()
            .map(|&i| {
                let (record, position) = self.located[i];
                let mut items = self.source.read(record)?;
                if position >= items.len() {
                    return Err(Error::Store {
                        path: self.store.dir().to_path_buf(),
                        message: format!(
                            "item `{}` is gone from {}",
                            self.store.ids()[i],
                            self.source.describe(record)
                        ),
                    });
                }
                let mut item = items.swap_remove(position);
                item.label = self.store.labels()[i];
                Ok(item)
            })
            .collect()
    }
}
