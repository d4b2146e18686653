//! Opening a database: lock, read and verify the manifest, check it against the files,
//! replay the WAL into memtables and flush what it recovered, then commit a fresh manifest
//! and only then delete what that manifest proves obsolete.
//!
//! An open that fails changes nothing on disk: the files it wrote (level-0 tables of
//! replayed data, the new WAL segment, the new manifest) are removed, and nothing is
//! deleted before `CURRENT` names the new manifest. Open never deletes a file it cannot
//! account for (DESIGN.md section 8).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::manifest::{
    self, open_boundary, Boundary, DatabaseKeyMeta, Edit, FileMeta, ManifestContents,
    ManifestWriter, TableMeta, VersionEdit,
};
use crate::memtable::MemTable;
use crate::sst::BlockCache;
use crate::storage::{Env, FileLock};
use crate::types::{FileNumber, SeqNo, TableId};
use crate::wal::{self, WalWriter};

use super::flush::{build_table_file, protection_with_key};
use super::health::Health;
use super::keyring::Keyring;
use super::locked::LockReason;
use super::snapshot::SnapshotList;
use super::table::{SuperVersion, TableState};
use super::version::{FileHandle, Version};
use super::version_set::snapshot_edits;
use super::write_batch::decode_section;
use super::{
    BgState, Counters, DatabaseKey, DbInner, Options, Recovered, Tables, VersionSet, WriteState,
};
use crate::filename;

/// One table as the manifest's edits leave it.
struct TableRecord {
    name: String,
    meta: TableMeta,
    log_number: FileNumber,
    files: BTreeMap<FileNumber, FileMeta>,
    /// Older table-key versions still in use (format 6), by version.
    old_keys: BTreeMap<u32, manifest::OldTableKey>,
}

/// The database as the manifest's edits leave it.
#[derive(Default)]
struct ManifestState {
    tables: BTreeMap<TableId, TableRecord>,
    next_file: u64,
    last_seq: u64,
    next_table_id: u32,
    database_key: Option<DatabaseKeyMeta>,
    /// WAL segments the manifest recorded (format 2).
    wal_segments: BTreeSet<FileNumber>,
    /// The file counter as the manifest's edits left it (before the files on disk count).
    next_file_at_commit: u64,
    /// The largest `SetNextFileNumber`: every SSTable numbered at or past it was allocated
    /// after the last committed edit (the engine records the lowest number still being
    /// written), so an unreferenced one is a leftover whose contents are elsewhere.
    recorded_next_file: u64,
    /// Every SSTable an `AddFile` of this manifest named: those no table holds at the end
    /// were removed by a committed edit (compaction, drop) and may be deleted.
    ever_added: HashSet<FileNumber>,
    /// Secondary indexes (crate::index): index table id -> declaration, ready.
    indexes: BTreeMap<TableId, (manifest::IndexDecl, bool)>,
    /// Local indexes (crate::index::local): table id -> declarations, in record order.
    local_indexes: BTreeMap<TableId, Vec<manifest::LocalIndexDecl>>,
}

impl ManifestState {
    fn apply(&mut self, edit: &VersionEdit, label: &str) -> Result<()> {
        for e in &edit.edits {
            match e {
                Edit::CreateTable { id, name, meta } => {
                    // Table ids are never reused: a second CreateTable of a live id would
                    // replace its record and empty its file list (an open with less data).
                    if self.tables.contains_key(id) {
                        return Err(Error::corruption(
                            label,
                            0,
                            format!("table {id} created twice"),
                        ));
                    }
                    self.tables.insert(
                        *id,
                        TableRecord {
                            name: name.clone(),
                            meta: meta.clone(),
                            log_number: FileNumber(0),
                            files: BTreeMap::new(),
                            old_keys: BTreeMap::new(),
                        },
                    );
                    self.next_table_id = self.next_table_id.max(id.0.saturating_add(1));
                }
                Edit::DropTable { id } => {
                    self.tables.remove(id);
                    self.indexes.remove(id);
                    self.local_indexes.remove(id);
                }
                Edit::DeclareLocalIndex(d) => {
                    self.local_indexes
                        .entry(d.table)
                        .or_default()
                        .push(d.clone());
                }
                // Secondary indexes (crate::index): the catalogue of index tables.
                Edit::DeclareIndex(d) => {
                    self.indexes.insert(d.index, (d.clone(), false));
                }
                Edit::IndexReady { index } => {
                    if let Some(d) = self.indexes.get_mut(index) {
                        d.1 = true;
                    }
                }
                Edit::SetTableKey { table, meta } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.meta = meta.clone();
                    }
                }
                Edit::AddFile { table, file } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.files.insert(file.number, file.clone());
                    }
                    self.ever_added.insert(file.number);
                    self.next_file = self.next_file.max(file.number.0.saturating_add(1));
                    // Counters from the files too: a lowered SetLastSeq cannot hide data.
                    self.last_seq = self.last_seq.max(file.max_seq.0);
                }
                Edit::RemoveFile { table, file, .. } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.files.remove(file);
                    }
                }
                Edit::SetLogNumber { table, log } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.log_number = t.log_number.max(*log);
                    }
                    self.next_file = self.next_file.max(log.0.saturating_add(1));
                }
                Edit::SetNextFileNumber(n) => {
                    self.next_file = self.next_file.max(n.0);
                    self.recorded_next_file = self.recorded_next_file.max(n.0);
                }
                Edit::SetLastSeq(s) => self.last_seq = self.last_seq.max(s.0),
                Edit::SetNextTableId(t) => self.next_table_id = self.next_table_id.max(t.0),
                Edit::SetDatabaseKey(k) => self.database_key = Some(k.clone()),
                Edit::SnapshotEnd { .. } => {}
                Edit::TableKeyVersion(k) => {
                    if let Some(t) = self.tables.get_mut(&k.table) {
                        t.old_keys.insert(k.version, k.clone());
                    }
                }
                Edit::RetireTableKey { table, version } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.old_keys.remove(version);
                    }
                }
                Edit::AddWalSegment(n) => {
                    self.wal_segments.insert(*n);
                    self.next_file = self.next_file.max(n.0.saturating_add(1));
                }
            }
        }
        Ok(())
    }

    /// The smallest log number of any table: WAL segments below it hold nothing needed.
    fn min_log(&self) -> Option<FileNumber> {
        self.tables.values().map(|t| t.log_number).min()
    }
}

