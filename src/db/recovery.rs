//! Opening a database: lock, read the manifest, unwrap table keys, replay the WAL into
//! memtables, remove orphans, write a fresh manifest, start a new WAL segment.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::cache::BlockCache;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::manifest::{
    self, open_boundary, parse_manifest_file_name, Boundary, Edit, ManifestWriter, TableMeta,
    VersionEdit,
};
use crate::types::{FileNumber, Level, SeqNo, TableId};
use crate::wal::{self, WalWriter};

use super::snapshot::SnapshotList;
use super::table::TableState;
use super::version::{FileHandle, Version};
use super::write_batch::decode_section;
use super::{names, BgState, DbInner, Options, Tables, WriteState};

/// One table as the manifest's edits leave it.
struct TableRecord {
    name: String,
    meta: TableMeta,
    log_number: FileNumber,
    files: BTreeMap<FileNumber, FileRecord>,
}

#[derive(Clone)]
struct FileRecord {
    level: Level,
    size: u64,
    entries: u64,
    min_seq: SeqNo,
    max_seq: SeqNo,
    smallest: Boundary,
    largest: Boundary,
}

#[derive(Default)]
struct ManifestState {
    tables: BTreeMap<TableId, TableRecord>,
    next_file: u64,
    last_seq: u64,
    next_table_id: u32,
}

