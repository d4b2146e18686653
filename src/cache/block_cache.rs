//! The block cache: opened (checksummed or decrypted) blocks, bounded by bytes.
//!
//! Keyed by (table cache id, block offset): the engine gives every opened table file an
//! id never reused in the process, so a deleted file's blocks can never be served for a
//! new one; they simply age out. Sharded so concurrent readers rarely share a lock.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::sst::Block;

const SHARDS: usize = 16;
/// Bookkeeping bytes charged per entry beyond the block's own bytes.
const ENTRY_OVERHEAD: usize = 64;

type Key = (u64, u64);

struct Shard {
    lru: LruCache<Key, Arc<Block>>,
    usage: usize,
    capacity: usize,
}

/// A sharded LRU of blocks with a byte capacity and hit/miss counters.
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BlockCache(usage {} bytes, {} hits, {} misses)",
            self.usage(),
            self.hits(),
            self.misses()
        )
    }
}

fn charge(block: &Block) -> usize {
    block.size() + ENTRY_OVERHEAD
}

impl BlockCache {
    /// A cache holding at most about `capacity_bytes` of blocks.
    pub(crate) fn new(capacity_bytes: usize) -> BlockCache {
        let per_shard = capacity_bytes / SHARDS;
        BlockCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        lru: LruCache::unbounded(),
                        usage: 0,
                        capacity: per_shard,
                    })
                })
                .collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        // `SHARDS` is non-zero and the index is reduced modulo it.
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// The cached block of table `id` at `offset`, counting a hit or a miss.
    pub(crate) fn get(&self, id: u64, offset: u64) -> Option<Arc<Block>> {
        let key = (id, offset);
        let found = self.shard(&key).lock().lru.get(&key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches a block, evicting the least recently used ones past the capacity. A block
    /// larger than a whole shard is not cached.
    pub(crate) fn insert(&self, id: u64, offset: u64, block: Arc<Block>) {
        let key = (id, offset);
        let c = charge(&block);
        let mut s = self.shard(&key).lock();
        if c > s.capacity {
            return;
        }
        if let Some(old) = s.lru.put(key, block) {
            s.usage -= charge(&old);
        }
        s.usage += c;
        while s.usage > s.capacity {
            match s.lru.pop_lru() {
                Some((_, old)) => s.usage -= charge(&old),
                None => break,
            }
        }
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(crate) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Bytes charged for the blocks held now.
    pub(crate) fn usage(&self) -> usize {
        self.shards.iter().map(|s| s.lock().usage).sum()
    }

    /// The configured capacity in bytes.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use bytes::Bytes;

    fn block(len: usize) -> Result<Arc<Block>> {
        // An empty block (restart array [0], count 1) padded in front is still valid
        // only when the padding is an entry; use a real empty block plus raw length.
        let mut data = vec![0u8; len];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        // Restart point 0 of a block with `len` entry bytes: valid layout.
        Ok(Arc::new(Block::new(Bytes::from(data), Arc::from("t"), 0)?))
    }

    #[test]
    fn hits_misses_and_byte_capacity() -> Result<()> {
        let cache = BlockCache::new(SHARDS * 1000);
        assert!(cache.get(1, 0).is_none());
        cache.insert(1, 0, block(100)?);
        assert!(cache.get(1, 0).is_some());
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        // Fill far past the capacity: usage stays bounded.
        for off in 0..1000 {
            cache.insert(2, off, block(200)?);
        }
        assert!(cache.usage() <= cache.capacity());
        assert!(cache.usage() > 0);
        // Too large for a shard: not cached.
        cache.insert(3, 0, block(5000)?);
        assert!(cache.get(3, 0).is_none());
        Ok(())
    }
}
