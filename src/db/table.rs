//! A table: its runtime state inside the engine, and the public handle users hold.

use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::manifest::TableMeta;
use crate::memtable::MemTable;
use crate::types::{FileNumber, TableId};

use crate::index::local::stored_key;
use crate::index::{Index, IndexDef, IndexSpec, IndexStatus};

use super::range_iter::{prefix_successor, RangeIter};
use super::version::Version;
use super::{Db, Snapshot, WriteBatch, WriteOptions};

/// What a reader needs for a consistent view: the active memtable, the frozen ones
/// (newest first) and the files. Replaced whole, never mutated (the active memtable
/// accepts inserts concurrently).
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<MemTable>,
    pub(crate) imm: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
}

/// The engine's state for one table.
pub(crate) struct TableState {
    pub(crate) id: TableId,
    pub(crate) name: String,
    /// `meta.encrypted`, which never changes: a table's protection is fixed when it is
    /// created (every later `meta` is a key rotation's, of the same table). Kept apart so
    /// every read can ask without taking the `meta` lock.
    encrypted: bool,
    pub(crate) meta: RwLock<TableMeta>,
    pub(crate) sv: RwLock<Arc<SuperVersion>>,
    /// WAL segments below this hold nothing of this table that is not in its files.
    pub(crate) log_number: AtomicU64,
    /// The engine's copy of the unwrapped table key (encrypted tables), used to wrap and
    /// unwrap data keys. Authorization of each principal is checked separately.
    pub(crate) key: RwLock<Option<Arc<TableKey>>>,
    /// Older table-key versions still in use, and their keys (`db::table_key_rotation`).
    /// Lock order: `meta`, then `key`, then this.
    pub(crate) key_versions: RwLock<super::table_key_rotation::KeyVersions>,
    pub(crate) dropped: AtomicBool,
    /// Why background maintenance (flush) last failed, if it did.
    pub(crate) maintenance_error: Mutex<Option<String>>,
    /// Set while the table is locked (its key could not be had at open): reads and writes
    /// go through `DbInner::check_unlocked` first.
    pub(crate) locked: AtomicBool,
    /// What a locked table needs to come back; `None` once unlocked.
    pub(crate) lock: Mutex<Option<super::locked::Lock>>,
    /// Set when this is the internal table of a secondary index (`crate::index`): its
    /// name and key material are its table's, and it is not in `Tables::by_name`.
    pub(crate) index: OnceLock<Arc<IndexDef>>,
    /// The internal tables of this table's global indexes. Changed under the write lock.
    pub(crate) indexes: RwLock<Vec<Arc<TableState>>>,
    /// This table's local indexes (`crate::index::local`), set once when it is created or
    /// opened; when set, its keys have the local layout.
    pub(crate) local: OnceLock<Vec<Arc<IndexDef>>>,
    /// Synced batches that wrote to this table and are appended but not yet in its
    /// memtable: index maintenance waits for none to be left before reading old values.
    pub(crate) synced_inflight: AtomicUsize,
}

impl TableState {
    pub(crate) fn new(id: TableId, name: String, meta: TableMeta, version: Version) -> TableState {
        TableState {
            id,
            name,
            encrypted: meta.encrypted,
            meta: RwLock::new(meta),
            sv: RwLock::new(Arc::new(SuperVersion {
                mem: Arc::new(MemTable::new()),
                imm: Vec::new(),
                version: Arc::new(version),
            })),
            log_number: AtomicU64::new(0),
            key: RwLock::new(None),
            key_versions: RwLock::new(Default::default()),
            dropped: AtomicBool::new(false),
            maintenance_error: Mutex::new(None),
            locked: AtomicBool::new(false),
            lock: Mutex::new(None),
            index: OnceLock::new(),
            indexes: RwLock::new(Vec::new()),
            local: OnceLock::new(),
            synced_inflight: AtomicUsize::new(0),
        }
    }

    /// True when some index must be maintained on writes to this table.
    pub(crate) fn has_indexes(&self) -> bool {
        self.has_local_layout() || !self.indexes.read().is_empty()
    }

