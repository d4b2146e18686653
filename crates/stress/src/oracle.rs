//! The expected state, as in RocksDB's db_stress: for every (table, key) the recent
//! committed writes and the one in flight, so a concurrent read can be judged exactly.
//!
//! Writers hold the key's lock from before they announce a write ([`Oracle::begin`]) until
//! after they record its outcome ([`Oracle::commit`]), so the writes of one key are totally
//! ordered and at most one is in flight. A reader notes the newest committed generation
//! before it reads ([`Oracle::floor`]) and the key's history after ([`Oracle::allowed`]):
//! a linearizable read returns one of the writes from the floor on, committed or in flight.

use std::collections::VecDeque;

use parking_lot::{Mutex, MutexGuard};

/// One write of one key: its generation and whether it put a value or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    pub gen: u64,
    pub put: bool,
}

/// Writes kept per key; a reader racing more writes than this on one key is not judged.
const HISTORY: usize = 16;

#[derive(Debug)]
struct Slot {
    /// Committed writes, oldest first; generation 0 is "never written" (absent).
    history: VecDeque<Write>,
    pending: Option<Write>,
    next_gen: u64,
}

pub struct Oracle {
    keys: usize,
    slots: Vec<Mutex<Slot>>,
    locks: Vec<Mutex<()>>,
}

/// What a read may return for one key.
#[derive(Debug)]
pub struct Allowed {
    pub writes: Vec<Write>,
    /// False when the history no longer reaches the floor (too many racing writes).
    pub complete: bool,
}

impl Allowed {
    /// Whether a read that found generation `gen` (`None`: absent) is allowed.
    pub fn admits(&self, found: Option<u64>) -> bool {
        match found {
            Some(g) => self.writes.iter().any(|w| w.put && w.gen == g),
            None => self.writes.iter().any(|w| !w.put),
        }
    }
}

/// The held write locks of one operation, released on drop.
pub struct KeyLocks<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl Oracle {
    pub fn new(tables: usize, keys: usize) -> Oracle {
        let n = tables * keys;
        Oracle {
            keys,
            slots: (0..n)
                .map(|_| {
                    Mutex::new(Slot {
                        history: VecDeque::from([Write { gen: 0, put: false }]),
                        pending: None,
                        next_gen: 1,
                    })
                })
                .collect(),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn keys(&self) -> usize {
        self.keys
    }

    fn index(&self, t: usize, k: usize) -> usize {
        t * self.keys + k
    }

    fn slot(&self, t: usize, k: usize) -> &Mutex<Slot> {
        &self.slots[self.index(t, k)]
    }

    /// Locks the keys (deduplicated, in a global order, so writers never deadlock).
    pub fn lock(&self, keys: &[(usize, usize)]) -> KeyLocks<'_> {
        let mut idx: Vec<usize> = keys.iter().map(|&(t, k)| self.index(t, k)).collect();
        idx.sort_unstable();
        idx.dedup();
        KeyLocks {
            _guards: idx.into_iter().map(|i| self.locks[i].lock()).collect(),
        }
    }

    /// Announces a write of (t, k) (its lock held) and returns its generation.
    pub fn begin(&self, t: usize, k: usize, put: bool) -> u64 {
        let mut s = self.slot(t, k).lock();
        let gen = s.next_gen;
        s.next_gen += 1;
        s.pending = Some(Write { gen, put });
        gen
    }

    /// Records that the announced write of (t, k) is acknowledged.
    pub fn commit(&self, t: usize, k: usize) {
        let mut s = self.slot(t, k).lock();
        if let Some(w) = s.pending.take() {
            s.history.push_back(w);
            if s.history.len() > HISTORY {
                s.history.pop_front();
            }
        }
    }

    /// The generation of the newest acknowledged write: a read that starts now sees it or
    /// something newer.
    pub fn floor(&self, t: usize, k: usize) -> u64 {
        self.slot(t, k).lock().history.back().map_or(0, |w| w.gen)
    }

    /// What a read that started at `floor` and ended now may have returned.
    pub fn allowed(&self, t: usize, k: usize, floor: u64) -> Allowed {
        let s = self.slot(t, k).lock();
        let complete = s.history.front().is_some_and(|w| w.gen <= floor);
        let mut writes: Vec<Write> = s
            .history
            .iter()
            .filter(|w| w.gen >= floor)
            .copied()
            .collect();
        writes.extend(s.pending);
        Allowed { writes, complete }
    }

    /// The write with generation `gen` of (t, k), if still in the history.
    pub fn write_at(&self, t: usize, k: usize, gen: u64) -> Option<Write> {
        let s = self.slot(t, k).lock();
        s.history
            .iter()
            .chain(s.pending.iter())
            .find(|w| w.gen == gen)
            .copied()
    }

    /// With every writer stopped: the one state each key must have.
    pub fn settled(&self, t: usize, k: usize) -> Write {
        let s = self.slot(t, k).lock();
        s.history
            .back()
            .copied()
            .unwrap_or(Write { gen: 0, put: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_racing_a_write_may_see_either_side_but_not_older() {
        let o = Oracle::new(1, 4);
        let _l = o.lock(&[(0, 1)]);
        let g1 = o.begin(0, 1, true);
        o.commit(0, 1);
        let floor = o.floor(0, 1);
        let g2 = o.begin(0, 1, false);
        let a = o.allowed(0, 1, floor);
        assert!(a.complete);
        assert!(a.admits(Some(g1)));
        assert!(a.admits(None), "the in-flight delete");
        o.commit(0, 1);
        let a = o.allowed(0, 1, o.floor(0, 1));
        assert!(
            !a.admits(Some(g1)),
            "a value older than an acknowledged delete"
        );
        assert!(a.admits(None));
        assert_eq!(
            o.settled(0, 1),
            Write {
                gen: g2,
                put: false
            }
        );
        // Never written: only absent.
        assert!(!o.allowed(0, 2, 0).admits(Some(0)));
        assert!(o.allowed(0, 2, 0).admits(None));
    }
}
