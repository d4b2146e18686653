//! What the engine can tell about itself: encryption status per table, the layout of
//! files and their plaintext boundaries, and a full verification of every stored unit.

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ikey;
use crate::manifest::Boundary;
use crate::wal;

use super::keyring::CacheEntryStatus;
use super::table::TableState;
use super::{Db, DbInner};
use crate::filename;

/// Encryption at rest of one table, as `Db::encryption_status` reports it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct TableEncryptionStatus {
    /// The table's name.
    pub table: String,
    /// True for an encrypted table.
    pub encrypted: bool,
    /// The KMS key that protects the table key.
    pub key_arn: Option<String>,
    /// The key material of that KMS key the table key is wrapped under, when the KMS's
    /// blobs show it (the local KMS); a rotation of the KMS key is followed by a re-wrap.
    pub key_material: Option<String>,
    /// The grant that lets the engine maintain the table.
    pub grant_id: Option<String>,
    /// `ok`, or why background maintenance last failed (e.g. the grant was revoked).
    pub maintenance: String,
    /// Why the last background compaction of this table failed, while it is the latest
    /// compaction outcome (a later success clears it); writes stall on it past the level-0
    /// stop trigger.
    pub compaction_error: Option<String>,
    /// Why the table is locked (its key cannot be had: `grant revoked`, `key disabled`,
    /// `key pending deletion`, `key deleted`, `KMS unavailable`, `access denied`), if it is.
    pub locked: Option<String>,
    /// The KMS's words about the lock, if locked.
    pub locked_detail: Option<String>,
    /// Whether the files' key-range boundaries are readable in the manifest.
    pub boundaries: &'static str,
    /// SSTables, each with its own data key.
    pub sstables: usize,
    /// Data keys in use: one per SSTable, plus one per live WAL segment the table wrote.
    pub data_keys: usize,
    /// The table-key cache, per principal.
    pub cached_keys: Vec<CacheEntryStatus>,
    /// Its table-key versions and the re-encryption after a rotation (encrypted tables).
    pub key_versions: Option<super::TableKeyStatus>,
    /// What stays readable without any key.
    pub plaintext: Vec<&'static str>,
}

/// One file as `Db::inspect` shows it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct FileLayout {
    /// The level the file is in.
    pub level: u8,
    /// The file's name in the data directory.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Entries (puts and deletes) in it.
    pub entries: u64,
    /// The smallest sequence number in it.
    pub min_seq: u64,
    /// The largest sequence number in it.
    pub max_seq: u64,
    /// The smallest and largest user key as the manifest stores them: hex for plaintext
    /// boundaries, `None` when sealed.
    pub smallest: Option<String>,
    /// The largest user key, hex; `None` when sealed.
    pub largest: Option<String>,
}

/// A table's files by level.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct TableLayout {
    /// The table's name.
    pub table: String,
    /// True for an encrypted table.
    pub encrypted: bool,
    /// The ARN of the KMS key its table key is under (encrypted tables).
    pub key_arn: Option<String>,
    /// Its SSTables, by level.
    pub files: Vec<FileLayout>,
    /// Bytes in its active memtable.
    pub memtable_bytes: usize,
    /// Immutable memtables waiting for a flush.
    pub immutable_memtables: usize,
    /// Why the table is locked, if it is (see `TableEncryptionStatus::locked`).
    pub locked: Option<String>,
}

/// What `Db::verify` checked.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Tables checked.
    pub tables: usize,
    /// SSTables authenticated block by block.
    pub sstables: usize,
    /// WAL segments replayed record by record.
    pub wal_segments: usize,
    /// Locked tables (their key cannot be had), not checked: name and reason.
    pub locked: Vec<String>,
    /// Files in the directory that no table needs (see `Db::unreferenced_files`): left
    /// by a crash or a failed install, or copied in. Not deleted by open.
    pub unreferenced: Vec<String>,
}

fn stored_boundary(b: &Boundary) -> Option<String> {
    match b {
        Boundary::Plain(k) => Some(hex::encode(ikey::user_key(k))),
        Boundary::Sealed(_) => None,
    }
}

