//! The database: named tables, each an LSM of its own, sharing one WAL, one manifest, one
//! block cache and one background worker.

mod checkpoint;
#[cfg(test)]
mod compaction_tests;
mod compactor;
mod files;
mod flush;
mod health;
mod keyring;
mod locked;
mod manual_compaction;
mod options;
mod pending_retires;
mod range_iter;
mod read;
mod recovery;
mod rotation;
mod shred;
mod snapshot;
mod stall;
mod stats;
mod status;
mod table;
mod table_context;
mod table_key_rotation;
#[cfg(test)]
mod tests;
mod version_set;
mod write;
mod write_batch;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::compaction::DbStats;
use crate::error::{Error, Result};
use crate::kms::Principal;
use crate::manifest::{TableMeta, VersionEdit};
use crate::sst::BlockCache;
use crate::storage::{Env, FileLock};
use crate::types::{FileNumber, SeqNo, TableId};
use crate::wal::WalWriter;

pub use checkpoint::{CheckpointReport, RestoreReport};
pub use keyring::CacheEntryStatus;
pub use locked::LockReason;
pub use options::{
    Boundaries, Encryption, Options, TableOptions, WriteOptions, DEFAULT_ACCOUNT,
    DEFAULT_KEY_MAX_AGE, DEFAULT_KEY_RECHECK_AFTER_IDLE, DEFAULT_REGION,
};
pub(crate) use range_iter::prefix_successor;
pub use range_iter::RangeIter;
pub use rotation::RewrapOutcome;
pub use shred::KeyDeletion;
pub use snapshot::Snapshot;
pub use status::{FileLayout, TableEncryptionStatus, TableLayout, VerifyReport};
pub use table::Table;
pub use table_key_rotation::{
    OldKeyVersionStatus, RotationWork, TableKeyRotation, TableKeyStatus, MAX_LIVE_TABLE_KEYS,
    REWRITE_BYTES_PER_SEC,
};
pub use write_batch::WriteBatch;

use health::Health;
use snapshot::SnapshotList;
pub(crate) use table::TableState;
pub(crate) use version_set::{Counters, DatabaseKey, Recovered, Tables, VersionSet};

pub(crate) use compactor::{level_targets, start_compactor};
pub(crate) use read::check_new_table_file;
pub(crate) use table::SuperVersion;
// The version types live below the engine (compaction shares them); `super::version::..`
// paths of the submodules go through this import.
use crate::version;
pub(crate) use crate::version::{Version, NUM_LEVELS};
pub(crate) use write_batch::decode_section;
#[cfg(feature = "fuzzing")]
pub(crate) use write_batch::SectionEntry;

/// The WAL and the position accounting for group commit.
pub(crate) struct WriteState {
    pub(crate) wal: WalWriter,
    /// Bytes appended to the WAL since open, across segments: a monotonic position.
    pub(crate) appended: u64,
    /// The last sequence number handed out (a copy of `SeqState::allocated` kept under the
    /// write lock, so a writer reads it without taking the sequence lock).
    pub(crate) last_allocated: u64,
}

/// Background work coordination.
#[derive(Default)]
pub(crate) struct BgState {
    pub(crate) shutdown: bool,
    pub(crate) work_pending: bool,
    /// Flushes completed since open; waiters compare against it.
    pub(crate) flushes_done: u64,
    /// The worker is in `flush_pending`: flushing, and deleting the WAL segments its
    /// flushes made obsolete (after installing them); `flush_all` waits for the end.
    pub(crate) flushing: bool,
    /// Compaction coordination and counters.
    pub(crate) compaction: crate::compaction::CompactionState,
}

/// Sequence numbers handed out and not yet visible. A write becomes visible (its numbers
/// published in `DbInner::last_seq`) only once it is in the memtable, and a synced write
/// only after its fsync succeeded: a caller told that a write failed never sees it, nor
/// does any other reader. Visibility is in sequence order, so a snapshot never changes.
#[derive(Default)]
pub(crate) struct SeqState {
    /// The last sequence number handed out.
    pub(crate) allocated: u64,
    /// First sequence numbers of synced writes waiting for their fsync.
    pub(crate) inflight: BTreeSet<u64>,
}

