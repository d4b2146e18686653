//! Checkpoints: a consistent point-in-time copy of the database in another directory,
//! usable as a database (open it with the same KMS), and restoring one (DESIGN.md,
//! "Checkpoints and backups").
//!
//! A checkpoint freezes the state under the write lock and the manifest lock, as LevelDB's
//! `LogAndApply` sees it: every table's files and log number, the live WAL segments, the
//! counters, and the current segment's length once everything queued in it is written.
//! It pins what it froze (the tables' versions keep their SSTables on disk; [`WalPins`]
//! keeps the segments), lets go of the locks, then hard-links the SSTables (copies them
//! where the file system cannot), copies the WAL segments up to their frozen lengths, and
//! writes a fresh manifest of the frozen state into the copy with the engine's own
//! `ManifestWriter`, MACed under the same table keys and database key as a real one.
//! Nothing is decrypted and no key leaves the KMS's wrapping: the files are the
//! database's files, byte for byte.
//!
//! The copy is built in `<dir>.tmp-checkpoint` and renamed to `dir` once complete and
//! synced, so a crash leaves either no backup or a whole one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::filename;
use crate::manifest::{ManifestWriter, VersionEdit};
use crate::storage::Env;
use crate::types::{FileNumber, SeqNo, TableId};

use super::table::SuperVersion;
use super::version_set::snapshot_edits;
use super::{Db, DbInner, Options, VerifyReport};

/// How many times a checkpoint fetches its keys and tries to freeze the state before it
/// gives up: each retry follows a table-key change that raced with it.
const FREEZE_ATTEMPTS: usize = 3;

/// Bytes read and written per call when a file is copied.
const COPY_CHUNK: usize = 1 << 20;

/// WAL segments that checkpoints are copying, with a count per segment: the obsolete-file
/// deletion skips them until the last checkpoint holding one lets go.
#[derive(Default)]
pub(crate) struct WalPins {
    pins: Mutex<BTreeMap<FileNumber, usize>>,
}

impl WalPins {
    /// True while some checkpoint holds segment `n`.
    pub(crate) fn holds(&self, n: FileNumber) -> bool {
        self.pins.lock().contains_key(&n)
    }

    fn pin<'a>(&'a self, segments: &BTreeSet<FileNumber>) -> WalPinGuard<'a> {
        let mut pins = self.pins.lock();
        for s in segments {
            *pins.entry(*s).or_default() += 1;
        }
        WalPinGuard {
            pins: self,
            segments: segments.clone(),
        }
    }
}

/// Unpins its segments when dropped.
struct WalPinGuard<'a> {
    pins: &'a WalPins,
    segments: BTreeSet<FileNumber>,
}

impl Drop for WalPinGuard<'_> {
    fn drop(&mut self) {
        let mut pins = self.pins.pins.lock();
        for s in &self.segments {
            if let Some(c) = pins.get_mut(s) {
                *c -= 1;
                if *c == 0 {
                    pins.remove(s);
                }
            }
        }
    }
}

/// What [`Db::checkpoint`] copied.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct CheckpointReport {
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// SSTables in the checkpoint.
    pub sstables: usize,
    /// Of those, how many are hard links to the database's own files (the rest are copies).
    pub hard_linked: usize,
    /// WAL segments copied (the current one up to its length at the checkpoint).
    pub wal_segments: usize,
    /// Bytes copied (hard links copy none).
    pub bytes_copied: u64,
    /// The newest sequence number visible when the state was frozen; the copied WAL may
    /// hold later writes that were already written to it.
    pub last_seq: u64,
    /// Grants queued for retirement in the source (`GRANTS-TO-RETIRE`), carried into the
    /// copy: a database opened from it retires them.
    pub grants_to_retire: usize,
}

/// What [`Db::restore_checkpoint`] did.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The restored database's directory.
    pub dir: PathBuf,
    /// Files copied from the backup.
    pub files: usize,
    /// Bytes copied.
    pub bytes: u64,
    /// The verification of the restored database, run before it was put in place.
    pub verify: VerifyReport,
}

