//! Reading the live manifest at open, and verifying its per-table MAC chains.
//!
//! What the chain detects, for an encrypted table, once the engine has its table key: any
//! record touching the table that was edited, reordered, removed from the middle, copied
//! from another manifest (the manifest number is bound into every MAC), or forged without
//! the key; and a chain that does not start at the table's `CreateTable`.
//!
//! In format 2, a database that holds an encrypted table also has a database key, and every
//! record carries a database MAC chained from the first record: that covers the counters,
//! the catalogue (an encrypted flag cleared, a table dropped without a MAC), the WAL
//! segment list and plaintext tables' records too. The snapshot that opens a format-2
//! manifest ends with a `SnapshotEnd` record; nothing before it is ever a torn tail.
//!
//! What the chains do not detect by themselves:
//! - Truncation after the snapshot, at a record boundary (the same as a crash before the
//!   next append): recovery checks the files against it instead (a WAL segment or table
//!   the cut-off records created, a file the cut-off records deleted).
//! - A whole directory rolled back to an earlier copy: consistent and authentic; only a
//!   trusted monotonic counter outside the directory could tell.
//! - A format-1 manifest's database-wide records, and any record of a database with no
//!   encrypted table: no key covers them (CRC only: accidents, not attackers).

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use super::current::read_current_number;
use super::edit::{DatabaseKeyMeta, Edit, VersionEdit};
use super::record::{
    decode_payload, ChainKey, DbChainKey, ManifestRecordType, CHAIN_START, MAC_LEN, MANIFEST_MAGIC,
    MANIFEST_V2, MANIFEST_V3, MANIFEST_V4, MANIFEST_V5, MANIFEST_VERSION, MANIFEST_VERSIONS,
};
use super::writer::drop_only;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::filename;
use crate::framing::{
    check_file_header_versions, whole_record_after, FrameScanner, Scan, FILE_HEADER_LEN,
};
use crate::storage::{join, Env};
use crate::types::{FileNumber, TableId};

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
    /// The record is part of the manifest's snapshot (before `SnapshotEnd`).
    in_snapshot: bool,
}

/// One record in the database chain (format 2).
#[derive(Debug)]
struct DbLink {
    offset: u64,
    /// The payload bytes the database MAC covers.
    covered: Bytes,
    mac: Option<[u8; MAC_LEN]>,
}