impl SeqState {
    /// The newest sequence number every write up to which is in the memtables.
    pub(crate) fn visible(&self) -> u64 {
        self.inflight
            .first()
            .map_or(self.allocated, |f| f.saturating_sub(1))
    }
}

/// How new SSTables of a table with `meta` are built.
pub(crate) fn build_options_for(meta: &TableMeta) -> crate::sst::SstBuildOptions {
    crate::sst::SstBuildOptions {
        block_size: (meta.block_size as usize).max(256),
        restart_interval: 16,
        bloom_bits_per_key: meta.bloom_bits_per_key as usize,
        compression: meta.compression,
    }
}

pub(crate) struct DbInner {
    pub(crate) path: PathBuf,
    pub(crate) opts: Options,
    pub(crate) env: Arc<dyn Env>,
    _lock: Box<dyn FileLock>,
    pub(crate) write: Mutex<WriteState>,
    /// True while a group commit's leader syncs the WAL (`DbInner::sync_wal_to`); never
    /// held across the fsync. Other synced writers wait on `sync_cv`.
    pub(crate) sync_leader: Mutex<bool>,
    pub(crate) sync_cv: Condvar,
    pub(crate) synced: AtomicU64,
    /// The newest visible sequence number (reads and snapshots see up to it).
    pub(crate) last_seq: AtomicU64,
    /// Allocation and publication of sequence numbers. Lock order: `write`, then `seqs`.
    pub(crate) seqs: Mutex<SeqState>,
    pub(crate) seqs_cv: Condvar,
    /// The catalogue, the counters, the manifest: every edit goes through it.
    pub(crate) versions: VersionSet,
    pub(crate) health: Arc<Health>,
    pub(crate) bg: Mutex<BgState>,
    pub(crate) bg_cv: Condvar,
    pub(crate) cache: Arc<BlockCache>,
    pub(crate) sst_cache: Arc<crate::cache::SstCache>,
    pub(crate) snapshots: Arc<SnapshotList>,
    pub(crate) keyring: Option<Arc<keyring::Keyring>>,
    pub(crate) worker: Mutex<Option<JoinHandle<()>>>,
}

/// The error for an encrypted table in a database opened without a KMS.
pub(crate) fn no_kms(table: &str) -> Error {
    Error::TableUnavailable {
        table: table.to_owned(),
        reason: "the table is encrypted and the database was opened without a KMS".into(),
    }
}

/// An open database, as seen by one principal. Cheap to clone; the last handle dropped
/// closes it.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbHandle>,
    pub(crate) principal: Arc<Principal>,
}

/// Owns the engine; dropping it stops the background worker.
pub(crate) struct DbHandle {
    pub(crate) core: Arc<DbInner>,
}