impl ManifestState {
    fn apply(&mut self, edit: &VersionEdit) {
        for e in &edit.edits {
            match e {
                Edit::CreateTable { id, name, meta } => {
                    self.tables.insert(
                        *id,
                        TableRecord {
                            name: name.clone(),
                            meta: meta.clone(),
                            log_number: FileNumber(0),
                            files: BTreeMap::new(),
                        },
                    );
                    self.next_table_id = self.next_table_id.max(id.0 + 1);
                }
                Edit::DropTable { id } => {
                    self.tables.remove(id);
                }
                Edit::SetTableKey { table, meta } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.meta = meta.clone();
                    }
                }
                Edit::AddFile {
                    table,
                    level,
                    file,
                    size,
                    entries,
                    min_seq,
                    max_seq,
                    smallest,
                    largest,
                } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.files.insert(
                            *file,
                            FileRecord {
                                level: *level,
                                size: *size,
                                entries: *entries,
                                min_seq: *min_seq,
                                max_seq: *max_seq,
                                smallest: smallest.clone(),
                                largest: largest.clone(),
                            },
                        );
                    }
                    self.next_file = self.next_file.max(file.0 + 1);
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
                    self.next_file = self.next_file.max(log.0 + 1);
                }
                Edit::SetNextFileNumber(n) => self.next_file = self.next_file.max(n.0),
                Edit::SetLastSeq(s) => self.last_seq = self.last_seq.max(s.0),
                Edit::SetNextTableId(t) => self.next_table_id = self.next_table_id.max(t.0),
            }
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
    keyring: Option<Arc<super::keyring::Keyring>>,
) -> Result<Arc<DbInner>> {
    let env = Arc::clone(&opts.env);
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
    let lock = env.lock(&path.join(names::LOCK)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Error::AlreadyOpen(path.to_path_buf())
        } else {
            Error::io(format!("locking {}", path.display()), e)
        }
    })?;

    let contents = manifest::read_current(&*env, path)?;
    let mut state = ManifestState {
        next_file: 1,
        next_table_id: 1,
        ..ManifestState::default()
    };
    if let Some(c) = &contents {
        for edit in &c.edits {
            state.apply(edit);
        }
        state.next_file = state.next_file.max(c.number.0 + 1);
    }

    // Table keys: the engine unwraps each encrypted table's key for recovery and upkeep.
    let mut table_keys: BTreeMap<TableId, Arc<TableKey>> = BTreeMap::new();
    for (id, t) in &state.tables {
        if !t.meta.encrypted {
            continue;
        }
        let keyring = keyring.as_ref().ok_or_else(|| super::no_kms(&t.name))?;
        let key = keyring.maintenance_key(&t.name, &t.meta)?;
        if let Some(c) = &contents {
            c.verify_table_chain(*id, &key)?;
        }
        table_keys.insert(*id, key);
    }

    let listing = env
        .list_dir(path)
        .map_err(|e| Error::io(format!("listing {}", path.display()), e))?;
    let mut segments: Vec<FileNumber> = listing
        .iter()
        .filter_map(|n| names::parse(n, "log"))
        .collect();
    segments.sort();
    let mut sst_present = HashSet::new();
    for n in &listing {
        if let Some(f) = names::parse(n, "sst") {
            sst_present.insert(f);
        }
        if let Some(f) = names::parse(n, "log") {
            state.next_file = state.next_file.max(f.0 + 1);
        }
        if let Some(f) = names::parse(n, "sst") {
            state.next_file = state.next_file.max(f.0 + 1);
        }
    }

    // Every file and WAL segment the manifest relies on must be there: a missing one means
    // damage, or a manifest rolled back past deleted files.
    for t in state.tables.values() {
        for f in t.files.keys() {
            if !sst_present.contains(f) {
                return Err(Error::corruption(
                    names::table(*f),
                    0,
                    format!("table {:?} needs this file but it is missing", t.name),
                ));
            }
        }
        if t.log_number.0 != 0
            && !segments.contains(&t.log_number)
            && segments.iter().any(|s| *s > t.log_number)
        {
            return Err(Error::corruption(
                names::wal(t.log_number),
                0,
                format!(
                    "table {:?} needs WAL segment {} but it is missing (damaged directory or rolled-back manifest)",
                    t.name, t.log_number
                ),
            ));
        }
    }

    let mut tables = Tables::default();
    let mut states: BTreeMap<TableId, Arc<TableState>> = BTreeMap::new();
    for (id, t) in &state.tables {
        let key = table_keys.get(id).cloned();
        let mut version = Version::empty();
        for (number, f) in &t.files {
            let smallest = boundary_bytes(&f.smallest, key.as_deref(), *id, *number, false)?;
            let largest = boundary_bytes(&f.largest, key.as_deref(), *id, *number, true)?;
            version.add(Arc::new(FileHandle::new(
                *id,
                *number,
                f.level,
                f.size,
                f.entries,
                (f.min_seq, f.max_seq),
                (smallest, largest),
                (f.smallest.clone(), f.largest.clone()),
                path.join(names::table(*number)),
                Arc::clone(&env),
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
        tables.by_name.insert(t.name.clone(), Arc::clone(&ts));
        tables.by_id.insert(*id, Arc::clone(&ts));
        states.insert(*id, ts);
    }

    // Replay the WAL into memtables.
    let min_log = states.values().map(|t| t.log_number()).min();
    let mut max_seq = state.last_seq;
    if let Some(min_log) = min_log {
        let live: Vec<FileNumber> = segments.iter().copied().filter(|s| *s >= min_log).collect();
        for (i, seg) in live.iter().enumerate() {
            let is_last = i + 1 == live.len();
            let seg_path = path.join(names::wal(*seg));
            let mut resolve = |table: TableId, fk: Option<&wal::WalKeyRef<'_>>| {
                super::status::replay_key(states.get(&table), fk, *seg)
            };
            let mut sink = |first_seq: SeqNo,
                            table: TableId,
                            payload: bytes::Bytes|
             -> Result<()> {
                let Some(t) = states.get(&table) else {
                    return Ok(());
                };
                if *seg < t.log_number() {
                    return Ok(());
                }
                let mem = Arc::clone(&t.super_version().mem);
                decode_section(&payload, first_seq, |e| {
                    max_seq = max_seq.max(e.seq.0);
                    mem.insert(e.key, e.seq, e.kind, e.value);
                })
                .ok_or_else(|| Error::corruption(names::wal(*seg), 0, "malformed batch section"))
            };
            let outcome =
                wal::replay_segment(&*env, &seg_path, *seg, is_last, &mut resolve, &mut sink)?;
            if outcome.torn_tail {
                // Cut the torn record off, so that this segment (no longer the last once a
                // new one starts) reads cleanly at every later open.
                // IMPORTANT: the truncation is synced before anything else is written.
                env.truncate(&seg_path, outcome.valid_len)
                    .map_err(|e| Error::io(format!("truncating {}", seg_path.display()), e))?;
            }
        }
    }

    let manifest_number = FileNumber(state.next_file);
    let wal_number = FileNumber(state.next_file + 1);
    let next_file = state.next_file + 2;

    let snapshot = snapshot_edits(
        states.values(),
        FileNumber(next_file),
        SeqNo(max_seq),
        TableId(state.next_table_id),
    );
    let mac_key = |t: TableId| table_keys.get(&t).cloned();
    let manifest = ManifestWriter::create(&*env, path, manifest_number, &snapshot, &mac_key)?;
    let wal = WalWriter::create(&*env, path, wal_number)?;

    let inner = Arc::new(DbInner {
        path: path.to_path_buf(),
        env: Arc::clone(&env),
        cache: Arc::new(BlockCache::new(opts.block_cache_bytes)),
        table_cache: Arc::new(crate::cache::TableCache::new(opts.max_open_files)),
        opts,
        _lock: lock,
        write: Mutex::new(WriteState { wal, appended: 0 }),
        sync_lock: Mutex::new(()),
        synced: AtomicU64::new(0),
        last_seq: AtomicU64::new(max_seq),
        next_file: AtomicU64::new(next_file),
        next_table_id: AtomicU32::new(state.next_table_id),
        tables: RwLock::new(tables),
        manifest: Mutex::new(manifest),
        bg: Mutex::new(BgState::default()),
        bg_cv: Condvar::new(),
        poisoned: Mutex::new(None),
        snapshots: Arc::new(SnapshotList::default()),
        keyring,
        worker: Mutex::new(None),
        pending_outputs: Mutex::new(HashSet::new()),
    });
    inner.delete_obsolete_files()?;
    Ok(inner)
}

/// The edits that recreate the current state from nothing.
pub(super) fn snapshot_edits<'a>(
    tables: impl Iterator<Item = &'a Arc<TableState>>,
    next_file: FileNumber,
    last_seq: SeqNo,
    next_table_id: TableId,
) -> Vec<VersionEdit> {
    let mut out = vec![VersionEdit {
        edits: vec![
            Edit::SetNextFileNumber(next_file),
            Edit::SetLastSeq(last_seq),
            Edit::SetNextTableId(next_table_id),
        ],
    }];
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
        for f in t.super_version().version.files() {
            edits.push(f.add_edit());
        }
        out.push(VersionEdit { edits });
    }
    out
}