/// The state a checkpoint copies, frozen under the write and manifest locks.
struct Frozen<'a> {
    /// Holds every SSTable of the frozen versions on disk (a file leaves the disk only when
    /// its last version is dropped).
    versions: Vec<Arc<SuperVersion>>,
    snapshot: Vec<VersionEdit>,
    table_keys: HashMap<TableId, Arc<TableKey>>,
    database_key: Option<Arc<TableKey>>,
    /// Each segment to copy, with the length to copy (`None`: a finished segment, whole).
    segments: Vec<(FileNumber, Option<u64>)>,
    manifest_number: FileNumber,
    last_seq: SeqNo,
    _pins: WalPinGuard<'a>,
}

impl Db {
    /// Writes a consistent point-in-time copy of the database into `dir` (which must not
    /// exist or be empty): every write acknowledged before the call is in it, and it holds
    /// a prefix of the writes in commit order. SSTables are hard links where the file
    /// system allows (copies otherwise), WAL segments are copied, and a fresh manifest of
    /// the same state is written into the copy. Files stay encrypted exactly as they are;
    /// the copy opens as a database with the same KMS (its key store is not copied: keep
    /// it, see DESIGN.md). Only a principal of the database's account may make one.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<CheckpointReport> {
        let account = &self.core().opts.account;
        if self.principal.account != *account {
            return Err(Error::Kms(crate::kms::KmsError::AccessDenied {
                principal: self.principal.arn.clone(),
                action: "sealdb:Checkpoint".into(),
                key: format!(
                    "the database {} of account {account} (a checkpoint is made only by a principal of the database's account)",
                    self.path().display()
                ),
            }));
        }
        self.core().checkpoint(dir.as_ref())
    }

    /// Restores the checkpoint in `backup` as a new database in `target` (which must not
    /// exist or be empty): the files are copied into `<target>.tmp-restore`, opened there
    /// with `opts` (its KMS must be the one the database used) and verified block by block,
    /// and only then renamed to `target`. A restore that fails leaves `target` as it was
    /// and `backup` untouched. The restored database never appends to a copied file: its
    /// writes go to new WAL segments and SSTables under fresh data keys.
    pub fn restore_checkpoint(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        opts: Options,
    ) -> Result<RestoreReport> {
        restore(backup.as_ref(), target.as_ref(), opts)
    }
}

impl DbInner {
    fn checkpoint(&self, dir: &Path) -> Result<CheckpointReport> {
        self.check_poisoned()?;
        let env = &*self.env;
        check_empty_target(env, dir)?;
        let staging = staging_dir(dir, "checkpoint")?;
        clear_staging(env, &staging)?;
        env.create_dir_all(&staging)
            .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
        let made = self
            .checkpoint_into(&staging)
            .and_then(|report| publish(env, &staging, dir).map(|()| report));
        match made {
            Ok(mut report) => {
                report.dir = dir.to_path_buf();
                Ok(report)
            }
            Err(e) => {
                remove_staging(env, &staging);
                Err(e)
            }
        }
    }

