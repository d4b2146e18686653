//! The table cache: open SSTable readers (each an mmap, a parsed footer, index, filter and
//! properties, and a file's unwrapped data key), at most `max_open_files` of them, least
//! recently used evicted first. Cursors hold their reader's `Arc`, so eviction never pulls a
//! file out from under a read; it only closes what nothing uses.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::error::Result;
use crate::sst;
use crate::types::{FileNumber, TableId};

type Key = (TableId, FileNumber);

pub(crate) struct SstCache {
    open: Mutex<LruCache<Key, Arc<sst::SstReader>>>,
}

impl SstCache {
    /// A cache of at most `capacity` open files (at least 1).
    pub(crate) fn new(capacity: usize) -> SstCache {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        SstCache {
            open: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The open reader of a file, opening it with `open` on a miss. Opening happens outside
    /// the lock; if two threads race, both open and one reader is kept.
    pub(crate) fn get_or_open(
        &self,
        table: TableId,
        file: FileNumber,
        open: impl FnOnce() -> Result<Arc<sst::SstReader>>,
    ) -> Result<Arc<sst::SstReader>> {
        if let Some(r) = self.open.lock().get(&(table, file)) {
            return Ok(Arc::clone(r));
        }
        let reader = open()?;
        let mut open_files = self.open.lock();
        Ok(Arc::clone(
            open_files.get_or_insert((table, file), || reader),
        ))
    }

    /// Closes a file's reader (its file is being deleted).
    pub(crate) fn evict(&self, table: TableId, file: FileNumber) {
        self.open.lock().pop(&(table, file));
    }

    /// Open readers right now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.lock().len()
    }
}
