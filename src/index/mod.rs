//! Secondary indexes (DESIGN.md section 7 "Indexes").
//!
//! A *global* index is an internal table of its own: its own memtables, LSM files,
//! compaction and WAL sections, under the **same** table key as the table it indexes (its
//! catalogue entry repeats the table's key material, so each of its files gets a fresh data
//! key wrapped by that table key, and a plaintext table's index is CRC-only). Its entries
//! are `key::encode(index key, primary key)` with an empty value; a query looks the item
//! up in the table at the same snapshot and re-extracts its keys, so an entry that does not
//! match its item is never returned.
//!
//! Exactness: the write path (`maintain`) computes each index's entries for a batch under
//! the write lock, reading the items' old values there, and appends them as sections of
//! the **same** WAL record as the table write. So an index is never behind its table,
//! after a crash either. Adding an index backfills it (`backfill`) through the same write
//! path; it is not readable until an `IndexReady` edit commits.
//!
//! A table's indexes are under its key, so they are locked while it is (`crate::db`'s
//! locked tables) and unlock with it.
//!
//! A *local* index (`local`) lives inside its table's own LSM instead, in a key space of
//! its own; it is declared in the table's `CreateTable` record and maintained the same
//! way, its entries in a second section of the table in the same WAL record.

mod backfill;
mod extractor;
pub(crate) mod key;
pub(crate) mod local;
mod maintain;
mod query;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::manifest::{Edit, ExtractorKind, IndexDecl, LocalIndexDecl, TableMeta};

pub(crate) use backfill::{start, stop_builds, wait};
pub(crate) use extractor::Extractor;
pub use extractor::{ExtractorFn, IndexExtractors};
pub(crate) use maintain::{index_ops, BackfillChunk};
pub use query::{Index, IndexCheck, IndexEntry, IndexIter};

/// How to build an index: its key extractor and whether its keys are unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    kind: ExtractorKind,
    extractor: String,
    unique: bool,
}

impl IndexSpec {
    /// Index keys from an RFC 6901 JSON pointer into JSON values (`/author`,
    /// `/address/city`): a string, number or boolean there is one key, an array's scalar
    /// elements are one key each; items without one are not in the index.
    pub fn json_pointer(pointer: impl Into<String>) -> IndexSpec {
        IndexSpec {
            kind: ExtractorKind::JsonPointer,
            extractor: pointer.into(),
            unique: false,
        }
    }

    /// Index keys from the Rust extractor registered under `name` in
    /// `Options::index_extractors` (it must be registered at every open).
    pub fn named(name: impl Into<String>) -> IndexSpec {
        IndexSpec {
            kind: ExtractorKind::Named,
            extractor: name.into(),
            unique: false,
        }
    }

    /// A write that would give two items the same index key fails, and nothing of it is
    /// applied.
    pub fn unique(mut self) -> IndexSpec {
        self.unique = true;
        self
    }
}

/// What `Table::indexes` reports of one index.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct IndexStatus {
    /// The index's name.
    pub name: String,
    /// `json-pointer` or `named`.
    pub extractor_kind: &'static str,
    /// The pointer, or the registered extractor's name.
    pub extractor: String,
    /// Whether its keys are unique.
    pub unique: bool,
    /// True for a local index (inside the table's own LSM, declared with the table), false
    /// for a global one (an LSM of its own).
    pub local: bool,
    /// True once its backfill committed: only then can it be read.
    pub ready: bool,
    /// Items the backfill has indexed so far in this process: its progress while
    /// `ready` is false (a backfill resumed after a crash counts from where it resumed);
    /// 0 for an index completed before this open.
    pub backfilled: u64,
    /// Why the backfill stopped, when it failed (it runs again at the next open), or why
    /// its last attempt failed while `backfill_retrying`.
    pub backfill_error: Option<String>,
    /// True while a backfill that failed transiently (an I/O error, the KMS unavailable,
    /// the table locked) waits to be retried in this process.
    pub backfill_retrying: bool,
    /// Whether its files' range boundaries are sealed in the manifest (always, for an
    /// encrypted table: they are attribute values).
    pub sealed_boundaries: bool,
    /// Why the index is locked (its table's key cannot be had), if it is.
    pub locked: Option<&'static str>,
}

