//! The database's version state and its one owner: the catalogue of tables (each holding
//! its current `Version`), the counters, the database key, the live WAL segments, the
//! SSTables being written, and the manifest that records all of it.
//!
//! Every change goes through one door, `VersionLock::log_and_apply` (as LevelDB's
//! `VersionSet::LogAndApply`): the edit is appended to the manifest, MACed under the
//! tables' keys and the database key, and only once it is durable does the caller's
//! `install` change the state in memory, still under the manifest lock, so installs
//! happen in the order of their records. A failed append or sync poisons the database.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::crypto::TableKey;
use crate::error::Result;
use crate::manifest::{self, DatabaseKeyMeta, Edit, ManifestContents, ManifestWriter, VersionEdit};
use crate::storage::Env;
use crate::types::{FileNumber, SeqNo, TableId};

use super::health::Health;
use super::table::TableState;

/// The tables, by name and by id. An index's internal table is only in `by_id`.
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) by_name: HashMap<String, Arc<TableState>>,
    pub(crate) by_id: HashMap<TableId, Arc<TableState>>,
}

impl Tables {
    pub(crate) fn insert(&mut self, t: &Arc<TableState>) {
        // An index's table shares its table's name and is reached through that table.
        if t.index.get().is_none() {
            self.by_name.insert(t.name.clone(), Arc::clone(t));
        }
        self.by_id.insert(t.id, Arc::clone(t));
    }
}

/// The database key: authenticates every manifest record (manifest format 2 and up).
pub(crate) struct DatabaseKey {
    pub(crate) meta: DatabaseKeyMeta,
    pub(crate) key: Arc<TableKey>,
}

/// The database-wide counters a manifest snapshot records.
pub(crate) struct Counters {
    pub(crate) next_file: FileNumber,
    pub(crate) last_seq: SeqNo,
    pub(crate) next_table_id: TableId,
}

/// What recovery hands over: the state its committed manifest describes.
pub(crate) struct Recovered {
    pub(crate) manifest: ManifestWriter,
    pub(crate) next_file: FileNumber,
    pub(crate) next_table_id: TableId,
    pub(crate) tables: Tables,
    pub(crate) database_key: Option<DatabaseKey>,
    pub(crate) wal_segments: BTreeSet<FileNumber>,
    pub(crate) retained_wal: BTreeSet<FileNumber>,
}

/// The owner of the version state (see the module documentation).
pub(crate) struct VersionSet {
    env: Arc<dyn Env>,
    path: PathBuf,
    health: Arc<Health>,
    /// Serializes manifest appends and the installs that follow them.
    manifest: Mutex<ManifestWriter>,
    /// The database key, once the database has an encrypted table. Replaced only by a
    /// snapshot written under the manifest lock.
    database_key: RwLock<Option<DatabaseKey>>,
    next_file: AtomicU64,
    next_table_id: AtomicU32,
    /// Changed only by installs (under the manifest lock); read anywhere.
    tables: RwLock<Tables>,
    /// WAL segments created and recorded in the manifest, not yet deleted.
    wal_segments: Mutex<BTreeSet<FileNumber>>,
    /// Unlisted WAL segments with records that open skipped (leftovers of an open that
    /// never committed, or newer segments beside an older manifest): never deleted with
    /// the obsolete ones, reported as unreferenced, removed only on request.
    retained_wal: BTreeSet<FileNumber>,
    /// SSTables being written: not yet in the manifest, but not orphans.
    pending_outputs: Mutex<HashSet<FileNumber>>,
    /// WAL segments a checkpoint is copying: never deleted while pinned.
    pub(crate) wal_pins: super::checkpoint::WalPins,
}

impl VersionSet {
    pub(crate) fn new(
        env: Arc<dyn Env>,
        path: &Path,
        health: Arc<Health>,
        r: Recovered,
    ) -> VersionSet {
        VersionSet {
            env,
            path: path.to_path_buf(),
            health,
            manifest: Mutex::new(r.manifest),
            database_key: RwLock::new(r.database_key),
            next_file: AtomicU64::new(r.next_file.0),
            next_table_id: AtomicU32::new(r.next_table_id.0),
            tables: RwLock::new(r.tables),
            wal_segments: Mutex::new(r.wal_segments),
            retained_wal: r.retained_wal,
            pending_outputs: Mutex::new(HashSet::new()),
            wal_pins: super::checkpoint::WalPins::default(),
        }
    }

    /// The database key's record and the key itself, for a checkpoint's manifest.
    pub(crate) fn database_key_for_snapshot(&self) -> Option<(DatabaseKeyMeta, Arc<TableKey>)> {
        self.database_key
            .read()
            .as_ref()
            .map(|k| (k.meta.clone(), Arc::clone(&k.key)))
    }

