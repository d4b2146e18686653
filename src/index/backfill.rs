//! Adding and removing a global index, and its backfill.
//!
//! Adding: one manifest record creates the index's internal table and declares it
//! (`CreateTable` + `DeclareIndex`), under the write lock, so every write after it
//! maintains the index. The backfill then runs on a thread of its own: it walks the
//! table's primary keys and, a chunk at a time, writes the index entries of each item's
//! *current* value through the write path (under the write lock, like any write): an entry
//! it writes is exactly what maintenance would have written, and a later write of the item
//! removes it as maintenance would. Each chunk's WAL record also carries the backfill's
//! checkpoint (the chunk's last primary key, under `CHECKPOINT_KEY` in the index's own
//! LSM, sealed like its entries); the last chunk deletes it. When the walk is done the WAL
//! is synced and an `IndexReady` record commits; only then is the index readable.
//!
//! A crash (or a close) before that leaves a declared index that is not ready, with the
//! checkpoint of the last chunk that reached the WAL: the next open starts the backfill
//! again after that key, so it resumes rather than restarts. Items at or before the
//! checkpoint were indexed by their chunk (in the same record as the checkpoint) or by a
//! later write of theirs, so the walk need not see them again.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::{DbInner, SuperVersion, TableState, Version, WriteBatch, WriteOptions};
use crate::error::{Error, Result};
use crate::kms::Principal;
use crate::manifest::{Edit, IndexDecl, VersionEdit};
use crate::memtable::MemTable;
use crate::types::TableId;

use super::maintain::BackfillChunk;
use super::{index_meta, Build, Extractor, IndexDef, IndexSpec};

/// Items per backfill write: bounds the write lock's hold and the batch's size.
const BACKFILL_CHUNK: usize = 256;

/// Attempts of a backfill that keeps failing transiently before it is left failed.
const RETRY_ATTEMPTS: u32 = 10;
/// The wait before the second attempt; it doubles up to `MAX_RETRY_BACKOFF` (about 34 s
/// of waiting over all attempts).
const FIRST_RETRY_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);
/// How often a waiting backfill checks for a close or a drop.
const RETRY_POLL: Duration = Duration::from_millis(20);

/// Whether a backfill that failed with `e` may succeed if run again in this process:
/// an I/O error (a read of the table's files), the KMS not answering, or the table locked
/// or unavailable for now. Corruption, integrity and invariant failures are not, and
/// neither is a poisoned database (it must be reopened).
fn is_transient(e: &Error) -> bool {
    match e {
        Error::Io { .. } | Error::TableLocked { .. } | Error::TableUnavailable { .. } => true,
        Error::Kms(k) => matches!(k, crate::kms::KmsError::Unavailable(_)),
        _ => false,
    }
}

/// Where the backfill's checkpoint lives in the index's own LSM. No entry key is empty
/// (every one holds the terminator), so it meets no entry; queries and `check` skip it.
pub(crate) const CHECKPOINT_KEY: &[u8] = b"";

/// Declares index `name` on `table` and starts its backfill on an engine thread; returns
/// the index once declared.
pub(crate) fn start(
    core: &Arc<DbInner>,
    principal: &Principal,
    table: &Arc<TableState>,
    name: &str,
    spec: &IndexSpec,
) -> Result<Arc<IndexDef>> {
    let (state, def) = core.declare_index(principal, table, name, spec)?;
    spawn_build(core, table, &state, &def)?;
    Ok(def)
}

/// Waits for the backfill of `table`'s index `name` to end (`IndexDef::wait`).
pub(crate) fn wait(table: &TableState, name: &str) -> Result<()> {
    let def = find_index(table, name)
        .and_then(|s| s.index.get().cloned())
        .ok_or_else(|| Error::IndexUnavailable {
            table: table.name.clone(),
            index: name.to_owned(),
            reason: "no index of that name".into(),
        })?;
    def.wait(&table.name)
}

/// Runs `index`'s backfill on a thread of its own; `stop_builds` joins it at close.
fn spawn_build(
    core: &Arc<DbInner>,
    table: &Arc<TableState>,
    index: &Arc<TableState>,
    def: &Arc<IndexDef>,
) -> Result<()> {
    let (c, t, i) = (Arc::clone(core), Arc::clone(table), Arc::clone(index));
    let spawned = std::thread::Builder::new()
        .name("sealdb-index".into())
        .spawn(move || c.run_build(&t, &i));
    match spawned {
        Ok(handle) => {
            *def.builder.lock() = Some(handle);
            Ok(())
        }
        Err(e) => {
            let e = Error::io("starting an index backfill", e);
            def.finish_build(Build::Failed(e.to_string()));
            Err(e)
        }
    }
}

