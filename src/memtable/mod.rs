//! The memtable: recent writes of one table, sorted by internal key, in a lock-free skip
//! list so readers never block writers.
//!
//! Keys and values live in an arena of shared chunks: an insert copies its internal key
//! and value, adjacent, into the current chunk and stores one `Bytes` view of both in the
//! skip list's key, so the only allocation per insert is the skip list's node (about one
//! chunk allocation per 500 entries of 116 bytes) and an entry costs one reference count.
//! A view handed to a reader keeps its whole chunk alive.

mod iter;

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_skiplist::SkipMap;
use parking_lot::Mutex;

use crate::ikey;
use crate::types::{FileNumber, SeqNo, ValueKind};

pub(crate) use iter::MemTableIter;

/// An internal key ordered by `ikey::compare`, with the first bytes of its user key kept
/// beside it: most comparisons in the skip list are decided by those, in the node itself,
/// without reading the key's bytes from the arena (a second cache miss) or calling
/// `memcmp`. Sixteen bytes, because keys commonly share a long head (db_bench's are
/// zero-padded decimals; applications prefix theirs) and are often no longer than that.
///
/// The entry's value follows the internal key in the same view (`entry`), so the skip
/// list's value type is `()`. Equality and order are of the internal key only.
#[derive(Clone)]
pub(crate) struct MemKey {
    /// The user key's first 16 bytes, big-endian, zero-padded: `head(a) < head(b)` implies
    /// `a < b` (where heads differ, either both keys have a byte there and those bytes
    /// decide, or the shorter key has ended and is a prefix of the other).
    head: (u64, u64),
    /// The internal key, then the value.
    entry: Bytes,
    /// Where the internal key ends in `entry`.
    key_len: usize,
}

impl MemKey {
    /// A key without a value (a probe).
    pub(crate) fn new(ikey: Bytes) -> MemKey {
        let key_len = ikey.len();
        MemKey::with_value(ikey, key_len)
    }

    /// The key of an entry whose internal key is `entry[..key_len]` and value the rest.
    fn with_value(entry: Bytes, key_len: usize) -> MemKey {
        // The callers' `key_len` is within `entry`; clamped so that `ikey` and `value`
        // below are total.
        let key_len = key_len.min(entry.len());
        let user = ikey::user_key(entry.get(..key_len).unwrap_or(&[]));
        let mut head = [0u8; 16];
        for (h, b) in head.iter_mut().zip(user) {
            *h = *b;
        }
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = head;
        MemKey {
            head: (
                u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
                u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
            ),
            entry,
            key_len,
        }
    }

    /// The internal key.
    pub(crate) fn ikey(&self) -> &[u8] {
        self.entry.get(..self.key_len).unwrap_or(&[])
    }

    /// The value (empty for a probe and a delete).
    pub(crate) fn value(&self) -> &[u8] {
        self.entry.get(self.key_len..).unwrap_or(&[])
    }

    /// The value as a view of the arena chunk (a reference count, no copy).
    pub(crate) fn value_bytes(&self) -> Bytes {
        self.entry.slice(self.key_len..)
    }
}

/// Lengths only: an encrypted table's keys and values are plaintext here, and a debug print
/// must not carry them into a log.
impl std::fmt::Debug for MemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemKey")
            .field("key_len", &self.key_len)
            .field("value_len", &(self.entry.len() - self.key_len))
            .finish()
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for MemKey {}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| ikey::compare(self.ikey(), other.ikey()))
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Approximate per-entry bookkeeping cost of the skip list (node, tower, refcounts).
const ENTRY_OVERHEAD: usize = 96;

/// Bytes of one arena chunk.
const ARENA_CHUNK: usize = 64 << 10;
/// Entries larger than this get an allocation of their own instead of a chunk's tail.
const ARENA_MAX_SHARED: usize = ARENA_CHUNK / 8;

/// One table's in-memory write buffer.
pub(crate) struct MemTable {
    map: SkipMap<MemKey, ()>,
    /// The unused tail of the current arena chunk. Inserts of synced writes run
    /// concurrently (outside the write lock), hence the lock; it is held for two copies.
    arena: Mutex<BytesMut>,
    approximate_bytes: AtomicUsize,
    /// The WAL segment from which this memtable's writes come; set when it is frozen to the
    /// segment that follows its last write (the table's log number after it is flushed).
    next_log: AtomicU64,
}

impl Default for MemTable {
    fn default() -> Self {
        MemTable::new()
    }
}

impl MemTable {
    pub(crate) fn new() -> MemTable {
        MemTable {
            map: SkipMap::new(),
            arena: Mutex::new(BytesMut::new()),
            approximate_bytes: AtomicUsize::new(0),
            next_log: AtomicU64::new(0),
        }
    }