    /// Takes the manifest lock: the only way to append an edit or write a snapshot.
    pub(crate) fn lock(&self) -> VersionLock<'_> {
        VersionLock {
            set: self,
            writer: self.manifest.lock(),
        }
    }

    pub(crate) fn new_file_number(&self) -> FileNumber {
        FileNumber(self.next_file.fetch_add(1, Ordering::AcqRel))
    }

    /// The file counter a flush or compaction record commits: the lowest number still
    /// being written by another job (not `installing`), else the counter itself. Every
    /// SSTable at or past it that the manifest does not name is then a leftover of a job
    /// that never installed, which the next open may delete (DESIGN.md section 8).
    pub(crate) fn next_file_to_record(&self, installing: &[FileNumber]) -> FileNumber {
        let counter = self.next_file.load(Ordering::Acquire);
        let pending = self
            .pending_outputs
            .lock()
            .iter()
            .filter(|n| !installing.contains(n))
            .map(|n| n.0)
            .min();
        FileNumber(pending.map_or(counter, |p| p.min(counter)))
    }

    /// Marks SSTable `n` as being written (not an orphan, and not yet committable).
    pub(crate) fn begin_output(&self, n: FileNumber) {
        self.pending_outputs.lock().insert(n);
    }

    /// Ends what `begin_output` started: the file is installed or given up.
    pub(crate) fn end_output(&self, n: FileNumber) {
        self.pending_outputs.lock().remove(&n);
    }

    pub(crate) fn is_pending_output(&self, n: FileNumber) -> bool {
        self.pending_outputs.lock().contains(&n)
    }

    /// Hands out the next table id. Called under the manifest lock by the creator, whose
    /// record then commits the raised counter.
    pub(crate) fn allocate_table_id(&self) -> TableId {
        TableId(self.next_table_id.fetch_add(1, Ordering::AcqRel))
    }

    /// The counters as they stand, with `last_seq` from the write path.
    pub(crate) fn counters(&self, last_seq: SeqNo) -> Counters {
        Counters {
            next_file: self.next_file_to_record(&[]),
            last_seq,
            next_table_id: TableId(self.next_table_id.load(Ordering::Acquire)),
        }
    }

    pub(crate) fn tables(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read()
    }

    /// For installs: the catalogue changes only after the record that says so.
    pub(crate) fn tables_mut(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write()
    }

    pub(crate) fn table(&self, name: &str) -> Option<Arc<TableState>> {
        self.tables.read().by_name.get(name).cloned()
    }

    pub(crate) fn table_by_id(&self, id: TableId) -> Option<Arc<TableState>> {
        self.tables.read().by_id.get(&id).cloned()
    }

    /// Every table, indexes' internal tables included, in id order.
    pub(crate) fn all_tables(&self) -> Vec<Arc<TableState>> {
        let mut v: Vec<_> = self.tables.read().by_id.values().cloned().collect();
        v.sort_by_key(|t| t.id);
        v
    }

    pub(crate) fn has_database_key(&self) -> bool {
        self.database_key.read().is_some()
    }

    /// The live WAL segments (recorded in the manifest, not yet deleted).
    pub(crate) fn wal_segments(&self) -> BTreeSet<FileNumber> {
        self.wal_segments.lock().clone()
    }

    /// Forgets the segments below `min_log`: every table has flushed past them.
    pub(crate) fn retire_wal_below(&self, min_log: FileNumber) {
        self.wal_segments.lock().retain(|s| *s >= min_log);
    }

    pub(crate) fn retained_wal(&self) -> &BTreeSet<FileNumber> {
        &self.retained_wal
    }

    /// The number of the manifest being appended to.
    pub(crate) fn manifest_number(&self) -> FileNumber {
        self.manifest.lock().number()
    }

    /// True after a failed append whose record may nonetheless be on disk.
    pub(crate) fn may_hold_failed_record(&self) -> bool {
        self.manifest.lock().may_hold_failed_record()
    }

    /// Every SSTable some table's current version names.
    pub(crate) fn live_table_files(&self) -> HashSet<FileNumber> {
        let mut live = HashSet::new();
        for t in self.all_tables() {
            for f in t.super_version().version.files() {
                live.insert(f.meta.number);
            }
        }
        live
    }
}

/// The manifest lock, held while an edit is logged and installed.
pub(crate) struct VersionLock<'a> {
    set: &'a VersionSet,
    writer: MutexGuard<'a, ManifestWriter>,
}