/// Stops every backfill at its next chunk and waits for its thread: called at close,
/// before the flush worker is told to stop (a backfill's write may wait for a flush).
pub(crate) fn stop_builds(core: &DbInner) {
    let defs: Vec<Arc<IndexDef>> = core
        .all_tables()
        .iter()
        .filter_map(|t| t.index.get().cloned())
        .collect();
    for def in &defs {
        def.stop.store(true, Ordering::Release);
    }
    for def in &defs {
        join_builder(def);
    }
}

/// Waits for `def`'s backfill thread, unless called from it (a backfill that drops its
/// own index).
fn join_builder(def: &IndexDef) {
    let handle = def.builder.lock().take();
    if let Some(h) = handle {
        if h.thread().id() != std::thread::current().id() {
            let _ = h.join();
        }
    }
}

impl DbInner {
    /// The catalogue record that adds index `name` to `table`: from then on every write to
    /// the table maintains it.
    fn declare_index(
        &self,
        principal: &Principal,
        table: &Arc<TableState>,
        name: &str,
        spec: &IndexSpec,
    ) -> Result<(Arc<TableState>, Arc<IndexDef>)> {
        crate::types::check_name("index", name)?;
        self.check_poisoned()?;
        self.authorize(principal, table)?;
        let extractor =
            Extractor::resolve(spec.kind, &spec.extractor, &self.opts.index_extractors)?;
        let ws = self.write.lock();
        let mut versions = self.versions.lock();
        if table.dropped.load(Ordering::Acquire) {
            return Err(Error::TableNotFound(table.name.clone()));
        }
        if find_index(table, name).is_some()
            || table.local_indexes().iter().any(|d| d.decl.name == name)
        {
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
            .set(Arc::clone(&def))
            .map_err(|_| Error::Internal("index state set twice".into()))?;
        self.versions
            .tables_mut()
            .by_id
            .insert(id, Arc::clone(&state));
        table.indexes.write().push(Arc::clone(&state));
        Ok((state, def))
    }

    /// The body of a backfill thread: the backfill, then its outcome for `wait`. An index
    /// whose items break its uniqueness can never complete: it is dropped. A transient
    /// failure (an I/O error reading the table, the KMS unavailable, the table locked) is
    /// retried in place with a growing backoff, from the checkpoint its last chunk left,
    /// up to `RETRY_ATTEMPTS` times; any other failure, or the last attempt's, leaves the
    /// index declared and not ready (writes keep maintaining it) with its error in
    /// `status`, and the next open resumes it.
    fn run_build(&self, table: &Arc<TableState>, index: &Arc<TableState>) {
        let Some(def) = index.index.get().cloned() else {
            return;
        };
        let mut backoff = FIRST_RETRY_BACKOFF;
        let mut attempt = 1;
        let outcome = loop {
            match self.backfill(table, index) {
                Ok(()) => break Build::Done,
                Err(Error::UniqueViolation { .. }) => {
                    let _ = self.drop_index(table, &def.decl.name);
                    break Build::Duplicate;
                }
                Err(Error::Closed) => break Build::Stopped,
                Err(e) if is_transient(&e) && attempt < RETRY_ATTEMPTS => {
                    *def.build.lock() = Build::Retrying {
                        error: e.to_string(),
                        attempt,
                    };
                    if !self.pause_build(&def, index, backoff) {
                        break Build::Stopped;
                    }
                    *def.build.lock() = Build::Running;
                    backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                    attempt += 1;
                }
                Err(e) if attempt > 1 => {
                    break Build::Failed(format!("{e} (attempt {attempt} of {RETRY_ATTEMPTS})"))
                }
                Err(e) => break Build::Failed(e.to_string()),
            }
        };
        def.finish_build(outcome);
    }

    /// Sleeps `backoff` before a backfill's next attempt; false if the database closed or
    /// the index was dropped meanwhile (the backfill must end instead).
    fn pause_build(&self, def: &IndexDef, index: &TableState, backoff: Duration) -> bool {
        let until = Instant::now() + backoff;
        loop {
            if def.stop.load(Ordering::Acquire)
                || self.bg.lock().shutdown
                || index.dropped.load(Ordering::Acquire)
            {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(RETRY_POLL));
        }
    }

    /// Backfills `index` from `table`, from its checkpoint on, then commits it as ready.
    pub(crate) fn backfill(&self, table: &Arc<TableState>, index: &Arc<TableState>) -> Result<()> {
        let def = index
            .index
            .get()
            .cloned()
            .ok_or_else(|| Error::Internal("backfill of a table that is no index".into()))?;
        def.backfilled.store(0, Ordering::Release);
        let dropped = || Error::IndexUnavailable {
            table: table.name.clone(),
            index: def.decl.name.clone(),
            reason: "dropped during its backfill".into(),
        };
        // Resume after the last chunk a crash or close left in the WAL, if any.
        // Stored keys throughout: in a table with local indexes, its item key space only.
        let (all_from, to) = if table.has_local_layout() {
            super::local::item_bounds(Bound::Unbounded, Bound::Unbounded)
        } else {
            (Bound::Unbounded, Bound::Unbounded)
        };
        let from = match self.get(index, CHECKPOINT_KEY, None)? {
            Some(last) => Bound::Excluded(last.to_vec()),
            None => all_from,
        };
        // The walk sees the table as of now; items written later are maintained by their
        // own writes (the index was declared before this view was taken).
        let items = self.range(table, from, to, None)?;
        let write = |keys: &[Vec<u8>], last: bool| -> Result<()> {
            let chunk = BackfillChunk {
                table,
                index,
                keys,
                checkpoint: if last {
                    None
                } else {
                    keys.last().map(Vec::as_slice)
                },
            };
            self.write_with(
                None,
                &WriteBatch::new(),
                WriteOptions::default(),
                Some(&chunk),
            )?;
            def.backfilled
                .fetch_add(keys.len() as u64, Ordering::AcqRel);
            Ok(())
        };
        let mut keys = Vec::with_capacity(BACKFILL_CHUNK);
        for item in items {
            let (k, _) = item?;
            keys.push(k.to_vec());
            if keys.len() >= BACKFILL_CHUNK {
                if def.stop.load(Ordering::Acquire) || self.bg.lock().shutdown {
                    return Err(Error::Closed);
                }
                if index.dropped.load(Ordering::Acquire) {
                    return Err(dropped());
                }
                write(&keys, false)?;
                keys.clear();
            }
        }
        // The last chunk (perhaps empty) deletes the checkpoint.
        write(&keys, true)?;
        // IMPORTANT: the backfill's WAL records are durable before the manifest says the
        // index is complete, so a power loss cannot leave a ready index missing entries.
        self.sync_wal_now()?;
        let ws = self.write.lock();
        let mut versions = self.versions.lock();
        if index.dropped.load(Ordering::Acquire) {
            return Err(dropped());
        }
        versions.log_and_apply(
            &VersionEdit::new(vec![Edit::IndexReady { index: index.id }]),
            None,
            |_| (),
        )?;
        // Every chunk is at or below the newest number handed out, and visible.
        def.ready_seq.store(ws.last_allocated, Ordering::Release);
        def.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes index `name` of `table`: one manifest record, then its files go.
    pub(crate) fn drop_index(&self, table: &Arc<TableState>, name: &str) -> Result<()> {
        self.check_poisoned()?;
        if table.local_indexes().iter().any(|d| d.decl.name == name) {
            return Err(Error::InvalidArgument(format!(
                "index {name:?} of table {:?} is local: it lives and goes with its table",
                table.name
            )));
        }
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

    /// Lets a dropped index's files go (deleted once no reader holds them), once its
    /// backfill thread, if any, has stopped (it stops at its next chunk: the index is
    /// marked dropped), so no thread of the engine outlives its close.
    pub(crate) fn release_index_files(&self, state: &TableState) {
        if let Some(def) = state.index.get() {
            join_builder(def);
        }
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

    /// Starts the backfill of every declared index that is not ready (after a crash or a
    /// close during one), each on its own thread, from its checkpoint. It never fails the
    /// open: a table that is locked keeps its index unfinished until the next open, and a
    /// backfill that cannot start reports why in its index's status.
    pub(crate) fn resume_backfills(self: &Arc<Self>) -> Result<()> {
        for t in self.all_tables().into_iter().filter(|t| !t.is_locked()) {
            let pending: Vec<Arc<TableState>> = t
                .indexes
                .read()
                .iter()
                .filter(|i| i.index.get().is_some_and(|d| !d.is_ready()))
                .cloned()
                .collect();
            for index in pending {
                if let Some(def) = index.index.get() {
                    // A failure to start is recorded in the index's status.
                    let _ = spawn_build(self, &t, &index, def);
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
