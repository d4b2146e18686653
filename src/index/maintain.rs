//! Index maintenance on the write path: the entries each index gains and loses from one
//! batch, computed under the write lock so that the old values read are exactly the ones
//! the batch replaces, and appended to the same WAL record as the batch.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::db::{prefix_successor, DbInner, TableState, WriteBatch};
use crate::error::{Error, Result};
use crate::types::{SeqNo, TableId, ValueKind};

use super::backfill::CHECKPOINT_KEY;
use super::{extractor, key, IndexDef};

/// One chunk of an index's backfill: the index entries of these items' current values.
pub(crate) struct BackfillChunk<'a> {
    pub(crate) table: &'a Arc<TableState>,
    pub(crate) index: &'a Arc<TableState>,
    pub(crate) keys: &'a [Vec<u8>],
    /// The last primary key of this chunk, kept in the index as the backfill's checkpoint;
    /// `None` for the last chunk, which deletes it.
    pub(crate) checkpoint: Option<&'a [u8]>,
}

/// What this batch has done to each index so far, per LSM the entries live in (an index's
/// own table, or for a local index its table): stored entry key -> present. Reads of the
/// index at `seq` do not see it yet. Kept for unique indexes only (their checks read it).
type Overlays = HashMap<TableId, BTreeMap<Vec<u8>, bool>>;

/// Where one index's entries go: the LSM that holds them and the key-space prefix before
/// each entry (`local::slot_prefix` for a local index, none for a global one).
#[derive(Clone, Copy)]
struct Target<'a> {
    lsm: &'a Arc<TableState>,
    prefix: Option<[u8; 2]>,
    def: &'a Arc<IndexDef>,
}

impl Target<'_> {
    fn prefix(&self) -> &[u8] {
        self.prefix.as_ref().map_or(&[], |p| p.as_slice())
    }
}

/// The indexes of table `t` (`globals`: its global indexes' tables), global ones first.
fn targets<'a>(
    globals: &'a [Arc<TableState>],
    t: &'a Arc<TableState>,
) -> impl Iterator<Item = Target<'a>> + Clone {
    let global = globals.iter().filter_map(|i| {
        i.index.get().map(|def| Target {
            lsm: i,
            prefix: None,
            def,
        })
    });
    let local = t.local_indexes().iter().map(move |def| Target {
        lsm: t,
        prefix: Some(super::local::slot_prefix(def.local.unwrap_or_default())),
        def,
    });
    global.chain(local)
}

/// A unique key the batch adds: (table, where the index lives, index, the entry key with
/// its prefix, the length of the item's stored key at its end), checked once the whole
/// batch's entries are known.
struct UniqueCheck {
    table: Arc<TableState>,
    lsm: Arc<TableState>,
    def: Arc<IndexDef>,
    entry: Vec<u8>,
    pk_len: usize,
}

impl UniqueCheck {
    /// The prefix of every entry of this index key (the slot prefix included).
    fn key_prefix(&self) -> &[u8] {
        let end = self.entry.len().saturating_sub(self.pk_len);
        self.entry.get(..end).unwrap_or_default()
    }

    fn pk(&self) -> &[u8] {
        let start = self.entry.len().saturating_sub(self.pk_len);
        self.entry.get(start..).unwrap_or_default()
    }
}

/// What index maintenance accumulates over one batch.
#[derive(Default)]
struct Maintenance {
    out: Option<WriteBatch>,
    overlays: Overlays,
    checks: Vec<UniqueCheck>,
    /// One buffer for every entry key.
    entry: Vec<u8>,
}

impl Maintenance {
    fn out(&mut self, batch: &WriteBatch) -> &mut WriteBatch {
        self.out.get_or_insert_with(|| WriteBatch::following(batch))
    }

    /// Adds (`present`) or removes one entry of `target`'s index: (`k`, `pk`).
    fn entry(
        &mut self,
        batch: &WriteBatch,
        table: &Arc<TableState>,
        target: &Target<'_>,
        k: &[u8],
        pk: &[u8],
        present: bool,
    ) {
        key::encode_into(&mut self.entry, target.prefix(), k, pk);
        let kind = if present {
            ValueKind::Put
        } else {
            ValueKind::Delete
        };
        let entry = std::mem::take(&mut self.entry);
        self.out(batch).add(target.lsm.id, kind, &entry, &[]);
        if target.def.decl.unique {
            if present {
                self.checks.push(UniqueCheck {
                    table: Arc::clone(table),
                    lsm: Arc::clone(target.lsm),
                    def: Arc::clone(target.def),
                    entry: entry.clone(),
                    pk_len: pk.len(),
                });
            }
            self.overlays
                .entry(target.lsm.id)
                .or_default()
                .insert(entry.clone(), present);
        }
        self.entry = entry;
    }
}

