//! The user-facing range iterator: newest visible version of each key in a range, forward
//! or reverse, streamed lazily from a merging cursor over one consistent view.

use std::ops::Bound;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::ikey;
use crate::iter::InternalIterator;
use crate::types::{SeqNo, ValueKind};

use crate::iter::MergingIterator;

/// Iterates `(key, value)` pairs of a table in key order (or reverse key order).
/// Holds a consistent view: writes, flushes and compactions after its creation are not seen.
pub struct RangeIter {
    inner: MergingIterator,
    /// Keeps the memtables and files of the view alive while the cursor reads them.
    _pin: Box<dyn Send + Sync>,
    seq: SeqNo,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    started: bool,
    done: bool,
    /// Forward: the user key most recently returned or skipped (older versions follow it).
    last_key: Option<Vec<u8>>,
    /// Reverse: the user key being resolved (a buffer reused across entries).
    reverse_key: Vec<u8>,
    /// Bytes cut from the front of every key returned (the key-space byte of a table with
    /// local indexes, `crate::index::local`).
    strip: usize,
}

impl std::fmt::Debug for RangeIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeIter")
            .field("seq", &self.seq)
            .field("reverse", &self.reverse)
            .finish_non_exhaustive()
    }
}

impl RangeIter {
    pub(crate) fn new(
        inner: MergingIterator,
        pin: Box<dyn Send + Sync>,
        seq: SeqNo,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        reverse: bool,
    ) -> RangeIter {
        RangeIter {
            inner,
            _pin: pin,
            seq,
            lower,
            upper,
            reverse,
            started: false,
            done: false,
            last_key: None,
            reverse_key: Vec::new(),
            strip: 0,
        }
    }

    /// Returns each key without its first `n` bytes (the range's bounds must keep every
    /// key at least that long).
    pub(crate) fn strip_key_prefix(mut self, n: usize) -> RangeIter {
        self.strip = n;
        self
    }

    /// Iterates in reverse key order from the upper bound down.
    pub fn rev(mut self) -> RangeIter {
        if !self.started {
            self.reverse = !self.reverse;
        }
        self
    }

