//! The memtable: recent writes of one table, sorted by internal key, in a lock-free skip
//! list so readers never block writers.

mod iter;

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;

use crate::ikey;
use crate::types::{FileNumber, SeqNo, ValueKind};

pub(crate) use iter::MemTableIter;

/// An internal key ordered by `ikey::compare`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemKey(pub(crate) Bytes);

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        ikey::compare(&self.0, &other.0)
    }
}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Approximate per-entry bookkeeping cost of the skip list (node, tower, refcounts).
const ENTRY_OVERHEAD: usize = 96;

/// One table's in-memory write buffer.
pub(crate) struct MemTable {
    map: SkipMap<MemKey, Bytes>,
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
            approximate_bytes: AtomicUsize::new(0),
            next_log: AtomicU64::new(0),
        }
    }

    /// Adds one entry. Entries with the same (user key, seq) are not expected: sequence
    /// numbers are unique per write.
    pub(crate) fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let key = ikey::encode(user_key, seq, kind);
        let cost = key.len() + value.len() + ENTRY_OVERHEAD;
        self.map
            .insert(MemKey(Bytes::from(key)), Bytes::copy_from_slice(value));
        self.approximate_bytes
            .fetch_add(cost, AtomicOrdering::Relaxed);
    }

    /// The newest entry for `user_key` with a sequence number at or below `seq`.
    pub(crate) fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<(ValueKind, Bytes)> {
        let probe = MemKey(Bytes::from(ikey::seek_key(user_key, seq)));
        let entry = self.map.lower_bound(Bound::Included(&probe))?;
        let parsed = ikey::parse(&entry.key().0)?;
        if parsed.user_key != user_key {
            return None;
        }
        Some((parsed.kind, entry.value().clone()))
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

    pub(crate) fn map(&self) -> &SkipMap<MemKey, Bytes> {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
