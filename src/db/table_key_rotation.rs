//! Table-key rotation (DESIGN.md section 11, "Table-key rotation"): a new table key from
//! the KMS for one table, used at once by every new SSTable and WAL segment, while the
//! files under older versions are re-encrypted in the background and each older version's
//! wrapped copy is dropped from the catalogue once nothing uses it.
//!
//! - **Versions.** `TableMeta::key_version` is the current version and
//!   `TableMeta::wrapped_table_key` its wrapped key. Each older version still in use is a
//!   `TableKeyVersion` record of the catalogue (manifest format 6), with the first file
//!   number and the first WAL segment allocated after the next version became current.
//!   Every SSTable footer and WAL key record names the version that wrapped its data key,
//!   inside the associated data of that wrap, so a file cannot claim another version.
//! - **Rotation** commits by writing a fresh manifest (the snapshot holds the new current
//!   key and the older version's record, all MACed under the new key), under the write
//!   and manifest locks, after starting a new WAL segment: no file or record can be
//!   written under the new version before the catalogue that names it is durable, and a
//!   crash before the new manifest is named by `CURRENT` leaves the table as it was.
//! - **Which files are old** follows from file numbers: a file's protection is made after
//!   its number is allocated, and `first_file` is allocated after the new version is
//!   installed, so every file numbered at or past it is under a later version. A file
//!   below it may be under either; it is rewritten (conservative, and each rewrite gives a
//!   file numbered past it, so the pass ends).
//! - **Re-encryption** is a compaction of the old files (level 0 into level 1, a file of a
//!   deeper level into a new file of the same level), one at a time from the compaction
//!   thread when it has nothing else to do, at most `REWRITE_BYTES_PER_SEC` per table.
//! - **Retirement** of version v: once no SSTable numbered below v's `first_file` is live,
//!   no output numbered below it is being written, and the table's log number has reached
//!   v's `first_segment` (its WAL records under v are all in files), a `RetireTableKey`
//!   record is appended and a fresh manifest written without v; the older manifests, the
//!   only files that held v's wrapped key, are deleted.
//!
//! All of it is derived from the catalogue at open: an interrupted rotation either
//! committed (its records are in the manifest `CURRENT` names) or did not, and the
//! re-encryption and retirement resume from the `TableKeyVersion` records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::compaction::CompactionPlan;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::manifest::{Edit, OldTableKey, VersionEdit};
use crate::wal::WalWriter;

use super::table::TableState;
use super::{Db, DbInner};

/// The most table-key versions a table has live at once: the current one and up to three
/// older ones that files still use. A rotation past it is refused
/// (`Error::TableKeyVersionsExhausted`) until the re-encryption retires one.
pub const MAX_LIVE_TABLE_KEYS: usize = 4;

/// The background re-encryption's I/O bound per table: after rewriting n bytes of a table
/// it waits n / this many seconds before the next file of that table.
pub const REWRITE_BYTES_PER_SEC: u64 = 32 << 20;

/// After an older version's key fails to unwrap, how long (on `Options::clock`) every
/// use of the table's older keys fails at once with that error before the KMS is asked
/// again; doubled after each further failure, up to `OLD_KEY_RETRY_MAX`.
const OLD_KEY_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest back-off between two unwraps of an older version's key.
const OLD_KEY_RETRY_MAX: Duration = Duration::from_secs(300);

/// The last failed unwrap of an older version's key, and when the KMS is asked again.
struct OldKeyFailure {
    version: u32,
    error: String,
    retry_at: SystemTime,
    /// The back-off that `retry_at` was computed with.
    backoff: Duration,
}

/// A table's older key versions as the catalogue records them, their keys (the engine's
/// copies, unwrapped through the table's grant), and the pace of its re-encryption.
#[derive(Default)]
pub(crate) struct KeyVersions {
    /// Older versions still in use, by version.
    pub(crate) old: BTreeMap<u32, OldTableKey>,
    /// The keys of those versions that are at hand.
    pub(crate) keys: BTreeMap<u32, Arc<TableKey>>,
    /// Keys of versions retired since open: kept until the keys expire, for readers that
    /// still hold an older `Version` naming a rewritten file (never on disk again).
    retired: BTreeMap<u32, Arc<TableKey>>,
    /// Versions retired since open (shown by `status`).
    retired_versions: Vec<u32>,
    /// The earliest time of this table's next background rewrite.
    next_rewrite: Option<Instant>,
    /// The last failed unwrap of an older key (shown by `status`), with its back-off.
    unwrap_failure: Option<OldKeyFailure>,
}

