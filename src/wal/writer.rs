//! Appending to one WAL segment.
//!
//! A segment is written by exactly one `WalWriter`, from its creation until the engine
//! switches to the next segment; it is never appended to after a reopen (recovery starts a
//! new segment), so each table's sealer sees every offset ever used under its data key.
//!
//! Table keys are written eagerly: `register_table` appends the table's `TableKey` record
//! at once (not synced; the next `sync` covers it, and a batch is never synced without the
//! key record before it, because both are appended in order to the same file).
//!
//! Group commit: the engine's write path encodes a batch under its write lock with
//! `buffer_batch`, which only queues the record's bytes in the segment's [`WalSink`], and
//! hands them to the OS after releasing the lock (`WalSink::write_through`). Whichever
//! writer gets the sink's file first writes everything queued so far in one `append`, so
//! writers from several threads share write syscalls (and fsyncs, `WalSink::sync`), and
//! the next writer encodes while the previous one is in the kernel. A writer is
//! acknowledged only once its own bytes were written (and synced when asked). Records
//! reach the file in the order they were encoded, so offsets are as if appended at once.
//!
//! Sync points: after an fsync succeeds the sink remembers how many bytes it covered, and
//! the next record the writer encodes is preceded by a `SyncPoint` record carrying that
//! length. Recovery forgives damage past the last length a surviving sync point vouches
//! for (a page torn by a power loss during unsynced writes) and refuses damage before it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::record::{
    TableKeyRecord, WalRecordType, SEALED_SEQ_LEN, SECTION_SEALED, WAL_FORMAT_VERSION, WAL_MAGIC,
};
use crate::crypto::{FileKind, Protection, UnitKind, UnitSealer};
use crate::error::{Error, Result};
use crate::filename;
use crate::framing::{begin_record, encode_file_header_version, finish_record};
use crate::storage::{join, Env, FileSyncer, WritableFile};
use crate::types::{FileNumber, SeqNo, TableId};

/// The file of one WAL segment and the encoded bytes queued for it, shared by the
/// segment's `WalWriter` (under the engine's write lock) and writers that write their
/// queued records through after releasing that lock.
pub(crate) struct WalSink {
    /// Encoded records not yet handed to the OS, in segment order.
    queued: Mutex<Vec<u8>>,
    /// The file, and a spare buffer to swap with `queued`. Held across an `append`.
    file: Mutex<SinkFile>,
    /// Bytes of the segment handed to the OS (header included).
    written: AtomicU64,
    /// Bytes of the segment an fsync that succeeded had covered (header included): what
    /// the writer's next sync point records.
    synced: AtomicU64,
    /// Set by a failed append or sync: what reached the file is unknown, so nothing more
    /// may be appended or acknowledged (the engine must reopen).
    poisoned: AtomicBool,
    /// Serializes fsyncs, so a failed one is seen by every later caller: the kernel reports
    /// a writeback error once, and a second fsync after it may return success for pages
    /// it dropped (fsyncgate).
    sync_lock: Mutex<()>,
    syncer: Box<dyn FileSyncer>,
    path: PathBuf,
}

struct SinkFile {
    file: Box<dyn WritableFile>,
    spare: Vec<u8>,
}