    fn below_lower(&self, k: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => k < l.as_slice(),
            Bound::Excluded(l) => k <= l.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn above_upper(&self, k: &[u8]) -> bool {
        match &self.upper {
            Bound::Included(u) => k > u.as_slice(),
            Bound::Excluded(u) => k >= u.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn start(&mut self) -> Result<()> {
        self.started = true;
        if self.reverse {
            match &self.upper {
                // The last internal key of user key `u` has the smallest trailer (seq 0, Delete).
                Bound::Included(u) => {
                    self.inner
                        .seek_for_prev(&ikey::encode(u, SeqNo(0), ValueKind::Delete))?
                }
                Bound::Excluded(u) => self.inner.seek_for_prev(&ikey::seek_key(u, SeqNo::MAX))?,
                Bound::Unbounded => self.inner.seek_to_last()?,
            }
        } else {
            match &self.lower {
                Bound::Included(l) | Bound::Excluded(l) => {
                    self.inner.seek(&ikey::seek_key(l, SeqNo::MAX))?
                }
                Bound::Unbounded => self.inner.seek_to_first()?,
            }
        }
        Ok(())
    }

    fn next_forward(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        while self.inner.valid() {
            // Borrowed from the cursor: a skipped version costs no copy.
            let (key, seq, kind) = parse(self.inner.key())?;
            if self.above_upper(key) {
                return Ok(None);
            }
            if seq > self.seq || self.last_key.as_deref() == Some(key) || self.below_lower(key) {
                self.inner.next()?;
                continue;
            }
            let out = (kind == ValueKind::Put).then(|| {
                (
                    Bytes::copy_from_slice(key),
                    Bytes::copy_from_slice(self.inner.value()),
                )
            });
            // The last key's buffer is reused: one allocation per entry fewer.
            match &mut self.last_key {
                Some(last) => {
                    last.clear();
                    last.extend_from_slice(key);
                }
                None => self.last_key = Some(key.to_vec()),
            }
            self.inner.next()?;
            if out.is_some() {
                return Ok(out);
            }
        }
        Ok(None)
    }

    fn next_reverse(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        while self.inner.valid() {
            let mut key = std::mem::take(&mut self.reverse_key);
            key.clear();
            key.extend_from_slice(parse(self.inner.key())?.0);
            if self.below_lower(&key) {
                self.reverse_key = key;
                return Ok(None);
            }
            // Backward, one user key's versions come oldest first: keep the last visible one.
            let mut best: Option<(ValueKind, Bytes)> = None;
            while self.inner.valid() {
                let (k, seq, kind) = parse(self.inner.key())?;
                if k != key.as_slice() {
                    break;
                }
                if seq <= self.seq {
                    let value = match kind {
                        ValueKind::Put => Bytes::copy_from_slice(self.inner.value()),
                        ValueKind::Delete => Bytes::new(),
                    };
                    best = Some((kind, value));
                }
                self.inner.prev()?;
            }
            let found = match best {
                Some((ValueKind::Put, v)) if !self.above_upper(&key) => {
                    Some((Bytes::copy_from_slice(&key), v))
                }
                _ => None,
            };
            self.reverse_key = key;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// The user key, sequence number and kind of an internal key from the merged view.
fn parse(internal: &[u8]) -> Result<(&[u8], SeqNo, ValueKind)> {
    let p = ikey::parse(internal).ok_or_else(|| Error::Corruption {
        file: "<merged view>".into(),
        offset: 0,
        what: "malformed internal key".into(),
    })?;
    Ok((p.user_key, p.seq, p.kind))
}

impl Iterator for RangeIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = (|| {
            if !self.started {
                self.start()?;
            }
            if self.reverse {
                self.next_reverse()
            } else {
                self.next_forward()
            }
        })();
        match step {
            Ok(Some((k, v))) if self.strip > 0 => match k.get(self.strip..) {
                Some(_) => Some(Ok((k.slice(self.strip..), v))),
                None => {
                    self.done = true;
                    Some(Err(Error::Internal(
                        "a key shorter than its key space".into(),
                    )))
                }
            },
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The smallest key greater than every key with `prefix`, or `None` if there is none.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < u8::MAX {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memtable::{MemTable, MemTableIter};

    fn view(m: &Arc<MemTable>) -> MergingIterator {
        MergingIterator::new(vec![Box::new(MemTableIter::new(Arc::clone(m)))])
    }

    fn collect(it: RangeIter) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }

    #[test]
    fn newest_visible_versions_within_bounds_both_ways() -> Result<()> {
        let m = Arc::new(MemTable::new());
        m.insert(b"a", SeqNo(1), ValueKind::Put, b"a1");
        m.insert(b"b", SeqNo(2), ValueKind::Put, b"b2");
        m.insert(b"b", SeqNo(4), ValueKind::Put, b"b4");
        m.insert(b"c", SeqNo(3), ValueKind::Put, b"c3");
        m.insert(b"c", SeqNo(5), ValueKind::Delete, b"");
        m.insert(b"d", SeqNo(6), ValueKind::Put, b"d6");
        let all = |seq, rev| {
            let it = RangeIter::new(
                view(&m),
                Box::new(()),
                SeqNo(seq),
                Bound::Unbounded,
                Bound::Unbounded,
                rev,
            );
            collect(it)
        };
        let at9 = all(9, false)?;
        assert_eq!(
            at9,
            vec![
                (b"a".to_vec(), b"a1".to_vec()),
                (b"b".to_vec(), b"b4".to_vec()),
                (b"d".to_vec(), b"d6".to_vec())
            ]
        );
        let mut rev9 = all(9, true)?;
        rev9.reverse();
        assert_eq!(rev9, at9);
        let at3 = all(3, false)?;
        assert_eq!(
            at3,
            vec![
                (b"a".to_vec(), b"a1".to_vec()),
                (b"b".to_vec(), b"b2".to_vec()),
                (b"c".to_vec(), b"c3".to_vec())
            ]
        );
        let mut rev3 = all(3, true)?;
        rev3.reverse();
        assert_eq!(rev3, at3);
        let bounded = |rev| {
            collect(RangeIter::new(
                view(&m),
                Box::new(()),
                SeqNo(9),
                Bound::Excluded(b"a".to_vec()),
                Bound::Included(b"d".to_vec()),
                rev,
            ))
        };
        assert_eq!(bounded(false)?.len(), 2);
        assert_eq!(
            bounded(true)?.first().map(|kv| kv.0.clone()),
            Some(b"d".to_vec())
        );
        Ok(())
    }

    #[test]
    fn prefix_successor_carries() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    }
}
