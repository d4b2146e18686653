//! Writing a manifest: a snapshot of the state at creation, then appended edits.
//!
//! A manifest is written by one `ManifestWriter` and never appended to after a reopen: the
//! engine writes a fresh manifest (a snapshot) on every open, so a torn record at the end
//! of an old manifest is never followed by new ones. A snapshot may carry a locked table
//! (one whose key cannot be had) under the database MAC alone (format 3).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::current::read_current_number;
use super::current::set_current;
use super::edit::{Edit, VersionEdit};
use super::record::{
    encode_db_mac, encode_payload, ChainKey, DbChainKey, ManifestRecordType, CHAIN_START, MAC_LEN,
    MANIFEST_MAGIC, MANIFEST_VERSION,
};
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::filename;
use crate::storage::{join, Env, WritableFile};
use crate::types::{FileNumber, TableId};
use crate::wal::frame::{begin_record, encode_file_header_version, finish_record};

/// Where each table's MAC chain stands in the manifest being written.
#[derive(Clone, Copy)]
struct Chain {
    encrypted: bool,
    dropped: bool,
    /// The table's last MAC (`CHAIN_START` before its first record).
    prev: [u8; MAC_LEN],
}

/// The database MAC chain of the manifest being written (format 2).
struct DbChain {
    key: DbChainKey,
    /// The last record's database MAC.
    prev: [u8; MAC_LEN],
}

/// The writer of one manifest.
pub(crate) struct ManifestWriter {
    file: Box<dyn WritableFile>,
    number: FileNumber,
    path: PathBuf,
    chains: HashMap<TableId, Chain>,
    db_chain: Option<DbChain>,
    /// A write or sync failed: a partial or whole record may be on disk.
    poisoned: bool,
}

impl fmt::Debug for ManifestWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManifestWriter")
            .field("number", &self.number)
            .field("len", &self.file.len())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

/// Gives the table key of an encrypted table, for its MAC.
pub(crate) type MacKeys<'a> = &'a dyn Fn(TableId) -> Option<Arc<TableKey>>;

impl ManifestWriter {
    /// Writes manifest `number` in `dir` holding `snapshot` (one record per group) and a
    /// final `SnapshotEnd` record, syncs it, then switches `CURRENT` to it. With a
    /// `database_key`, the snapshot's first group must hold the `SetDatabaseKey` edit and
    /// every record carries a database MAC.
    ///
    /// On failure, `CURRENT` still names the old manifest (or nothing) and the new file is
    /// removed, unless `CURRENT` already names it.
    pub(crate) fn create(
        env: &dyn Env,
        dir: &Path,
        number: FileNumber,
        snapshot: &[VersionEdit],
        mac_keys: MacKeys<'_>,
        database_key: Option<&TableKey>,
    ) -> Result<ManifestWriter> {
        let path = join(dir, &filename::manifest(number));
        let has_key_edit = snapshot
            .first()
            .is_some_and(|g| g.edits.iter().any(|e| matches!(e, Edit::SetDatabaseKey(_))));
        if database_key.is_some() != has_key_edit {
            return Err(Error::Internal(
                "the database key edit must open an authenticated snapshot".into(),
            ));
        }
        let mut db_chain = database_key
            .map(|k| {
                DbChainKey::new(k, MANIFEST_VERSION).map(|key| DbChain {
                    key,
                    prev: CHAIN_START,
                })
            })
            .transpose()?;
        let mut chains = HashMap::new();
        let mut buf = encode_file_header_version(MANIFEST_MAGIC, number, MANIFEST_VERSION).to_vec();
        let records = u32::try_from(snapshot.len() + 1)
            .map_err(|_| Error::InvalidArgument("snapshot too large".into()))?;
        let end = VersionEdit::new(vec![Edit::SnapshotEnd { records }]);
        for edit in snapshot.iter().chain(std::iter::once(&end)) {
            let (updates, mac) = encode_record(
                number,
                &chains,
                db_chain.as_ref(),
                edit,
                mac_keys,
                true,
                &mut buf,
            )?;
            chains.extend(updates);
            if let (Some(c), Some(m)) = (db_chain.as_mut(), mac) {
                c.prev = m;
            }
        }
        let written = write_synced(env, dir, &path, &buf).and_then(|file| {
            set_current(env, dir, number)?;
            Ok(file)
        });
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                // Not named by CURRENT: nothing refers to the new file, so it goes.
                if read_current_number(env, dir).ok().flatten() != Some(number) {
                    let _ = env.remove_file(&path);
                }
                return Err(e);
            }
        };
        Ok(ManifestWriter {
            file,
            number,
            path,
            chains,
            db_chain,
            poisoned: false,
        })
    }

    /// True after a failed append or sync: the failed record may be on disk, whole or in
    /// part, so what it refers to must be kept.
    pub(crate) fn may_hold_failed_record(&self) -> bool {
        self.poisoned
    }

    /// True when every record carries a database MAC.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.db_chain.is_some()
    }

    pub(crate) fn number(&self) -> FileNumber {
        self.number
    }

    pub(crate) fn len(&self) -> u64 {
        self.file.len()
    }

    /// Appends one edit group as one record and syncs it. An error leaves the manifest
    /// unusable (poisoned): the engine must write a new one.
    pub(crate) fn append(&mut self, edit: &VersionEdit, mac_keys: MacKeys<'_>) -> Result<()> {
        if self.poisoned {
            return Err(Error::poisoned(format!(
                "an earlier write to manifest {} failed",
                self.path.display()
            )));
        }
        let mut buf = Vec::new();
        let (updates, db_mac) = encode_record(
            self.number,
            &self.chains,
            self.db_chain.as_ref(),
            edit,
            mac_keys,
            false,
            &mut buf,
        )?;
        let io = |what: &str, e| Error::io(format!("{what} manifest {}", self.path.display()), e);
        if let Err(e) = self.file.append(&buf) {
            self.poisoned = true;
            return Err(io("appending to", e));
        }
        // IMPORTANT: an edit is in effect (files it removes may be deleted, WAL segments
        // below a log number may be deleted) only once this sync returns.
        if let Err(e) = self.file.sync() {
            self.poisoned = true;
            return Err(io("syncing", e));
        }
        self.chains.extend(updates);
        if let (Some(c), Some(m)) = (self.db_chain.as_mut(), db_mac) {
            c.prev = m;
        }
        Ok(())
    }
}

