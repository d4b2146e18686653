//! A cursor over a memtable. It holds the current entry's key and value (cheap `Bytes`
//! clones) and re-seeks the skip list to move, so it borrows nothing and stays valid while
//! writers insert concurrently.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::{MemKey, MemTable};
use crate::error::Result;
use crate::iter::InternalIterator;

pub(crate) struct MemTableIter {
    mem: Arc<MemTable>,
    current: Option<(MemKey, Bytes)>,
}

impl MemTableIter {
    pub(crate) fn new(mem: Arc<MemTable>) -> MemTableIter {
        MemTableIter { mem, current: None }
    }

    fn set(&mut self, e: Option<crossbeam_skiplist::map::Entry<'_, MemKey, Bytes>>) {
        self.current = e.map(|e| (e.key().clone(), e.value().clone()));
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
        let mem = Arc::clone(&self.mem);
        let next = match &self.current {
            Some((k, _)) => mem.map().lower_bound(Bound::Excluded(k)),
            None => None,
        };
        self.set(next);
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        let mem = Arc::clone(&self.mem);
        let prev = match &self.current {
            Some((k, _)) => mem.map().upper_bound(Bound::Excluded(k)),
            None => None,
        };
        self.set(prev);
        Ok(())
    }

    fn key(&self) -> &[u8] {
        self.current
            .as_ref()
            .map(|(k, _)| &k.ikey()[..])
            .unwrap_or(&[])
    }

    fn value(&self) -> &[u8] {
        self.current.as_ref().map(|(_, v)| &v[..]).unwrap_or(&[])
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
}