impl VersionLock<'_> {
    /// Appends `edit` to the manifest, MACed under the tables' keys (`new_table`: one not
    /// yet in the catalogue) and the database key; once it is durable, runs `install`
    /// (still under the lock) to make the state in memory match it. A failed write or
    /// sync poisons the whole database (the record may be on disk) and installs nothing.
    pub(crate) fn log_and_apply<R>(
        &mut self,
        edit: &VersionEdit,
        new_table: Option<(TableId, &Arc<TableKey>)>,
        install: impl FnOnce(&VersionSet) -> R,
    ) -> Result<R> {
        let set = self.set;
        set.health.check()?;
        let mac_key = |id: TableId| match new_table {
            Some((t, k)) if t == id => Some(Arc::clone(k)),
            _ => set.table_by_id(id).and_then(|s| s.table_key()),
        };
        let writer = &mut *self.writer;
        writer.append(edit, &mac_key).map_err(|e| {
            if writer.may_hold_failed_record() {
                set.health.poison("manifest write failed", e)
            } else {
                e
            }
        })?;
        if edit
            .edits
            .iter()
            .any(|e| matches!(e, Edit::AddWalSegment(_)))
        {
            let mut segments = set.wal_segments.lock();
            for e in &edit.edits {
                if let Edit::AddWalSegment(s) = e {
                    segments.insert(*s);
                }
            }
        }
        Ok(install(set))
    }

    /// Writes a fresh manifest holding the current state of `tables` (the catalogue, plus
    /// a table being created) and switches to it; `database_key`, if given, replaces the
    /// current one. The caller holds the write lock (no WAL segment starts meanwhile) and
    /// has every unlocked encrypted table's key at hand for the MACs.
    pub(crate) fn write_snapshot(
        &mut self,
        tables: &[Arc<TableState>],
        database_key: Option<DatabaseKey>,
        last_seq: SeqNo,
    ) -> Result<()> {
        let set = self.set;
        set.health.check()?;
        let number = set.new_file_number();
        let mut key_slot = set.database_key.write();
        let key = database_key.as_ref().or(key_slot.as_ref());
        let min_log = tables.iter().map(|t| t.log_number()).min();
        let segments: BTreeSet<FileNumber> = set
            .wal_segments
            .lock()
            .iter()
            .copied()
            .filter(|s| min_log.is_none_or(|m| *s >= m))
            .collect();
        let snapshot = snapshot_edits(
            key.map(|k| &k.meta),
            tables.iter(),
            &segments,
            &set.counters(last_seq),
        );
        let mac_key = |id: TableId| {
            tables
                .iter()
                .find(|t| t.id == id)
                .and_then(|s| s.table_key())
        };
        // A failure may leave CURRENT naming the new manifest (its rename done, the
        // directory sync not): which manifest the next open reads is unknown, so nothing
        // more may be appended to either. Read-only until reopened.
        *self.writer = ManifestWriter::create(
            &*set.env,
            &set.path,
            number,
            &snapshot,
            &mac_key,
            key.map(|k| &*k.key),
        )
        .map_err(|e| set.health.poison("writing a new manifest failed", e))?;
        if database_key.is_some() {
            *key_slot = database_key;
        }
        Ok(())
    }

    /// The manifest as it stands on disk; no record goes in while the lock is held.
    pub(crate) fn read_back(&self) -> Result<ManifestContents> {
        manifest::read_manifest(&*self.set.env, &self.set.path, self.writer.number())
    }
}

/// The edits that recreate the current state from nothing: the database key first (the
/// first record of an authenticated manifest), the counters, the WAL segments, a group per
/// table.
pub(crate) fn snapshot_edits<'a>(
    database_key: Option<&DatabaseKeyMeta>,
    tables: impl Iterator<Item = &'a Arc<TableState>>,
    segments: &BTreeSet<FileNumber>,
    counters: &Counters,
) -> Vec<VersionEdit> {
    let mut first = Vec::new();
    if let Some(k) = database_key {
        first.push(Edit::SetDatabaseKey(k.clone()));
    }
    first.extend([
        Edit::SetNextFileNumber(counters.next_file),
        Edit::SetLastSeq(counters.last_seq),
        Edit::SetNextTableId(counters.next_table_id),
    ]);
    first.extend(segments.iter().map(|s| Edit::AddWalSegment(*s)));
    let mut out = vec![VersionEdit { edits: first }];
    for t in tables {
        let mut edits = vec![
            Edit::CreateTable {
                id: t.id,
                name: t.name.clone(),
                meta: t.meta.read().clone(),
            },
            Edit::SetLogNumber {
                table: t.id,
                log: t.log_number(),
            },
        ];
        if let Some(def) = t.index.get() {
            edits.extend(crate::index::catalogue_edits(def));
        }
        edits.extend(crate::index::local_catalogue_edits(t));
        // Older table-key versions still in use (format 6).
        edits.extend(
            t.key_versions
                .read()
                .old
                .values()
                .map(|o| Edit::TableKeyVersion(o.clone())),
        );
        for f in t.super_version().version.files() {
            edits.push(f.add_edit());
        }
        out.push(VersionEdit { edits });
    }
    out
}