/// Creates `path` holding `buf`, synced, with its directory entry synced.
fn write_synced(
    env: &dyn Env,
    dir: &Path,
    path: &Path,
    buf: &[u8],
) -> Result<Box<dyn WritableFile>> {
    let io = |what: &str, e| Error::io(format!("{what} manifest {}", path.display()), e);
    let mut file = env.create(path).map_err(|e| io("creating", e))?;
    file.append(buf).map_err(|e| io("writing", e))?;
    // IMPORTANT: the snapshot is durable before CURRENT may name it.
    file.sync().map_err(|e| io("syncing", e))?;
    // IMPORTANT: the manifest's directory entry is durable before CURRENT names it.
    env.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
    Ok(file)
}

/// The table chains a record moves to, and its database MAC.
type Encoded = (Vec<(TableId, Chain)>, Option<[u8; MAC_LEN]>);

/// Appends the record for `edit` to `out`; returns the chain states it moves to.
fn encode_record(
    number: FileNumber,
    chains: &HashMap<TableId, Chain>,
    db_chain: Option<&DbChain>,
    edit: &VersionEdit,
    mac_keys: MacKeys<'_>,
    in_snapshot: bool,
    out: &mut Vec<u8>,
) -> Result<Encoded> {
    let mut edits = Vec::new();
    edit.encode(&mut edits)?;
    // Apply the group's table changes in order to copies of the touched chains.
    let mut touched: HashMap<TableId, Chain> = HashMap::new();
    for e in &edit.edits {
        let Some(table) = e.table() else { continue };
        let current = touched.get(&table).or_else(|| chains.get(&table)).copied();
        let next = match (e, current) {
            (Edit::CreateTable { meta, .. }, None) => Chain {
                encrypted: meta.encrypted,
                dropped: false,
                prev: CHAIN_START,
            },
            (Edit::CreateTable { .. }, Some(_)) => {
                return Err(Error::Internal(format!("table id {table} created twice")))
            }
            (_, None) => {
                return Err(Error::Internal(format!(
                    "manifest edit for unknown table {table}"
                )))
            }
            (_, Some(c)) if c.dropped => {
                return Err(Error::Internal(format!(
                    "manifest edit for dropped table {table}"
                )))
            }
            (Edit::SetTableKey { meta, .. }, Some(c)) if meta.encrypted != c.encrypted => {
                return Err(Error::InvalidArgument(format!(
                    "table {table}: encryption cannot be switched on or off"
                )))
            }
            (Edit::DropTable { .. }, Some(c)) => Chain { dropped: true, ..c },
            (_, Some(c)) => c,
        };
        touched.insert(table, next);
    }
    let mut tables: Vec<TableId> = touched.keys().copied().collect();
    tables.sort_unstable();
    let mut macs = Vec::new();
    let mut updates = Vec::new();
    for table in tables {
        let Some(mut chain) = touched.get(&table).copied() else {
            continue;
        };
        if chain.encrypted {
            match mac_keys(table) {
                Some(key) => {
                    let mac = ChainKey::new(&key)?.compute(number, &chain.prev, table, &edits);
                    macs.push((table, mac));
                    chain.prev = mac;
                }
                // Dropping a table whose key is gone (revoked, deleted) must still work.
                None if drop_only(edit, table) => {}
                // A locked table (its key cannot be had) rides in a new snapshot under the
                // database MAC alone; its chain goes on from `CHAIN_START`.
                None if in_snapshot && db_chain.is_some() => {}
                None => {
                    return Err(Error::TableUnavailable {
                        table: table.to_string(),
                        reason: "its key is needed to authenticate a manifest edit".into(),
                    })
                }
            }
        }
        updates.push((table, chain));
    }
    let start = begin_record(out);
    let payload_start = out.len();
    encode_payload(&edits, &macs, out)?;
    let db_mac = db_chain.map(|c| {
        let covered = out.get(payload_start..).unwrap_or_default();
        c.key.compute(number, &c.prev, covered)
    });
    encode_db_mac(db_mac.as_ref(), out);
    finish_record(out, start, ManifestRecordType::Edit as u8)?;
    Ok((updates, db_mac))
}

/// True when every edit of `edit` for `table` is a `DropTable`.
pub(crate) fn drop_only(edit: &VersionEdit, table: TableId) -> bool {
    edit.edits
        .iter()
        .filter(|e| e.table() == Some(table))
        .all(|e| matches!(e, Edit::DropTable { .. }))
}