/// The engine's state of one index, attached to its internal table.
pub(crate) struct IndexDef {
    /// For a local index, `decl.index` is its table's id.
    pub(crate) decl: IndexDecl,
    /// The key-space slot of a local index (`local`); `None` for a global one.
    pub(crate) local: Option<u8>,
    pub(crate) extractor: Extractor,
    /// Committed as `IndexReady`: queries are allowed.
    pub(crate) ready: AtomicBool,
    /// Items indexed by the backfill so far in this process.
    pub(crate) backfilled: AtomicU64,
    /// A snapshot older than this sequence number may miss backfilled entries: queries
    /// at it are refused. 0 for an index ready at open (no snapshot predates the open).
    pub(crate) ready_seq: AtomicU64,
    /// Where the backfill stands, for `Table::wait_index`.
    pub(crate) build: Mutex<Build>,
    pub(crate) build_cv: Condvar,
    /// The thread running the backfill, joined at close (`stop_builds`).
    pub(crate) builder: Mutex<Option<JoinHandle<()>>>,
    /// Set at close: the backfill stops at its next chunk.
    pub(crate) stop: AtomicBool,
}

/// Where an index's backfill stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Build {
    /// Running, or about to (an index not ready).
    Running,
    /// Committed: the index is ready.
    Done,
    /// Its items break its uniqueness: the index was dropped.
    Duplicate,
    /// Its attempt number `attempt` failed transiently with `error`; it runs again after a
    /// backoff.
    Retrying { error: String, attempt: u32 },
    /// It stopped with this error; the index stays declared and not ready, and the next
    /// open runs it again.
    Failed(String),
    /// The database closed first.
    Stopped,
}

impl IndexDef {
    pub(crate) fn new(decl: IndexDecl, extractor: Extractor, ready: bool) -> IndexDef {
        IndexDef {
            decl,
            local: None,
            extractor,
            ready: AtomicBool::new(ready),
            backfilled: AtomicU64::new(0),
            ready_seq: AtomicU64::new(0),
            build: Mutex::new(if ready { Build::Done } else { Build::Running }),
            build_cv: Condvar::new(),
            builder: Mutex::new(None),
            stop: AtomicBool::new(false),
        }
    }

    /// The state of local index `decl`: ready from the start (created with its table).
    pub(crate) fn new_local(decl: &LocalIndexDecl, extractor: Extractor) -> IndexDef {
        let mut def = IndexDef::new(
            IndexDecl {
                index: decl.table,
                table: decl.table,
                name: decl.name.clone(),
                unique: decl.unique,
                kind: decl.kind,
                extractor: decl.extractor.clone(),
            },
            extractor,
            true,
        );
        def.local = Some(decl.slot);
        def
    }

