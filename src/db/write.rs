//! The write path: WAL append, memtable insert, group-committed fsync, memtable switches,
//! write stalls; and table creation and removal, which are writes to the manifest.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::crypto::Protection;
use crate::error::{Error, Result};
use crate::kms::Principal;
use crate::manifest::{Edit, TableMeta, VersionEdit};
use crate::memtable::MemTable;
use crate::types::{SeqNo, TableId};
use crate::wal::{WalSink, WalWriter};

use super::table::{SuperVersion, TableState};
use super::version::Version;
use super::write_batch::{decode_section, WriteBatch};
use super::{DbInner, TableOptions, VersionSet, WriteOptions, WriteState};

/// Per-write lists (tables, their memtables, the record's sections) hold one entry for a
/// write to one table without secondary indexes, the usual write: inline, so a put
/// allocates none of them.
type PerWrite<T> = SmallVec<[T; 2]>;

/// Where a write stands when the write lock is released.
enum Pending<'a> {
    /// In the memtables, visible once every older write is (its last sequence number).
    Visible(u64),
    /// Queued in the WAL; goes into `mems` once the WAL is written up to `end` of `sink`
    /// (and synced up to `position` when `sync`).
    Queued {
        sink: Arc<WalSink>,
        end: u64,
        sync: bool,
        position: u64,
        first_seq: SeqNo,
        last_seq: u64,
        mems: PerWrite<Arc<MemTable>>,
        /// The record's sections (borrowed from the batch and its index entries).
        sections: PerWrite<(TableId, &'a [u8])>,
    },
}

/// Inserts each section (`sections`) into its table's memtable (`mems`, in section order).
fn insert_batch(
    sections: &[(TableId, &[u8])],
    first_seq: SeqNo,
    mems: &[Arc<MemTable>],
) -> Result<()> {
    for ((_, payload), mem) in sections.iter().zip(mems) {
        decode_section(payload, first_seq, "write batch", |e| {
            mem.insert(e.key, e.seq, e.kind, e.value)
        })
        .map_err(|e| Error::Internal(format!("batch encoding: {e}")))?;
    }
    Ok(())
}

/// The sections of one WAL record: the write's, then those of the index entries it causes
/// (numbered after the write's, `WriteBatch::following`).
fn record_sections<'a>(
    batch: &'a WriteBatch,
    index: Option<&'a WriteBatch>,
) -> PerWrite<(TableId, &'a [u8])> {
    batch
        .sections()
        .chain(index.into_iter().flat_map(WriteBatch::sections))
        .map(|(t, s)| (t, s.payload()))
        .collect()
}

impl DbInner {
    pub(crate) fn write(
        &self,
        principal: &Principal,
        batch: &WriteBatch,
        opts: WriteOptions,
    ) -> Result<()> {
        self.write_with(Some(principal), batch, opts, None)
    }