    /// Adds one entry. Entries with the same (user key, seq) are not expected: sequence
    /// numbers are unique per write.
    pub(crate) fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let key_len = user_key.len() + ikey::TRAILER_LEN;
        let len = key_len + value.len();
        let entry = if len > ARENA_MAX_SHARED {
            let mut v = Vec::with_capacity(len);
            ikey::encode_into(&mut v, user_key, seq, kind);
            v.extend_from_slice(value);
            Bytes::from(v)
        } else {
            let mut chunk = self.arena.lock();
            if chunk.capacity() - chunk.len() < len {
                *chunk = BytesMut::with_capacity(ARENA_CHUNK);
            }
            chunk.extend_from_slice(user_key);
            chunk.put_u64_le(ikey::pack_trailer(seq, kind));
            chunk.extend_from_slice(value);
            // A split of a shared chunk moves a reference count, not bytes.
            chunk.split_to(len).freeze()
        };
        let cost = len + ENTRY_OVERHEAD;
        self.map.insert(MemKey::with_value(entry, key_len), ());
        self.approximate_bytes
            .fetch_add(cost, AtomicOrdering::Relaxed);
    }

    /// The newest entry for `user_key` with a sequence number at or below `seq`.
    pub(crate) fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<(ValueKind, Bytes)> {
        let probe = MemKey::new(Bytes::from(ikey::seek_key(user_key, seq)));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let parsed = ikey::parse(entry.key().ikey())?;
        if parsed.user_key != user_key {
            return None;
        }
        Some((parsed.kind, entry.key().value_bytes()))
    }

    /// Bytes this memtable costs, approximately.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.approximate_bytes.load(AtomicOrdering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    #[cfg(feature = "bench-internals")]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn set_next_log(&self, segment: FileNumber) {
        self.next_log.store(segment.0, AtomicOrdering::Release);
    }

    pub(crate) fn next_log(&self) -> FileNumber {
        FileNumber(self.next_log.load(AtomicOrdering::Acquire))
    }

    pub(crate) fn map(&self) -> &SkipMap<MemKey, ()> {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The prefix shortcut never changes the order: short keys, zero bytes and keys
        /// that are prefixes of each other included.
        #[test]
        fn mem_key_order_is_internal_key_order(
            a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..24),
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..24),
            sa in 0u64..4,
            sb in 0u64..4,
        ) {
            let ka = ikey::encode(&a, SeqNo(sa), ValueKind::Put);
            let kb = ikey::encode(&b, SeqNo(sb), ValueKind::Put);
            let (ma, mb) = (MemKey::new(Bytes::from(ka.clone())), MemKey::new(Bytes::from(kb.clone())));
            prop_assert_eq!(ma.cmp(&mb), ikey::compare(&ka, &kb));
            // A key and its extension by zero bytes share a prefix and still order.
            let mut longer = a.clone();
            longer.push(0);
            let kl = ikey::encode(&longer, SeqNo(sa), ValueKind::Put);
            prop_assert_eq!(ma.cmp(&MemKey::new(Bytes::from(kl.clone()))), ikey::compare(&ka, &kl));
        }
    }

    #[test]
    fn a_debug_print_of_an_entry_shows_no_key_or_value_bytes() {
        let m = MemTable::new();
        m.insert(b"user-key", SeqNo(1), ValueKind::Put, b"card 4111");
        let e = m.map().front().expect("one entry");
        let printed = format!("{:?}", e.key());
        assert!(
            !printed.contains("user-key") && !printed.contains("4111"),
            "{printed}"
        );
        assert!(printed.contains("value_len: 9"), "{printed}");
    }

    #[test]
    fn get_sees_newest_visible_version() {
        let m = MemTable::new();
        m.insert(b"a", SeqNo(1), ValueKind::Put, b"v1");
        m.insert(b"a", SeqNo(3), ValueKind::Put, b"v3");
        m.insert(b"a", SeqNo(5), ValueKind::Delete, b"");
        m.insert(b"b", SeqNo(2), ValueKind::Put, b"bv");
        assert_eq!(m.get(b"a", SeqNo(0)), None);
        assert_eq!(
            m.get(b"a", SeqNo(2)).map(|(_, v)| v),
            Some(Bytes::from_static(b"v1"))
        );
        assert_eq!(
            m.get(b"a", SeqNo(4)).map(|(_, v)| v),
            Some(Bytes::from_static(b"v3"))
        );
        assert_eq!(
            m.get(b"a", SeqNo(9)).map(|(k, _)| k),
            Some(ValueKind::Delete)
        );
        assert_eq!(m.get(b"ab", SeqNo(9)), None);
        assert_eq!(
            m.get(b"b", SeqNo(9)).map(|(_, v)| v),
            Some(Bytes::from_static(b"bv"))
        );
        assert!(m.approximate_bytes() > 0);
    }
}