impl KeyVersions {
    /// The catalogue's older versions, with the keys unwrapped at open.
    pub(crate) fn from_catalogue(
        old: BTreeMap<u32, OldTableKey>,
        keys: BTreeMap<u32, Arc<TableKey>>,
    ) -> KeyVersions {
        KeyVersions {
            old,
            keys,
            ..KeyVersions::default()
        }
    }

    /// Drops (and so zeroizes, unless in use) every older key: the table's keys expired.
    pub(crate) fn forget_keys(&mut self) {
        self.keys.clear();
        self.retired.clear();
    }

    /// Every SSTable numbered below this may be under an older version; `None` when no
    /// older version is live.
    fn rewrite_below(&self) -> Option<u64> {
        self.old.values().map(|o| o.first_file).max()
    }

    /// The oldest older version, if nothing uses it any more: no SSTable numbered below
    /// its `first_file` in `files`, no output below it being written (`writing_below`),
    /// and the table's log number (`log`) at or past its `first_segment`. Versions retire
    /// oldest first, so this says whether any can.
    fn oldest_unused(&self, files: &[u64], writing_below: u64, log: u64) -> Option<u32> {
        let o = self.old.values().next()?;
        let in_use = files.iter().any(|n| *n < o.first_file)
            || writing_below < o.first_file
            || log < o.first_segment;
        (!in_use).then_some(o.version)
    }
}

impl TableState {
    /// The current table-key version and the engine's copy of its key, read together (a
    /// rotation changes both under the metadata lock).
    pub(crate) fn current_key(&self) -> Result<(u32, Arc<TableKey>)> {
        let meta = self.meta.read();
        let key = self.require_key()?;
        Ok((meta.key_version, key))
    }

    /// The engine's copy of table-key version `version` (a file's footer or WAL key record
    /// names it): the current key or an older one still in use.
    pub(crate) fn key_of_version(&self, version: u32) -> Result<Arc<TableKey>> {
        let meta = self.meta.read();
        if version == meta.key_version {
            return self.require_key();
        }
        let kv = self.key_versions.read();
        kv.keys
            .get(&version)
            .or_else(|| kv.retired.get(&version))
            .cloned()
            .ok_or_else(|| Error::TableUnavailable {
                table: self.name.clone(),
                reason: if kv.old.contains_key(&version) {
                    format!("the key of its table-key version {version} is not at hand")
                } else {
                    format!(
                        "a file names table-key version {version}, which the catalogue does \
                         not hold (current version {})",
                        meta.key_version
                    )
                },
            })
    }
}

/// What `Db::rotate_table_key` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableKeyRotation {
    /// The table.
    pub table: String,
    /// The version that was current before.
    pub from_version: u32,
    /// The new current version.
    pub to_version: u32,
}

/// One older table-key version and what still uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OldKeyVersionStatus {
    /// The version.
    pub version: u32,
    /// SSTables that may be under it (numbered below its successor's first file and at or
    /// past its predecessor's), still to be re-encrypted.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// True while WAL segments the table still needs may hold its records under it.
    pub wal: bool,
}

/// A table's key versions and the progress of its re-encryption (`Db::table_key_status`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableKeyStatus {
    /// The table.
    pub table: String,
    /// The current table-key version (new files and WAL segments use it).
    pub current_version: u32,
    /// Live versions, the current one included (at most `MAX_LIVE_TABLE_KEYS`).
    pub live_versions: usize,
    /// SSTables under the current version, and their bytes.
    pub current_files: usize,
    /// Bytes of those files.
    pub current_bytes: u64,
    /// Each older version still live, oldest first.
    pub old_versions: Vec<OldKeyVersionStatus>,
    /// Bytes under the current version as a percentage of all the table's SSTable bytes
    /// (100 when no older version is live).
    pub progress_percent: f64,
    /// Versions retired since this process opened the database.
    pub retired_versions: Vec<u32>,
    /// Why the key of an older version did not unwrap the last time the engine asked the
    /// KMS (it asks again after a back-off), while that is unresolved.
    pub old_key_error: Option<String>,
}

