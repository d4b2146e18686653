//! Appending to one WAL segment.
//!
//! A segment is written by exactly one `WalWriter`, from its creation until the engine
//! switches to the next segment; it is never appended to after a reopen (recovery starts a
//! new segment), so each table's sealer sees every offset ever used under its data key.
//!
//! Table keys are written eagerly: `register_table` appends the table's `TableKey` record
//! at once (not synced; the next `sync` covers it, and a batch is never synced without the
//! key record before it, because both are appended in order to the same file).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{TableKeyRecord, WalRecordType, SEALED_SEQ_LEN, SECTION_SEALED, WAL_MAGIC};
use crate::crypto::{FileKind, Protection, UnitKind, UnitSealer};
use crate::error::{Error, Result};
use crate::filename;
use crate::framing::{begin_record, encode_file_header, finish_record};
use crate::storage::{join, Env, FileSyncer, WritableFile};
use crate::types::{FileNumber, SeqNo, TableId};

/// The writer of one WAL segment.
pub(crate) struct WalWriter {
    file: Box<dyn WritableFile>,
    segment: FileNumber,
    path: PathBuf,
    label: Arc<str>,
    tables: HashMap<TableId, UnitSealer>,
    /// Set by a failed append or sync: what reached the file is unknown, so nothing more
    /// may be appended or acknowledged (the engine must reopen).
    poisoned: bool,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("segment", &self.segment)
            .field("len", &self.file.len())
            .field("tables", &self.tables.len())
            .field("poisoned", &self.poisoned)
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
        file.append(&encode_file_header(WAL_MAGIC, segment))
            .map_err(|e| Error::io(ctx("writing the header of"), e))?;
        // IMPORTANT: the header is durable before any record is acknowledged, so a synced
        // record is never behind an unreadable header.
        file.sync()
            .map_err(|e| Error::io(ctx("syncing the header of"), e))?;
        // IMPORTANT: the directory entry is durable, so a synced segment cannot vanish.
        env.sync_dir(dir)
            .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
        Ok(WalWriter {
            file,
            segment,
            path,
            label: Arc::from(name),
            tables: HashMap::new(),
            poisoned: false,
            buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    pub(crate) fn segment(&self) -> FileNumber {
        self.segment
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the segment so far (header included).
    pub(crate) fn len(&self) -> u64 {
        self.file.len()
    }

    pub(crate) fn is_registered(&self, table: TableId) -> bool {
        self.tables.contains_key(&table)
    }

    /// The tables with a record in this segment so far.
    pub(crate) fn registered_tables(&self) -> Vec<TableId> {
        self.tables.keys().copied().collect()
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::poisoned(format!(
                "an earlier write or sync of WAL segment {} failed",
                self.label
            )));
        }
        Ok(())
    }

    fn write_buf(&mut self) -> Result<()> {
        if let Err(e) = self.file.append(&self.buf) {
            self.poisoned = true;
            return Err(Error::io(
                format!("appending to WAL segment {}", self.path.display()),
                e,
            ));
        }
        Ok(())
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
                self.buf.clear();
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

    /// Appends one batch record holding `sections` (each table's opaque payload) with one
    /// `append` call. Every table must be registered. Returns the segment's new length.
    /// Not durable until `sync` (or a syncer) returns.
    pub(crate) fn append_batch(
        &mut self,
        first_seq: SeqNo,
        sections: &[(TableId, &[u8])],
    ) -> Result<u64> {
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
        let base = self.file.len();
        self.buf.clear();
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
        finish_record(&mut self.buf, start, WalRecordType::Batch as u8)?;
        self.write_buf()?;
        Ok(self.file.len())
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        // IMPORTANT: acknowledged synced writes are durable once this returns. A failed
        // fsync poisons the writer: the kernel may have dropped the dirty pages.
        if let Err(e) = self.file.sync() {
            self.poisoned = true;
            return Err(Error::io(
                format!("syncing WAL segment {}", self.path.display()),
                e,
            ));
        }
        Ok(())
    }

    /// A handle that syncs this segment from another thread (group commit). A failure it
    /// reports must poison the engine: this writer cannot see it.
    pub(crate) fn syncer(&self) -> Result<Box<dyn FileSyncer>> {
        self.check_usable()?;
        self.file.syncer().map_err(|e| {
            Error::io(
                format!("cloning a sync handle of {}", self.path.display()),
                e,
            )
        })
    }
}
