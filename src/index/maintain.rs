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
use super::key;

/// One chunk of an index's backfill: the index entries of these items' current values.
pub(crate) struct BackfillChunk<'a> {
    pub(crate) table: &'a Arc<TableState>,
    pub(crate) index: &'a Arc<TableState>,
    pub(crate) keys: &'a [Vec<u8>],
    /// The last primary key of this chunk, kept in the index as the backfill's checkpoint;
    /// `None` for the last chunk, which deletes it.
    pub(crate) checkpoint: Option<&'a [u8]>,
}

/// What this batch has done to each index so far (entry key -> present), which reads of
/// the index at `seq` do not see yet.
type Overlays = HashMap<TableId, BTreeMap<Vec<u8>, bool>>;

/// A unique key the batch adds: (table, index, index key, item), checked once the whole
/// batch's entries are known.
type UniqueCheck = (Arc<TableState>, Arc<TableState>, Vec<u8>, Vec<u8>);

/// `batch` with the index entries it causes added (and those of `backfill`), or `None`
/// when it touches no indexed table. Reads at `seq`, the newest sequence number handed
/// out: the caller holds the write lock and no synced write to an indexed table is between
/// its append and its memtable insert, so every older write is in the memtables.
/// A unique-key conflict is `Error::UniqueViolation` and nothing is applied. Uniqueness is
/// checked against the state the whole batch leaves (the batch is atomic), so a batch may
/// move a key from one item to another.
pub(crate) fn index_ops(
    core: &DbInner,
    batch: &WriteBatch,
    seq: SeqNo,
    backfill: Option<&BackfillChunk<'_>>,
) -> Result<Option<WriteBatch>> {
    let mut out: Option<WriteBatch> = None;
    let mut overlays = Overlays::new();
    let mut checks: Vec<UniqueCheck> = Vec::new();
    for (table_id, section) in batch.sections() {
        let Some(t) = core.table_by_id(table_id) else {
            continue;
        };
        let indexes = t.indexes.read().clone();
        if indexes.is_empty() {
            continue;
        }
        super::check_indexes_unlocked(&t)?;
        let mut entries = Vec::new();
        crate::db::decode_section(section.payload(), SeqNo(0), "write batch", |e| {
            let value = (e.kind == ValueKind::Put).then(|| e.value.to_vec());
            entries.push((e.key.to_vec(), value));
        })
        .map_err(|e| Error::Internal(format!("batch encoding: {e}")))?;
        let out = out.get_or_insert_with(|| batch.clone());
        // The newest value of each item as of this batch's earlier entries.
        let mut latest: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for (pk, new) in entries {
            let old = match latest.get(&pk) {
                Some(v) => v.clone(),
                None => core.get(&t, &pk, Some(seq))?.map(|b| b.to_vec()),
            };
            for index in &indexes {
                let Some(def) = index.index.get() else {
                    continue;
                };
                let old_keys = def.extractor.keys(old.as_deref());
                let new_keys = def.extractor.keys(new.as_deref());
                let overlay = overlays.entry(index.id).or_default();
                for k in old_keys.difference(&new_keys) {
                    let entry = key::encode(k, &pk);
                    out.add(index.id, ValueKind::Delete, &entry, &[]);
                    overlay.insert(entry, false);
                }
                for k in new_keys.difference(&old_keys) {
                    if def.decl.unique {
                        checks.push((Arc::clone(&t), Arc::clone(index), k.clone(), pk.clone()));
                    }
                    let entry = key::encode(k, &pk);
                    out.add(index.id, ValueKind::Put, &entry, &[]);
                    overlay.insert(entry, true);
                }
            }
            latest.insert(pk, new);
        }
    }
    if let Some(chunk) = backfill {
        let out = out.get_or_insert_with(|| batch.clone());
        let Some(def) = chunk.index.index.get() else {
            return Err(Error::Internal(
                "backfill of a table that is no index".into(),
            ));
        };
        let overlay = overlays.entry(chunk.index.id).or_default();
        for pk in chunk.keys {
            let current = core.get(chunk.table, pk, Some(seq))?;
            for k in def.extractor.keys(current.as_deref()) {
                if def.decl.unique {
                    checks.push((
                        Arc::clone(chunk.table),
                        Arc::clone(chunk.index),
                        k.clone(),
                        pk.clone(),
                    ));
                }
                let entry = key::encode(&k, pk);
                out.add(chunk.index.id, ValueKind::Put, &entry, &[]);
                overlay.insert(entry, true);
            }
        }
        match chunk.checkpoint {
            Some(last) => out.add(chunk.index.id, ValueKind::Put, CHECKPOINT_KEY, last),
            None => out.add(chunk.index.id, ValueKind::Delete, CHECKPOINT_KEY, &[]),
        }
    }
    let empty = BTreeMap::new();
    for (t, index, k, pk) in &checks {
        let overlay = overlays.get(&index.id).unwrap_or(&empty);
        // A key the item lost again later in the batch is no longer its key.
        if overlay.get(&key::encode(k, pk)) != Some(&true) {
            continue;
        }
        check_unique(core, t, index, k, pk, seq, overlay)?;
    }
    Ok(out)
}

/// Fails if an item other than `pk` has index key `k` in `index` once the batch is applied:
/// in the index as of `seq` unless the batch removed it, or added by the batch (`overlay`).
fn check_unique(
    core: &DbInner,
    table: &TableState,
    index: &Arc<TableState>,
    k: &[u8],
    pk: &[u8],
    seq: SeqNo,
    overlay: &BTreeMap<Vec<u8>, bool>,
) -> Result<()> {
    let violation = || Error::UniqueViolation {
        table: table.name.clone(),
        index: index
            .index
            .get()
            .map(|d| d.decl.name.clone())
            .unwrap_or_default(),
    };
    let prefix = key::exact_prefix(k);
    for (entry, present) in overlay.range(prefix.clone()..) {
        if !entry.starts_with(&prefix) {
            break;
        }
        if *present && entry.get(prefix.len()..) != Some(pk) {
            return Err(violation());
        }
    }
    let upper = prefix_successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let entries = core.range(index, Bound::Included(prefix.clone()), upper, Some(seq))?;
    for item in entries {
        let (entry, _) = item?;
        if overlay.get(entry.as_ref()) == Some(&false) {
            continue;
        }
        if entry.get(prefix.len()..) != Some(pk) {
            return Err(violation());
        }
    }
    Ok(())
}