impl Drop for DbHandle {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.core().path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (recovering) or creates the database in `path`.
    ///
    /// With `opts.kms` set, encrypted tables get their keys from that KMS, and the engine
    /// unwraps each encrypted table's key at open (as its service principal, through the
    /// table's grant) to replay the WAL.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let principal = Arc::new(opts.principal.clone());
        let keyring = opts.kms.as_ref().map(|kms| {
            Arc::new(keyring::Keyring::new(
                Arc::clone(kms),
                opts.account.clone(),
                opts.region.clone(),
                Arc::clone(&opts.clock),
                opts.key_recheck_after_idle,
                opts.key_max_age,
                Arc::clone(&opts.env),
                path.as_ref(),
            ))
        });
        if let Some(k) = &keyring {
            k.refuse_service_principal(&principal)?;
        } else if principal.is_service() {
            return Err(keyring::service_principal_refused(&principal));
        }
        let core = recovery::open(path.as_ref(), opts, keyring)?;
        flush::start_worker(&core)?;
        let db = Db {
            inner: Arc::new(DbHandle { core }),
            principal,
        };
        // Secondary indexes: finish a backfill a crash interrupted (crate::index).
        db.core().resume_backfills()?;
        Ok(db)
    }

    /// The same database as seen by another principal: its reads and writes of encrypted
    /// tables are authorized by the KMS for that principal (and cached per principal).
    /// A service principal is refused (`KmsError::ServicePrincipalRefused`, recorded in the
    /// KMS's audit trail): the engine's own identity is not the caller's to assume.
    pub fn as_principal(&self, principal: Principal) -> Result<Db> {
        match &self.core().keyring {
            Some(k) => k.refuse_service_principal(&principal)?,
            None if principal.is_service() => {
                return Err(keyring::service_principal_refused(&principal))
            }
            None => {}
        }
        Ok(Db {
            inner: Arc::clone(&self.inner),
            principal: Arc::new(principal),
        })
    }

    /// The principal this handle acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub(crate) fn core(&self) -> &Arc<DbInner> {
        &self.inner.core
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.core().path
    }

    /// Creates a table. Encryption is fixed for the table's lifetime. Only a principal of
    /// the database's account (`Options::account`) may create one.
    pub fn create_table(&self, name: &str, options: TableOptions) -> Result<Table> {
        let account = &self.core().opts.account;
        if self.principal.account != *account {
            return Err(Error::Kms(crate::kms::KmsError::AccessDenied {
                principal: self.principal.arn.clone(),
                action: "sealdb:CreateTable".into(),
                key: format!(
                    "the database {} of account {account} (a table is created only by a principal of the database's account)",
                    self.path().display()
                ),
            }));
        }
        let state = self.core().create_table(&self.principal, name, &options)?;
        Ok(Table {
            db: self.clone(),
            state,
        })
    }

    /// Opens an existing table that must be encrypted: `Error::TableUnavailable` if a
    /// table of that name exists but is plaintext, so that an application that created it
    /// encrypted never writes to a downgraded one.
    pub fn encrypted_table(&self, name: &str) -> Result<Table> {
        let t = self.table(name)?;
        if !t.is_encrypted() {
            return Err(Error::TableUnavailable {
                table: name.to_owned(),
                reason: "the table is expected to be encrypted but the manifest says plaintext"
                    .into(),
            });
        }
        Ok(t)
    }

    /// SSTables and WAL segments in the data directory that no table needs: left by a
    /// crash or a failed flush or compaction, or copied in. Open never deletes them.
    pub fn unreferenced_files(&self) -> Result<Vec<String>> {
        self.core().unreferenced_files()
    }

    /// Deletes the files [`Db::unreferenced_files`] reports; returns their names.
    pub fn remove_unreferenced_files(&self) -> Result<Vec<String>> {
        self.core().remove_unreferenced_files()
    }

    /// Opens an existing table.
    pub fn table(&self, name: &str) -> Result<Table> {
        let state = self
            .core()
            .versions
            .table(name)
            .ok_or_else(|| Error::TableNotFound(name.to_owned()))?;
        Ok(Table {
            db: self.clone(),
            state,
        })
    }

    /// Names of all tables, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .core()
            .versions
            .tables()
            .by_name
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Drops a table: its files are deleted and, for an encrypted table, its wrapped key is
    /// destroyed and its grant retired, so copies of its old files can no longer be read.
    ///
    /// For an encrypted table this principal must be able to use the table's key: the
    /// engine asks the KMS (Decrypt on its behalf, under the table's encryption context, not
    /// from the key cache) and refuses the drop if the KMS does. Only a key the KMS no
    /// longer has (deleted) lets a principal of the database's account drop the table
    /// without it, to reclaim its space.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        let t = self.table(name)?;
        if t.state.is_encrypted() {
            let meta = t.state.meta.read().clone();
            let keyring = self.core().keyring_for(&t.state)?;
            keyring.confirm_access(&self.principal, name, &meta, true)?;
            let res = self.core().drop_table(name);
            if t.state.dropped.load(Ordering::Acquire) {
                // Committed: every grant on the table's context goes (queued if it cannot).
                keyring.retire_table_grants(&self.principal, name, &meta);
            }
            return res;
        }
        self.core().drop_table(name)
    }

    /// Grants the engine retires once the KMS lets it (their RetireGrant failed at a
    /// drop or a renewal): `(table, grant id)`, retried by the background worker.
    pub fn grants_to_retire(&self) -> Vec<(String, String)> {
        self.core().keyring.as_ref().map_or_else(Vec::new, |k| {
            k.pending_retires()
                .into_iter()
                .map(|p| (p.table, p.grant_id))
                .collect()
        })
    }

    /// Creates a new grant for the engine on an encrypted table (on this handle's
    /// principal's behalf), after the old one was revoked: maintenance resumes with it.
    /// Returns the new grant id.
    /// This principal must be able to use the table's key (checked with the KMS, as for
    /// `drop_table`); the grant it replaces is retired.
    pub fn renew_grant(&self, table: &str) -> Result<String> {
        let t = self.table(table)?;
        if t.state.is_encrypted() {
            let keyring = self.core().keyring_for(&t.state)?;
            keyring.confirm_access(&self.principal, &t.state.name, &t.state.meta.read(), false)?;
        }
        self.core().renew_grant(&self.principal, table)
    }

    /// Applies a batch atomically across its tables.
    pub fn write(&self, batch: &WriteBatch, opts: WriteOptions) -> Result<()> {
        self.core().write(&self.principal, batch, opts)
    }

    /// Flushes every table's memtables to SSTables and waits for it.
    pub fn flush(&self) -> Result<()> {
        self.core().flush_all()
    }

    /// Compacts the whole table down to its last level: afterwards no file of it holds a
    /// version no snapshot can see, nor a tombstone hiding nothing. Flushes first.
    pub fn compact_table(&self, name: &str) -> Result<()> {
        self.compact_range::<&[u8]>(name, ..)
    }

    /// Like [`Db::compact_table`], for the keys of `range` only.
    pub fn compact_range<K: AsRef<[u8]>>(
        &self,
        table: &str,
        range: impl std::ops::RangeBounds<K>,
    ) -> Result<()> {
        let t = self.table(table)?;
        self.core().authorize(&self.principal, &t.state)?;
        let conv = |b: std::ops::Bound<&K>| match b {
            std::ops::Bound::Included(k) => std::ops::Bound::Included(k.as_ref().to_vec()),
            std::ops::Bound::Excluded(k) => std::ops::Bound::Excluded(k.as_ref().to_vec()),
            std::ops::Bound::Unbounded => std::ops::Bound::Unbounded,
        };
        let (mut lower, mut upper) = (conv(range.start_bound()), conv(range.end_bound()));
        if t.state.has_local_layout() {
            // Item keys are stored in their key space; an open side also covers the
            // table's local index entries.
            lower = crate::index::local::stored_bound(lower);
            upper = crate::index::local::stored_bound(upper);
        }
        self.core().compact_range(&t.state, lower, upper)
    }

    /// Compacts every table whole (engine maintenance: reveals no data, so it needs no
    /// access to the tables' keys beyond the engine's own).
    pub fn compact_all(&self) -> Result<()> {
        self.core().compact_all()
    }

    /// The engine's numbers: levels per table, compaction traffic, cache hit ratio.
    pub fn stats(&self) -> DbStats {
        self.core().stats()
    }

    /// A point-in-time view for reads.
    pub fn snapshot(&self) -> Snapshot {
        let core = self.core();
        core.snapshots
            .acquire(|| SeqNo(core.last_seq.load(Ordering::Acquire)))
    }

    pub(crate) fn get(
        &self,
        t: &Arc<TableState>,
        key: &[u8],
        seq: Option<SeqNo>,
    ) -> Result<Option<bytes::Bytes>> {
        self.core().authorize(&self.principal, t)?;
        self.core().get(t, key, seq)
    }

    pub(crate) fn range(
        &self,
        t: &Arc<TableState>,
        lower: std::ops::Bound<Vec<u8>>,
        upper: std::ops::Bound<Vec<u8>>,
        seq: Option<SeqNo>,
    ) -> Result<RangeIter> {
        self.core().authorize(&self.principal, t)?;
        self.core().range(t, lower, upper, seq)
    }
}