    fn checkpoint_into(&self, staging: &Path) -> Result<CheckpointReport> {
        // No key switch, re-wrap, rotation or grant renewal while the state is frozen and
        // the queue of grants to retire is read: a switch queues its new grant before the
        // catalogue names it, so a queue read mid-switch could make the copy retire the
        // grant the source goes on to use. Outside a key change, every grant queued is one
        // the source wants retired; one the frozen catalogue still names (a table dropped
        // after the freeze) is dropped from the copy's queue by its first settling, never
        // retired.
        let change = self.keyring.as_ref().map(|k| k.key_change_lock());
        let frozen = self.freeze_with_keys()?;
        let queued = match &self.keyring {
            Some(k) => k.queued_retires()?,
            None => Vec::new(),
        };
        drop(change);
        let env = &*self.env;
        let mut report = CheckpointReport {
            last_seq: frozen.last_seq.0,
            ..CheckpointReport::default()
        };
        for sv in &frozen.versions {
            for f in sv.version.files() {
                let to = staging.join(filename::sst(f.meta.number));
                match env.link(&f.path, &to) {
                    Ok(()) => report.hard_linked += 1,
                    Err(_) => {
                        let n = copy_file(env, &f.path, &to, Some(f.meta.size))?;
                        report.bytes_copied += n;
                    }
                }
                report.sstables += 1;
            }
        }
        for (segment, len) in &frozen.segments {
            let name = filename::wal(*segment);
            let n = copy_file(env, &self.path.join(&name), &staging.join(&name), *len)?;
            report.bytes_copied += n;
            report.wal_segments += 1;
        }
        // The grants the source has still to retire: the copy retires them too (it is
        // the database left if the source is lost), through the same file, synced.
        report.grants_to_retire = queued.len();
        super::pending_retires::PendingRetires::new(Arc::clone(&self.env), staging).add(queued)?;
        // The manifest last: its CURRENT makes the staging directory a database.
        let keys = &frozen.table_keys;
        let mac_key = |id: TableId| keys.get(&id).cloned();
        ManifestWriter::create(
            env,
            staging,
            frozen.manifest_number,
            &frozen.snapshot,
            &mac_key,
            frozen.database_key.as_deref(),
        )?;
        // IMPORTANT: the links and copies are durable before the rename publishes them.
        env.sync_dir(staging)
            .map_err(|e| Error::io(format!("syncing {}", staging.display()), e))?;
        // A write or sync that failed meanwhile: what the copied WAL holds is not vouched for.
        self.check_poisoned()?;
        Ok(report)
    }

    /// The keys the copy's manifest is MACed under, obtained before the locks, then the
    /// frozen state. Under the locks only the keys obtained here are used, so writers never
    /// wait on a KMS round trip (a key that expires in the cache meanwhile is held here). A
    /// table whose key version changed in between (a rotation) or that appeared (a create)
    /// has no key here: the locks are let go and the keys fetched again, a bounded number
    /// of times.
    fn freeze_with_keys(&self) -> Result<Frozen<'_>> {
        let mut missing = None;
        for _ in 0..FREEZE_ATTEMPTS {
            let mut keys = HashMap::new();
            for t in self.all_tables() {
                if t.is_encrypted() && !t.is_locked() {
                    // The engine's copy when it has one (no KMS call, and it serves while
                    // the table's maintenance cannot unwrap), else through the grant.
                    let key = match t.current_key() {
                        Ok(k) => k,
                        Err(_) => self.current_maintenance_key(&t)?,
                    };
                    keys.insert(t.id, key);
                }
            }
            match self.freeze(&keys)? {
                Ok(frozen) => return Ok(frozen),
                Err(table) => missing = Some(table),
            }
        }
        Err(Error::TableUnavailable {
            table: missing.unwrap_or_default(),
            reason: format!(
                "its table key changed (a rotation or a new table) during each of \
                 {FREEZE_ATTEMPTS} attempts to freeze the checkpoint's state; retry the checkpoint"
            ),
        })
    }

    /// Freezes the state to copy, under the write lock (no record is appended meanwhile,
    /// and the current segment's queued records are written through first) and the
    /// manifest lock (no version is installed meanwhile), and pins it.
    /// `keys`: each table's key version and key, obtained before the locks. Returns
    /// `Ok(Err(table))`, with the locks let go, when an encrypted table has no key of its
    /// current version there: no KMS call is made under the locks.
    fn freeze(
        &self,
        keys: &HashMap<TableId, (u32, Arc<TableKey>)>,
    ) -> Result<std::result::Result<Frozen<'_>, String>> {
        let mut ws = self.write.lock();
        let current = ws.wal.segment();
        // Every record appended so far reaches the file and is synced, then a synced sync
        // point vouches for all of it (WAL format 2), so the copy up to `current_len` ends
        // on a record boundary, holds every acknowledged write, and is the copy's last
        // segment with nothing in it forgiven as a torn tail: damage anywhere in it is
        // corruption at the copy's open, never a shorter database.
        // IMPORTANT: fsync of the current segment, under the write lock (as at a switch).
        ws.wal
            .sync_and_vouch()
            .map_err(|e| self.poison("WAL fsync failed", e))?;
        self.synced.fetch_max(ws.appended, Ordering::AcqRel);
        let current_len = ws.wal.len();
        let _versions = self.versions.lock();
        let tables = self.all_tables();
        let mut table_keys = HashMap::new();
        for t in &tables {
            if t.is_encrypted() && !t.is_locked() {
                let version = t.meta.read().key_version;
                match keys.get(&t.id) {
                    Some((v, key)) if *v == version => {
                        table_keys.insert(t.id, Arc::clone(key));
                    }
                    _ => return Ok(Err(t.display_name())),
                }
            }
        }
        let min_log = tables.iter().map(|t| t.log_number()).min();
        let segments: BTreeSet<FileNumber> = self
            .versions
            .wal_segments()
            .into_iter()
            .filter(|s| min_log.is_none_or(|m| *s >= m))
            .chain(std::iter::once(current))
            .collect();
        let pins = self.versions.wal_pins.pin(&segments);
        let last_seq = SeqNo(self.last_seq.load(Ordering::Acquire));
        let database_key = self.versions.database_key_for_snapshot();
        let snapshot = snapshot_edits(
            database_key.as_ref().map(|(meta, _)| meta),
            tables.iter(),
            &segments,
            &self.versions.counters(last_seq),
        );
        Ok(Ok(Frozen {
            versions: tables.iter().map(|t| t.super_version()).collect(),
            snapshot,
            table_keys,
            database_key: database_key.map(|(_, k)| k),
            segments: segments
                .iter()
                .map(|s| (*s, (*s == current).then_some(current_len)))
                .collect(),
            // Numbered by the database, so no file of the copy shares its number.
            manifest_number: self.new_file_number(),
            last_seq,
            _pins: pins,
        }))
    }
}