/// The index entries `batch` causes (and those of `backfill`), as a batch of their own to
/// be written in the same WAL record right after `batch` (`WriteBatch::following`), or
/// `None` when it touches no indexed table. The write itself is borrowed, never copied:
/// its keys and new values are read in place from its sections, and each old value is
/// the engine's own buffer. Reads at `seq`, the newest sequence number handed out: the
/// caller holds the write lock and no synced write to an indexed table is between its
/// append and its memtable insert, so every older write is in the memtables.
/// A unique-key conflict is `Error::UniqueViolation` and nothing is applied. Uniqueness is
/// checked against the state the whole batch leaves (the batch is atomic), so a batch may
/// move a key from one item to another.
///
/// A local index's entries go to its table's own LSM (a second section of the table in
/// the record), a global index's to its own. Either way an entry's primary key part is the
/// item's *stored* key (`local::stored_key`).
pub(crate) fn index_ops(
    core: &DbInner,
    batch: &WriteBatch,
    seq: SeqNo,
    backfill: Option<&BackfillChunk<'_>>,
) -> Result<Option<WriteBatch>> {
    let mut m = Maintenance::default();
    // Reused by every section: the table's global indexes, the section's entries and the
    // newest value of each item as of the section's earlier entries.
    let mut globals: Vec<Arc<TableState>> = Vec::new();
    let mut entries: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    let mut latest: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
    for (table_id, section) in batch.sections() {
        let Some(t) = core.table_by_id(table_id) else {
            continue;
        };
        globals.clear();
        globals.extend(t.indexes.read().iter().cloned());
        if globals.is_empty() && !t.has_local_layout() {
            continue;
        }
        super::check_indexes_unlocked(&t)?;
        let targets = targets(&globals, &t);
        entries.clear();
        crate::db::decode_section(section.payload(), SeqNo(0), "write batch", |e| {
            entries.push((e.key, (e.kind == ValueKind::Put).then_some(e.value)));
        })
        .map_err(|e| Error::Internal(format!("batch encoding: {e}")))?;
        latest.clear();
        for &(pk, new) in &entries {
            if t.has_local_layout() && pk.first() != Some(&super::local::ITEM_SPACE) {
                return Err(Error::Internal(
                    "a write outside the item key space of a table with local indexes".into(),
                ));
            }
            let stored;
            let old = match latest.get(pk) {
                Some(v) => *v,
                None => {
                    stored = core.get(&t, pk, Some(seq))?;
                    stored.as_deref()
                }
            };
            latest.insert(pk, new);
            if old.is_some() && old == new {
                // The same value again: the same keys, no entry changes.
                continue;
            }
            // Each value is read once for all of the table's indexes.
            let extractors = targets.clone().map(|x| {
                let def: &Arc<IndexDef> = x.def;
                &def.extractor
            });
            let old_keys = extractor::keys_each(extractors.clone(), old);
            let new_keys = extractor::keys_each(extractors, new);
            for ((target, old_keys), new_keys) in targets.clone().zip(&old_keys).zip(&new_keys) {
                for k in old_keys.difference(new_keys) {
                    m.entry(batch, &t, &target, k, pk, false);
                }
                for k in new_keys.difference(old_keys) {
                    m.entry(batch, &t, &target, k, pk, true);
                }
            }
        }
        // Every entry fits the key limit, or the whole write fails.
        if let Some(out) = &m.out {
            out.check()?;
        }
    }
    if let Some(chunk) = backfill {
        let Some(def) = chunk.index.index.get() else {
            return Err(Error::Internal(
                "backfill of a table that is no index".into(),
            ));
        };
        let target = Target {
            lsm: chunk.index,
            prefix: None,
            def,
        };
        for pk in chunk.keys {
            let current = core.get(chunk.table, pk, Some(seq))?;
            for k in def.extractor.keys(current.as_deref()) {
                m.entry(batch, chunk.table, &target, &k, pk, true);
            }
        }
        let out = m.out(batch);
        match chunk.checkpoint {
            Some(last) => out.add(chunk.index.id, ValueKind::Put, CHECKPOINT_KEY, last),
            None => out.add(chunk.index.id, ValueKind::Delete, CHECKPOINT_KEY, &[]),
        }
    }
    if let Some(out) = &m.out {
        out.check()?;
    }
    let empty = BTreeMap::new();
    for c in &m.checks {
        let overlay = m.overlays.get(&c.lsm.id).unwrap_or(&empty);
        // A key the item lost again later in the batch is no longer its key.
        if overlay.get(&c.entry) != Some(&true) {
            continue;
        }
        check_unique(core, c, seq, overlay)?;
    }
    Ok(m.out)
}

/// Fails if an item other than `c.pk` has index key `c.index_key` once the batch is
/// applied: in the index as of `seq` unless the batch removed it, or added by the batch
/// (`overlay`).
fn check_unique(
    core: &DbInner,
    c: &UniqueCheck,
    seq: SeqNo,
    overlay: &BTreeMap<Vec<u8>, bool>,
) -> Result<()> {
    let violation = || Error::UniqueViolation {
        table: c.table.name.clone(),
        index: c.def.decl.name.clone(),
    };
    let prefix = c.key_prefix();
    for (entry, present) in overlay.range(prefix.to_vec()..) {
        if !entry.starts_with(prefix) {
            break;
        }
        if *present && entry.get(prefix.len()..) != Some(c.pk()) {
            return Err(violation());
        }
    }
    let upper = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let entries = core.range(&c.lsm, Bound::Included(prefix.to_vec()), upper, Some(seq))?;
    for item in entries {
        let (entry, _) = item?;
        if overlay.get(entry.as_ref()) == Some(&false) {
            continue;
        }
        if entry.get(prefix.len()..) != Some(c.pk()) {
            return Err(violation());
        }
    }
    Ok(())
}