    /// The write path. `principal` is `None` for the engine's own writes (an index
    /// backfill, `backfill`: its index entries are computed under the write lock and
    /// appended like a write's).
    pub(crate) fn write_with(
        &self,
        principal: Option<&Principal>,
        batch: &WriteBatch,
        opts: WriteOptions,
        backfill: Option<&crate::index::BackfillChunk<'_>>,
    ) -> Result<()> {
        batch.check()?;
        if batch.is_empty() && backfill.is_none() {
            return Ok(());
        }
        self.check_poisoned()?;
        let mut tables: PerWrite<Arc<TableState>> = SmallVec::new();
        for id in batch.tables() {
            let t = self
                .table_by_id(id)
                .ok_or_else(|| Error::TableNotFound(format!("#{id}")))?;
            if let Some(p) = principal {
                self.authorize(p, &t)?;
            }
            tables.push(t);
        }
        // Index maintenance reads old values: of the batch's indexed tables, and of the
        // table a backfill chunk indexes.
        let mut indexed: Vec<Arc<TableState>> =
            tables.iter().filter(|t| t.has_indexes()).cloned().collect();
        if let Some(chunk) = backfill {
            indexed.push(Arc::clone(chunk.table));
        }
        for t in &tables {
            self.make_room(t)?;
            for index in t.indexes.read().clone() {
                self.make_room(&index)?;
            }
        }
        let mut index_batch: Option<WriteBatch> = None;
        let mut counted: Vec<Arc<TableState>> = Vec::new();
        let pending = {
            let mut ws = self.lock_for_indexed_write(&indexed);
            self.check_poisoned()?;
            // Secondary indexes (crate::index): the index entries the batch causes, read
            // here under the write lock, go in the same WAL record, after the batch.
            if !indexed.is_empty() {
                index_batch =
                    crate::index::index_ops(self, batch, SeqNo(ws.last_allocated), backfill)?;
            }
            if let Some(b) = &index_batch {
                for id in b.tables() {
                    if !tables.iter().any(|t| t.id == id) {
                        tables.push(
                            self.table_by_id(id)
                                .ok_or_else(|| Error::TableNotFound(format!("#{id}")))?,
                        );
                    }
                }
            }
            let entries = batch.len() + index_batch.as_ref().map_or(0, WriteBatch::len);
            if entries == 0 {
                return Ok(());
            }
            for t in &tables {
                if t.dropped.load(Ordering::Acquire) {
                    return Err(Error::TableNotFound(t.name.clone()));
                }
                if t.super_version().mem.approximate_bytes() >= self.opts.write_buffer_size {
                    self.switch_memtable(&mut ws, t)?;
                }
            }
            // Registration after every switch: a switch starts a segment with no tables.
            for t in &tables {
                if !ws.wal.is_registered(t.id) {
                    let protection = self.wal_protection(t, ws.wal.segment())?;
                    ws.wal
                        .register_table(t.id, protection)
                        .map_err(|e| self.poison("WAL write failed", e))?;
                }
            }
            // Only holders of the write lock hand out numbers.
            let first_seq = SeqNo(ws.last_allocated + 1);
            let last_seq = first_seq.0 + entries as u64 - 1;
            let sections = record_sections(batch, index_batch.as_ref());
            // Group commit: a synced write, or one to tables without indexes, only queues
            // its record here and writes it through after the lock (with whatever others
            // queued meanwhile), then goes into its memtables. An unsynced write to an
            // indexed table is written and inserted under the lock, so the next write's
            // index maintenance reads it without waiting.
            let queue = opts.sync || !tables.iter().any(|t| t.has_indexes());
            let before = ws.wal.len();
            let end = if queue {
                ws.wal.buffer_batch(first_seq, &sections)
            } else {
                ws.wal.append_batch(first_seq, &sections)
            }
            .map_err(|e| self.poison("WAL append failed", e))?;
            ws.appended += end - before;
            ws.last_allocated = last_seq;
            // The memtables the sections belong in, in section order: those of the segment
            // the record was appended to.
            let mut mems: PerWrite<Arc<MemTable>> = SmallVec::with_capacity(sections.len());
            for (id, _) in &sections {
                let t = tables
                    .iter()
                    .find(|t| t.id == *id)
                    .ok_or_else(|| Error::Internal("a section without its table".into()))?;
                mems.push(Arc::clone(&t.super_version().mem));
            }
            if queue {
                // Until it is in the memtables, index maintenance must not read past it.
                for t in tables.iter().filter(|t| t.has_indexes()) {
                    t.synced_inflight.fetch_add(1, Ordering::AcqRel);
                    counted.push(Arc::clone(t));
                }
                let mut seqs = self.seqs.lock();
                seqs.allocated = last_seq;
                seqs.inflight.insert(first_seq.0);
                Pending::Queued {
                    sink: ws.wal.sink(),
                    end,
                    sync: opts.sync,
                    position: ws.appended,
                    first_seq,
                    last_seq,
                    mems,
                    sections,
                }
            } else {
                insert_batch(&sections, first_seq, &mems)
                    .map_err(|e| self.poison("memtable insert failed", e))?;
                let mut seqs = self.seqs.lock();
                seqs.allocated = last_seq;
                self.publish(&seqs);
                Pending::Visible(last_seq)
            }
        };
        match pending {
            Pending::Visible(last) => {
                // Visible in order: wait for older synced writes still in their fsync.
                let mut seqs = self.seqs.lock();
                while seqs.visible() < last {
                    self.seqs_cv.wait(&mut seqs);
                }
                Ok(())
            }
            Pending::Queued {
                sink,
                end,
                sync,
                position,
                first_seq,
                last_seq,
                mems,
                sections,
            } => {
                // IMPORTANT: acknowledged only after its record reached the OS (and the disk
                // when synced).
                let logged = if sync {
                    self.sync_wal_to(position)
                } else {
                    sink.write_through(end)
                        .map_err(|e| self.poison("WAL append failed", e))
                };
                drop(sink);
                let inserted = logged.and_then(|()| insert_batch(&sections, first_seq, &mems));
                for t in &counted {
                    t.synced_inflight.fetch_sub(1, Ordering::AcqRel);
                }
                let mut seqs = self.seqs.lock();
                seqs.inflight.remove(&first_seq.0);
                self.publish(&seqs);
                self.seqs_cv.notify_all();
                // Acknowledged only once visible to every reader: wait for older synced
                // batches still in their fsync (visibility is in sequence order).
                while inserted.is_ok() && seqs.visible() < last_seq {
                    self.seqs_cv.wait(&mut seqs);
                }
                // On failure the batch never reached a memtable: no reader sees it. Its
                // record may still be on disk and replay after a reopen (outcome unknown,
                // as after a crash).
                inserted
            }
        }
    }