fn restore(backup: &Path, target: &Path, mut opts: Options) -> Result<RestoreReport> {
    let env = Arc::clone(&opts.env);
    let env = &*env;
    check_empty_target(env, target)?;
    let names = env
        .list_dir(backup)
        .map_err(|e| Error::io(format!("listing the backup {}", backup.display()), e))?;
    if !names.iter().any(|n| n == filename::CURRENT) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a sealdb backup: it has no CURRENT file",
            backup.display()
        )));
    }
    let staging = staging_dir(target, "restore")?;
    clear_staging(env, &staging)?;
    env.create_dir_all(&staging)
        .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
    let built = (|| {
        let mut report = RestoreReport::default();
        for name in &names {
            // The database's own files and its queue of grants to retire (the restored
            // database retires them), not its lock.
            let data = name == filename::CURRENT
                || filename::wal_number(name).is_some()
                || filename::sst_number(name).is_some()
                || filename::manifest_number(name).is_some()
                || name == super::pending_retires::PENDING_RETIRES_FILE;
            if data {
                report.bytes += copy_file(env, &backup.join(name), &staging.join(name), None)?;
                report.files += 1;
            }
        }
        // IMPORTANT: the copies' names are durable before the open below builds on them.
        env.sync_dir(&staging)
            .map_err(|e| Error::io(format!("syncing {}", staging.display()), e))?;
        opts.create_if_missing = false;
        let db = Db::open(&staging, opts)?;
        report.verify = db.verify()?;
        drop(db);
        publish(env, &staging, target)?;
        report.dir = target.to_path_buf();
        Ok(report)
    })();
    if built.is_err() {
        remove_staging(env, &staging);
    }
    built
}

/// Refuses a target that exists and holds anything.
fn check_empty_target(env: &dyn Env, dir: &Path) -> Result<()> {
    if !env.exists(dir) {
        return Ok(());
    }
    let entries = env
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    if !entries.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} exists and is not empty: a backup or restore goes into a new or empty directory",
            dir.display()
        )));
    }
    Ok(())
}