    /// The catalogue record of a local index.
    pub(crate) fn local_decl(&self, slot: u8) -> LocalIndexDecl {
        LocalIndexDecl {
            table: self.decl.table,
            slot,
            name: self.decl.name.clone(),
            unique: self.decl.unique,
            kind: self.decl.kind,
            extractor: self.decl.extractor.clone(),
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records where the backfill ended and wakes `wait`.
    pub(crate) fn finish_build(&self, outcome: Build) {
        *self.build.lock() = outcome;
        self.build_cv.notify_all();
    }

    /// Blocks until the backfill ended: `Ok` once the index is ready.
    pub(crate) fn wait(&self, table: &str) -> Result<()> {
        let mut b = self.build.lock();
        while matches!(*b, Build::Running | Build::Retrying { .. }) {
            self.build_cv.wait(&mut b);
        }
        let unavailable = |reason: String| Error::IndexUnavailable {
            table: table.to_owned(),
            index: self.decl.name.clone(),
            reason,
        };
        match &*b {
            Build::Running | Build::Retrying { .. } | Build::Done => Ok(()),
            Build::Duplicate => Err(Error::UniqueViolation {
                table: table.to_owned(),
                index: self.decl.name.clone(),
            }),
            Build::Failed(why) => Err(unavailable(format!("its backfill failed: {why}"))),
            Build::Stopped => Err(Error::Closed),
        }
    }

    pub(crate) fn status(&self, state: &crate::db::TableState) -> IndexStatus {
        // One look at the build state (its lock is not reentrant).
        let build = self.build.lock().clone();
        IndexStatus {
            name: self.decl.name.clone(),
            extractor_kind: match self.decl.kind {
                ExtractorKind::JsonPointer => "json-pointer",
                ExtractorKind::Named => "named",
            },
            extractor: self.decl.extractor.clone(),
            unique: self.decl.unique,
            local: self.local.is_some(),
            ready: self.is_ready(),
            backfilled: self.backfilled.load(Ordering::Acquire),
            backfill_error: match &build {
                Build::Failed(why) => Some(why.clone()),
                Build::Retrying { error, attempt } => {
                    Some(format!("attempt {attempt} failed: {error}"))
                }
                _ => None,
            },
            backfill_retrying: matches!(build, Build::Retrying { .. }),
            sealed_boundaries: state.meta.read().sealed_boundaries,
            locked: state.lock_reason().map(|(r, _)| r.as_str()),
        }
    }
}

/// What `Table::indexes` reports: the indexes of `table`, local and global, ready or being
/// built, by name.
pub(crate) fn statuses(table: &crate::db::TableState) -> Vec<IndexStatus> {
    let mut v: Vec<IndexStatus> = table
        .indexes
        .read()
        .iter()
        .filter_map(|s| s.index.get().map(|d| d.status(s)))
        .collect();
    v.extend(table.local_indexes().iter().map(|d| d.status(table)));
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The catalogue entry of an index's internal table: the table's own key material (its
/// data keys are wrapped by the same table key, under the same KMS grant), with sealed
/// boundaries whenever the table is encrypted, because an index's boundaries are attribute
/// values even where the table's own boundaries are its primary keys.
pub(crate) fn index_meta(table: &TableMeta) -> TableMeta {
    TableMeta {
        sealed_boundaries: table.encrypted,
        ..table.clone()
    }
}

/// The edits that describe index `def` in a manifest snapshot, after its `CreateTable`.
pub(crate) fn catalogue_edits(def: &IndexDef) -> Vec<Edit> {
    let mut out = vec![Edit::DeclareIndex(def.decl.clone())];
    if def.is_ready() {
        out.push(Edit::IndexReady {
            index: def.decl.index,
        });
    }
    out
}

/// The edits that declare `table`'s local indexes, for the record of its `CreateTable`.
pub(crate) fn local_catalogue_edits(table: &crate::db::TableState) -> Vec<Edit> {
    table
        .local_indexes()
        .iter()
        .filter_map(|d| {
            d.local
                .map(|slot| Edit::DeclareLocalIndex(d.local_decl(slot)))
        })
        .collect()
}

/// The local indexes `options` declare for new table `table`, checked (names, count,
/// extractors), by slot.
pub(crate) fn declare_local(
    table: crate::types::TableId,
    options: &crate::TableOptions,
    registered: &IndexExtractors,
) -> Result<Vec<Arc<IndexDef>>> {
    if options.local_indexes.len() > local::MAX_LOCAL_INDEXES {
        return Err(Error::InvalidArgument(format!(
            "{} local indexes: a table has at most {}",
            options.local_indexes.len(),
            local::MAX_LOCAL_INDEXES
        )));
    }
    let mut out: Vec<Arc<IndexDef>> = Vec::new();
    for (slot, (name, spec)) in options.local_indexes.iter().enumerate() {
        crate::types::check_name("index", name)?;
        if out.iter().any(|d| d.decl.name == *name) {
            return Err(Error::InvalidArgument(format!(
                "two local indexes named {name:?}"
            )));
        }
        let extractor = Extractor::resolve(spec.kind, &spec.extractor, registered)?;
        let decl = LocalIndexDecl {
            table,
            slot: u8::try_from(slot).map_err(|_| Error::Internal("local index slot".into()))?,
            name: name.clone(),
            unique: spec.unique,
            kind: spec.kind,
            extractor: spec.extractor.clone(),
        };
        out.push(Arc::new(IndexDef::new_local(&decl, extractor)));
    }
    Ok(out)
}

/// Attaches the local indexes the manifest declares (`decls`: table -> declarations) to
/// their tables at open. Slots must be 0, 1, ... in order, names distinct.
pub(crate) fn attach_local(
    states: &std::collections::BTreeMap<crate::types::TableId, Arc<crate::db::TableState>>,
    decls: &std::collections::BTreeMap<crate::types::TableId, Vec<LocalIndexDecl>>,
    registered: &IndexExtractors,
    manifest: &str,
) -> Result<()> {
    let bad = |what: String| Error::Corruption {
        file: manifest.to_owned(),
        offset: 0,
        what,
    };
    for (id, list) in decls {
        let Some(table) = states.get(id) else {
            return Err(bad(format!(
                "local indexes declared for missing table #{id}"
            )));
        };
        let mut defs: Vec<Arc<IndexDef>> = Vec::new();
        for (i, decl) in list.iter().enumerate() {
            if usize::from(decl.slot) != i || i >= local::MAX_LOCAL_INDEXES {
                return Err(bad(format!(
                    "local index {:?} of table #{id} in slot {} (expected {i})",
                    decl.name, decl.slot
                )));
            }
            if defs.iter().any(|d| d.decl.name == decl.name) {
                return Err(bad(format!("local index {:?} declared twice", decl.name)));
            }
            let extractor =
                Extractor::resolve(decl.kind, &decl.extractor, registered).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "table {:?} local index {:?}: {e}",
                        table.name, decl.name
                    ))
                })?;
            defs.push(Arc::new(IndexDef::new_local(decl, extractor)));
        }
        if table.index.get().is_some() {
            return Err(bad(format!("local indexes declared on index table #{id}")));
        }
        table
            .local
            .set(defs)
            .map_err(|_| bad(format!("local indexes of table #{id} attached twice")))?;
    }
    Ok(())
}