/// The data directory's files, by kind.
pub(super) struct Listing {
    pub(super) segments: Vec<FileNumber>,
    pub(super) tables: HashSet<FileNumber>,
    manifests: Vec<FileNumber>,
    /// One past the largest file number on disk.
    next_file: u64,
}

impl Listing {
    pub(super) fn read(env: &dyn Env, path: &Path) -> Result<Listing> {
        let names_on_disk = env
            .list_dir(path)
            .map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
        let mut l = Listing {
            segments: Vec::new(),
            tables: HashSet::new(),
            manifests: Vec::new(),
            next_file: 1,
        };
        for n in &names_on_disk {
            let number = if let Some(f) = filename::wal_number(n) {
                l.segments.push(f);
                f
            } else if let Some(f) = filename::sst_number(n) {
                l.tables.insert(f);
                f
            } else if let Some(f) = filename::manifest_number(n) {
                l.manifests.push(f);
                f
            } else {
                continue;
            };
            l.next_file = l.next_file.max(number.0.saturating_add(1));
        }
        l.segments.sort_unstable();
        l.manifests.sort_unstable();
        Ok(l)
    }
}

/// Files this open creates, numbered from the first number free on disk and in the
/// manifest: removed again if the open fails before it commits.
struct NewFiles<'a> {
    env: &'a dyn Env,
    dir: &'a Path,
    next_file: u64,
    names: Vec<String>,
    committed: bool,
}

impl NewFiles<'_> {
    /// The next file number, for a file this open is about to create as `name(number)`.
    fn create(&mut self, name: fn(FileNumber) -> String) -> FileNumber {
        let n = FileNumber(self.next_file);
        self.next_file += 1;
        self.names.push(name(n));
        n
    }
}

impl Drop for NewFiles<'_> {
    fn drop(&mut self) {
        if !self.committed {
            for n in &self.names {
                let p = self.dir.join(n);
                if filename::wal_number(n).is_some() {
                    // A WAL segment first loses its records (truncate is durable), so even
                    // if a power loss undoes the removal it holds no writes.
                    let _ = self
                        .env
                        .truncate(&p, crate::framing::FILE_HEADER_LEN as u64);
                }
                let _ = self.env.remove_file(&p);
            }
            // IMPORTANT: the removals are durable, so a power loss cannot bring back a
            // segment this failed open wrote (it would read as writes no manifest lists).
            let _ = self.env.sync_dir(self.dir);
        }
    }
}

fn boundary_bytes(
    b: &Boundary,
    key: Option<&TableKey>,
    table: TableId,
    file: FileNumber,
    is_largest: bool,
) -> Result<Vec<u8>> {
    match b {
        Boundary::Plain(v) => Ok(v.clone()),
        Boundary::Sealed(v) => {
            let key = key.ok_or_else(|| Error::TableUnavailable {
                table: format!("#{table}"),
                reason: "its table key is needed to open sealed boundaries".into(),
            })?;
            open_boundary(key, table, file, is_largest, v)
        }
    }
}