/// What one call of `Db::continue_table_key_rotations` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RotationWork {
    /// SSTables read and rewritten under the current versions.
    pub files_rewritten: usize,
    /// Bytes read by those rewrites.
    pub bytes_read: u64,
    /// Bytes they wrote.
    pub bytes_written: u64,
    /// (table, version) pairs whose wrapped key left the catalogue.
    pub retired: Vec<(String, u32)>,
    /// True while some table still has an older version live.
    pub pending: bool,
}

impl Db {
    /// Rotates `table`'s key: a new table key from the KMS (GenerateDataKey under the
    /// table's KMS key and encryption context, through the engine's grant; audited like
    /// every KMS call), current at once for new SSTables and WAL segments. Files under the
    /// older version are re-encrypted in the background and the older wrapped key leaves
    /// the catalogue once nothing uses it (see `table_key_status`). This principal must be
    /// able to use the table's key now (a fresh KMS check). Reads and writes go on
    /// throughout. Refused with `Error::TableKeyVersionsExhausted` while the table has
    /// `MAX_LIVE_TABLE_KEYS` live versions.
    pub fn rotate_table_key(&self, table: &str) -> Result<TableKeyRotation> {
        let t = self.table(table)?;
        self.core().rotate_table_key(&self.principal, &t.state)
    }

    /// Each encrypted table's key versions and how far the re-encryption of its files
    /// under older versions has come.
    pub fn table_key_status(&self) -> Vec<TableKeyStatus> {
        let core = self.core();
        core.all_tables()
            .iter()
            .filter(|t| t.index.get().is_none() && t.is_encrypted())
            .map(|t| key_status(t))
            .collect()
    }

    /// Does, now, up to `max_files` SSTable rewrites of the background re-encryption
    /// (ignoring its I/O bound), then retires every older version nothing uses any more.
    pub fn continue_table_key_rotations(&self, max_files: usize) -> Result<RotationWork> {
        let core = self.core();
        let mut work = RotationWork::default();
        for t in core.all_tables() {
            if t.is_locked() || !t.is_encrypted() {
                continue;
            }
            while work.files_rewritten < max_files {
                match core.rewrite_one_old_file(&t)? {
                    Some((read, written)) => {
                        work.files_rewritten += 1;
                        work.bytes_read += read;
                        work.bytes_written += written;
                    }
                    None => break,
                }
            }
            core.settle_old_wal(&t)?;
            for v in core.retire_unused_versions(&t)? {
                work.retired.push((t.display_name(), v));
            }
        }
        work.pending = core
            .all_tables()
            .iter()
            .any(|t| !t.key_versions.read().old.is_empty());
        Ok(work)
    }
}

pub(crate) fn key_status(t: &TableState) -> TableKeyStatus {
    let current_version = t.meta.read().key_version;
    let kv = t.key_versions.read();
    let files: Vec<(u64, u64)> = t
        .super_version()
        .version
        .files()
        .map(|f| (f.meta.number.0, f.meta.size))
        .collect();
    let mut lower = 0u64;
    let mut old_versions = Vec::new();
    for o in kv.old.values() {
        let mine: Vec<&(u64, u64)> = files
            .iter()
            .filter(|(n, _)| *n >= lower && *n < o.first_file)
            .collect();
        old_versions.push(OldKeyVersionStatus {
            version: o.version,
            files: mine.len(),
            bytes: mine.iter().map(|(_, s)| *s).sum(),
            wal: t.log_number().0 < o.first_segment,
        });
        lower = lower.max(o.first_file);
    }
    let current: Vec<&(u64, u64)> = files.iter().filter(|(n, _)| *n >= lower).collect();
    let current_bytes: u64 = current.iter().map(|(_, s)| *s).sum();
    let total: u64 = files.iter().map(|(_, s)| *s).sum();
    let progress_percent = if kv.old.is_empty() || total == 0 {
        if kv.old.is_empty() {
            100.0
        } else {
            0.0
        }
    } else {
        current_bytes as f64 * 100.0 / total as f64
    };
    TableKeyStatus {
        table: t.display_name(),
        current_version,
        live_versions: 1 + kv.old.len(),
        current_files: current.len(),
        current_bytes,
        old_versions,
        progress_percent,
        retired_versions: kv.retired_versions.clone(),
        old_key_error: kv
            .unwrap_failure
            .as_ref()
            .map(|f| format!("v{}: {}", f.version, f.error)),
    }
}