/// `<dir>.tmp-<what>`, beside `dir`, where the copy is built before it is renamed.
fn staging_dir(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} names no directory", dir.display())))?;
    let mut staged = name.to_os_string();
    staged.push(format!(".tmp-{what}"));
    Ok(dir.with_file_name(staged))
}

/// Empties a staging directory a crashed checkpoint or restore left behind (the name is
/// this module's: `<dir>.tmp-checkpoint`, `<dir>.tmp-restore`). Both write only files
/// there; anything else (a subdirectory) fails the removal and is reported.
fn clear_staging(env: &dyn Env, staging: &Path) -> Result<()> {
    if !env.exists(staging) {
        return Ok(());
    }
    let names = env
        .list_dir(staging)
        .map_err(|e| Error::io(format!("listing {}", staging.display()), e))?;
    // Only files a checkpoint or restore writes are ours to remove: a directory of that
    // name holding anything else is someone's, and is left as it is.
    if let Some(other) = names.iter().find(|n| !is_staged_file(n)) {
        return Err(Error::InvalidArgument(format!(
            "{} holds {other:?}, which no checkpoint or restore writes: remove the directory \
             by hand if it is a leftover",
            staging.display()
        )));
    }
    for name in names {
        let p = staging.join(&name);
        env.remove_file(&p)
            .map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
    }
    Ok(())
}

/// A name a checkpoint or restore writes into its staging directory: the engine's files
/// (a restore opens the copy there) and the grant queue.
fn is_staged_file(name: &str) -> bool {
    filename::parse(name).is_some()
        || name == super::pending_retires::PENDING_RETIRES_FILE
        || name.strip_prefix(super::pending_retires::PENDING_RETIRES_FILE) == Some(".tmp")
}

/// Best effort, after a failure: the staging directory and the files it put there go.
fn remove_staging(env: &dyn Env, staging: &Path) {
    if let Ok(names) = env.list_dir(staging) {
        for name in names.iter().filter(|n| is_staged_file(n)) {
            let _ = env.remove_file(&staging.join(name));
        }
    }
    let _ = env.remove_dir(staging);
}

/// Renames the finished `staging` directory to `dir` (an empty `dir` is replaced).
fn publish(env: &dyn Env, staging: &Path, dir: &Path) -> Result<()> {
    // IMPORTANT: atomic rename: `dir` is either absent (or empty) or the whole copy.
    env.rename(staging, dir).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", staging.display(), dir.display()),
            e,
        )
    })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // IMPORTANT: the rename is durable.
    env.sync_dir(parent)
        .map_err(|e| Error::io(format!("syncing {}", parent.display()), e))
}

/// Copies `from` to a new file `to` and syncs it; `len`: exactly that many bytes (the
/// file must have at least that many), else the whole file. Returns the bytes copied.
fn copy_file(env: &dyn Env, from: &Path, to: &Path, len: Option<u64>) -> Result<u64> {
    let src = env
        .open_read(from)
        .map_err(|e| Error::io(format!("opening {}", from.display()), e))?;
    let have = src.len();
    let len = match len {
        Some(l) if l > have => {
            return Err(Error::Corruption {
                file: from.display().to_string(),
                offset: have,
                what: format!("the file ends at {have} bytes; the checkpoint needs {l}"),
            })
        }
        Some(l) => l,
        None => have,
    };
    let mut dst = env
        .create(to)
        .map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let mut offset = 0u64;
    while offset < len {
        let n = usize::try_from(len - offset)
            .unwrap_or(COPY_CHUNK)
            .min(COPY_CHUNK);
        let chunk = src
            .read_at(offset, n)
            .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        if chunk.len() != n {
            return Err(Error::Corruption {
                file: from.display().to_string(),
                offset,
                what: format!("short read: {} of {n} bytes", chunk.len()),
            });
        }
        dst.append(&chunk)
            .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
        offset += n as u64;
    }
    // IMPORTANT: the copy is durable before the directory that names it is published.
    dst.sync()
        .map_err(|e| Error::io(format!("syncing {}", to.display()), e))?;
    Ok(len)
}