pub(super) fn open(
    path: &Path,
    opts: Options,
    keyring: Option<Arc<Keyring>>,
) -> Result<Arc<DbInner>> {
    let env = Arc::clone(&opts.env);
    let lock = lock_directory(&*env, path, &opts)?;
    let found = Found::read(&*env, path, &opts)?;
    if let Some(k) = &keyring {
        // The database's id, from its manifest (a fresh one for a database without a
        // database key yet): every bound table key must name it.
        k.bind_database(found.state.database_key.as_ref().map(|m| m.db_id.as_str()))?;
    }
    let database_key =
        unlock_database_key(&found.state, found.contents.as_ref(), keyring.as_deref())?;
    let table_keys = unlock_table_keys(
        &found.state,
        found.contents.as_ref(),
        keyring.as_deref(),
        &opts.principal,
    )?;
    found.check_locked_tables_fit(&table_keys)?;
    check_files(&found.state, &found.listing, found.contents.as_ref())?;
    let states = table_states(path, &env, &found.state, &table_keys)?;
    // Secondary indexes (crate::index): attach each index's table to its table.
    crate::index::attach(
        &states,
        &found.state.indexes,
        &opts.index_extractors,
        &found
            .contents
            .as_ref()
            .map(|c| crate::filename::manifest(c.number))
            .unwrap_or_default(),
    )?;
    crate::index::attach_local(
        &states,
        &found.state.local_indexes,
        &opts.index_extractors,
        &found
            .contents
            .as_ref()
            .map(|c| crate::filename::manifest(c.number))
            .unwrap_or_default(),
    )?;
    let retained_wal = skipped_segments_with_records(&*env, path, &found.listing, &found.state);

    let mut files = NewFiles {
        env: &*env,
        dir: path,
        next_file: found.first_free_number(),
        names: Vec::new(),
        committed: false,
    };
    let mut replay = Replay {
        env: &env,
        dir: path,
        states: &states,
        next_table_id: found.state.next_table_id,
        write_buffer_size: opts.write_buffer_size,
        paranoid: opts.paranoid_checks,
        max_seq: found.state.last_seq,
        torn_from: FileNumber(0),
        locked: &table_keys.locked,
    };
    replay.run(&found.listing, &found.state, &mut files)?;
    let (wal, max_seq) = move_recovered(
        &env,
        path,
        &opts,
        &states,
        &table_keys,
        replay.max_seq,
        &mut files,
    )?;
    settle_tables(&states, &table_keys, wal.segment(), replay.torn_from, &opts);
    let database_key = match database_key {
        Some(k) => Some(k),
        None => first_database_key(&states, keyring.as_deref(), &opts)?,
    };
    let committed = commit_manifest(
        &found,
        &states,
        &table_keys,
        database_key,
        wal.segment(),
        SeqNo(max_seq),
        &mut files,
    )?;
    let next_file = FileNumber(files.next_file);
    drop(files);

    let mut tables = Tables::default();
    for t in states.values() {
        tables.insert(t);
    }
    let inner = start(
        path,
        opts,
        lock,
        keyring,
        Recovered {
            manifest: committed.manifest,
            next_file,
            next_table_id: TableId(found.state.next_table_id),
            tables,
            database_key: committed.database_key,
            wal_segments: committed.segments,
            retained_wal,
        },
        wal,
        max_seq,
    );
    inner.delete_obsolete_files();
    inner.delete_redundant_tables(
        &found.listing,
        found.manifest_next_file(),
        &found.state.ever_added,
    );
    Ok(inner)
}

/// The engine over the recovered state: the version set from what the committed manifest
/// holds, the write path from the new WAL segment.
fn start(
    path: &Path,
    opts: Options,
    lock: Box<dyn FileLock>,
    keyring: Option<Arc<Keyring>>,
    recovered: Recovered,
    wal: WalWriter,
    max_seq: u64,
) -> Arc<DbInner> {
    let env = Arc::clone(&opts.env);
    let health = Arc::new(Health::default());
    let versions = VersionSet::new(Arc::clone(&env), path, Arc::clone(&health), recovered);
    Arc::new(DbInner {
        path: path.to_path_buf(),
        env,
        cache: Arc::new(BlockCache::new(opts.block_cache_bytes)),
        sst_cache: Arc::new(crate::cache::SstCache::new(opts.max_open_files)),
        opts,
        _lock: lock,
        write: Mutex::new(WriteState {
            wal,
            appended: 0,
            last_allocated: max_seq,
        }),
        sync_leader: Mutex::new(false),
        sync_cv: Condvar::new(),
        synced: AtomicU64::new(0),
        last_seq: AtomicU64::new(max_seq),
        seqs: Mutex::new(super::SeqState {
            allocated: max_seq,
            inflight: BTreeSet::new(),
        }),
        seqs_cv: Condvar::new(),
        versions,
        health,
        bg: Mutex::new(BgState::default()),
        bg_cv: Condvar::new(),
        snapshots: Arc::new(SnapshotList::default()),
        keyring,
        worker: Mutex::new(None),
    })
}

/// Creates the directory if asked to and takes its lock: one process at a time.
fn lock_directory(env: &dyn Env, path: &Path, opts: &Options) -> Result<Box<dyn FileLock>> {
    if !env.exists(path) {
        if !opts.create_if_missing {
            return Err(Error::InvalidArgument(format!(
                "database {} does not exist",
                path.display()
            )));
        }
        env.create_dir_all(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    }
    env.lock(&path.join(filename::LOCK)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::AlreadyOpen(path.to_path_buf())
        } else {
            Error::io(format!("locking {}", path.display()), e)
        }
    })
}