/// A manifest read back: the edit groups in order, and what verifies them.
#[derive(Debug)]
pub(crate) struct ManifestContents {
    pub(crate) number: FileNumber,
    /// The manifest format (1 or 2).
    pub(crate) version: u8,
    pub(crate) edits: Vec<VersionEdit>,
    /// The manifest ended in a torn record, which was dropped.
    pub(crate) torn_tail: bool,
    /// Length of the valid prefix.
    pub(crate) valid_len: u64,
    /// The database key named by the first record (format 2).
    pub(crate) database_key: Option<DatabaseKeyMeta>,
    label: String,
    chains: HashMap<TableId, Vec<ChainLink>>,
    db_links: Vec<DbLink>,
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
                // Format 3: a snapshot written while the table was locked (its key not to
                // be had) carries its records under the database MAC alone.
                None if self.carries_unkeyed_snapshots() && link.in_snapshot => {}
                None => return Err(fail(link.offset)),
            }
        }
        Ok(())
    }

    /// Verifies the database MAC of every record under the database key (format 2).
    pub(crate) fn verify_database_chain(&self, key: &TableKey) -> Result<()> {
        let chain_key = DbChainKey::new(key, self.version)?;
        let mut prev = CHAIN_START;
        for link in &self.db_links {
            let ok = link
                .mac
                .as_ref()
                .is_some_and(|m| chain_key.verify(self.number, &prev, &link.covered, m));
            if !ok {
                return Err(Error::Integrity {
                    file: self.label.clone(),
                    offset: link.offset,
                });
            }
            prev = link.mac.unwrap_or(CHAIN_START);
        }
        Ok(())
    }

    /// True when a database key authenticates every record.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.database_key.is_some()
    }

    /// Format 3 with a database key: its snapshot may hold an encrypted table's records
    /// without their table MACs (written while that table's key could not be had).
    fn carries_unkeyed_snapshots(&self) -> bool {
        self.version >= MANIFEST_V3 && self.is_authenticated()
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
    let name = filename::manifest(number);
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

/// Parses a whole manifest. Only damage a crash can leave at the end (a record cut short,
/// a zero-filled tail) is forgiven, and in format 2 only after the snapshot: the manifest
/// is synced whole before `CURRENT` names it, so anything wrong before that is damage.
pub(crate) fn parse_manifest(
    data: Bytes,
    number: FileNumber,
    label: &str,
) -> Result<ManifestContents> {
    let version =
        check_file_header_versions(&data, MANIFEST_MAGIC, number, label, &MANIFEST_VERSIONS)?;
    let v2 = version >= MANIFEST_V2;
    let v4 = version >= MANIFEST_V4;
    let v5 = version >= MANIFEST_V5;
    let v6 = version >= MANIFEST_VERSION;
    let mut scanner = FrameScanner::new(data.clone(), !v2, label);
    let mut contents = ManifestContents {
        number,
        version,
        edits: Vec::new(),
        torn_tail: false,
        valid_len: 0,
        database_key: None,
        label: label.to_owned(),
        chains: HashMap::new(),
        db_links: Vec::new(),
    };
    let mut snapshot_done = !v2;
    let mut encrypted_table_at = None;
    loop {
        let frame = match scanner.next_frame() {
            Ok(Scan::Record(f)) => f,
            Ok(Scan::End) => break,
            Ok(Scan::Torn) => {
                contents.torn_tail = true;
                break;
            }
            // After the snapshot (the only place damage is reported): each record is synced
            // before the next is written, and a failed append or sync poisons the writer. So
            // damage with a whole record anywhere after it hit synced bytes, and damage with
            // none is the last append, torn by a power loss before its sync returned: the
            // same as a cut at that record's start, which recovery already judges.
            Ok(Scan::Damaged(what)) => {
                let at = scanner.position();
                if let Some(next) = whole_record_after(&data, at) {
                    return Err(Error::corruption(
                        label,
                        at,
                        format!("{what}, with a whole record after it at {next}"),
                    ));
                }
                contents.torn_tail = true;
                break;
            }
            Err(e) => return Err(e),
        };
        ManifestRecordType::try_from(frame.rtype).map_err(|t| {
            Error::corruption(
                label,
                frame.offset,
                format!("unknown manifest record type {t}"),
            )
        })?;
        let rec = decode_payload(&frame.payload, frame.payload_offset, label, version)?;
        let start = usize::try_from(rec.edits_offset - frame.payload_offset)
            .map_err(|_| Error::corruption(label, frame.offset, "edits offset"))?;
        let edits = frame.payload.slice(start..start + rec.edits_bytes.len());
        let index = contents.edits.len();
        let in_snapshot = !snapshot_done;
        let bad = |what: String| Error::corruption(label, frame.offset, what);
        for e in &rec.edit.edits {
            match e {
                Edit::SetDatabaseKey(k) if v2 && index == 0 && contents.database_key.is_none() => {
                    contents.database_key = Some(k.clone());
                }
                Edit::SetDatabaseKey(_) => {
                    return Err(bad("database key outside the first record".into()))
                }
                Edit::SnapshotEnd { records } if v2 && !snapshot_done => {
                    if usize::try_from(*records).ok() != Some(index + 1) {
                        return Err(bad(format!(
                            "snapshot end says {records} records, found {}",
                            index + 1
                        )));
                    }
                    snapshot_done = true;
                }
                Edit::SnapshotEnd { .. } => return Err(bad("unexpected snapshot end".into())),
                Edit::AddWalSegment(_) if !v2 => {
                    return Err(bad("WAL segment edit in a format-1 manifest".into()))
                }
                Edit::DeclareIndex { .. } | Edit::IndexReady { .. } if !v4 => {
                    return Err(bad(format!(
                        "index catalogue edit in a format-{version} manifest"
                    )))
                }
                Edit::TableKeyVersion(_) | Edit::RetireTableKey { .. } if !v6 => {
                    return Err(bad(format!(
                        "table-key version edit in a format-{version} manifest"
                    )))
                }
                Edit::DeclareLocalIndex(_) if !v5 => {
                    return Err(bad(format!(
                        "local index declaration in a format-{version} manifest"
                    )))
                }
                // A table's layout (whether its keys carry the local-index key space) is
                // fixed by its CreateTable record: a declaration anywhere else is damage.
                Edit::DeclareLocalIndex(d)
                    if !rec
                        .edit
                        .edits
                        .iter()
                        .any(|e| matches!(e, Edit::CreateTable { id, .. } if *id == d.table)) =>
                {
                    return Err(bad(format!(
                        "local index {:?} declared outside its table's CreateTable record",
                        d.name
                    )))
                }
                Edit::CreateTable { meta, .. } | Edit::SetTableKey { meta, .. }
                    if meta.encrypted =>
                {
                    encrypted_table_at.get_or_insert(frame.offset);
                }
                _ => {}
            }
        }
        if v2 {
            if rec.db_mac.is_some() != contents.database_key.is_some() {
                return Err(bad(if rec.db_mac.is_some() {
                    "database MAC in a manifest without a database key".into()
                } else {
                    "record without its database MAC".into()
                }));
            }
            contents.db_links.push(DbLink {
                offset: frame.offset,
                covered: frame.payload.slice(..rec.covered_len),
                mac: rec.db_mac,
            });
        }
        if snapshot_done {
            // From here on the records were appended one by one: a crash can tear the last.
            scanner.set_tolerate_torn(true);
            scanner.set_report_damage(true);
        }
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
                in_snapshot: in_snapshot && v2,
            });
        }
        contents.edits.push(rec.edit);
    }
    if !snapshot_done {
        return Err(Error::corruption(
            label,
            scanner.valid_len(),
            "the manifest ends before its snapshot is complete",
        ));
    }
    if let (true, None, Some(at)) = (v2, &contents.database_key, encrypted_table_at) {
        return Err(Error::corruption(
            label,
            at,
            "an encrypted table in a manifest without a database key",
        ));
    }
    contents.valid_len = scanner.valid_len();
    Ok(contents)
}
