//! A cursor over a memtable. It holds the current entry (its key and value: one cheap
//! `Bytes` clone) and re-seeks the skip list to move, so it borrows nothing and stays valid while
//! writers insert concurrently. Going forward, one re-seek fetches a run of the entries
//! that follow (4 at first, doubling up to 256 while the cursor keeps going), so a scan
//! pays a seek per run instead of per step, and a point seek followed by a step or two
//! fetches no more than it uses. Going backward every step re-seeks: the skip list has no
//! back links (its own reverse iteration searches from the top at every step too).
//!
//! An entry inserted after its run was fetched is not seen. A reader never needs it: a
//! write is published (`last_seq`) only after its memtable insert, so everything at or
//! below a reader's sequence number was in the skip list before the reader started, and
//! anything inserted later is above it.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{MemKey, MemTable};
use crate::error::Result;
use crate::iter::InternalIterator;

/// Entries fetched by the first forward re-seek; each further one doubles it.
const FIRST_RUN: usize = 4;
/// The most entries one re-seek fetches.
const MAX_RUN: usize = 256;

type MemEntry<'a> = crossbeam_skiplist::map::Entry<'a, MemKey, ()>;

fn owned(e: MemEntry<'_>) -> MemKey {
    e.key().clone()
}

pub(crate) struct MemTableIter {
    mem: Arc<MemTable>,
    current: Option<MemKey>,
    /// The entries after `current`, nearest first, as one forward re-seek found them.
    ahead: VecDeque<MemKey>,
    /// How many entries the next forward re-seek fetches.
    run: usize,
}

impl MemTableIter {
    pub(crate) fn new(mem: Arc<MemTable>) -> MemTableIter {
        MemTableIter {
            mem,
            current: None,
            ahead: VecDeque::new(),
            run: FIRST_RUN,
        }
    }

    /// Lands on `e` after a seek or a backward step: the run fetched ahead is stale.
    fn set(&mut self, e: Option<MemEntry<'_>>) {
        self.ahead.clear();
        self.run = FIRST_RUN;
        self.current = e.map(owned);
    }
}

impl InternalIterator for MemTableIter {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        self.set(mem.map().front());
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        self.set(mem.map().back());
        Ok(())
    }

    fn seek(&mut self, ikey: &[u8]) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        let probe = MemKey::new(Bytes::copy_from_slice(ikey));
        self.set(mem.map().lower_bound(Bound::Included(&probe)));
        Ok(())
    }

    fn seek_for_prev(&mut self, ikey: &[u8]) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        let probe = MemKey::new(Bytes::copy_from_slice(ikey));
        self.set(mem.map().upper_bound(Bound::Included(&probe)));
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if let Some(e) = self.ahead.pop_front() {
            self.current = Some(e);
            return Ok(());
        }
        let Some(k) = self.current.take() else {
            return Ok(());
        };
        let mem = Arc::clone(&self.mem);
        let after = mem.map().range((Bound::Excluded(&k), Bound::Unbounded));
        self.ahead.extend(after.take(self.run).map(owned));
        self.run = (self.run * 2).min(MAX_RUN);
        self.current = self.ahead.pop_front();
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        let prev = match &self.current {
            Some(k) => mem.map().upper_bound(Bound::Excluded(k)),
            None => None,
        };
        self.set(prev);
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], MemKey::ikey)
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], MemKey::value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikey;
    use crate::types::{SeqNo, ValueKind};

    #[test]
    fn walks_both_ways_in_internal_key_order() -> Result<()> {
        let m = Arc::new(MemTable::new());
        m.insert(b"b", SeqNo(2), ValueKind::Put, b"b2");
        m.insert(b"a", SeqNo(1), ValueKind::Put, b"a1");
        m.insert(b"b", SeqNo(3), ValueKind::Put, b"b3");
        let mut it = MemTableIter::new(Arc::clone(&m));
        it.seek_to_first()?;
        let mut fwd = Vec::new();
        while it.valid() {
            fwd.push(it.value().to_vec());
            it.next()?;
        }
        assert_eq!(fwd, vec![b"a1".to_vec(), b"b3".to_vec(), b"b2".to_vec()]);
        it.seek_to_last()?;
        let mut back = Vec::new();
        while it.valid() {
            back.push(it.value().to_vec());
            it.prev()?;
        }
        assert_eq!(back, vec![b"b2".to_vec(), b"b3".to_vec(), b"a1".to_vec()]);
        it.seek(&ikey::seek_key(b"b", SeqNo(2)))?;
        assert_eq!(it.value(), b"b2");
        it.seek_for_prev(&ikey::seek_key(b"b", SeqNo(2)))?;
        assert_eq!(it.value(), b"b2");
        it.seek_for_prev(&ikey::seek_key(b"b", SeqNo(9)))?;
        assert_eq!(it.value(), b"a1");
        Ok(())
    }

    /// Random walks (seeks, runs of steps either way, turns) over more entries than the
    /// longest run, against the sorted entries.
    #[test]
    fn runs_fetched_ahead_follow_the_entries_through_turns_and_seeks() -> Result<()> {
        let m = Arc::new(MemTable::new());
        let n: u64 = 1500;
        for i in 0..n {
            // Two versions of every third key.
            m.insert(
                format!("k{i:05}").as_bytes(),
                SeqNo(i + 1),
                ValueKind::Put,
                &i.to_le_bytes(),
            );
            if i % 3 == 0 {
                m.insert(
                    format!("k{i:05}").as_bytes(),
                    SeqNo(n + i + 1),
                    ValueKind::Put,
                    b"new",
                );
            }
        }
        let mut model = Vec::new();
        let mut it = MemTableIter::new(Arc::clone(&m));
        it.seek_to_first()?;
        while it.valid() {
            model.push((it.key().to_vec(), it.value().to_vec()));
            it.next()?;
        }
        assert_eq!(model.len(), 2000);
        assert!(model
            .windows(2)
            .all(|w| ikey::compare(&w[0].0, &w[1].0).is_lt()));
        let mut x: u64 = 0x9e37_79b9;
        let mut rand = |bound: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound
        };
        for _ in 0..300 {
            // At a random entry, then a run of steps, then a run the other way.
            let mut at = rand(model.len() as u64) as usize;
            if rand(2) == 0 {
                it.seek(&model[at].0)?;
            } else {
                it.seek_for_prev(&model[at].0)?;
            }
            for _ in 0..3 {
                let forward = rand(2) == 0;
                for _ in 0..rand(600) {
                    if forward {
                        it.next()?;
                        at += 1;
                    } else {
                        it.prev()?;
                        match at.checked_sub(1) {
                            Some(a) => at = a,
                            None => at = usize::MAX,
                        }
                    }
                    match model.get(at) {
                        Some((k, v)) => {
                            assert!(it.valid());
                            assert_eq!((it.key(), it.value()), (&k[..], &v[..]));
                        }
                        None => {
                            assert!(!it.valid());
                            break;
                        }
                    }
                }
                if !it.valid() {
                    break;
                }
            }
        }
        Ok(())
    }
}