/// What open finds: the directory's files, and the committed manifest's state.
struct Found {
    listing: Listing,
    contents: Option<ManifestContents>,
    state: ManifestState,
}

impl Found {
    fn read(env: &dyn Env, path: &Path, opts: &Options) -> Result<Found> {
        let listing = Listing::read(env, path)?;
        let contents = manifest::read_current(env, path)?;
        let state = match &contents {
            Some(c) => manifest_state(c, opts)?,
            None => {
                check_new_directory(env, path, &listing)?;
                ManifestState {
                    next_file: 1,
                    next_table_id: 1,
                    ..ManifestState::default()
                }
            }
        };
        Ok(Found {
            listing,
            contents,
            state,
        })
    }

    /// Unreferenced SSTables numbered at or past this were allocated after the last
    /// committed edit: their contents are still in the WAL or in their compaction inputs.
    fn manifest_next_file(&self) -> FileNumber {
        FileNumber(if self.state.recorded_next_file > 0 {
            self.state.recorded_next_file
        } else {
            self.state.next_file
        })
    }

    /// The first number no file on disk or in the manifest has: the files of this open
    /// start there.
    fn first_free_number(&self) -> u64 {
        let mut next = self.state.next_file.max(self.listing.next_file);
        if let Some(c) = &self.contents {
            next = next.max(c.number.0.saturating_add(1));
        }
        next
    }

    /// A format-1 manifest has no database MAC to carry a locked table's records under.
    fn check_locked_tables_fit(&self, keys: &TableKeys) -> Result<()> {
        if keys.locked.is_empty() || self.contents.as_ref().is_none_or(|c| c.version >= 2) {
            return Ok(());
        }
        let (id, (reason, _)) = keys
            .locked
            .iter()
            .next()
            .ok_or(Error::Internal("a locked table vanished".into()))?;
        Err(Error::TableLocked {
            table: self
                .state
                .tables
                .get(id)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            reason: *reason,
        })
    }
}

/// Starts the new WAL segment (first, so the manifest can list it as existing) and moves
/// what the replayed segments held on: written again into the new segment when it fits
/// the write buffer (so an open adds no file), else to level-0 files. Either way the old
/// segments are obsolete once the new manifest is committed. Returns the new segment's
/// writer and the last sequence number.
fn move_recovered(
    env: &Arc<dyn Env>,
    path: &Path,
    opts: &Options,
    states: &BTreeMap<TableId, Arc<TableState>>,
    table_keys: &TableKeys,
    mut max_seq: u64,
    files: &mut NewFiles<'_>,
) -> Result<(WalWriter, u64)> {
    let wal_number = files.create(filename::wal);
    let mut wal = WalWriter::create(&**env, path, wal_number)?;
    for t in states.values() {
        let mem = Arc::clone(&t.super_version().mem);
        if mem.is_empty() || table_keys.locked.contains_key(&t.id) {
            continue;
        }
        if mem.approximate_bytes() < opts.write_buffer_size {
            max_seq = relog(&mut wal, t, &mem, max_seq)?;
        } else {
            flush_recovered(env, path, t, opts.paranoid_checks, files)?;
        }
    }
    // IMPORTANT: the re-logged records are durable before the manifest makes the old
    // segments obsolete.
    wal.sync()?;
    Ok((wal, max_seq))
}

/// Every table starts from the new WAL segment, except a locked one: its sealed records
/// stay where they are, in segments kept for it until it is unlocked.
fn settle_tables(
    states: &BTreeMap<TableId, Arc<TableState>>,
    table_keys: &TableKeys,
    wal_number: FileNumber,
    torn_from: FileNumber,
    opts: &Options,
) {
    for t in states.values() {
        match table_keys.locked.get(&t.id) {
            Some((reason, detail)) => t.set_locked(super::locked::Lock::new(
                *reason,
                detail.clone(),
                wal_number,
                torn_from,
                opts.clock.now(),
            )),
            None => t.set_log_number(wal_number),
        }
    }
}

/// A database with encrypted tables and no database key yet (format 1) gets one.
fn first_database_key(
    states: &BTreeMap<TableId, Arc<TableState>>,
    keyring: Option<&Keyring>,
    opts: &Options,
) -> Result<Option<DatabaseKey>> {
    if !states.values().any(|t| t.is_encrypted()) {
        return Ok(None);
    }
    let keyring = keyring.ok_or_else(|| {
        Error::InvalidArgument("encrypted tables need a KMS: open the database with one".into())
    })?;
    keyring.create_database_key(&opts.principal).map(Some)
}

/// The manifest an open commits, and what it recorded.
struct Committed {
    manifest: ManifestWriter,
    database_key: Option<DatabaseKey>,
    segments: BTreeSet<FileNumber>,
}