    /// This table's local indexes, by slot (none for most tables).
    pub(crate) fn local_indexes(&self) -> &[Arc<IndexDef>] {
        self.local.get().map_or(&[], Vec::as_slice)
    }

    /// True when the table was created with local indexes: its item keys are stored as
    /// `0x00 || key` (`crate::index::local`).
    pub(crate) fn has_local_layout(&self) -> bool {
        !self.local_indexes().is_empty()
    }

    /// The name reports show: the table's, or `table/index` for an index's own table.
    pub(crate) fn display_name(&self) -> String {
        match self.index.get() {
            Some(d) => format!("{}/{}", self.name, d.decl.name),
            None => self.name.clone(),
        }
    }

    /// True while the table is locked.
    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Locks the table (at open, before anyone else sees it).
    pub(crate) fn set_locked(&self, lock: super::locked::Lock) {
        *self.lock.lock() = Some(lock);
        self.locked.store(true, Ordering::Release);
    }

    /// Why the table is locked, with the KMS's words, if it is.
    pub(crate) fn lock_reason(&self) -> Option<(super::LockReason, String)> {
        if !self.is_locked() {
            return None;
        }
        self.lock
            .lock()
            .as_ref()
            .map(|l| (l.reason, l.detail.clone()))
    }

    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.sv.read())
    }

    pub(crate) fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    pub(crate) fn log_number(&self) -> FileNumber {
        FileNumber(self.log_number.load(Ordering::Acquire))
    }

    pub(crate) fn set_log_number(&self, n: FileNumber) {
        self.log_number.fetch_max(n.0, Ordering::AcqRel);
    }

    pub(crate) fn table_key(&self) -> Option<Arc<TableKey>> {
        self.key.read().clone()
    }

    /// The engine's copy of the table key, or why the table cannot be used without it.
    pub(crate) fn require_key(&self) -> Result<Arc<TableKey>> {
        self.table_key().ok_or_else(|| Error::TableUnavailable {
            table: self.name.clone(),
            reason: "its table key is not available".into(),
        })
    }

    /// Keeps `key`, of table-key version `version`, as the engine's copy if it has none
    /// (a principal or the engine itself just unwrapped it through the KMS) and `version`
    /// is still the current one.
    pub(crate) fn remember_key(&self, version: u32, key: &Arc<TableKey>) {
        let meta = self.meta.read();
        if meta.key_version == version && self.key.read().is_none() {
            let mut slot = self.key.write();
            if slot.is_none() {
                *slot = Some(Arc::clone(key));
            }
        }
    }
}

