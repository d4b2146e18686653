//! Adding and removing a global index, and its backfill.
//!
//! Adding: one manifest record creates the index's internal table and declares it
//! (`CreateTable` + `DeclareIndex`), under the write lock, so every write after it
//! maintains the index. The backfill then walks the table's primary keys and, a chunk at a
//! time, writes the index entries of each item's *current* value through the write path
//! (under the write lock, like any write): an entry it writes is exactly what maintenance
//! would have written, and a later write of the item removes it as maintenance would. When
//! the walk is done the WAL is synced and an `IndexReady` record commits; only then is the
//! index readable. A crash before that leaves a declared index that is not ready: the next
//! open runs its backfill again (entries are idempotent puts), so it is resumable.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::db::{DbInner, SuperVersion, TableState, Version, WriteBatch, WriteOptions};
use crate::error::{Error, Result};
use crate::kms::Principal;
use crate::manifest::{Edit, IndexDecl, VersionEdit};
use crate::memtable::MemTable;
use crate::types::TableId;

use super::maintain::BackfillChunk;
use super::{check_index_name, index_meta, Extractor, IndexDef, IndexSpec};

/// Items per backfill write: bounds the write lock's hold and the batch's size.
const BACKFILL_CHUNK: usize = 256;

impl DbInner {
    /// Declares index `name` on `table` and backfills it; returns once it is ready.
    pub(crate) fn create_index(
        &self,
        principal: &Principal,
        table: &Arc<TableState>,
        name: &str,
        spec: &IndexSpec,
    ) -> Result<()> {
        check_index_name(name)?;
        self.check_poisoned()?;
        self.authorize(principal, table)?;
        let extractor =
            Extractor::resolve(spec.kind, &spec.extractor, &self.opts.index_extractors)?;
        let state = {
            let ws = self.write.lock();
            let mut versions = self.versions.lock();
            if table.dropped.load(Ordering::Acquire) {
                return Err(Error::TableNotFound(table.name.clone()));
            }
            if find_index(table, name).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "table {:?} already has an index {name:?}",
                    table.name
                )));
            }
            let key = if table.is_encrypted() {
                Some(table.require_key()?)
            } else {
                None
            };
            let id = self.versions.allocate_table_id();
            let meta = index_meta(&table.meta.read());
            let decl = IndexDecl {
                index: id,
                table: table.id,
                name: name.to_owned(),
                unique: spec.unique,
                kind: spec.kind,
                extractor: spec.extractor.clone(),
            };
            let segment = ws.wal.segment();
            let edit = VersionEdit::new(vec![
                Edit::SetNextTableId(TableId(id.0 + 1)),
                Edit::CreateTable {
                    id,
                    name: table.name.clone(),
                    meta: meta.clone(),
                },
                Edit::DeclareIndex(decl.clone()),
                Edit::SetLogNumber {
                    table: id,
                    log: segment,
                },
            ]);
            versions.log_and_apply(&edit, key.as_ref().map(|k| (id, k)), |_| ())?;
            let state = Arc::new(TableState::new(
                id,
                table.name.clone(),
                meta,
                Version::empty(),
            ));
            *state.key.write() = key;
            state.set_log_number(segment);
            let def = Arc::new(IndexDef::new(decl, extractor, false));
            state
                .index
                .set(def)
                .map_err(|_| Error::Internal("index state set twice".into()))?;
            self.versions
                .tables_mut()
                .by_id
                .insert(id, Arc::clone(&state));
            table.indexes.write().push(Arc::clone(&state));
            state
        };
        match self.backfill(table, &state) {
            Ok(()) => Ok(()),
            Err(e) => {
                // A failed build leaves nothing behind: the index is dropped (a unique
                // index over duplicate items can never complete).
                let _ = self.drop_index(table, name);
                Err(e)
            }
        }
    }

    /// Backfills `index` from `table`, then commits it as ready.
    pub(crate) fn backfill(&self, table: &Arc<TableState>, index: &Arc<TableState>) -> Result<()> {
        let def = index
            .index
            .get()
            .cloned()
            .ok_or_else(|| Error::Internal("backfill of a table that is no index".into()))?;
        def.backfilled.store(0, Ordering::Release);
        // The walk sees the table as of now; items written later are maintained by their
        // own writes (the index was declared before this view was taken).
        let items = self.range(table, Bound::Unbounded, Bound::Unbounded, None)?;
        let mut keys = Vec::with_capacity(BACKFILL_CHUNK);
        let flush = |keys: &mut Vec<Vec<u8>>| -> Result<()> {
            if keys.is_empty() {
                return Ok(());
            }
            let chunk = BackfillChunk { table, index, keys };
            self.write_with(
                None,
                &WriteBatch::new(),
                WriteOptions::default(),
                Some(&chunk),
            )?;
            def.backfilled
                .fetch_add(keys.len() as u64, Ordering::AcqRel);
            keys.clear();
            Ok(())
        };
        for item in items {
            if self.bg.lock().shutdown {
                return Err(Error::Closed);
            }
            let (k, _) = item?;
            keys.push(k.to_vec());
            if keys.len() >= BACKFILL_CHUNK {
                flush(&mut keys)?;
            }
        }
        flush(&mut keys)?;
        // IMPORTANT: the backfill's WAL records are durable before the manifest says the
        // index is complete, so a power loss cannot leave a ready index missing entries.
        self.sync_wal_now()?;
        let _ws = self.write.lock();
        let mut versions = self.versions.lock();
        if index.dropped.load(Ordering::Acquire) {
            return Err(Error::IndexUnavailable {
                table: table.name.clone(),
                index: def.decl.name.clone(),
                reason: "dropped during its backfill".into(),
            });
        }
        versions.log_and_apply(
            &VersionEdit::new(vec![Edit::IndexReady { index: index.id }]),
            None,
            |_| (),
        )?;
        def.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes index `name` of `table`: one manifest record, then its files go.
    pub(crate) fn drop_index(&self, table: &Arc<TableState>, name: &str) -> Result<()> {
        self.check_poisoned()?;
        let state = {
            let _ws = self.write.lock();
            let mut versions = self.versions.lock();
            let state = find_index(table, name).ok_or_else(|| Error::IndexUnavailable {
                table: table.name.clone(),
                index: name.to_owned(),
                reason: "no index of that name".into(),
            })?;
            versions.log_and_apply(
                &VersionEdit::new(vec![Edit::DropTable { id: state.id }]),
                None,
                |_| (),
            )?;
            state.dropped.store(true, Ordering::Release);
            self.versions.tables_mut().by_id.remove(&state.id);
            table.indexes.write().retain(|s| s.id != state.id);
            state
        };
        self.release_index_files(&state);
        Ok(())
    }

    /// Lets a dropped index's files go (deleted once no reader holds them).
    pub(crate) fn release_index_files(&self, state: &TableState) {
        for f in state.super_version().version.files() {
            f.mark_obsolete();
            self.sst_cache.evict(f.table, f.meta.number);
        }
        *state.sv.write() = Arc::new(SuperVersion {
            mem: Arc::new(MemTable::new()),
            imm: Vec::new(),
            version: Arc::new(Version::empty()),
        });
    }

    /// Runs the backfill of every declared index that is not ready (after a crash during
    /// one). An index whose items turn out to break its uniqueness is dropped. A backfill
    /// that cannot run now (a locked table, a KMS refusal) never fails the open: the index
    /// stays not ready, with the reason as its maintenance error, and the next open retries.
    pub(crate) fn resume_backfills(&self) -> Result<()> {
        for t in self.all_tables().into_iter().filter(|t| !t.is_locked()) {
            let pending: Vec<Arc<TableState>> = t
                .indexes
                .read()
                .iter()
                .filter(|i| i.index.get().is_some_and(|d| !d.is_ready()))
                .cloned()
                .collect();
            for index in pending {
                match self.backfill(&t, &index) {
                    Ok(()) => {}
                    Err(Error::UniqueViolation { .. }) => {
                        if let Some(name) = index.index.get().map(|d| d.decl.name.clone()) {
                            self.drop_index(&t, &name)?;
                        }
                    }
                    Err(e @ (Error::Poisoned(_) | Error::Closed)) => return Err(e),
                    Err(e) => *index.maintenance_error.lock() = Some(format!("backfill: {e}")),
                }
            }
        }
        Ok(())
    }
}

/// The internal table of `table`'s index `name`.
pub(crate) fn find_index(table: &TableState, name: &str) -> Option<Arc<TableState>> {
    table
        .indexes
        .read()
        .iter()
        .find(|s| s.index.get().is_some_and(|d| d.decl.name == name))
        .cloned()
}