/// Writes the fresh manifest holding the recovered state and points `CURRENT` at it:
/// from here the open is committed and its new files stay.
fn commit_manifest(
    found: &Found,
    states: &BTreeMap<TableId, Arc<TableState>>,
    table_keys: &TableKeys,
    database_key: Option<DatabaseKey>,
    wal_number: FileNumber,
    last_seq: SeqNo,
    files: &mut NewFiles<'_>,
) -> Result<Committed> {
    let manifest_number = files.create(filename::manifest);
    let counters = Counters {
        next_file: FileNumber(files.next_file),
        last_seq,
        next_table_id: TableId(found.state.next_table_id),
    };
    // The new segment, and the older ones that hold a locked table's records.
    let min_locked_log = states
        .values()
        .filter(|t| t.is_locked())
        .map(|t| t.log_number())
        .min();
    let segments: BTreeSet<FileNumber> = found
        .listing
        .segments
        .iter()
        .copied()
        .filter(|s| {
            min_locked_log.is_some_and(|m| *s >= m) && !is_leftover_segment(&found.state, *s)
        })
        .chain(std::iter::once(wal_number))
        .collect();
    let snapshot = snapshot_edits(
        database_key.as_ref().map(|k| &k.meta),
        states.values(),
        &segments,
        &counters,
    );
    let mac_key = |t: TableId| table_keys.keys.get(&t).cloned();
    let env = files.env;
    let manifest = ManifestWriter::create(
        env,
        files.dir,
        manifest_number,
        &snapshot,
        &mac_key,
        database_key.as_ref().map(|k| &*k.key),
    )
    .inspect_err(|_| {
        // CURRENT names the new manifest (the directory sync after the rename failed):
        // the open committed, and the files that manifest names stay.
        if manifest::current_manifest_number(env, files.dir) == Some(manifest_number) {
            files.committed = true;
        }
    })?;
    // CURRENT names the new manifest: the open is committed.
    files.committed = true;
    Ok(Committed {
        manifest,
        database_key,
        segments,
    })
}

/// Applies a manifest's edits, with the checks that need the whole of it.
fn manifest_state(c: &ManifestContents, opts: &Options) -> Result<ManifestState> {
    let mut state = ManifestState {
        next_file: 1,
        next_table_id: 1,
        ..ManifestState::default()
    };
    let label = filename::manifest(c.number);
    for edit in &c.edits {
        state.apply(edit, &label)?;
    }
    state.next_file = state.next_file.max(c.number.0.saturating_add(1));
    state.next_file_at_commit = state.next_file;
    // Sequence numbers live in 56 bits of every internal key: a larger one read from the
    // manifest (SetLastSeq, an AddFile's max_seq) is damage, and would wrap new writes.
    if state.last_seq > SeqNo::MAX.0 {
        return Err(Error::corruption(
            filename::manifest(c.number),
            0,
            format!("sequence number {} is past the largest one", state.last_seq),
        ));
    }
    if opts.require_authenticated_manifest && !c.is_authenticated() {
        return Err(Error::Integrity {
            file: filename::manifest(c.number),
            offset: 0,
        });
    }
    Ok(state)
}

/// No `CURRENT`: a new database, or a creation that crashed before naming its first
/// manifest (which leaves that manifest and an empty WAL segment). Anything else (tables,
/// WAL segments with records, several manifests) means `CURRENT` was lost, and opening as
/// empty would hide every table.
fn check_new_directory(env: &dyn Env, dir: &Path, listing: &Listing) -> Result<()> {
    let segment_with_records = listing.segments.iter().any(|s| {
        let p = dir.join(filename::wal(*s));
        env.open_read(&p)
            .map(|f| f.len() > crate::framing::FILE_HEADER_LEN as u64)
            .unwrap_or(true)
    });
    if !listing.tables.is_empty() || segment_with_records || listing.manifests.len() > 1 {
        return Err(Error::corruption(
            filename::CURRENT,
            0,
            "CURRENT is missing but the directory holds database files",
        ));
    }
    Ok(())
}

/// Unwraps the database key (as the engine, through its grant) and verifies every record
/// of the manifest under it.
fn unlock_database_key(
    state: &ManifestState,
    contents: Option<&ManifestContents>,
    keyring: Option<&Keyring>,
) -> Result<Option<DatabaseKey>> {
    let (Some(meta), Some(c)) = (&state.database_key, contents) else {
        return Ok(None);
    };
    let keyring = keyring.ok_or_else(|| Error::TableUnavailable {
        table: "(database)".into(),
        reason: "the manifest is authenticated under a KMS key and the database was opened without a KMS"
            .into(),
    })?;
    let key = Arc::new(keyring.database_key(meta)?);
    c.verify_database_chain(&key)?;
    Ok(Some(DatabaseKey {
        meta: meta.clone(),
        key,
    }))
}

