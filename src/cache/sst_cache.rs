//! The table cache: open SSTable readers (each an mmap, a parsed footer, index, filter and
//! properties, and a file's unwrapped data key), at most `max_open_files` of them, least
//! recently used evicted first. Cursors hold their reader's `Arc`, so eviction never pulls a
//! file out from under a read; it only closes what nothing uses.
//!
//! Every point read looks up each file it probes here, so the cache is sharded (up to
//! `SHARDS` LRUs, each with its share of the capacity) and concurrent readers rarely meet on
//! one lock. Least recently used is per shard.

use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::error::Result;
use crate::sst;
use crate::types::{FileNumber, TableId};

type Key = (TableId, FileNumber);

const SHARDS: usize = 16;

pub(crate) struct SstCache {
    shards: Vec<Mutex<LruCache<Key, Arc<sst::SstReader>>>>,
}

impl SstCache {
    /// A cache of at most `capacity` open files (at least 1): `min(capacity, SHARDS)`
    /// shards of `capacity / shards` files each, so the total never exceeds it.
    pub(crate) fn new(capacity: usize) -> SstCache {
        let capacity = capacity.max(1);
        let shards = capacity.min(SHARDS);
        let per_shard = NonZeroUsize::new(capacity / shards).unwrap_or(NonZeroUsize::MIN);
        SstCache {
            shards: (0..shards)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<LruCache<Key, Arc<sst::SstReader>>> {
        // The engine's own numbers: a multiplicative mix spreads them well enough.
        let h =
            (u64::from(key.0 .0) ^ key.1 .0.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // `shards` is non-empty and the index is reduced modulo its length.
        &self.shards[((h >> 32) as usize) % self.shards.len()]
    }

    /// The open reader of a file, opening it with `open` on a miss. Opening happens outside
    /// the lock; if two threads race, both open and one reader is kept.
    pub(crate) fn get_or_open(
        &self,
        table: TableId,
        file: FileNumber,
        open: impl FnOnce() -> Result<Arc<sst::SstReader>>,
    ) -> Result<Arc<sst::SstReader>> {
        let key = (table, file);
        let shard = self.shard(&key);
        if let Some(r) = shard.lock().get(&key) {
            return Ok(Arc::clone(r));
        }
        let reader = open()?;
        let mut open_files = shard.lock();
        Ok(Arc::clone(open_files.get_or_insert(key, || reader)))
    }

    /// Closes a file's reader (its file is being deleted).
    pub(crate) fn evict(&self, table: TableId, file: FileNumber) {
        let key = (table, file);
        self.shard(&key).lock().pop(&key);
    }

    /// Open readers right now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_never_exceed_the_capacity() {
        for capacity in [0, 1, 2, 7, 16, 17, 100, 1000] {
            let c = SstCache::new(capacity);
            let total: usize = c.shards.iter().map(|s| s.lock().cap().get()).sum();
            assert!(total <= capacity.max(1), "{capacity}: {total}");
            assert!(
                total * 2 > capacity.max(1) || capacity < 2,
                "{capacity}: {total}"
            );
        }
    }
}