impl DbInner {
    pub(crate) fn new_file_number(&self) -> FileNumber {
        self.versions.new_file_number()
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        self.health.check()
    }

    /// Enters the read-only state after a failed WAL or manifest write or fsync.
    pub(crate) fn poison(&self, why: &str, cause: Error) -> Error {
        self.health.poison(why, cause)
    }

    /// Checks `principal`'s access to an encrypted table through the table-key cache
    /// (a KMS Decrypt on first use and after the idle interval). Plaintext tables need none.
    pub(crate) fn authorize(&self, principal: &Principal, t: &Arc<TableState>) -> Result<()> {
        if !t.is_encrypted() {
            return Ok(());
        }
        self.check_unlocked(principal, t)?;
        let keyring = self.keyring_for(t)?;
        // The usual read: the engine holds the key and this thread's memo vouches for the
        // principal; no metadata lock, no reference-count traffic. (`DbInner::get` and
        // `range` count on this check: they do not ask again.)
        if t.key.read().is_some() && keyring.has_recent_key(principal, &t.name) {
            return Ok(());
        }
        let meta = t.meta.read().clone();
        let key = keyring.key_for(principal, &t.name, &meta)?;
        // The keys of older table-key versions first: a table whose current key is at hand
        // has them too (the fast path above relies on it).
        self.load_old_keys(t)?;
        t.remember_key(meta.key_version, &key);
        // Still none (a rotation replaced the version in between): the read cannot go on.
        t.require_key()?;
        Ok(())
    }