/// The encrypted tables' keys at open, and the tables that open locked.
#[derive(Default)]
struct TableKeys {
    keys: BTreeMap<TableId, Arc<TableKey>>,
    /// The keys of older table-key versions still in use (`db::table_key_rotation`).
    old: BTreeMap<TableId, BTreeMap<u32, Arc<TableKey>>>,
    /// Tables whose key cannot be had: why, with the KMS's words.
    locked: BTreeMap<TableId, (LockReason, String)>,
    /// Tables opened through the opening principal's own access (the engine's grant is
    /// gone): their upkeep stops until `renew_grant`.
    maintenance_stopped: BTreeMap<TableId, String>,
}

/// Unwraps each encrypted table's key for recovery and upkeep (through the engine's grant,
/// else the opening principal's own access) and verifies the table's MAC chain. A table
/// whose key cannot be had opens locked; damage (a chain that fails, a wrapped key the KMS
/// calls invalid) fails the open.
fn unlock_table_keys(
    state: &ManifestState,
    contents: Option<&ManifestContents>,
    keyring: Option<&Keyring>,
    principal: &crate::kms::Principal,
) -> Result<TableKeys> {
    let mut out = TableKeys::default();
    for (id, t) in &state.tables {
        if !t.meta.encrypted {
            continue;
        }
        let keyring = keyring.ok_or_else(|| super::no_kms(&t.name))?;
        let unwrapped = match super::locked::unwrap_table_key(keyring, principal, &t.name, &t.meta)
        {
            Ok(u) => u,
            Err(super::locked::Unavailable::Locked(reason, detail)) => {
                out.locked.insert(*id, (reason, detail));
                continue;
            }
            Err(super::locked::Unavailable::Failed(e)) => return Err(e),
        };
        if let Some(c) = contents {
            c.verify_table_chain(*id, &unwrapped.key)?;
        }
        // Older table-key versions still in use: their files and WAL records are read with
        // them. They are under the same KMS key, context and grant as the current one.
        let mut old = BTreeMap::new();
        for o in t.old_keys.values() {
            match keyring.unwrap_old_table_key(&t.name, &t.meta, &o.wrapped_table_key) {
                Ok(k) => {
                    old.insert(o.version, Arc::new(k));
                }
                Err(e) => match LockReason::of(&e) {
                    Some(reason) => {
                        out.locked.insert(*id, (reason, e.to_string()));
                        break;
                    }
                    None => return Err(e),
                },
            }
        }
        if out.locked.contains_key(id) {
            continue;
        }
        out.old.insert(*id, old);
        if let Some(why) = unwrapped.maintenance_stopped {
            out.maintenance_stopped.insert(*id, why);
        }
        out.keys.insert(*id, unwrapped.key);
    }
    Ok(out)
}