/// A handle on one table of a [`Db`]. Cheap to clone; all handles share the table.
#[derive(Clone)]
pub struct Table {
    pub(crate) db: Db,
    pub(crate) state: Arc<TableState>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.state.name)
            .field("id", &self.state.id)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub(crate) fn id(&self) -> TableId {
        self.state.id
    }

    /// Why the table is locked (its key could not be had), if it is. Its reads and writes
    /// return [`Error::TableLocked`] meanwhile; a later access unlocks it once the cause
    /// is gone.
    pub fn locked(&self) -> Option<super::LockReason> {
        self.state.lock_reason().map(|(r, _)| r)
    }

    /// True when the table is encrypted at rest.
    pub fn is_encrypted(&self) -> bool {
        self.state.is_encrypted()
    }

    /// Stores `value` under `key` (not synced; see [`WriteOptions`]).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_opt(key, value, WriteOptions::default())
    }

    /// Stores `value` under `key` with explicit write options.
    pub fn put_opt(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        opts: WriteOptions,
    ) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(self, key, value);
        self.db.write(&b, opts)
    }

    /// Removes `key` (not synced; see [`WriteOptions`]).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.delete_opt(key, WriteOptions::default())
    }

    /// Removes `key` with explicit write options.
    pub fn delete_opt(&self, key: impl AsRef<[u8]>, opts: WriteOptions) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(self, key);
        self.db.write(&b, opts)
    }

    /// The newest value of `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let k = stored_key(self.state.has_local_layout(), key.as_ref());
        self.db.get(&self.state, &k, None)
    }

    /// The value of `key` as of `snapshot`.
    pub fn get_at(&self, key: impl AsRef<[u8]>, snapshot: &Snapshot) -> Result<Option<Bytes>> {
        let k = stored_key(self.state.has_local_layout(), key.as_ref());
        self.db.get(&self.state, &k, Some(snapshot.seq()))
    }

    /// Iterates the keys in `range`, in key order (`.rev()` for reverse order). Streams
    /// lazily; sees the table as it was when called.
    pub fn range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<RangeIter> {
        self.range_at(range, None)
    }

    /// Like [`Table::range`], as of `snapshot`.
    pub fn range_at_snapshot<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> Result<RangeIter> {
        self.range_at(range, Some(snapshot.seq()))
    }

    fn range_at<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        seq: Option<crate::types::SeqNo>,
    ) -> Result<RangeIter> {
        let conv = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.items(conv(range.start_bound()), conv(range.end_bound()), seq)
    }

    /// The items with primary keys in (`lower`, `upper`): in a table with local indexes,
    /// only its item key space, with the key-space byte stripped from each key.
    fn items(
        &self,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        seq: Option<crate::types::SeqNo>,
    ) -> Result<RangeIter> {
        if !self.state.has_local_layout() {
            return self.db.range(&self.state, lower, upper, seq);
        }
        let (lower, upper) = crate::index::local::item_bounds(lower, upper);
        Ok(self
            .db
            .range(&self.state, lower, upper, seq)?
            .strip_key_prefix(1))
    }

    /// Iterates every key that starts with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Result<RangeIter> {
        let p = prefix.as_ref().to_vec();
        let upper = match prefix_successor(&p) {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        self.items(Bound::Included(p), upper, None)
    }

    /// Iterates the whole table.
    pub fn iter(&self) -> Result<RangeIter> {
        self.items(Bound::Unbounded, Bound::Unbounded, None)
    }

    /// Adds a global secondary index `name` and backfills it from the table's items;
    /// returns once it is ready (its progress shows in [`Table::indexes`] meanwhile). It is
    /// sealed like the table (same table key, a data key per file, boundaries sealed when
    /// the table is encrypted). A unique index over items that already share a key fails
    /// and leaves no index behind.
    pub fn create_index(&self, name: &str, spec: IndexSpec) -> Result<()> {
        crate::index::start(
            self.db.core(),
            self.db.principal(),
            &self.state,
            name,
            &spec,
        )?
        .wait(self.name())
    }

    /// Adds a global secondary index `name` and returns once it is declared: every write
    /// from then on maintains it, and its backfill runs on an engine thread (progress in
    /// [`Table::indexes`]; a crash or close resumes it at the next open). It can be
    /// queried once ready: see [`Table::wait_index`].
    pub fn start_index(&self, name: &str, spec: &IndexSpec) -> Result<()> {
        crate::index::start(self.db.core(), self.db.principal(), &self.state, name, spec).map(drop)
    }

    /// Waits for index `name`'s backfill to end: `Ok` once the index is ready,
    /// `Error::UniqueViolation` if the items break its uniqueness (the index is gone).
    pub fn wait_index(&self, name: &str) -> Result<()> {
        crate::index::wait(&self.state, name)
    }

    /// Removes index `name`; its files are deleted.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        self.db.core().authorize(self.db.principal(), &self.state)?;
        self.db.core().drop_index(&self.state, name)
    }

    /// A ready index of this table, to query: `Error::IndexUnavailable` if there is none of
    /// that name or its backfill has not completed.
    pub fn index(&self, name: &str) -> Result<Index> {
        Index::open(self, name)
    }

    /// The table's indexes, ready or being built, by name.
    pub fn indexes(&self) -> Vec<IndexStatus> {
        crate::index::statuses(&self.state)
    }
}