    /// The keyring, or why an encrypted table cannot be used without one.
    fn keyring_for(&self, t: &TableState) -> Result<&Arc<keyring::Keyring>> {
        self.keyring.as_ref().ok_or_else(|| no_kms(&t.name))
    }

    /// The engine's own copy of an encrypted table's key (see `Keyring::maintenance_key`).
    pub(crate) fn maintenance_key(&self, t: &TableState) -> Result<Arc<crate::crypto::TableKey>> {
        let meta = t.meta.read().clone();
        let key = self.keyring_for(t)?.maintenance_key(&t.name, &meta)?;
        self.load_old_keys(t)?;
        t.remember_key(meta.key_version, &key);
        Ok(key)
    }

    pub(crate) fn renew_grant(&self, principal: &Principal, name: &str) -> Result<String> {
        let t = self
            .versions
            .table(name)
            .ok_or_else(|| Error::TableNotFound(name.to_owned()))?;
        let keyring = self.keyring.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("table {name:?} is not encrypted under a KMS"))
        })?;
        // No key switch runs meanwhile (it holds this for its whole course).
        let _change = keyring.key_change_lock();
        let read = t.meta.read().clone();
        if !read.encrypted {
            return Err(Error::InvalidArgument(format!(
                "table {name:?} is not encrypted"
            )));
        }
        let grant_id = keyring.create_grant(principal, name, &read)?;
        if t.is_locked() {
            // Locked because the grant was gone: the new one lets the engine unwrap the
            // key now (and the edit below needs it for its MAC).
            keyring.forget_maintenance(name);
            if let Some(l) = t.lock.lock().as_mut() {
                l.retry_now();
            }
            let unlocked = self.check_unlocked(principal, &t);
            if let Err(e) = unlocked {
                keyring.retire_grant(&TableMeta {
                    grant_id: grant_id.clone(),
                    ..read
                })?;
                return Err(e);
            }
        }
        let old = {
            let _ws = self.write.lock();
            let mut versions = self.versions.lock();
            // What the catalogue holds now: a background re-wrap may have replaced the
            // wrapped key since it was read; only the grant changes here.
            let old = t.meta.read().clone();
            let meta = TableMeta {
                grant_id: grant_id.clone(),
                ..old.clone()
            };
            // The table's indexes are under the same key and grant: same record.
            let indexes = t.indexes.read().clone();
            let index_meta = crate::index::index_meta(&meta);
            let mut edits = vec![crate::manifest::Edit::SetTableKey {
                table: t.id,
                meta: meta.clone(),
            }];
            edits.extend(indexes.iter().map(|i| crate::manifest::Edit::SetTableKey {
                table: i.id,
                meta: index_meta.clone(),
            }));
            let installed = if old.key_arn == read.key_arn {
                versions.log_and_apply(&VersionEdit { edits }, None, |_| {
                    *t.meta.write() = meta.clone();
                    for i in &indexes {
                        *i.meta.write() = index_meta.clone();
                        *i.maintenance_error.lock() = None;
                    }
                })
            } else {
                Err(Error::Internal(format!(
                    "table {name:?} changed KMS key while its grant was renewed"
                )))
            };
            if let Err(e) = installed {
                // The manifest does not name the new grant: retire it (queued if it cannot).
                keyring.retire_grant(&TableMeta {
                    grant_id: grant_id.clone(),
                    ..read
                })?;
                return Err(e);
            }
            old
        };
        // The grant it replaces goes (queued if the KMS refuses now).
        keyring.retire_grant(&old)?;
        keyring.forget_maintenance(name);
        *t.maintenance_error.lock() = None;
        self.wake_worker();
        Ok(grant_id)
    }

    /// Wakes the background worker to look for work.
    pub(crate) fn wake_worker(&self) {
        let mut bg = self.bg.lock();
        bg.work_pending = true;
        self.bg_cv.notify_all();
    }

    /// Wakes the background worker and waits briefly for it to make progress.
    pub(crate) fn nudge_worker_and_wait(&self) {
        let mut bg = self.bg.lock();
        bg.work_pending = true;
        self.bg_cv.notify_all();
        self.bg_cv
            .wait_for(&mut bg, std::time::Duration::from_millis(50));
    }

    /// Waits until the worker is out of `flush_pending` (see `BgState::flushing`).
    pub(crate) fn wait_for_flush_pass(&self) {
        let mut bg = self.bg.lock();
        while bg.flushing && !bg.shutdown {
            self.bg_cv
                .wait_for(&mut bg, std::time::Duration::from_millis(50));
        }
    }

    /// Zeroizes what expired: cached table keys past their maximum age, and the engine's
    /// copy of a table key that no principal holds any more.
    pub(crate) fn expire_keys(&self) {
        let Some(keyring) = &self.keyring else {
            return;
        };
        keyring.expire();
        keyring.retry_pending_retires(|| self.grants_in_use());
        self.rewrap_if_due();
        for t in self.all_tables() {
            if t.is_encrypted() && !keyring.has_key_for(&t.name) {
                *t.key.write() = None;
                t.key_versions.write().forget_keys();
            }
        }
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Option<Arc<TableState>> {
        self.versions.table_by_id(id)
    }

    pub(crate) fn all_tables(&self) -> Vec<Arc<TableState>> {
        self.versions.all_tables()
    }

    fn shutdown(&self) {
        // Index backfills first, while the flush worker runs: one may wait for a flush.
        crate::index::stop_builds(self);
        {
            let mut bg = self.bg.lock();
            bg.shutdown = true;
            self.bg_cv.notify_all();
        }
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
        // Non-synced writes reached the OS on append; a final sync makes a clean close
        // durable, and its sync point makes damage to any of it an error at the next open.
        let mut w = self.write.lock();
        let _ = w.wal.sync_and_vouch();
    }
}