impl DbInner {
    /// The engine's copy of the current key of `t` with its version, both from one read
    /// of the table's metadata (what a new file's protection needs).
    pub(crate) fn current_maintenance_key(&self, t: &TableState) -> Result<(u32, Arc<TableKey>)> {
        loop {
            let meta = t.meta.read().clone();
            let key = self.keyring_for(t)?.maintenance_key(&t.name, &meta)?;
            self.load_old_keys(t)?;
            t.remember_key(meta.key_version, &key);
            // A rotation between the read and now: the key is of the older version.
            if t.meta.read().key_version == meta.key_version {
                return Ok((meta.key_version, key));
            }
        }
    }

    /// Unwraps (through the table's grant) the keys of `t`'s older versions that are not
    /// at hand: files under them are read with them. After a key fails to unwrap, the KMS
    /// is asked again only once a back-off has passed on the clock (every new file and
    /// every read of the table asks for the keys); meanwhile the failure is returned at
    /// once, and `status` shows it.
    pub(crate) fn load_old_keys(&self, t: &TableState) -> Result<()> {
        let now = self.opts.clock.now();
        let missing: Vec<OldTableKey> = {
            let kv = t.key_versions.read();
            let missing: Vec<OldTableKey> = kv
                .old
                .values()
                .filter(|o| !kv.keys.contains_key(&o.version))
                .cloned()
                .collect();
            if let Some(f) = &kv.unwrap_failure {
                if !missing.is_empty() && now < f.retry_at {
                    return Err(old_key_unavailable(t, f, now));
                }
            }
            missing
        };
        if missing.is_empty() {
            return Ok(());
        }
        let keyring = self.keyring_for(t)?;
        let meta = t.meta.read().clone();
        for o in missing {
            let key = match keyring.unwrap_old_table_key(&t.name, &meta, &o.wrapped_table_key) {
                Ok(k) => Arc::new(k),
                Err(e) => {
                    let mut kv = t.key_versions.write();
                    let backoff = kv.unwrap_failure.as_ref().map_or(OLD_KEY_RETRY_FIRST, |f| {
                        (f.backoff * 2).min(OLD_KEY_RETRY_MAX)
                    });
                    kv.unwrap_failure = Some(OldKeyFailure {
                        version: o.version,
                        error: e.to_string(),
                        retry_at: now + backoff,
                        backoff,
                    });
                    return Err(e);
                }
            };
            let mut kv = t.key_versions.write();
            if kv.old.contains_key(&o.version) {
                kv.keys.entry(o.version).or_insert(key);
            }
        }
        t.key_versions.write().unwrap_failure = None;
        Ok(())
    }