/// Every file and WAL segment the manifest relies on must be there: a missing one means
/// damage, or a manifest rolled back past deleted files.
fn check_files(
    state: &ManifestState,
    listing: &Listing,
    contents: Option<&ManifestContents>,
) -> Result<()> {
    for t in state.tables.values() {
        for f in t.files.keys() {
            if !listing.tables.contains(f) {
                return Err(Error::corruption(
                    filename::sst(*f),
                    0,
                    format!("table {:?} needs this file but it is missing", t.name),
                ));
            }
        }
    }
    let Some(min_log) = state.min_log() else {
        return Ok(());
    };
    let format2 = contents.is_some_and(|c| c.version >= 2);
    if format2 {
        for s in state.wal_segments.range(min_log..) {
            if listing.segments.binary_search(s).is_err() {
                return Err(Error::corruption(
                    filename::wal(*s),
                    0,
                    "the manifest lists this WAL segment but it is missing",
                ));
            }
        }
    } else {
        for t in state.tables.values() {
            if t.log_number.0 != 0
                && listing.segments.binary_search(&t.log_number).is_err()
                && listing.segments.iter().any(|s| *s > t.log_number)
            {
                return Err(Error::corruption(
                    filename::wal(t.log_number),
                    0,
                    format!(
                        "table {:?} needs WAL segment {} but it is missing (damaged directory or rolled-back manifest)",
                        t.name, t.log_number
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The tables' runtime state, with their files and keys.
fn table_states(
    path: &Path,
    env: &Arc<dyn Env>,
    state: &ManifestState,
    table_keys: &TableKeys,
) -> Result<BTreeMap<TableId, Arc<TableState>>> {
    let mut states = BTreeMap::new();
    for (id, t) in &state.tables {
        let key = table_keys.keys.get(id).cloned();
        let locked = table_keys.locked.contains_key(id);
        let mut version = Version::empty();
        for (number, f) in &t.files {
            // A locked table's sealed boundaries stay sealed (empty placeholders) until its
            // key is back; nothing reads or compacts it meanwhile.
            let bound = |b: &Boundary, largest: bool| match b {
                Boundary::Sealed(_) if locked => Ok(Vec::new()),
                b => boundary_bytes(b, key.as_deref(), *id, *number, largest),
            };
            let smallest = bound(&f.smallest, false)?;
            let largest = bound(&f.largest, true)?;
            version.add(Arc::new(FileHandle::new(
                *id,
                f.clone(),
                (smallest, largest),
                path.join(filename::sst(*number)),
                Arc::clone(env),
            )));
        }
        let ts = Arc::new(TableState::new(
            *id,
            t.name.clone(),
            t.meta.clone(),
            version,
        ));
        ts.set_log_number(t.log_number);
        *ts.key.write() = key;
        *ts.key_versions.write() = super::table_key_rotation::KeyVersions::from_catalogue(
            t.old_keys.clone(),
            table_keys.old.get(id).cloned().unwrap_or_default(),
        );
        if let Some(why) = table_keys.maintenance_stopped.get(id) {
            *ts.maintenance_error.lock() = Some(why.clone());
        }
        states.insert(*id, ts);
    }
    Ok(states)
}

/// Replaying the WAL into memtables, flushing them to level 0 as they fill.
struct Replay<'a> {
    env: &'a Arc<dyn Env>,
    dir: &'a Path,
    states: &'a BTreeMap<TableId, Arc<TableState>>,
    next_table_id: u32,
    write_buffer_size: usize,
    paranoid: bool,
    max_seq: u64,
    /// The first segment replayed as possibly torn at its end (the last with records).
    torn_from: FileNumber,
    /// Tables opening locked: their records are skipped.
    locked: &'a BTreeMap<TableId, (LockReason, String)>,
}

impl Replay<'_> {
    fn run(
        &mut self,
        listing: &Listing,
        state: &ManifestState,
        files: &mut NewFiles<'_>,
    ) -> Result<()> {
        let Some(min_log) = state.min_log() else {
            return Ok(());
        };
        let newest_recorded = state.wal_segments.last().copied();
        // A segment newer than every listed one and numbered at or past the manifest's file
        // counter was written after the last committed edit and never listed: by an open
        // that failed or crashed before committing (its contents are copies of the older
        // segments replayed here), or a switch that failed before listing it (nothing was
        // acknowledged in it). It is not replayed. (A manifest swapped for an older copy
        // also makes newer segments look like this: that rollback is caught only through
        // the files the older manifest names that are gone; DESIGN.md section 7.)
        let leftover = |s: &FileNumber| is_leftover_segment(state, *s);
        let live: Vec<FileNumber> = listing
            .segments
            .iter()
            .copied()
            .filter(|s| *s >= min_log && !leftover(s))
            .collect();
        // Segments after the last one holding records are empty leftovers (created by an
        // open or a switch that crashed or failed): a torn tail before them is still the
        // newest write, as a crash leaves it.
        let seg_len = |seg: &FileNumber| {
            self.env
                .open_read(&self.dir.join(filename::wal(*seg)))
                .map(|f| f.len())
                .unwrap_or(u64::MAX)
        };
        let last_with_records = live
            .iter()
            .rposition(|s| seg_len(s) > crate::framing::FILE_HEADER_LEN as u64)
            .unwrap_or(0);
        self.torn_from = live
            .get(last_with_records)
            .copied()
            .unwrap_or(FileNumber(0));
        for (i, seg) in live.iter().enumerate() {
            let is_last = i >= last_with_records;
            let seg_path = self.dir.join(filename::wal(*seg));
            let states = self.states;
            let next_table_id = self.next_table_id;
            let locked = self.locked;
            let mut resolve = |table: TableId, fk: Option<&wal::WalKeyRef<'_>>| {
                if table.0 >= next_table_id {
                    return Err(unknown_table(*seg, table));
                }
                if locked.contains_key(&table) {
                    return Ok(wal::ReplayKey::Skip);
                }
                super::status::replay_key(states.get(&table), fk, *seg)
            };
            let max_seq = &mut self.max_seq;
            let (env, dir, write_buffer_size, paranoid) =
                (self.env, self.dir, self.write_buffer_size, self.paranoid);
            let mut sink =
                |first_seq: SeqNo, table: TableId, payload: bytes::Bytes| -> Result<()> {
                    let Some(t) = states.get(&table) else {
                        return Ok(());
                    };
                    if *seg < t.log_number() {
                        return Ok(());
                    }
                    let mem = Arc::clone(&t.super_version().mem);
                    decode_section(&payload, first_seq, &filename::wal(*seg), |e| {
                        *max_seq = (*max_seq).max(e.seq.0);
                        mem.insert(e.key, e.seq, e.kind, e.value);
                    })?;
                    // Keep memory bounded while replaying: flush what passed the write buffer.
                    if mem.approximate_bytes() >= write_buffer_size {
                        flush_recovered(env, dir, t, paranoid, files)?;
                    }
                    Ok(())
                };
            let outcome = wal::replay_segment(
                &**self.env,
                &seg_path,
                *seg,
                is_last,
                &mut resolve,
                &mut sink,
            )?;
            // A locked table's sealed sections are skipped unread: their entries are
            // numbered below this bound, and new writes must come after them.
            self.max_seq = self.max_seq.max(outcome.skipped_seq_bound);
            let unrecorded = newest_recorded.is_some_and(|n| *seg > n);
            if unrecorded && outcome.batches > 0 {
                return Err(Error::corruption(
                    filename::wal(*seg),
                    0,
                    "this WAL segment holds writes but the manifest does not list it (manifest cut short or rolled back)",
                ));
            }
        }
        Ok(())
    }
}

/// Writes the newest version of every key of `t`'s recovered memtable into the new WAL
/// segment as one batch, numbered after `last_seq` (no snapshot survives a restart, so
/// older versions are not needed), and makes a memtable of exactly that batch the table's.
/// Returns the new last sequence number.
fn relog(
    wal: &mut WalWriter,
    t: &Arc<TableState>,
    mem: &Arc<MemTable>,
    last_seq: u64,
) -> Result<u64> {
    let mut batch = super::WriteBatch::new();
    let mut last_key: Option<Vec<u8>> = None;
    for e in mem.map().iter() {
        let parsed = crate::ikey::parse(e.key().ikey())
            .ok_or_else(|| Error::Internal("memtable key".into()))?;
        if last_key.as_deref() != Some(parsed.user_key) {
            batch.add(t.id, parsed.kind, parsed.user_key, e.key().value());
            last_key = Some(parsed.user_key.to_vec());
        }
    }
    if batch.is_empty() {
        return Ok(last_seq);
    }
    let protection = match t.table_key() {
        Some(key) => crate::crypto::Protection::fresh_wal(
            &key,
            t.meta.read().key_version,
            t.id,
            wal.segment(),
        ),
        None if t.is_encrypted() => return Err(t.require_key().err().unwrap_or(Error::Closed)),
        None => crate::crypto::Protection::Plain,
    };
    wal.register_table(t.id, protection)?;
    let first_seq = SeqNo(last_seq + 1);
    let sections: Vec<(TableId, &[u8])> =
        batch.sections().map(|(id, s)| (id, s.payload())).collect();
    wal.append_batch(first_seq, &sections)?;
    let fresh = Arc::new(MemTable::new());
    for (_, section) in batch.sections() {
        decode_section(section.payload(), first_seq, "write batch", |e| {
            fresh.insert(e.key, e.seq, e.kind, e.value)
        })
        .map_err(|e| Error::Internal(format!("batch encoding: {e}")))?;
    }
    let sv = t.super_version();
    *t.sv.write() = Arc::new(SuperVersion {
        mem: fresh,
        imm: Vec::new(),
        version: Arc::clone(&sv.version),
    });
    Ok(last_seq + batch.len() as u64)
}

/// Writes `t`'s recovered memtable to a level-0 file and starts a fresh one.
fn flush_recovered(
    env: &Arc<dyn Env>,
    dir: &Path,
    t: &Arc<TableState>,
    paranoid: bool,
    files: &mut NewFiles<'_>,
) -> Result<()> {
    let sv = t.super_version();
    if sv.mem.is_empty() {
        return Ok(());
    }
    let number = files.create(filename::sst);
    let protection = match t.table_key() {
        Some(key) => protection_with_key(t, &key, number),
        None if t.is_encrypted() => return Err(t.require_key().err().unwrap_or(Error::Closed)),
        None => crate::crypto::Protection::Plain,
    };
    let file = build_table_file(
        env,
        dir,
        t,
        protection,
        super::build_options_for(&t.meta.read()),
        number,
        &sv.mem,
        paranoid,
    )?;
    let mut version = (*sv.version).clone();
    version.add(Arc::new(file));
    *t.sv.write() = Arc::new(SuperVersion {
        mem: Arc::new(MemTable::new()),
        imm: Vec::new(),
        version: Arc::new(version),
    });
    Ok(())
}

/// A WAL segment newer than every one the manifest lists and numbered at or past its file
/// counter: written after the last committed edit and never listed (see `Replay::run`).
fn is_leftover_segment(state: &ManifestState, s: FileNumber) -> bool {
    state.wal_segments.last().is_some_and(|n| s > *n) && s.0 >= state.next_file_at_commit
}

/// The leftover segments that hold records: open does not replay them, and does not delete
/// them either (it cannot prove what they hold is elsewhere).
fn skipped_segments_with_records(
    env: &dyn Env,
    dir: &Path,
    listing: &Listing,
    state: &ManifestState,
) -> BTreeSet<FileNumber> {
    listing
        .segments
        .iter()
        .copied()
        .filter(|s| is_leftover_segment(state, *s))
        .filter(|s| {
            env.open_read(&dir.join(filename::wal(*s)))
                .map_or(true, |f| f.len() > crate::framing::FILE_HEADER_LEN as u64)
        })
        .collect()
}

fn unknown_table(segment: FileNumber, table: TableId) -> Error {
    Error::corruption(
        filename::wal(segment),
        0,
        format!(
            "records of table #{table}, which the manifest never created (manifest cut short or rolled back)"
        ),
    )
}