impl Db {
    /// Per table: encrypted or not, the key and grant, the key cache per principal, files
    /// and data keys, and what is plaintext.
    pub fn encryption_status(&self) -> Vec<TableEncryptionStatus> {
        let core = self.core();
        let cache = core
            .keyring
            .as_ref()
            .map(|k| k.cache_status())
            .unwrap_or_default();
        let wal_keys = core.write.lock().wal.registered_tables();
        let compaction_error = core.bg.lock().compaction.last_error.clone();
        core.all_tables()
            .iter()
            .map(|t| {
                let meta = t.meta.read().clone();
                let sstables = t.super_version().version.files().count();
                let in_wal = usize::from(meta.encrypted && wal_keys.contains(&t.id));
                let lock = t.lock_reason();
                TableEncryptionStatus {
                    locked: lock.as_ref().map(|(r, _)| r.as_str().to_owned()),
                    locked_detail: lock.map(|(_, d)| d),
                    table: t.display_name(),
                    encrypted: meta.encrypted,
                    key_arn: meta.encrypted.then(|| meta.key_arn.clone()),
                    key_material: core
                        .keyring
                        .as_ref()
                        .filter(|_| meta.encrypted)
                        .and_then(|k| k.key_material(&t.name, &meta)),
                    grant_id: meta.encrypted.then(|| meta.grant_id.clone()),
                    maintenance: t
                        .maintenance_error
                        .lock()
                        .clone()
                        .unwrap_or_else(|| "ok".to_owned()),
                    compaction_error: compaction_error
                        .as_ref()
                        .filter(|(id, _)| *id == t.id)
                        .map(|(_, why)| why.clone()),
                    boundaries: match (meta.encrypted, meta.sealed_boundaries) {
                        (false, _) => "plaintext (table not encrypted)",
                        (true, false) => "plaintext (range boundaries only)",
                        (true, true) => "sealed",
                    },
                    sstables,
                    data_keys: if meta.encrypted { sstables + in_wal } else { 0 },
                    cached_keys: cache
                        .iter()
                        .filter(|c| c.table == t.name)
                        .cloned()
                        .collect(),
                    key_versions: meta
                        .encrypted
                        .then(|| super::table_key_rotation::key_status(t)),
                    plaintext: if !meta.encrypted {
                        vec!["everything (CRC32 only)"]
                    } else if meta.sealed_boundaries {
                        vec![
                            "table name",
                            "file sizes and entry counts",
                            "sequence ranges",
                            "record sizes and timing",
                        ]
                    } else {
                        vec![
                            "table name",
                            "smallest and largest key of each SSTable (manifest)",
                            "file sizes and entry counts",
                            "sequence ranges",
                            "record sizes and timing",
                        ]
                    },
                }
            })
            .collect()
    }

    /// Every table's files by level, with boundaries as the manifest stores them.
    pub fn inspect(&self) -> Vec<TableLayout> {
        self.core()
            .all_tables()
            .iter()
            .map(|t| {
                let sv = t.super_version();
                let meta = t.meta.read().clone();
                TableLayout {
                    table: t.display_name(),
                    encrypted: meta.encrypted,
                    key_arn: meta.encrypted.then(|| meta.key_arn.clone()),
                    files: sv
                        .version
                        .files()
                        .map(|f| FileLayout {
                            level: f.meta.level.0,
                            file: filename::sst(f.meta.number),
                            size: f.meta.size,
                            entries: f.meta.entries,
                            min_seq: f.meta.min_seq.0,
                            max_seq: f.meta.max_seq.0,
                            smallest: stored_boundary(&f.meta.smallest),
                            largest: stored_boundary(&f.meta.largest),
                        })
                        .collect(),
                    memtable_bytes: sv.mem.approximate_bytes(),
                    immutable_memtables: sv.imm.len(),
                    locked: t.lock_reason().map(|(r, _)| r.as_str().to_owned()),
                }
            })
            .collect()
    }

    /// Authenticates (encrypted tables) or checksums (plaintext tables) every block of
    /// every SSTable and every record of every live WAL segment. The first failure is
    /// returned, naming the file and offset.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.core().verify()
    }
}

impl DbInner {
    fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let tables = self.all_tables();
        for t in &tables {
            if let Some((reason, _)) = t.lock_reason() {
                report.locked.push(format!("{}: {reason}", t.name));
                continue;
            }
            report.tables += 1;
            for f in t.super_version().version.files() {
                // A fresh reader: verification must read the disk, not the block cache.
                let reader = self.open_reader(t, f, None)?;
                reader.verify()?;
                report.sstables += 1;
            }
        }
        let segments = wal::list_segments(&*self.env, &self.path)?;
        let current = self.write.lock().wal.segment();
        for seg in segments {
            let path = self.path.join(filename::wal(seg));
            let mut resolve = |table, fk: Option<&wal::WalKeyRef<'_>>| {
                let t = tables.iter().find(|t| t.id == table);
                replay_key(t, fk, seg)
            };
            let mut sink = |_, _, _| Ok(());
            wal::replay_segment(
                &*self.env,
                &path,
                seg,
                seg == current,
                &mut resolve,
                &mut sink,
            )?;
            report.wal_segments += 1;
        }
        report.unreferenced = self.unreferenced_files()?;
        Ok(report)
    }
}

/// How to open a table's sections in a WAL segment (shared by recovery and verify).
pub(crate) fn replay_key(
    t: Option<&Arc<TableState>>,
    fk: Option<&wal::WalKeyRef<'_>>,
    seg: crate::types::FileNumber,
) -> Result<wal::ReplayKey> {
    let Some(t) = t else {
        return Ok(wal::ReplayKey::Skip);
    };
    // A locked table's sealed sections cannot be opened until its key is back.
    if t.is_locked() {
        return Ok(wal::ReplayKey::Skip);
    }
    if !t.is_encrypted() {
        return Ok(wal::ReplayKey::Plain);
    }
    match fk {
        Some(fk) => match t.key_of_version(fk.key_version) {
            Ok(key) => Ok(wal::ReplayKey::Sealed(fk.unwrap(&key)?)),
            // A retired table-key version in a segment the table no longer needs (its
            // records there are all in its files): nothing of it is read.
            Err(_) if seg < t.log_number() && t.table_key().is_some() => Ok(wal::ReplayKey::Skip),
            Err(e) => Err(e),
        },
        // An encrypted table's section with no key record can only be forged.
        None => Err(Error::corruption(
            filename::wal(seg),
            0,
            format!("a record of encrypted table {:?} has no data key", t.name),
        )),
    }
}