    fn rotate_table_key(
        &self,
        principal: &crate::kms::Principal,
        t: &Arc<TableState>,
    ) -> Result<TableKeyRotation> {
        if !t.is_encrypted() {
            return Err(Error::InvalidArgument(format!(
                "table {:?} is plaintext: it has no table key to rotate",
                t.name
            )));
        }
        self.check_poisoned()?;
        self.check_unlocked(principal, t)?;
        let keyring = Arc::clone(self.keyring_for(t)?);
        let name = t.name.clone();
        let meta = t.meta.read().clone();
        // The principal must be able to use the table's key now (as for a key switch).
        keyring.confirm_access(principal, &name, &meta, false)?;
        let indexes = t.indexes.read().clone();
        let live = std::iter::once(t)
            .chain(indexes.iter())
            .map(|s| 1 + s.key_versions.read().old.len())
            .max()
            .unwrap_or(1);
        if live >= MAX_LIVE_TABLE_KEYS {
            return Err(Error::TableKeyVersionsExhausted {
                table: name,
                live,
                max: MAX_LIVE_TABLE_KEYS,
            });
        }
        let to_version = meta.key_version.checked_add(1).ok_or_else(|| {
            Error::InvalidArgument(format!("table {name:?}: no table-key version is left"))
        })?;
        // No key switch or re-wrap meanwhile: they commit `SetTableKey` on this metadata.
        let _change = keyring.key_change_lock();
        if *t.meta.read() != meta {
            return Err(Error::InvalidArgument(format!(
                "table {name:?}: its key changed meanwhile; retry"
            )));
        }
        let (new_key, wrapped) = keyring.generate_next_table_key(&name, &meta)?;
        let new_key = Arc::new(new_key);
        // Every key the new manifest's MACs need, and the current key of this table and its
        // indexes (kept as their older version), at hand before the locks.
        for s in self.all_tables() {
            if s.is_encrypted() && !s.is_locked() {
                self.maintenance_key(&s)?;
            }
        }
        let mut old_keys = Vec::new();
        for s in std::iter::once(t).chain(indexes.iter()) {
            let (v, key) = self.current_maintenance_key(s)?;
            if v != meta.key_version {
                return Err(Error::InvalidArgument(format!(
                    "table {name:?}: its key changed meanwhile; retry"
                )));
            }
            old_keys.push(key);
        }
        let mut ws = self.write.lock();
        let mut versions = self.versions.lock();
        if *t.meta.read() != meta || t.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::InvalidArgument(format!(
                "table {name:?}: its key changed meanwhile; retry"
            )));
        }
        // A new WAL segment: the table's records in it and after are under the new version
        // (it registers there on its first write, after the install below).
        let segment = self.new_file_number();
        // IMPORTANT: the old segment is synced before the switch, as at a memtable switch.
        ws.wal
            .sync()
            .map_err(|e| self.poison("WAL fsync failed", e))?;
        self.synced
            .fetch_max(ws.appended, std::sync::atomic::Ordering::AcqRel);
        ws.wal = WalWriter::create(&*self.env, &self.path, segment)
            .map_err(|e| self.poison("cannot start WAL segment", e))?;
        versions.log_and_apply(
            &VersionEdit::new(vec![Edit::AddWalSegment(segment)]),
            None,
            |_| (),
        )?;
        let mut next = meta.clone();
        next.key_version = to_version;
        next.wrapped_table_key = wrapped;
        let index_meta = crate::index::index_meta(&next);
        let states: Vec<(&Arc<TableState>, crate::manifest::TableMeta)> =
            std::iter::once((t, next))
                .chain(indexes.iter().map(|i| (i, index_meta.clone())))
                .collect();
        // Installed before the manifest is written (its snapshot is made from the tables'
        // state); taken back if the write fails without poisoning the database.
        let mut undo = Vec::new();
        for ((s, m), old_key) in states.iter().zip(&old_keys) {
            let mut meta_slot = s.meta.write();
            let mut key_slot = s.key.write();
            let mut kv = s.key_versions.write();
            let before = (meta_slot.clone(), key_slot.clone());
            kv.old.insert(
                meta.key_version,
                OldTableKey {
                    table: s.id,
                    version: meta.key_version,
                    first_file: 0,
                    first_segment: segment.0,
                    wrapped_table_key: meta_slot.wrapped_table_key.clone(),
                },
            );
            kv.keys.insert(meta.key_version, Arc::clone(old_key));
            *meta_slot = m.clone();
            *key_slot = Some(Arc::clone(&new_key));
            undo.push(before);
        }
        // Allocated after the install: every file numbered at or past it is protected
        // under the new version (a protection is made after its file's number).
        let first_file = self.new_file_number().0;
        for (s, _) in &states {
            if let Some(o) = s.key_versions.write().old.get_mut(&meta.key_version) {
                o.first_file = first_file;
            }
        }
        if let Err(e) = self.write_snapshot(&mut versions, None, None) {
            if self.check_poisoned().is_ok() {
                for ((s, _), (m, k)) in states.iter().zip(undo) {
                    let mut meta_slot = s.meta.write();
                    let mut key_slot = s.key.write();
                    let mut kv = s.key_versions.write();
                    kv.old.remove(&meta.key_version);
                    kv.keys.remove(&meta.key_version);
                    *meta_slot = m;
                    *key_slot = k;
                }
            }
            return Err(e);
        }
        drop(versions);
        drop(ws);
        // Every principal's cached key is of the older version: checked again.
        keyring.rotated(&name, to_version, &new_key);
        self.delete_obsolete_files();
        self.nudge_compactor();
        Ok(TableKeyRotation {
            table: t.display_name(),
            from_version: meta.key_version,
            to_version,
        })
    }

    fn nudge_compactor(&self) {
        self.wake_worker();
    }

    /// The compaction thread's turn when no compaction is needed: one rewrite of a file
    /// under an older table-key version (each table at most `REWRITE_BYTES_PER_SEC`), and
    /// the retirement of versions nothing uses. True if it did something.
    pub(crate) fn table_key_rotation_tick(&self) -> bool {
        let mut did = false;
        for t in self.all_tables() {
            if t.is_locked() || t.key_versions.read().old.is_empty() {
                continue;
            }
            let due = t
                .key_versions
                .read()
                .next_rewrite
                .is_none_or(|at| Instant::now() >= at);
            if due {
                if let Ok(Some((read, _))) = self.rewrite_one_old_file(&t) {
                    let pause = Duration::from_secs_f64(read as f64 / REWRITE_BYTES_PER_SEC as f64);
                    t.key_versions.write().next_rewrite = Some(Instant::now() + pause);
                    did = true;
                    continue;
                }
            }
            let _ = self.settle_old_wal(&t);
            if let Ok(v) = self.retire_unused_versions(&t) {
                did |= !v.is_empty();
            }
        }
        did
    }

    /// Rewrites the lowest-numbered SSTable of `t` that may be under an older version
    /// (level 0: all of level 0 into level 1). Returns the bytes read and written, or
    /// `None` when no such file is left.
    fn rewrite_one_old_file(&self, t: &Arc<TableState>) -> Result<Option<(u64, u64)>> {
        let Some(below) = t.key_versions.read().rewrite_below() else {
            return Ok(None);
        };
        let Some(_slot) = self.compaction_slot(true) else {
            return Err(Error::Closed);
        };
        let v = Arc::clone(&t.super_version().version);
        let Some(f) = v
            .files()
            .filter(|f| f.meta.number.0 < below)
            .min_by_key(|f| f.meta.number)
        else {
            return Ok(None);
        };
        let level = usize::from(f.meta.level.0);
        let plan = if level == 0 {
            crate::compaction::plan_range(
                &v,
                0,
                1,
                &std::ops::Bound::Unbounded,
                &std::ops::Bound::Unbounded,
                false,
            )
        } else {
            CompactionPlan::new(&v, level, level, vec![Arc::clone(f)], false)
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        // The inputs are read with the older versions' keys, which leave memory with the
        // table's keys when the cache expires them: unwrapped again here, before the
        // compaction (and outside every lock).
        self.current_maintenance_key(t)?;
        let read = plan.input_bytes();
        let before = self.bg.lock().compaction.bytes_written;
        self.run_compaction(t, &plan)?;
        let written = self
            .bg
            .lock()
            .compaction
            .bytes_written
            .saturating_sub(before);
        Ok(Some((read, written)))
    }

    /// Once no SSTable of `t` is under an older version, but the WAL segments it still
    /// needs may hold records under one: freezes its memtable (if no flush is pending), so
    /// its flush moves the table's log number past them.
    fn settle_old_wal(&self, t: &Arc<TableState>) -> Result<()> {
        let (below, first_segment) = {
            let kv = t.key_versions.read();
            match (
                kv.rewrite_below(),
                kv.old.values().map(|o| o.first_segment).max(),
            ) {
                (Some(b), Some(s)) => (b, s),
                _ => return Ok(()),
            }
        };
        if t.log_number().0 >= first_segment {
            return Ok(());
        }
        let sv = t.super_version();
        if sv.version.files().any(|f| f.meta.number.0 < below) || !sv.imm.is_empty() {
            return Ok(());
        }
        drop(sv);
        let mut ws = self.write.lock();
        if t.log_number().0 < first_segment && t.super_version().imm.is_empty() {
            self.switch_memtable(&mut ws, t)?;
        }
        Ok(())
    }

    /// Retires, oldest first, each older version of `t` that nothing uses: no live
    /// SSTable numbered below its `first_file`, no output below it being written, and the
    /// table's log number at or past its `first_segment`. A `RetireTableKey` record, then
    /// a fresh manifest without the version's wrapped key; the older manifests are
    /// deleted. Returns the versions retired.
    fn retire_unused_versions(&self, t: &Arc<TableState>) -> Result<Vec<u32>> {
        // First without locks or KMS calls (every tick of the compaction thread asks,
        // through the whole re-encryption): can the oldest version retire at all? Files,
        // outputs being written and the log number only move towards retirement, so a
        // version found in use here would be found in use under the locks too.
        let files = sstable_numbers(t);
        let writing_below = self.versions.next_file_to_record(&[]).0;
        let log = t.log_number().0;
        if t.key_versions
            .read()
            .oldest_unused(&files, writing_below, log)
            .is_none()
        {
            return Ok(Vec::new());
        }
        // The records are MACed under the current key; every table's for the snapshot.
        for s in self.all_tables() {
            if s.is_encrypted() && !s.is_locked() {
                self.maintenance_key(&s)?;
            }
        }
        let retired = {
            let _ws = self.write.lock();
            let mut versions = self.versions.lock();
            let files = sstable_numbers(t);
            let writing_below = self.versions.next_file_to_record(&[]).0;
            let log = t.log_number().0;
            let mut retired = Vec::new();
            for o in t.key_versions.read().old.values() {
                let in_use = files.iter().any(|n| *n < o.first_file)
                    || writing_below < o.first_file
                    || log < o.first_segment;
                if in_use {
                    break;
                }
                retired.push(o.version);
            }
            if retired.is_empty() {
                return Ok(retired);
            }
            let edits = retired
                .iter()
                .map(|v| Edit::RetireTableKey {
                    table: t.id,
                    version: *v,
                })
                .collect();
            versions.log_and_apply(&VersionEdit::new(edits), None, |_| {
                let mut kv = t.key_versions.write();
                for v in &retired {
                    kv.old.remove(v);
                    if let Some(k) = kv.keys.remove(v) {
                        kv.retired.insert(*v, k);
                    }
                    kv.retired_versions.push(*v);
                }
            })?;
            // The wrapped copies leave the directory with the manifests that held them.
            self.write_snapshot(&mut versions, None, None)?;
            retired
        };
        self.delete_obsolete_files();
        Ok(retired)
    }
}

