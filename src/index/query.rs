//! Reading an index: ranges and prefixes of index keys, forward or reverse, at a snapshot,
//! yielding (index key, primary key, value); `get` on a unique index.
//!
//! Every entry is checked against its item at the same snapshot: the item must exist and
//! its value must still give that index key. Maintenance keeps the index exact, so this
//! skips nothing in a healthy database; it is what makes "a stale entry is never returned"
//! hold by construction rather than by the write path alone.

use std::ops::{Bound, RangeBounds};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::db::{prefix_successor, RangeIter, Snapshot, Table, TableState};
use crate::error::{Error, Result};
use crate::types::SeqNo;

use super::backfill::CHECKPOINT_KEY;
use super::{key, IndexDef, IndexStatus};

/// One item found through an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index key (an attribute value of the item).
    pub index_key: Bytes,
    /// The item's primary key in the table.
    pub primary_key: Bytes,
    /// The item's value, as of the query's snapshot.
    pub value: Bytes,
}

/// A handle on one ready index of a table (`Table::index`).
#[derive(Clone)]
pub struct Index {
    table: Table,
    /// The LSM holding the entries: the index's own table, or for a local index its table.
    state: Arc<TableState>,
    def: Arc<IndexDef>,
    /// What precedes every entry key in `state`: a local index's slot prefix, or nothing.
    prefix: Vec<u8>,
    /// Bytes of an entry's stored primary key that are not the item's key (the key-space
    /// byte of a table with local indexes).
    strip: usize,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("table", &self.table.name())
            .field("index", &self.def.decl.name)
            .finish_non_exhaustive()
    }
}