impl WalSink {
    fn check_usable(&self, label: &str) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::poisoned(format!(
                "an earlier write or sync of WAL segment {label} failed"
            )));
        }
        Ok(())
    }

    /// Queues the record in `record` behind those queued before it, leaving `record` empty.
    /// With nothing queued (a lone writer) the buffers are swapped instead of copied.
    fn queue(&self, record: &mut Vec<u8>) {
        let mut queued = self.queued.lock();
        if queued.is_empty() {
            std::mem::swap(&mut *queued, record);
        } else {
            queued.extend_from_slice(record);
        }
        record.clear();
    }

    /// Returns once the segment's bytes up to `end` reached the OS, writing everything
    /// queued so far (its own record and those of writers behind it) if nobody has yet.
    pub(crate) fn write_through(&self, end: u64) -> Result<()> {
        if self.written.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        let mut guard = self.file.lock();
        if self.written.load(Ordering::Acquire) >= end {
            return Ok(());
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::poisoned(format!(
                "an earlier write or sync of WAL segment {} failed",
                self.path.display()
            )));
        }
        let SinkFile { file, spare } = &mut *guard;
        std::mem::swap(&mut *self.queued.lock(), spare);
        if let Err(e) = file.append(spare) {
            self.poisoned.store(true, Ordering::Release);
            return Err(Error::io(
                format!("appending to WAL segment {}", self.path.display()),
                e,
            ));
        }
        spare.clear();
        let written = file.len();
        self.written.store(written, Ordering::Release);
        if written < end {
            return Err(Error::Internal(format!(
                "WAL segment {} written to {written}, a record ends at {end}",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Makes the segment's bytes up to `end` durable: writes them through, then fdatasyncs
    /// the file (covering every byte written before, whoever wrote it).
    pub(crate) fn sync(&self, end: u64) -> Result<()> {
        self.write_through(end)?;
        let _sync = self.sync_lock.lock();
        // `write_through` returns early when another writer already wrote these bytes: a
        // failed fsync since then must still refuse, never sync again and report success.
        self.check_usable(&self.path.display().to_string())?;
        // Only bytes handed to the OS before the fsync starts are known to be covered by it.
        let covered = self.written.load(Ordering::Acquire);
        // IMPORTANT: acknowledged synced writes are durable once this returns. A failed
        // fsync poisons the segment: the kernel may have dropped the dirty pages.
        if let Err(e) = self.syncer.sync() {
            self.poisoned.store(true, Ordering::Release);
            return Err(Error::io(
                format!("syncing WAL segment {}", self.path.display()),
                e,
            ));
        }
        self.synced.fetch_max(covered, Ordering::AcqRel);
        Ok(())
    }
}

/// The writer of one WAL segment.
pub(crate) struct WalWriter {
    sink: Arc<WalSink>,
    /// Bytes of the segment so far, written or queued (header included).
    len: u64,
    segment: FileNumber,
    label: Arc<str>,
    tables: HashMap<TableId, UnitSealer>,
    /// The synced length the last sync point written or queued records.
    sync_point: u64,
    /// The synced length of a sync point at the start of `buf`, until `buf` is queued.
    buf_sync_point: Option<u64>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("segment", &self.segment)
            .field("len", &self.len)
            .field("written", &self.sink.written.load(Ordering::Relaxed))
            .field("tables", &self.tables.len())
            .field("poisoned", &self.sink.poisoned.load(Ordering::Relaxed))
            .finish()
    }
}

impl WalWriter {
    /// Creates segment `segment` in `dir`, writes and syncs its header, and syncs `dir`.
    pub(crate) fn create(env: &dyn Env, dir: &Path, segment: FileNumber) -> Result<WalWriter> {
        let name = filename::wal(segment);
        let path = join(dir, &name);
        let ctx = |what: &str| format!("{what} WAL segment {}", path.display());
        let mut file = env
            .create(&path)
            .map_err(|e| Error::io(ctx("creating"), e))?;
        file.append(&encode_file_header_version(
            WAL_MAGIC,
            segment,
            WAL_FORMAT_VERSION,
        ))
        .map_err(|e| Error::io(ctx("writing the header of"), e))?;
        // IMPORTANT: the header is durable before any record is acknowledged, so a synced
        // record is never behind an unreadable header.
        file.sync()
            .map_err(|e| Error::io(ctx("syncing the header of"), e))?;
        // IMPORTANT: the directory entry is durable, so a synced segment cannot vanish.
        env.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
        let syncer = file
            .syncer()
            .map_err(|e| Error::io(ctx("cloning a sync handle of"), e))?;
        let len = file.len();
        Ok(WalWriter {
            sink: Arc::new(WalSink {
                queued: Mutex::new(Vec::new()),
                file: Mutex::new(SinkFile {
                    file,
                    spare: Vec::new(),
                }),
                written: AtomicU64::new(len),
                // The header was synced above.
                synced: AtomicU64::new(len),
                poisoned: AtomicBool::new(false),
                sync_lock: Mutex::new(()),
                syncer,
                path,
            }),
            len,
            segment,
            label: Arc::from(name),
            tables: HashMap::new(),
            sync_point: len,
            buf_sync_point: None,
            buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    pub(crate) fn segment(&self) -> FileNumber {
        self.segment
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.sink.path
    }

    /// Bytes in the segment so far, written or queued (header included).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_registered(&self, table: TableId) -> bool {
        self.tables.contains_key(&table)
    }

    /// The tables with a record in this segment so far.
    pub(crate) fn registered_tables(&self) -> Vec<TableId> {
        self.tables.keys().copied().collect()
    }

    fn check_usable(&self) -> Result<()> {
        self.sink.check_usable(&self.label)
    }

    /// Queues the record in `buf` behind those queued before it.
    fn queue_buf(&mut self) {
        self.len += self.buf.len() as u64;
        self.sink.queue(&mut self.buf);
        if let Some(synced) = self.buf_sync_point.take() {
            self.sync_point = synced;
        }
    }

    /// Empties `buf` for the next record, first putting a `SyncPoint` record in it if an
    /// fsync has covered more of the segment since the last one (one per record at most;
    /// it travels in the same `append` as the record it precedes).
    fn start_buf(&mut self) -> Result<()> {
        self.buf.clear();
        self.buf_sync_point = None;
        let synced = self.sink.synced.load(Ordering::Acquire);
        if synced > self.sync_point {
            let start = begin_record(&mut self.buf);
            self.buf.extend_from_slice(&synced.to_le_bytes());
            finish_record(&mut self.buf, start, WalRecordType::SyncPoint as u8)?;
            self.buf_sync_point = Some(synced);
        }
        Ok(())
    }

    /// Queues the record in `buf` and writes everything queued through.
    fn write_buf(&mut self) -> Result<()> {
        self.queue_buf();
        self.sink.write_through(self.len)
    }

    /// The segment's file side, for writing queued records through outside the write lock.
    pub(crate) fn sink(&self) -> Arc<WalSink> {
        Arc::clone(&self.sink)
    }

    /// Makes `table` writable in this segment. For a sealed table this appends its
    /// `TableKey` record now. Registering a table twice is an error.
    pub(crate) fn register_table(&mut self, table: TableId, protection: Protection) -> Result<()> {
        self.check_usable()?;
        if self.tables.contains_key(&table) {
            return Err(Error::Internal(format!(
                "table {table} registered twice in WAL segment {}",
                self.label
            )));
        }
        let sealer = match protection.wrapped() {
            None => UnitSealer::plain(),
            Some(wrapped) => {
                let want = (table, FileKind::Wal, self.segment);
                let got = (wrapped.ctx.table, wrapped.ctx.file_kind, wrapped.ctx.file);
                if got != want {
                    return Err(Error::Internal(format!(
                        "table {table}'s data key for {} was wrapped for {got:?}",
                        self.label
                    )));
                }
                self.start_buf()?;
                let start = begin_record(&mut self.buf);
                TableKeyRecord {
                    table,
                    key_version: wrapped.ctx.key_version,
                    wrapped_dek: wrapped.wrapped_dek,
                }
                .encode(&mut self.buf);
                finish_record(&mut self.buf, start, WalRecordType::TableKey as u8)?;
                self.write_buf()?;
                protection.into_sealer(self.label.clone())
            }
        };
        self.tables.insert(table, sealer);
        Ok(())
    }

    /// Appends one batch record holding `sections` (each table's opaque payload), writing
    /// it (and anything queued before it) with one `append` call. Every table must be
    /// registered. Returns the segment's new length. Not durable until `sync` returns.
    pub(crate) fn append_batch(
        &mut self,
        first_seq: SeqNo,
        sections: &[(TableId, &[u8])],
    ) -> Result<u64> {
        self.encode_batch(first_seq, sections)?;
        self.write_buf()?;
        Ok(self.len)
    }

    /// Queues one batch record like `append_batch` without writing it: the record's bytes
    /// reach the OS when `WalSink::write_through` (or `sync`) covers the returned length.
    pub(crate) fn buffer_batch(
        &mut self,
        first_seq: SeqNo,
        sections: &[(TableId, &[u8])],
    ) -> Result<u64> {
        self.encode_batch(first_seq, sections)?;
        self.queue_buf();
        Ok(self.len)
    }

    /// Encodes (and seals) one batch record into `buf`, at the segment's current length.
    fn encode_batch(&mut self, first_seq: SeqNo, sections: &[(TableId, &[u8])]) -> Result<()> {
        self.check_usable()?;
        if sections.is_empty() {
            return Err(Error::Internal("empty WAL batch".to_owned()));
        }
        if first_seq > SeqNo::MAX {
            return Err(Error::InvalidArgument(format!(
                "sequence number {} out of range",
                first_seq.0
            )));
        }
        // Check every table first: a sealer must not advance for a record never written.
        if let Some((table, _)) = sections.iter().find(|(t, _)| !self.tables.contains_key(t)) {
            return Err(Error::Internal(format!(
                "table {table} writes to WAL segment {} unregistered",
                self.label
            )));
        }
        let base = self.len;
        self.start_buf()?;
        let start = begin_record(&mut self.buf);
        self.buf.extend_from_slice(&first_seq.0.to_le_bytes());
        for (table, payload) in sections {
            let sealer = self.tables.get_mut(table).ok_or_else(|| {
                Error::Internal(format!(
                    "table {table} writes to WAL segment {} unregistered",
                    self.label
                ))
            })?;
            let sealed = sealer.is_sealed();
            let inner_len = payload.len() + if sealed { SEALED_SEQ_LEN } else { 0 };
            let stored_len = u32::try_from(inner_len + sealer.overhead()).map_err(|_| {
                Error::InvalidArgument(format!("WAL section of {} bytes", payload.len()))
            })?;
            self.buf.extend_from_slice(&table.0.to_le_bytes());
            self.buf.push(if sealed { SECTION_SEALED } else { 0 });
            self.buf.extend_from_slice(&stored_len.to_le_bytes());
            let stored_offset = base + self.buf.len() as u64;
            let before = self.buf.len();
            if sealed {
                self.scratch.clear();
                self.scratch.extend_from_slice(&first_seq.0.to_le_bytes());
                self.scratch.extend_from_slice(payload);
                sealer.seal(
                    UnitKind::WalRecord,
                    stored_offset,
                    &self.scratch,
                    &mut self.buf,
                )?;
                self.scratch.clear();
            } else {
                sealer.seal(UnitKind::WalRecord, stored_offset, payload, &mut self.buf)?;
            }
            if self.buf.len() - before != stored_len as usize {
                return Err(Error::Internal(
                    "sealed section length differs from its header".to_owned(),
                ));
            }
        }
        finish_record(&mut self.buf, start, WalRecordType::Batch as u8)
    }

    /// Makes everything appended or queued so far durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        self.sink.sync(self.len)
    }

    /// Makes everything so far durable and then vouches for it with a synced sync point, so
    /// that damage anywhere in the segment is refused at recovery rather than read as a
    /// torn tail (for a clean close, after which the segment is replayed as the last one).
    pub(crate) fn sync_and_vouch(&mut self) -> Result<()> {
        self.sync()?;
        self.start_buf()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_buf()?;
        self.sink.sync(self.len)
    }
}