/// Unlocks the indexes of `table`, which has just unlocked (`DbInner::check_unlocked`):
/// they are under its key, so what let it unlock lets them unlock now, without waiting for
/// their own backoff. Until they do, a write to the table fails (`TableLocked`), as a
/// write to a locked table does: an index is never behind its table.
pub(crate) fn unlock_indexes(
    core: &crate::db::DbInner,
    principal: &crate::kms::Principal,
    table: &Arc<crate::db::TableState>,
) -> Result<()> {
    let indexes = table.indexes.read().clone();
    for index in indexes.iter().filter(|i| i.is_locked()) {
        if let Some(lock) = index.lock.lock().as_mut() {
            lock.retry_now();
        }
        core.check_unlocked(principal, index)?;
    }
    Ok(())
}

/// Fails with `TableLocked` if an index of `table` is still locked.
pub(crate) fn check_indexes_unlocked(table: &crate::db::TableState) -> Result<()> {
    for index in table.indexes.read().iter() {
        if let Some((reason, _)) = index.lock_reason() {
            return Err(Error::TableLocked {
                table: table.name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Attaches the indexes the manifest declares (`decls`: index id -> declaration, ready) to
/// the tables recovered at open. A declaration that does not fit its tables is corruption;
/// a named extractor that is not registered is refused (the open fails, changing nothing).
pub(crate) fn attach(
    states: &std::collections::BTreeMap<crate::types::TableId, Arc<crate::db::TableState>>,
    decls: &std::collections::BTreeMap<crate::types::TableId, (IndexDecl, bool)>,
    registered: &IndexExtractors,
    manifest: &str,
) -> Result<()> {
    let bad = |what: String| Error::Corruption {
        file: manifest.to_owned(),
        offset: 0,
        what,
    };
    for (id, (decl, ready)) in decls {
        let (Some(index), Some(table)) = (states.get(id), states.get(&decl.table)) else {
            return Err(bad(format!(
                "index {:?} (#{id}) declared without its table or its own table",
                decl.name
            )));
        };
        if decl.table == *id || decls.contains_key(&decl.table) {
            return Err(bad(format!(
                "index {:?} (#{id}) indexes an index",
                decl.name
            )));
        }
        {
            let (im, tm) = (index.meta.read(), table.meta.read());
            if im.encrypted != tm.encrypted || im.wrapped_table_key != tm.wrapped_table_key {
                return Err(bad(format!(
                    "index {:?} (#{id}) is not under its table's key",
                    decl.name
                )));
            }
        }
        let extractor =
            Extractor::resolve(decl.kind, &decl.extractor, registered).map_err(|e| {
                Error::InvalidArgument(format!("table {:?} index {:?}: {e}", table.name, decl.name))
            })?;
        index
            .index
            .set(Arc::new(IndexDef::new(decl.clone(), extractor, *ready)))
            .map_err(|_| bad(format!("index #{id} declared twice")))?;
        table.indexes.write().push(Arc::clone(index));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_file_header_version;
    use crate::manifest::{ManifestWriter, VersionEdit};
    use crate::storage::StdEnv;
    use crate::types::{FileNumber, TableId};

    /// Index edits read back from a format-5 and a format-4 manifest, and are corruption
    /// in a format-3 one (the same bytes with the header's version set to 3).
    #[test]
    fn index_edits_need_manifest_format_4() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let meta = TableMeta::default();
        let decl = IndexDecl {
            index: TableId(2),
            table: TableId(1),
            name: "by_author".into(),
            unique: false,
            kind: ExtractorKind::JsonPointer,
            extractor: "/author".into(),
        };
        let snapshot = vec![
            VersionEdit::new(vec![Edit::CreateTable {
                id: TableId(1),
                name: "t".into(),
                meta: meta.clone(),
            }]),
            VersionEdit::new(vec![
                Edit::CreateTable {
                    id: TableId(2),
                    name: "t".into(),
                    meta: index_meta(&meta),
                },
                Edit::DeclareIndex(decl.clone()),
                Edit::IndexReady { index: TableId(2) },
            ]),
        ];
        drop(ManifestWriter::create(
            &StdEnv,
            dir.path(),
            FileNumber(1),
            &snapshot,
            &|_| None,
            None,
        )?);
        let path = dir.path().join(crate::filename::manifest(FileNumber(1)));
        let mut bytes = std::fs::read(&path).map_err(|e| Error::io("reading", e))?;
        let m = crate::manifest::parse_manifest(bytes.clone().into(), FileNumber(1), "m")?;
        assert_eq!(m.version, 6);
        // Format 4 reads the same index edits (a format-4 table has no local indexes).
        let mut v4 = bytes.clone();
        let header = encode_file_header_version(b"SEALMAN\0", FileNumber(1), 4);
        v4.get_mut(..header.len())
            .ok_or_else(|| Error::Internal("short manifest".into()))?
            .copy_from_slice(&header);
        let m = crate::manifest::parse_manifest(v4.into(), FileNumber(1), "m")?;
        assert_eq!(m.version, 4);
        assert!(m
            .edits
            .iter()
            .any(|e| e.edits.contains(&Edit::DeclareIndex(decl.clone()))));
        let header = encode_file_header_version(b"SEALMAN\0", FileNumber(1), 3);
        bytes
            .get_mut(..header.len())
            .ok_or_else(|| Error::Internal("short manifest".into()))?
            .copy_from_slice(&header);
        match crate::manifest::parse_manifest(bytes.into(), FileNumber(1), "m") {
            Err(Error::Corruption { what, .. }) => {
                assert!(what.contains("index catalogue edit"), "{what}")
            }
            other => panic!("format 3 with index edits: {other:?}"),
        }
        Ok(())
    }

    /// A local index declaration reads back from a format-5 manifest in its table's
    /// CreateTable record; it is corruption in a format-4 one, and outside that record.
    #[test]
    fn local_index_edits_need_format_5_and_their_create_table() -> Result<()> {
        let decl = LocalIndexDecl {
            table: TableId(1),
            slot: 0,
            name: "by_author".into(),
            unique: true,
            kind: ExtractorKind::JsonPointer,
            extractor: "/author".into(),
        };
        let create = Edit::CreateTable {
            id: TableId(1),
            name: "t".into(),
            meta: TableMeta::default(),
        };
        let write = |snapshot: Vec<VersionEdit>| -> Result<Vec<u8>> {
            let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
            drop(ManifestWriter::create(
                &StdEnv,
                dir.path(),
                FileNumber(1),
                &snapshot,
                &|_| None,
                None,
            )?);
            let path = dir.path().join(crate::filename::manifest(FileNumber(1)));
            std::fs::read(&path).map_err(|e| Error::io("reading", e))
        };
        let with_version = |mut bytes: Vec<u8>, v: u8| -> Result<Vec<u8>> {
            let header = encode_file_header_version(b"SEALMAN\0", FileNumber(1), v);
            bytes
                .get_mut(..header.len())
                .ok_or_else(|| Error::Internal("short manifest".into()))?
                .copy_from_slice(&header);
            Ok(bytes)
        };
        let good = write(vec![VersionEdit::new(vec![
            create.clone(),
            Edit::DeclareLocalIndex(decl.clone()),
        ])])?;
        let m = crate::manifest::parse_manifest(good.clone().into(), FileNumber(1), "m")?;
        assert!(m
            .edits
            .iter()
            .any(|e| e.edits.contains(&Edit::DeclareLocalIndex(decl.clone()))));
        match crate::manifest::parse_manifest(with_version(good, 4)?.into(), FileNumber(1), "m") {
            Err(Error::Corruption { what, .. }) => {
                assert!(what.contains("local index declaration"), "{what}")
            }
            other => panic!("format 4 with a local index: {other:?}"),
        }
        let apart = write(vec![
            VersionEdit::new(vec![create]),
            VersionEdit::new(vec![Edit::DeclareLocalIndex(decl)]),
        ])?;
        match crate::manifest::parse_manifest(apart.into(), FileNumber(1), "m") {
            Err(Error::Corruption { what, .. }) => {
                assert!(what.contains("outside its table's CreateTable"), "{what}")
            }
            other => panic!("a local index declared after its table: {other:?}"),
        }
        Ok(())
    }
}