fn owned<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The entry-key range holding exactly the entries whose index key is in (`lower`, `upper`).
fn entry_bounds(lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    // Every entry of index key k lies in [exact_prefix(k), successor(exact_prefix(k))).
    let after = |k: &[u8]| prefix_successor(&key::exact_prefix(k));
    let lo = match lower {
        Bound::Included(k) => Bound::Included(key::exact_prefix(&k)),
        Bound::Excluded(k) => after(&k).map_or(Bound::Excluded(Vec::new()), Bound::Included),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match upper {
        Bound::Included(k) => after(&k).map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Excluded(k) => Bound::Excluded(key::exact_prefix(&k)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (lo, hi)
}

impl Index {
    pub(crate) fn open(table: &Table, name: &str) -> Result<Index> {
        // A locked table's indexes are locked with it (and unlock with it).
        table
            .db
            .core()
            .authorize(table.db.principal(), &table.state)?;
        let unavailable = |reason: &str| Error::IndexUnavailable {
            table: table.name().to_owned(),
            index: name.to_owned(),
            reason: reason.to_owned(),
        };
        let strip = usize::from(table.state.has_local_layout());
        if let Some(def) = table
            .state
            .local_indexes()
            .iter()
            .find(|d| d.decl.name == name)
        {
            return Ok(Index {
                table: table.clone(),
                state: Arc::clone(&table.state),
                def: Arc::clone(def),
                prefix: super::local::slot_prefix(def.local.unwrap_or_default()).to_vec(),
                strip,
            });
        }
        let state = table
            .state
            .indexes
            .read()
            .iter()
            .find(|s| s.index.get().is_some_and(|d| d.decl.name == name))
            .cloned()
            .ok_or_else(|| unavailable("no index of that name"))?;
        let def = state
            .index
            .get()
            .cloned()
            .ok_or_else(|| unavailable("no index of that name"))?;
        if !def.is_ready() {
            return Err(unavailable("its backfill has not completed"));
        }
        Ok(Index {
            table: table.clone(),
            state,
            def,
            prefix: Vec::new(),
            strip,
        })
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.def.decl.name
    }

    /// Its state, as `Table::indexes` reports it.
    pub fn status(&self) -> IndexStatus {
        self.def.status(&self.state)
    }

    /// Items whose index key is in `range`, by index key then primary key (`.rev()` for
    /// reverse order). Sees the table and the index as they were when called.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<IndexIter> {
        self.iter_at(owned(range.start_bound()), owned(range.end_bound()), None)
    }

    /// Like [`Index::range`], as of `snapshot`.
    pub fn range_at_snapshot<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> Result<IndexIter> {
        self.iter_at(
            owned(range.start_bound()),
            owned(range.end_bound()),
            Some(snapshot),
        )
    }

    /// Items whose index key starts with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Result<IndexIter> {
        self.prefix_at(prefix, None)
    }

    /// Like [`Index::prefix`], as of `snapshot` (`None`: now).
    pub fn prefix_at(
        &self,
        prefix: impl AsRef<[u8]>,
        snapshot: Option<&Snapshot>,
    ) -> Result<IndexIter> {
        let p = key::starts_with_prefix(prefix.as_ref());
        let upper = prefix_successor(&p).map_or(Bound::Unbounded, Bound::Excluded);
        self.entries_at(Bound::Included(p), upper, snapshot)
    }

    /// The item whose index key is `index_key`, on a unique index.
    pub fn get(&self, index_key: impl AsRef<[u8]>) -> Result<Option<IndexEntry>> {
        self.get_at(index_key, None)
    }

    /// Like [`Index::get`], as of `snapshot` (`None`: now).
    pub fn get_at(
        &self,
        index_key: impl AsRef<[u8]>,
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<IndexEntry>> {
        if !self.def.decl.unique {
            return Err(Error::InvalidArgument(format!(
                "index {:?} is not unique: use prefix or range",
                self.def.decl.name
            )));
        }
        let k = index_key.as_ref();
        let (lo, hi) = entry_bounds(Bound::Included(k.to_vec()), Bound::Included(k.to_vec()));
        self.entries_at(lo, hi, snapshot)?.next().transpose()
    }

    /// Checks the index against its table at one snapshot, entry by entry: how many
    /// entries it holds, how many are stale (their item is gone or no longer has that key;
    /// queries skip them, maintenance should leave none) and how many of the items' keys
    /// have no entry. Reads the whole index and the whole table.
    pub fn check(&self) -> Result<IndexCheck> {
        let snap = self.table.db.snapshot();
        let seq = Some(snap.seq());
        let mut report = IndexCheck::default();
        let mut entries = std::collections::BTreeSet::new();
        let (from, to) = self.all_entries();
        for item in self.table.db.range(&self.state, from, to, seq)? {
            let (entry, _) = item?;
            report.entries += 1;
            let entry = entry.get(self.prefix.len()..).unwrap_or_default();
            let (index_key, pk) = key::decode(entry).ok_or_else(|| Error::Corruption {
                file: format!("index {:?}", self.def.decl.name),
                offset: 0,
                what: "an index entry key without its terminator".into(),
            })?;
            let value = self.table.db.get(&self.table.state, pk, seq)?;
            if !self
                .def
                .extractor
                .keys(value.as_deref())
                .contains(&index_key)
            {
                report.stale += 1;
            }
            entries.insert(entry.to_vec());
        }
        let (from, to) = if self.table.state.has_local_layout() {
            super::local::item_bounds(Bound::Unbounded, Bound::Unbounded)
        } else {
            (Bound::Unbounded, Bound::Unbounded)
        };
        // Stored keys: an entry's primary key part is the item's stored key.
        for item in self.table.db.range(&self.table.state, from, to, seq)? {
            let (pk, value) = item?;
            for k in self.def.extractor.keys(Some(&value)) {
                if !entries.contains(&key::encode(&k, &pk)) {
                    report.missing += 1;
                }
            }
        }
        Ok(report)
    }

    /// The stored range of every entry of this index (never the backfill's checkpoint).
    fn all_entries(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        match self.def.local {
            Some(slot) => super::local::slot_bounds(slot),
            None => (Bound::Excluded(CHECKPOINT_KEY.to_vec()), Bound::Unbounded),
        }
    }

    fn iter_at(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        snapshot: Option<&Snapshot>,
    ) -> Result<IndexIter> {
        let (lo, hi) = entry_bounds(lower, upper);
        self.entries_at(lo, hi, snapshot)
    }

    fn entries_at(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        snapshot: Option<&Snapshot>,
    ) -> Result<IndexIter> {
        // One sequence number for the index and the table lookups; a snapshot of our own
        // when none was given keeps the versions at it from being compacted away.
        if let Some(s) = snapshot {
            if s.seq().0 < self.def.ready_seq.load(Ordering::Acquire) {
                return Err(Error::IndexUnavailable {
                    table: self.table.name().to_owned(),
                    index: self.def.decl.name.clone(),
                    reason: "the snapshot is older than the index's backfill".into(),
                });
            }
        }
        let (lower, upper) = if self.prefix.is_empty() {
            // The backfill's checkpoint (the empty key) sorts before every entry: never read.
            let lower = match lower {
                Bound::Unbounded => Bound::Excluded(CHECKPOINT_KEY.to_vec()),
                Bound::Included(k) if k.as_slice() == CHECKPOINT_KEY => Bound::Excluded(k),
                other => other,
            };
            (lower, upper)
        } else {
            // A local index: its slot's part of the table's key space, and nothing else.
            let (all_lo, all_hi) = self.all_entries();
            let with_prefix = |k: Vec<u8>| [self.prefix.as_slice(), &k].concat();
            let lower = match lower {
                Bound::Unbounded => all_lo,
                Bound::Included(k) => Bound::Included(with_prefix(k)),
                Bound::Excluded(k) => Bound::Excluded(with_prefix(k)),
            };
            let upper = match upper {
                Bound::Unbounded => all_hi,
                Bound::Included(k) => Bound::Included(with_prefix(k)),
                Bound::Excluded(k) => Bound::Excluded(with_prefix(k)),
            };
            (lower, upper)
        };
        let own = match snapshot {
            Some(_) => None,
            None => Some(self.table.db.snapshot()),
        };
        let seq = snapshot.or(own.as_ref()).map(Snapshot::seq);
        let inner = self.table.db.range(&self.state, lower, upper, seq)?;
        Ok(IndexIter {
            inner,
            table: self.table.clone(),
            def: Arc::clone(&self.def),
            prefix: self.prefix.len(),
            strip: self.strip,
            seq: seq.unwrap_or(SeqNo(0)),
            _snapshot: own,
        })
    }
}

/// What [`Index::check`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct IndexCheck {
    /// Entries in the index.
    pub entries: u64,
    /// Entries whose item is gone or no longer gives that key.
    pub stale: u64,
    /// Index keys of items that have no entry.
    pub missing: u64,
}

/// Items found through an index, with their values at one snapshot.
pub struct IndexIter {
    inner: RangeIter,
    table: Table,
    def: Arc<IndexDef>,
    /// Bytes before each entry key (a local index's slot prefix).
    prefix: usize,
    /// Bytes of a stored primary key that are not the item's key.
    strip: usize,
    seq: SeqNo,
    _snapshot: Option<Snapshot>,
}

impl std::fmt::Debug for IndexIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexIter")
            .field("index", &self.def.decl.name)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl IndexIter {
    /// Iterates in reverse order (index key descending, then primary key descending).
    pub fn rev(mut self) -> IndexIter {
        self.inner = self.inner.rev();
        self
    }

    fn resolve(&self, entry: &[u8]) -> Result<Option<IndexEntry>> {
        let malformed = || Error::Corruption {
            file: format!("index {:?}", self.def.decl.name),
            offset: 0,
            what: "an index entry key without its key-space prefix".into(),
        };
        let entry = entry.get(self.prefix..).ok_or_else(malformed)?;
        let (index_key, pk) = key::decode(entry).ok_or_else(|| Error::Corruption {
            file: format!("index {:?}", self.def.decl.name),
            offset: 0,
            what: "an index entry key without its terminator".into(),
        })?;
        let Some(value) = self.table.db.get(&self.table.state, pk, Some(self.seq))? else {
            return Ok(None);
        };
        if !self.def.extractor.keys(Some(&value)).contains(&index_key) {
            return Ok(None);
        }
        let primary_key = pk.get(self.strip..).ok_or_else(malformed)?;
        Ok(Some(IndexEntry {
            index_key: Bytes::from(index_key),
            primary_key: Bytes::copy_from_slice(primary_key),
            value,
        }))
    }
}

impl Iterator for IndexIter {
    type Item = Result<IndexEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.inner.next()? {
                Ok((k, _)) => k,
                Err(e) => return Some(Err(e)),
            };
            match self.resolve(&entry) {
                Ok(Some(found)) => return Some(Ok(found)),
                // A stale entry (never left by maintenance): skipped, never returned.
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
