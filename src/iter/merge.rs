//! Merges sorted children (memtables, SSTables, levels) into one sorted cursor, both ways.
//!
//! Invariant: when moving forward every valid child is positioned at or after the current
//! key; when moving backward, at or before it. Changing direction re-seeks the others.

use std::cmp::Ordering;

use crate::error::Result;
use crate::ikey;
use crate::iter::InternalIterator;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Reverse,
}

pub(crate) struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
    direction: Direction,
}

impl MergingIterator {
    pub(crate) fn new(children: Vec<Box<dyn InternalIterator>>) -> MergingIterator {
        MergingIterator {
            children,
            current: None,
            direction: Direction::Forward,
        }
    }

    fn find_smallest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if ikey::compare(c.key(), self.children[b].key()) != Ordering::Less => {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }

    fn find_largest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate().rev() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if ikey::compare(c.key(), self.children[b].key()) != Ordering::Greater => {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_first()?;
        }
        self.direction = Direction::Forward;
        self.find_smallest();
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_last()?;
        }
        self.direction = Direction::Reverse;
        self.find_largest();
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.direction = Direction::Forward;
        self.find_smallest();
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek_for_prev(target)?;
        }
        self.direction = Direction::Reverse;
        self.find_largest();
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        let Some(cur) = self.current else {
            return Ok(());
        };
        if self.direction != Direction::Forward {
            let key = self.children[cur].key().to_vec();
            for (i, c) in self.children.iter_mut().enumerate() {
                if i == cur {
                    continue;
                }
                c.seek(&key)?;
                if c.valid() && ikey::compare(c.key(), &key) == Ordering::Equal {
                    c.next()?;
                }
            }
            self.direction = Direction::Forward;
        }
        self.children[cur].next()?;
        self.find_smallest();
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let Some(cur) = self.current else {
            return Ok(());
        };
        if self.direction != Direction::Reverse {
            let key = self.children[cur].key().to_vec();
            for (i, c) in self.children.iter_mut().enumerate() {
                if i == cur {
                    continue;
                }
                c.seek_for_prev(&key)?;
                if c.valid() && ikey::compare(c.key(), &key) == Ordering::Equal {
                    c.prev()?;
                }
            }
            self.direction = Direction::Reverse;
        }
        self.children[cur].prev()?;
        self.find_largest();
        Ok(())
    }

    fn key(&self) -> &[u8] {
        match self.current {
            Some(i) => self.children[i].key(),
            None => &[],
        }
    }

    fn value(&self) -> &[u8] {
        match self.current {
            Some(i) => self.children[i].value(),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memtable::{MemTable, MemTableIter};
    use crate::types::{SeqNo, ValueKind};

    fn mem(entries: &[(&[u8], u64)]) -> Box<dyn InternalIterator> {
        let m = Arc::new(MemTable::new());
        for (k, s) in entries {
            m.insert(k, SeqNo(*s), ValueKind::Put, k);
        }
        Box::new(MemTableIter::new(m))
    }

    fn keys_of(it: &mut MergingIterator, forward: bool) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut out = Vec::new();
        while it.valid() {
            let p = ikey::parse(it.key()).unwrap_or_else(|| panic!("valid key"));
            out.push((p.user_key.to_vec(), p.seq.0));
            if forward {
                it.next()?;
            } else {
                it.prev()?;
            }
        }
        Ok(out)
    }

    #[test]
    fn merges_both_ways_and_switches_direction() -> Result<()> {
        let mut it = MergingIterator::new(vec![
            mem(&[(b"a", 1), (b"c", 3)]),
            mem(&[(b"b", 2), (b"c", 5)]),
            mem(&[]),
        ]);
        it.seek_to_first()?;
        let fwd = keys_of(&mut it, true)?;
        assert_eq!(
            fwd,
            vec![
                (b"a".to_vec(), 1),
                (b"b".to_vec(), 2),
                (b"c".to_vec(), 5),
                (b"c".to_vec(), 3)
            ]
        );
        it.seek_to_last()?;
        let mut back = keys_of(&mut it, false)?;
        back.reverse();
        assert_eq!(back, fwd);
        // Forward to "b", then back one, then forward again.
        it.seek(&ikey::seek_key(b"b", SeqNo::MAX))?;
        assert_eq!(ikey::user_key(it.key()), b"b");
        it.prev()?;
        assert_eq!(ikey::user_key(it.key()), b"a");
        it.next()?;
        assert_eq!(ikey::user_key(it.key()), b"b");
        it.next()?;
        assert_eq!(ikey::parse(it.key()).map(|p| p.seq), Some(SeqNo(5)));
        Ok(())
    }
}