impl DbInner {
    /// Writes a fresh manifest holding the current state and switches to it.
    pub(crate) fn rewrite_manifest(&self) -> Result<()> {
        let mut manifest = self.manifest.lock();
        let number = self.new_file_number();
        let tables = self.all_tables();
        let snapshot = snapshot_edits(
            tables.iter(),
            FileNumber(self.next_file.load(Ordering::Acquire)),
            SeqNo(self.last_seq.load(Ordering::Acquire)),
            crate::types::TableId(self.next_table_id.load(Ordering::Acquire)),
        );
        let mac_key = |t: TableId| self.table_by_id(t).and_then(|s| s.table_key());
        *manifest = ManifestWriter::create(&*self.env, &self.path, number, &snapshot, &mac_key)?;
        drop(manifest);
        self.delete_obsolete_files()
    }

    /// Removes files no table needs: old manifests, WAL segments below every table's log
    /// number, SSTables in no version (orphans of a crash mid-flush), temporary files.
    pub(crate) fn delete_obsolete_files(&self) -> Result<()> {
        let manifest_number = self.manifest.lock().number();
        let current_wal = self.write.lock().wal.segment();
        let tables = self.all_tables();
        let min_log = tables
            .iter()
            .map(|t| t.log_number())
            .min()
            .unwrap_or(current_wal)
            .min(current_wal);
        let mut live = HashSet::new();
        for t in &tables {
            for f in t.super_version().version.files() {
                live.insert(f.number);
            }
        }
        let next_file = self.next_file.load(Ordering::Acquire);
        let listing = self
            .env
            .list_dir(&self.path)
            .map_err(|e| Error::io(format!("listing {}", self.path.display()), e))?;
        for name in listing {
            let obsolete = if let Some(n) = names::parse(&name, "log") {
                n < min_log
            } else if let Some(n) = names::parse(&name, "sst") {
                // Files being written right now have numbers the manifest has not seen;
                // only files below the counter at the last manifest write can be orphans.
                !live.contains(&n) && n.0 < next_file && !self.is_pending_output(n)
            } else if let Some(n) = parse_manifest_file_name(&name) {
                n != manifest_number
            } else {
                name.ends_with(".tmp")
            };
            if obsolete {
                let _ = self.env.remove_file(&self.path.join(&name));
            }
        }
        Ok(())
    }
}