    /// Takes the write lock once no synced write to a table of `indexed` is between its
    /// WAL append and its memtable insert, so the old values index maintenance reads are
    /// the newest. (Such writes insert after their fsync, outside the write lock; waiting
    /// for them costs the group commit of synced writes to indexed tables.)
    fn lock_for_indexed_write(
        &self,
        indexed: &[Arc<TableState>],
    ) -> parking_lot::MutexGuard<'_, WriteState> {
        loop {
            let ws = self.write.lock();
            if indexed
                .iter()
                .all(|t| t.synced_inflight.load(Ordering::Acquire) == 0)
            {
                return ws;
            }
            drop(ws);
            let mut seqs = self.seqs.lock();
            while indexed
                .iter()
                .any(|t| t.synced_inflight.load(Ordering::Acquire) > 0)
            {
                self.seqs_cv.wait_for(&mut seqs, Duration::from_millis(5));
            }
        }
    }

    /// Syncs everything appended to the WAL so far (an index backfill before it commits).
    pub(crate) fn sync_wal_now(&self) -> Result<()> {
        let position = self.write.lock().appended;
        self.sync_wal_to(position)
    }

    /// Publishes what is now visible and wakes writers waiting for it.
    fn publish(&self, seqs: &super::SeqState) {
        self.last_seq.fetch_max(seqs.visible(), Ordering::AcqRel);
        self.seqs_cv.notify_all();
    }

    /// Waits until every synced write allocated so far has reached its memtable or failed:
    /// a frozen memtable is flushed only once no write still belongs in it.
    pub(crate) fn wait_for_inflight_writes(&self) {
        let mut seqs = self.seqs.lock();
        let target = seqs.allocated;
        while seqs.inflight.first().is_some_and(|f| *f <= target) {
            self.seqs_cv.wait_for(&mut seqs, Duration::from_millis(100));
        }
    }

    /// Group commit: one writer at a time (the leader) syncs everything appended so far;
    /// the others wait on `sync_cv` and return as soon as a sync covered their record.
    /// Nothing is held across the fsync that a covered writer would need: when the sync
    /// lock itself was held across it, writers the last fsync had covered could queue
    /// behind the next leader's fsync before they found out, and 4 synced writers shared
    /// an fsync 2.2 at a time (2.6 now; DESIGN.md section 9).
    fn sync_wal_to(&self, position: u64) -> Result<()> {
        let mut leader = self.sync_leader.lock();
        loop {
            // A failed fsync by an earlier leader poisoned the database: refuse, even if an
            // earlier successful fsync covered this record (nothing is acknowledged after
            // one).
            self.check_poisoned()?;
            if self.synced.load(Ordering::Acquire) >= position {
                return Ok(());
            }
            if !*leader {
                break;
            }
            self.sync_cv.wait(&mut leader);
        }
        *leader = true;
        drop(leader);
        let synced = self.sync_appended();
        let mut leader = self.sync_leader.lock();
        *leader = false;
        self.sync_cv.notify_all();
        synced
    }

    /// The leader's sync: everything appended so far, written through and fdatasynced.
    fn sync_appended(&self) -> Result<()> {
        let (sink, end, target) = {
            let ws = self.write.lock();
            (ws.wal.sink(), ws.wal.len(), ws.appended)
        };
        // IMPORTANT: fdatasync of the WAL segment, after writing through every record queued
        // in it so far; this is what makes `sync: true` durable. (Records of older segments
        // were synced by the switch away from them.)
        sink.sync(end)
            .map_err(|e| self.poison("WAL fsync failed", e))?;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Slows, then stalls, a writer while the table's frozen memtables wait for flush.
    fn make_room(&self, t: &Arc<TableState>) -> Result<()> {
        self.l0_stall_check(t)?;
        let max_imm = self.opts.max_immutable_memtables.max(1);
        let mut slowed = false;
        loop {
            let sv = t.super_version();
            let full = sv.mem.approximate_bytes() >= self.opts.write_buffer_size;
            if sv.imm.len() < max_imm || !full {
                if !slowed && sv.imm.len() + 1 >= max_imm && !sv.imm.is_empty() && full {
                    std::thread::sleep(Duration::from_millis(1));
                    slowed = true;
                    continue;
                }
                return Ok(());
            }
            if let Some(why) = t.maintenance_error.lock().clone() {
                return Err(Error::TableUnavailable {
                    table: t.name.clone(),
                    reason: format!("writes stalled: cannot maintain table: {why}"),
                });
            }
            self.check_poisoned()?;
            self.nudge_worker_and_wait();
        }
    }

    /// Freezes `t`'s memtable and starts a new WAL segment, then wakes the worker to flush
    /// it. Called with the write lock held.
    pub(crate) fn switch_memtable(&self, ws: &mut WriteState, t: &Arc<TableState>) -> Result<()> {
        let segment = self.new_file_number();
        // IMPORTANT: the old segment is synced before the switch, so everything appended so
        // far is durable and group-commit waiters on the old segment are satisfied.
        ws.wal
            .sync()
            .map_err(|e| self.poison("WAL fsync failed", e))?;
        self.synced.fetch_max(ws.appended, Ordering::AcqRel);
        ws.wal = WalWriter::create(&*self.env, &self.path, segment)
            .map_err(|e| self.poison("cannot start WAL segment", e))?;
        // The manifest lists every segment (format 2), so a segment deleted from the middle
        // is missed at open. Recorded before any write lands in it.
        self.versions.lock().log_and_apply(
            &VersionEdit::new(vec![Edit::AddWalSegment(segment)]),
            None,
            |_| (),
        )?;
        let mut guard = t.sv.write();
        let old_sv = Arc::clone(&guard);
        old_sv.mem.set_next_log(segment);
        let mut imm = Vec::with_capacity(old_sv.imm.len() + 1);
        imm.push(Arc::clone(&old_sv.mem));
        imm.extend(old_sv.imm.iter().cloned());
        *guard = Arc::new(SuperVersion {
            mem: Arc::new(MemTable::new()),
            imm,
            version: Arc::clone(&old_sv.version),
        });
        drop(guard);
        self.wake_worker();
        Ok(())
    }

    /// How `t`'s records in WAL segment `segment` are protected: a fresh data key per
    /// table per segment, wrapped by the table key.
    fn wal_protection(
        &self,
        t: &Arc<TableState>,
        segment: crate::types::FileNumber,
    ) -> Result<Protection> {
        if !t.is_encrypted() {
            return Ok(Protection::Plain);
        }
        let (key_version, key) = t.current_key()?;
        Ok(Protection::fresh_wal(&key, key_version, t.id, segment))
    }

    pub(crate) fn create_table(
        &self,
        principal: &Principal,
        name: &str,
        options: &TableOptions,
    ) -> Result<Arc<TableState>> {
        crate::types::check_name("table", name)?;
        self.check_poisoned()?;
        if self.versions.tables().by_name.contains_key(name) {
            return Err(Error::TableExists(name.to_owned()));
        }
        // Checked before any KMS call (the ids are set once the table's is known).
        let local = &options.local_indexes;
        crate::index::declare_local(TableId(0), options, &self.opts.index_extractors)?;
        let (meta, key) = if options.is_encrypted() {
            let keyring = self.keyring.as_ref().ok_or_else(|| {
                Error::InvalidArgument(
                    "encrypted tables need a KMS: open the database with one".into(),
                )
            })?;
            let generated = keyring.create_table_key(principal, name, options)?;
            let meta = TableMeta {
                encrypted: true,
                // A local index's entries are attribute values, and may be a file's
                // boundaries: sealed whenever the table has local indexes.
                sealed_boundaries: options.boundaries == super::Boundaries::Sealed
                    || !options.local_indexes.is_empty(),
                key_arn: generated.key_arn.clone(),
                wrapped_table_key: generated.wrapped.clone(),
                grant_id: generated.grant_id.clone(),
                key_version: 1,
                block_size: self.opts.block_size as u32,
                bloom_bits_per_key: self.opts.bloom_bits_per_key as u32,
                compression: options.compression,
            };
            (meta, Some(Arc::new(generated.key)))
        } else {
            (
                TableMeta {
                    encrypted: false,
                    sealed_boundaries: false,
                    key_arn: String::new(),
                    wrapped_table_key: Vec::new(),
                    grant_id: String::new(),
                    key_version: 0,
                    block_size: self.opts.block_size as u32,
                    bloom_bits_per_key: self.opts.bloom_bits_per_key as u32,
                    compression: options.compression,
                },
                None,
            )
        };
        // A database key comes with the first encrypted table.
        let new_database_key = match (&key, &self.keyring) {
            (Some(_), Some(keyring)) if !self.versions.has_database_key() => {
                Some(keyring.create_database_key(principal)?)
            }
            _ => None,
        };
        let rewrote = new_database_key.is_some();
        // The write lock orders table creation against WAL switches, so the new table's
        // log number is the segment its first write will land in.
        let ws = self.write.lock();
        let mut versions = self.versions.lock();
        if self.versions.table(name).is_some() {
            return Err(Error::TableExists(name.to_owned()));
        }
        let id = self.versions.allocate_table_id();
        let segment = ws.wal.segment();
        let state = Arc::new(TableState::new(id, name.to_owned(), meta, Version::empty()));
        *state.key.write() = key.clone();
        state.set_log_number(segment);
        if !local.is_empty() {
            let defs = crate::index::declare_local(id, options, &self.opts.index_extractors)?;
            state
                .local
                .set(defs)
                .map_err(|_| Error::Internal("local indexes set twice".into()))?;
        }
        let insert = |set: &VersionSet| set.tables_mut().insert(&state);
        if new_database_key.is_some() {
            // The database's first encrypted table: a fresh manifest whose first record holds
            // the database key, so every record of it is authenticated.
            self.write_snapshot(&mut versions, new_database_key, Some(&state))?;
            insert(&self.versions);
        } else {
            let mut edits = vec![
                Edit::SetNextTableId(TableId(id.0 + 1)),
                Edit::CreateTable {
                    id,
                    name: name.to_owned(),
                    meta: state.meta.read().clone(),
                },
                Edit::SetLogNumber {
                    table: id,
                    log: segment,
                },
            ];
            // In the CreateTable's record: the table's key layout is fixed with it.
            edits.extend(crate::index::local_catalogue_edits(&state));
            let edit = VersionEdit { edits };
            versions.log_and_apply(&edit, key.as_ref().map(|k| (id, k)), insert)?;
        }
        drop(versions);
        if state.is_encrypted() {
            // Evidence outside the manifest: the table's key record in the WAL, synced. A
            // manifest cut back past this table's creation then meets a WAL record of a
            // table it never created, which recovery reports, instead of the table
            // vanishing without a trace.
            let mut ws = ws;
            let protection = self.wal_protection(&state, ws.wal.segment())?;
            ws.wal
                .register_table(id, protection)
                .and_then(|()| ws.wal.sync())
                .map_err(|e| self.poison("WAL write failed", e))?;
            self.synced.fetch_max(ws.appended, Ordering::AcqRel);
        } else {
            drop(ws);
        }
        if rewrote {
            self.delete_obsolete_files();
        }
        Ok(state)
    }

    pub(crate) fn drop_table(&self, name: &str) -> Result<()> {
        self.check_poisoned()?;
        let state = self
            .versions
            .table(name)
            .ok_or_else(|| Error::TableNotFound(name.to_owned()))?;
        let indexes = {
            let _ws = self.write.lock();
            let mut versions = self.versions.lock();
            // The table's indexes go in the same record.
            let indexes = state.indexes.read().clone();
            let mut edits = vec![Edit::DropTable { id: state.id }];
            edits.extend(indexes.iter().map(|i| Edit::DropTable { id: i.id }));
            versions.log_and_apply(&VersionEdit { edits }, None, |set| {
                state.indexes.write().clear();
                state.dropped.store(true, Ordering::Release);
                let mut tables = set.tables_mut();
                tables.by_name.remove(name);
                tables.by_id.remove(&state.id);
                for i in &indexes {
                    i.dropped.store(true, Ordering::Release);
                    tables.by_id.remove(&i.id);
                }
            })?;
            indexes
        };
        for i in &indexes {
            *i.key.write() = None;
            self.release_index_files(i);
        }
        // Crypto-shredding: the wrapped table key lived only in the manifest, which the next
        // rewrite drops; the engine's plaintext copy goes now.
        *state.key.write() = None;
        if state.is_encrypted() {
            if let Some(keyring) = &self.keyring {
                keyring.forget_table(name);
                // Never fails: a grant the KMS will not retire now is queued.
                keyring.retire_grant(&state.meta.read())?;
            }
        }
        for f in state.super_version().version.files() {
            f.mark_obsolete();
            self.sst_cache.evict(f.table, f.meta.number);
        }
        {
            let mut sv = state.sv.write();
            *sv = Arc::new(SuperVersion {
                mem: Arc::new(MemTable::new()),
                imm: Vec::new(),
                version: Arc::new(Version::empty()),
            });
        }
        // Rewrite the manifest now so the wrapped key leaves the disk immediately.
        self.rewrite_manifest()?;
        Ok(())
    }
}