/// The numbers of `t`'s live SSTables (its current version).
fn sstable_numbers(t: &TableState) -> Vec<u64> {
    t.super_version()
        .version
        .files()
        .map(|f| f.meta.number.0)
        .collect()
}

/// The error of an older key's failed unwrap, returned without asking the KMS again.
fn old_key_unavailable(t: &TableState, f: &OldKeyFailure, now: SystemTime) -> Error {
    let wait = f.retry_at.duration_since(now).unwrap_or(Duration::ZERO);
    Error::TableUnavailable {
        table: t.name.clone(),
        reason: format!(
            "the key of its table-key version {} did not unwrap ({}); the KMS is asked \
             again in {}s",
            f.version,
            f.error,
            wait.as_secs()
        ),
    }
}

impl TableKeyStatus {
    /// One line: the current version and its share, each older version with what still
    /// uses it, the versions retired (what `sealdb status` and `rotate-table-key` print).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "v{} current: {} files, {} bytes ({:.1}%)",
            self.current_version, self.current_files, self.current_bytes, self.progress_percent
        );
        for o in &self.old_versions {
            s.push_str(&format!(
                "; v{} to re-encrypt: {} files, {} bytes{}",
                o.version,
                o.files,
                o.bytes,
                if o.wal { ", WAL records" } else { "" }
            ));
        }
        if !self.retired_versions.is_empty() {
            let v: Vec<String> = self
                .retired_versions
                .iter()
                .map(|v| format!("v{v}"))
                .collect();
            s.push_str(&format!("; retired {}", v.join(", ")));
        }
        if let Some(e) = &self.old_key_error {
            s.push_str(&format!("; older key not at hand: {e}"));
        }
        s
    }
}
