//! Reading the live manifest at open, and verifying its per-table MAC chains.
//!
//! What the chain detects, for an encrypted table, once the engine has its table key: any
//! record touching the table that was edited, reordered, removed from the middle, copied
//! from another manifest (the manifest number is bound into every MAC), or forged without
//! the key; and a chain that does not start at the table's `CreateTable`.
//!
//! What it does not detect:
//! - Truncation: records removed from the END of a table's chain (or the whole manifest
//!   replaced by an older, valid one) still verify. The engine detects a manifest-only
//!   rollback because WAL segments below the log numbers it recorded later were deleted: a
//!   rolled-back manifest names segments that no longer exist.
//! - A whole directory rolled back to an earlier copy: consistent and authentic; only a
//!   trusted monotonic counter outside the directory could tell.
//! - Database-wide counters (`SetNextFileNumber`, `SetLastSeq`, `SetNextTableId`) and
//!   plaintext tables' records: no key covers them (CRC only).
//! - An encrypted table's `CreateTable` rewritten as a plaintext table: its chain is then
//!   never checked; its files still do not open (their data keys need the table key).

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use super::current::{manifest_file_name, read_current_number};
use super::edit::{Edit, VersionEdit};
use super::record::{
    decode_payload, ChainKey, ManifestRecordType, CHAIN_START, MAC_LEN, MANIFEST_MAGIC,
};
use super::writer::drop_only;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::storage::{join, Env};
use crate::types::{FileNumber, TableId};
use crate::wal::frame::{check_file_header, FrameScanner, Scan, FILE_HEADER_LEN};

/// One record in a table's chain.
#[derive(Debug)]
struct ChainLink {
    /// File offset of the record.
    offset: u64,
    /// The record's encoded edits (a slice of the manifest).
    edits: Bytes,
    mac: Option<[u8; MAC_LEN]>,
    creates: bool,
    drop_only: bool,
}

/// A manifest read back: the edit groups in order, and what verifies them.
#[derive(Debug)]
pub(crate) struct ManifestContents {
    pub(crate) number: FileNumber,
    pub(crate) edits: Vec<VersionEdit>,
    /// The manifest ended in a torn record, which was dropped.
    pub(crate) torn_tail: bool,
    /// Length of the valid prefix.
    pub(crate) valid_len: u64,
    label: String,
    chains: HashMap<TableId, Vec<ChainLink>>,
}

impl ManifestContents {
    /// Verifies the MAC chain of encrypted table `table` under its table key.
    /// `Integrity` naming the manifest and the first bad record's offset on failure.
    pub(crate) fn verify_table_chain(&self, table: TableId, key: &TableKey) -> Result<()> {
        let fail = |offset: u64| Error::Integrity {
            file: self.label.clone(),
            offset,
        };
        let links = self
            .chains
            .get(&table)
            .ok_or_else(|| fail(FILE_HEADER_LEN as u64))?;
        let chain_key = ChainKey::new(key)?;
        let mut prev = CHAIN_START;
        for (i, link) in links.iter().enumerate() {
            if link.creates != (i == 0) {
                return Err(fail(link.offset));
            }
            match &link.mac {
                Some(mac) => {
                    if !chain_key.verify(self.number, &prev, table, &link.edits, mac) {
                        return Err(fail(link.offset));
                    }
                    prev = *mac;
                }
                // A drop written without the key ends the chain; nothing may follow it.
                None if link.drop_only && i + 1 == links.len() => {}
                None => return Err(fail(link.offset)),
            }
        }
        Ok(())
    }
}

/// Reads the manifest `CURRENT` names; `None` when there is no `CURRENT` (a new database).
pub(crate) fn read_current(env: &dyn Env, dir: &Path) -> Result<Option<ManifestContents>> {
    let Some(number) = read_current_number(env, dir)? else {
        return Ok(None);
    };
    read_manifest(env, dir, number).map(Some)
}

/// Reads manifest `number` in `dir`.
pub(crate) fn read_manifest(
    env: &dyn Env,
    dir: &Path,
    number: FileNumber,
) -> Result<ManifestContents> {
    let name = manifest_file_name(number);
    let path = join(dir, &name);
    if !env.exists(&path) {
        return Err(Error::corruption(
            "CURRENT",
            0,
            format!("CURRENT names {name}, which does not exist"),
        ));
    }
    let ctx = || format!("reading manifest {}", path.display());
    let file = env.open_read(&path).map_err(|e| Error::io(ctx(), e))?;
    let len = usize::try_from(file.len())
        .map_err(|_| Error::corruption(&*name, 0, "manifest too large to map"))?;
    let data = file.read_at(0, len).map_err(|e| Error::io(ctx(), e))?;
    parse_manifest(data, number, &name)
}

/// Parses a whole manifest. Only a torn final record is forgiven: the manifest is synced
/// whole before `CURRENT` names it, so a short header is damage.
pub(crate) fn parse_manifest(
    data: Bytes,
    number: FileNumber,
    label: &str,
) -> Result<ManifestContents> {
    check_file_header(&data, MANIFEST_MAGIC, number, label)?;
    let mut scanner = FrameScanner::new(data, true, label);
    let mut contents = ManifestContents {
        number,
        edits: Vec::new(),
        torn_tail: false,
        valid_len: 0,
        label: label.to_owned(),
        chains: HashMap::new(),
    };
    loop {
        let frame = match scanner.next_frame()? {
            Scan::Record(f) => f,
            Scan::End => break,
            Scan::Torn => {
                contents.torn_tail = true;
                break;
            }
        };
        ManifestRecordType::try_from(frame.rtype).map_err(|t| {
            Error::corruption(
                label,
                frame.offset,
                format!("unknown manifest record type {t}"),
            )
        })?;
        let rec = decode_payload(&frame.payload, frame.payload_offset, label)?;
        let start = usize::try_from(rec.edits_offset - frame.payload_offset)
            .map_err(|_| Error::corruption(label, frame.offset, "edits offset"))?;
        let edits = frame.payload.slice(start..start + rec.edits_bytes.len());
        for table in rec.edit.tables() {
            let creates = rec
                .edit
                .edits
                .iter()
                .any(|e| matches!(e, Edit::CreateTable { id, .. } if *id == table));
            let mac = rec.macs.iter().find(|(t, _)| *t == table).map(|(_, m)| *m);
            contents.chains.entry(table).or_default().push(ChainLink {
                offset: frame.offset,
                edits: edits.clone(),
                mac,
                creates,
                drop_only: drop_only(&rec.edit, table),
            });
        }
        contents.edits.push(rec.edit);
    }
    contents.valid_len = scanner.valid_len();
    Ok(contents)
}
