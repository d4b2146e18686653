//! The block cache: opened (checksummed or decrypted) blocks, bounded by bytes.
//!
//! Keyed by (table cache id, block offset): the engine gives every opened table file an
//! id never reused in the process, so a deleted file's blocks can never be served for a
//! new one; they simply age out. Sharded so concurrent readers rarely share a lock.
//!
//! Each shard evicts by CLOCK (second chance), not by a linked LRU list: a hit sets its
//! slot's referenced flag and moves nothing, where an LRU list relinks the entry and its
//! two neighbours, cold cache lines all three, on every hit; an insertion past the
//! capacity sweeps the slots in order, clearing flags, and evicts the first slot whose
//! flag is already clear. Slots live in one vector indexed by a hash map, and a freed slot
//! is reused by the next insertion, so a steady load allocates no bookkeeping either.
//!
//! The cache also owns the buffers sealed blocks are decrypted into: an evicted block
//! nobody else holds gives its buffer back to its shard, and the next miss decrypts into
//! it, so a steady read load allocates and frees no block-sized memory. The spare buffers
//! are few and small (at most `SPARE_BUFFERS` per shard, each at most `MAX_SPARE_BYTES`)
//! and are not charged to the capacity: with 4 KiB blocks they add at most 256 KiB.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;

use crate::sst::Block;

const SHARDS: usize = 16;
/// Bookkeeping bytes charged per entry beyond the block's own bytes.
const ENTRY_OVERHEAD: usize = 64;
/// Evicted blocks' buffers kept per shard for the next misses to decrypt into.
const SPARE_BUFFERS: usize = 4;
/// Larger buffers (of unusually large blocks) are freed, not kept.
const MAX_SPARE_BYTES: usize = 64 << 10;

type Key = (u64, u64);

/// Hashes a key by a multiplicative mix of its two numbers, for the shard's map and for
/// choosing the shard. The keys are the engine's own (file ids and offsets), not an
/// adversary's, so nothing needs SipHash's flood resistance, and this is a few
/// instructions per lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One cached block.
struct Slot {
    key: Key,
    block: Arc<Block>,
    /// Set by a hit (and by the insertion), cleared by the clock hand's sweep: a block is
    /// evicted when the hand finds it clear, i.e. unused for a whole sweep.
    referenced: bool,
}

type KeyHash = BuildHasherDefault<KeyHasher>;

struct Shard {
    /// Key -> index in `slots`.
    index: HashMap<Key, usize, KeyHash>,
    /// The cached blocks; `None` is a free slot (listed in `free`).
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// The clock hand: the next slot the eviction sweep looks at.
    hand: usize,
    /// Bytes charged for the cached blocks.
    usage: usize,
    capacity: usize,
    spare: Vec<BytesMut>,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            hand: 0,
            usage: 0,
            capacity,
            spare: Vec::new(),
        }
    }

    fn get(&mut self, key: &Key) -> Option<Arc<Block>> {
        let i = *self.index.get(key)?;
        let slot = self.slots.get_mut(i)?.as_mut()?;
        slot.referenced = true;
        Some(Arc::clone(&slot.block))
    }

    fn insert(&mut self, key: Key, block: Arc<Block>) {
        self.usage += charge(&block);
        let slot = Slot {
            key,
            block,
            referenced: true,
        };
        // One lookup of the key, whether it is cached already (replaced) or not.
        let replaced = match self.index.entry(key) {
            Entry::Occupied(e) => self.slots[*e.get()].replace(slot),
            Entry::Vacant(e) => {
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i] = Some(slot);
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        self.slots.len() - 1
                    }
                };
                e.insert(i);
                None
            }
        };
        if let Some(old) = replaced {
            self.retire(old.block);
        }
        self.shrink();
    }

    /// Evicts blocks by the clock until the usage fits the capacity. Each pass of the hand
    /// clears every flag it passes, so a victim is found within two passes.
    fn shrink(&mut self) {
        while self.usage > self.capacity && !self.index.is_empty() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            if let Some(old) = self.slots[i].take() {
                self.index.remove(&old.key);
                self.free.push(i);
                self.retire(old.block);
            }
        }
    }

    /// Uncharges an evicted block and keeps its buffer if nobody else holds the block and
    /// the buffer is its own (a sealed block's; a plaintext block is a memory-map slice).
    fn retire(&mut self, old: Arc<Block>) {
        self.usage -= charge(&old);
        if self.spare.len() >= SPARE_BUFFERS {
            return;
        }
        if let Some(buf) = Arc::into_inner(old).and_then(|b| b.into_data().try_into_mut().ok()) {
            if buf.capacity() <= MAX_SPARE_BYTES {
                self.spare.push(buf);
            }
        }
    }
}

