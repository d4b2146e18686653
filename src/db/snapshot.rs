//! Snapshots: a sequence number that reads can be made at, registered so that compaction
//! keeps every version a live snapshot can see.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::types::SeqNo;

/// Live snapshots, counted by sequence number.
#[derive(Default)]
pub(crate) struct SnapshotList {
    live: Mutex<BTreeMap<u64, usize>>,
}

impl SnapshotList {
    /// Registers a snapshot at the sequence number `current` returns, read under the list's
    /// lock: a compaction listing snapshots sees it, or started after it was taken.
    pub(crate) fn acquire(self: &Arc<Self>, current: impl FnOnce() -> SeqNo) -> Snapshot {
        let mut live = self.live.lock();
        let seq = current();
        *live.entry(seq.0).or_insert(0) += 1;
        drop(live);
        Snapshot {
            seq,
            list: Arc::clone(self),
        }
    }

    /// All live snapshot sequence numbers, ascending.
    pub(crate) fn all(&self) -> Vec<SeqNo> {
        self.live.lock().keys().map(|s| SeqNo(*s)).collect()
    }
}

/// A consistent point-in-time view of the whole database. Reads at a snapshot see exactly
/// the writes acknowledged before it was taken. Dropping it releases what only it could see.
pub struct Snapshot {
    seq: SeqNo,
    list: Arc<SnapshotList>,
}

impl Snapshot {
    /// The sequence number the snapshot reads at.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("seq", &self.seq).finish()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut live = self.list.live.lock();
        if let Some(n) = live.get_mut(&self.seq.0) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.seq.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_tracks_live_snapshots() {
        let l = Arc::new(SnapshotList::default());
        let a = l.acquire(|| SeqNo(5));
        let b = l.acquire(|| SeqNo(9));
        let a2 = l.acquire(|| SeqNo(5));
        assert_eq!(l.all(), vec![SeqNo(5), SeqNo(9)]);
        drop(a);
        assert_eq!(l.all(), vec![SeqNo(5), SeqNo(9)]);
        drop(a2);
        assert_eq!(l.all(), vec![SeqNo(9)]);
        drop(b);
        assert_eq!(l.all(), vec![]);
    }
}