/// A sharded CLOCK cache of blocks with a byte capacity and hit/miss counters.
pub(crate) struct BlockCache {
    shards: Vec<Mutex<Shard>>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Decrypt buffers handed out new because their shard had no spare one (tests only).
    #[cfg(test)]
    new_buffers: AtomicU64,
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

/// What a cached block costs: its bytes plus the bookkeeping. A sealed block's buffer is
/// allocated up to 255 bytes larger (`crypto::buffer_capacity`), which is not charged:
/// charging the rounded size (b416ab1) made tiny-block caches (the fault-injection
/// harness: 256-byte blocks, 1 KiB shards) hold one block a shard instead of three, and the
/// harness's fault-free runs stopped repeating their read counts (2 runs in 8); the cause of
/// that run-to-run difference is not found yet.
fn charge(block: &Block) -> usize {
    block.size() + ENTRY_OVERHEAD
}

impl BlockCache {
    /// A cache holding at most about `capacity_bytes` of blocks.
    pub(crate) fn new(capacity_bytes: usize) -> BlockCache {
        let per_shard = capacity_bytes / SHARDS;
        BlockCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard)))
                .collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            #[cfg(test)]
            new_buffers: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        // The high half picks the shard; the shard's map places entries by the low bits.
        let h = KeyHash::default().hash_one(key);
        // `SHARDS` is non-zero and the index is reduced modulo it.
        &self.shards[((h >> 32) as usize) % SHARDS]
    }

    /// A buffer for decrypting the block of table `id` at `offset`: a spare one of that
    /// block's shard, or an empty one (which `UnitOpener::open_with` replaces by one of the
    /// block's size).
    pub(crate) fn buffer(&self, id: u64, offset: u64) -> BytesMut {
        let spare = self.shard(&(id, offset)).lock().spare.pop();
        spare.unwrap_or_else(|| {
            #[cfg(test)]
            self.new_buffers.fetch_add(1, Ordering::Relaxed);
            BytesMut::new()
        })
    }

    /// How many decrypt buffers [`BlockCache::buffer`] allocated (no spare one to reuse).
    #[cfg(test)]
    pub(crate) fn new_buffers(&self) -> u64 {
        self.new_buffers.load(Ordering::Relaxed)
    }

    /// The cached block of table `id` at `offset`, counting a hit or a miss.
    pub(crate) fn get(&self, id: u64, offset: u64) -> Option<Arc<Block>> {
        let key = (id, offset);
        let found = self.shard(&key).lock().get(&key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches a block, evicting blocks unused for a sweep of the clock past the capacity.
    /// A block larger than a whole shard is not cached.
    pub(crate) fn insert(&self, id: u64, offset: u64, block: Arc<Block>) {
        let key = (id, offset);
        let mut s = self.shard(&key).lock();
        if charge(&block) > s.capacity {
            return;
        }
        s.insert(key, block);
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

    #[test]
    fn a_hit_gives_a_block_a_second_chance_and_slots_are_reused() -> Result<()> {
        let b = block(100)?;
        let mut shard = Shard::new(3 * charge(&b));
        for off in 0..3 {
            shard.insert((1, off), block(100)?);
        }
        // A fourth block: the hand clears every flag once, then evicts the oldest.
        shard.insert((1, 3), block(100)?);
        assert!(shard.get(&(1, 0)).is_none());
        assert_eq!(shard.usage, 3 * charge(&b));
        // A hit on 1 since the sweep: the next insertion passes over it and evicts 2.
        assert!(shard.get(&(1, 1)).is_some());
        shard.insert((1, 4), block(100)?);
        assert!(shard.get(&(1, 2)).is_none());
        for off in [1, 3, 4] {
            assert!(shard.get(&(1, off)).is_some(), "block {off}");
        }
        // The evicted blocks' slots were reused: no more slots than blocks ever held.
        assert_eq!(shard.slots.len(), 4);
        assert_eq!(shard.index.len(), 3);
        // Replacing a cached block charges the new one and uncharges the old.
        shard.insert((1, 4), block(100)?);
        assert_eq!(shard.usage, 3 * charge(&b));
        Ok(())
    }

    /// The bytes of a valid block with `len` entry bytes (see `block`).
    fn block_bytes(len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        data
    }

    fn spares(cache: &BlockCache) -> usize {
        cache.shards.iter().map(|s| s.lock().spare.len()).sum()
    }

    #[test]
    fn evicted_owned_blocks_lend_their_buffers_to_the_next_misses() -> Result<()> {
        let cache = BlockCache::new(SHARDS * 1000);
        // Owned buffers (as a sealed block's are) come back after eviction...
        for off in 0..200 {
            let data = BytesMut::from(&block_bytes(200)[..]).freeze();
            cache.insert(4, off, Arc::new(Block::new(data, Arc::from("t"), off)?));
        }
        let spare = spares(&cache);
        assert!(spare > 0 && spare <= SHARDS * SPARE_BUFFERS, "{spare}");
        // A spare is the 208-byte buffer of an evicted block; a new one is empty.
        let reused = (0..200)
            .filter(|&off| cache.buffer(4, off).capacity() == 208)
            .count();
        assert_eq!(reused, spare);
        assert_eq!(spares(&cache), 0);
        // ...but never a block someone still holds, nor a slice of shared bytes (a
        // plaintext block is a slice of the memory map).
        let cache = BlockCache::new(SHARDS * 1000);
        let held = Arc::new(Block::new(
            BytesMut::from(&block_bytes(200)[..]).freeze(),
            Arc::from("t"),
            0,
        )?);
        cache.insert(5, 0, Arc::clone(&held));
        let map = Bytes::from(block_bytes(200).repeat(2));
        for off in 1..200 {
            let slice = map.slice(..208);
            cache.insert(5, off, Arc::new(Block::new(slice, Arc::from("t"), off)?));
        }
        assert!(cache.get(5, 0).is_none());
        assert_eq!(held.size(), 208);
        assert_eq!(spares(&cache), 0);
        Ok(())
    }
}
