//! A fault-injecting, crash-simulating [`Env`] over the real file system: a test tool.
//!
//! Compiled only with the `fault-injection` feature (the crate's own tests enable it
//! through a dev-dependency on the crate itself); it is not part of the stable API.
//!
//! Faults: each operation kind ([`FaultOp`]) has a counter and a [`Trigger`]; when the
//! trigger fires the operation fails with EIO or ENOSPC ([`FaultKind`]). A failed append
//! first lets half its bytes land, as a real short write does.
//!
//! Crashes ([`FaultEnv::crash`]), after LevelDB's `fault_injection_test`:
//! - every file this env wrote is cut back to the length it had at its last sync
//!   (a `FileSyncer` sync counts; so does `truncate`, which syncs);
//! - a file created since the last sync of its directory is deleted;
//! - a rename not followed by a sync of the target's directory is undone: the file goes
//!   back to its old name and the file it replaced, if any, comes back.
//!
//! Not modelled: removals are durable at once (a real crash could resurrect a removed
//! file), directory creation is durable at once, and data appended but not synced is
//! dropped whole (a real disk may keep any prefix of it, or torn pages in between; the WAL's
//! torn-tail tests cover those shapes separately).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Env, FileLock, FileSyncer, RandomAccessFile, StdEnv, WritableFile};

/// The kinds of operation a fault can be armed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `Env::create` (opening a file for writing).
    Create,
    /// `WritableFile::append`.
    Append,
    /// `WritableFile::sync` and `FileSyncer::sync` (fdatasync).
    Sync,
    /// `Env::rename`.
    Rename,
    /// `Env::sync_dir` (directory fsync).
    SyncDir,
    /// `Env::open_read` (open and map).
    OpenRead,
    /// `RandomAccessFile::read_at` and `Env::read_all`.
    Read,
    /// `Env::remove_file`.
    Remove,
    /// `Env::truncate`.
    Truncate,
}

impl FaultOp {
    /// Every kind, for tests that loop over them.
    pub const ALL: [FaultOp; 9] = [
        FaultOp::Create,
        FaultOp::Append,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::SyncDir,
        FaultOp::OpenRead,
        FaultOp::Read,
        FaultOp::Remove,
        FaultOp::Truncate,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The error an injected fault returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// An I/O error (EIO).
    Eio,
    /// No space left on the device (ENOSPC).
    Enospc,
}

impl FaultKind {
    fn error(self, op: FaultOp) -> io::Error {
        let errno = match self {
            FaultKind::Eio => 5,     // EIO
            FaultKind::Enospc => 28, // ENOSPC
        };
        let os = io::Error::from_raw_os_error(errno);
        io::Error::new(os.kind(), format!("injected {op:?} fault: {os}"))
    }
}

/// When an armed fault fires, counting calls of its kind from when it was armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Only the call after `n` successful ones fails; later calls succeed.
    Nth(u64),
    /// Every call after `n` successful ones fails.
    After(u64),
    /// Every call fails.
    Always,
}

#[derive(Clone, Copy)]
struct Armed {
    trigger: Trigger,
    kind: FaultKind,
    /// Calls of this kind seen since arming.
    seen: u64,
}

/// What the env knows about one file it wrote.
#[derive(Default)]
struct Written {
    /// Bytes appended (the file's length as the OS sees it).
    len: u64,
    /// Length at the last completed sync.
    synced: u64,
    /// Created since the last sync of its directory.
    new_entry: bool,
}

type Shared = Arc<Mutex<Written>>;

/// A rename whose directory has not been synced since.
struct PendingRename {
    from: PathBuf,
    to: PathBuf,
    /// What `to` held before, if it existed.
    replaced: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    armed: [Option<Armed>; FaultOp::ALL.len()],
    files: HashMap<PathBuf, Shared>,
    renames: Vec<PendingRename>,
}

struct Core {
    state: Mutex<State>,
    calls: [AtomicU64; FaultOp::ALL.len()],
    injected: [AtomicU64; FaultOp::ALL.len()],
    /// Set by `halt`/`crash`: nothing reaches the disk any more.
    halted: AtomicBool,
}

/// The real file system with injectable faults and simulated crashes. Cheap to clone;
/// clones share counters, armed faults and crash bookkeeping.
#[derive(Clone)]
pub struct FaultEnv {
    core: Arc<Core>,
}

impl Default for FaultEnv {
    fn default() -> Self {
        FaultEnv::new()
    }
}

impl std::fmt::Debug for FaultEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultEnv")
            .field("injected", &self.injected_total())
            .field("halted", &self.core.halted.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

fn halted_error() -> io::Error {
    io::Error::other("simulated crash: the file system is halted")
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl FaultEnv {
    /// An env with no fault armed.
    pub fn new() -> FaultEnv {
        FaultEnv {
            core: Arc::new(Core {
                state: Mutex::new(State::default()),
                calls: Default::default(),
                injected: Default::default(),
                halted: AtomicBool::new(false),
            }),
        }
    }

    /// Arms a fault on `op`, replacing any armed there; counting starts now.
    pub fn arm(&self, op: FaultOp, trigger: Trigger, kind: FaultKind) {
        self.core.state.lock().armed[op.index()] = Some(Armed {
            trigger,
            kind,
            seen: 0,
        });
    }

    /// Disarms every fault.
    pub fn disarm_all(&self) {
        self.core.state.lock().armed = Default::default();
    }

    /// Calls of `op` made through this env.
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.core.calls[op.index()].load(Ordering::SeqCst)
    }

    /// Faults injected into `op`.
    pub fn injected(&self, op: FaultOp) -> u64 {
        self.core.injected[op.index()].load(Ordering::SeqCst)
    }

    /// Faults injected, all kinds.
    pub fn injected_total(&self) -> u64 {
        FaultOp::ALL.iter().map(|op| self.injected(*op)).sum()
    }

    /// Stops the file system: every later operation fails and writes nothing. Call it,
    /// then drop the database, then [`crash`](Self::crash), so a closing database cannot
    /// sync what a crash would have lost.
    pub fn halt(&self) {
        self.core.halted.store(true, Ordering::SeqCst);
    }

    /// Simulates a power loss (see the module docs for what is modelled), then brings the
    /// file system back with no fault armed. Halts first; files still mapped by an open
    /// database must not be among those cut, so drop the database before calling it.
    pub fn crash(&self) -> io::Result<()> {
        self.halt();
        let mut st = self.core.state.lock();
        // Undo renames newest first, so chains of renames unwind in order.
        while let Some(r) = st.renames.pop() {
            if r.to.exists() {
                std::fs::rename(&r.to, &r.from)?;
            }
            if let Some(tracked) = st.files.remove(&r.to) {
                st.files.insert(r.from.clone(), tracked);
            }
            if let Some(old) = r.replaced {
                std::fs::write(&r.to, old)?;
            }
        }
        for (path, file) in st.files.drain() {
            let f = file.lock();
            if !path.exists() {
                continue;
            }
            if f.new_entry {
                std::fs::remove_file(&path)?;
            } else if f.synced < std::fs::metadata(&path)?.len() {
                let h = std::fs::OpenOptions::new().write(true).open(&path)?;
                h.set_len(f.synced)?;
                h.sync_all()?;
            }
        }
        st.armed = Default::default();
        drop(st);
        self.core.halted.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Counts a call of `op` and decides whether it fails.
    fn check(&self, op: FaultOp) -> io::Result<()> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        self.core.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        let mut st = self.core.state.lock();
        let Some(armed) = st.armed[op.index()].as_mut() else {
            return Ok(());
        };
        let n = armed.seen;
        armed.seen += 1;
        let fire = match armed.trigger {
            Trigger::Nth(k) => n == k,
            Trigger::After(k) => n >= k,
            Trigger::Always => true,
        };
        if fire {
            self.core.injected[op.index()].fetch_add(1, Ordering::SeqCst);
            return Err(armed.kind.error(op));
        }
        Ok(())
    }

    fn track_new(&self, path: &Path) -> Shared {
        let shared = Arc::new(Mutex::new(Written {
            new_entry: true,
            ..Written::default()
        }));
        self.core
            .state
            .lock()
            .files
            .insert(path.to_path_buf(), Arc::clone(&shared));
        shared
    }
}

struct FaultFile {
    env: FaultEnv,
    inner: Box<dyn WritableFile>,
    written: Shared,
}

impl WritableFile for FaultFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.env.check(FaultOp::Append) {
            if !self.env.core.halted.load(Ordering::SeqCst) {
                // A short write: half the bytes land, then the error.
                let half = data.get(..data.len() / 2).unwrap_or_default();
                self.inner.append(half)?;
                self.written.lock().len += half.len() as u64;
            }
            return Err(e);
        }
        self.inner.append(data)?;
        self.written.lock().len += data.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let len = self.written.lock().len;
        self.env.check(FaultOp::Sync)?;
        self.inner.sync()?;
        let mut w = self.written.lock();
        w.synced = w.synced.max(len);
        Ok(())
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(FaultSyncer {
            env: self.env.clone(),
            inner: self.inner.syncer()?,
            written: Arc::clone(&self.written),
        }))
    }
}

struct FaultSyncer {
    env: FaultEnv,
    inner: Box<dyn FileSyncer>,
    written: Shared,
}

impl FileSyncer for FaultSyncer {
    fn sync(&self) -> io::Result<()> {
        let len = self.written.lock().len;
        self.env.check(FaultOp::Sync)?;
        self.inner.sync()?;
        let mut w = self.written.lock();
        w.synced = w.synced.max(len);
        Ok(())
    }
}

struct FaultReader {
    env: FaultEnv,
    inner: Arc<dyn RandomAccessFile>,
}

impl RandomAccessFile for FaultReader {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.env.check(FaultOp::Read)?;
        self.inner.read_at(offset, len)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl Env for FaultEnv {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(FaultOp::Create)?;
        let inner = StdEnv.create(path)?;
        let written = self.track_new(path);
        Ok(Box::new(FaultFile {
            env: self.clone(),
            inner,
            written,
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.check(FaultOp::OpenRead)?;
        Ok(Arc::new(FaultReader {
            env: self.clone(),
            inner: StdEnv.open_read(path)?,
        }))
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(FaultOp::Read)?;
        StdEnv.read_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename)?;
        let replaced = if to.exists() {
            Some(std::fs::read(to)?)
        } else {
            None
        };
        StdEnv.rename(from, to)?;
        let mut st = self.core.state.lock();
        if let Some(tracked) = st.files.remove(from) {
            st.files.insert(to.to_path_buf(), tracked);
        }
        st.renames.push(PendingRename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            replaced,
        });
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.check(FaultOp::Truncate)?;
        StdEnv.truncate(path, len)?;
        if let Some(f) = self.core.state.lock().files.get(path) {
            let mut f = f.lock();
            f.len = len;
            f.synced = len;
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::Remove)?;
        StdEnv.remove_file(path)?;
        self.core.state.lock().files.remove(path);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.check(FaultOp::SyncDir)?;
        StdEnv.sync_dir(path)?;
        let mut st = self.core.state.lock();
        for (p, f) in &st.files {
            if parent(p) == path {
                f.lock().new_entry = false;
            }
        }
        st.renames.retain(|r| parent(&r.to) != path);
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.list_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        StdEnv.exists(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.lock(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_after_and_always_fire_as_documented() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let env = FaultEnv::new();
        let mut f = env.create(&dir.path().join("a"))?;
        env.arm(FaultOp::Append, Trigger::Nth(1), FaultKind::Eio);
        f.append(b"ok")?;
        assert!(f.append(b"bad!").is_err());
        f.append(b"ok")?;
        // The failed append left half its bytes.
        assert_eq!(f.len(), 2 + 2 + 2);
        env.arm(FaultOp::Sync, Trigger::After(1), FaultKind::Enospc);
        f.sync()?;
        let e = f.sync().err().ok_or_else(|| io::Error::other("no fault"))?;
        assert_eq!(e.raw_os_error(), None);
        assert!(e.to_string().contains("No space left"), "{e}");
        assert!(f.sync().is_err());
        env.arm(FaultOp::Rename, Trigger::Always, FaultKind::Eio);
        assert!(env
            .rename(&dir.path().join("a"), &dir.path().join("b"))
            .is_err());
        assert_eq!(env.injected(FaultOp::Append), 1);
        assert_eq!(env.injected(FaultOp::Sync), 2);
        assert_eq!(env.injected_total(), 4);
        assert_eq!(env.calls(FaultOp::Append), 3);
        Ok(())
    }

    #[test]
    fn crash_keeps_only_synced_bytes_and_synced_entries() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let env = FaultEnv::new();
        // Synced data in a synced entry survives; the unsynced tail goes.
        let mut a = env.create(&d.join("a"))?;
        a.append(b"durable")?;
        a.sync()?;
        // Synced through a syncer from another handle.
        let mut c = env.create(&d.join("c"))?;
        c.append(b"via syncer")?;
        c.syncer()?.sync()?;
        env.sync_dir(d)?;
        a.append(b" lost")?;
        // A synced file whose entry was never synced disappears.
        let mut b = env.create(&d.join("b"))?;
        b.append(b"b")?;
        b.sync()?;
        drop((a, b, c));
        env.crash()?;
        assert_eq!(std::fs::read(d.join("a"))?, b"durable");
        assert!(!d.join("b").exists());
        assert_eq!(std::fs::read(d.join("c"))?, b"via syncer");
        Ok(())
    }

    #[test]
    fn crash_undoes_a_rename_whose_directory_was_not_synced() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let env = FaultEnv::new();
        std::fs::write(d.join("CURRENT"), b"old")?;
        let mut t = env.create(&d.join("CURRENT.tmp"))?;
        t.append(b"new")?;
        t.sync()?;
        drop(t);
        env.rename(&d.join("CURRENT.tmp"), &d.join("CURRENT"))?;
        env.crash()?;
        assert_eq!(std::fs::read(d.join("CURRENT"))?, b"old");
        // The same rename, made durable, survives.
        let mut t = env.create(&d.join("CURRENT.tmp"))?;
        t.append(b"new")?;
        t.sync()?;
        drop(t);
        env.rename(&d.join("CURRENT.tmp"), &d.join("CURRENT"))?;
        env.sync_dir(d)?;
        env.crash()?;
        assert_eq!(std::fs::read(d.join("CURRENT"))?, b"new");
        Ok(())
    }

    #[test]
    fn a_halted_env_writes_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let env = FaultEnv::new();
        let mut f = env.create(&dir.path().join("f"))?;
        env.halt();
        assert!(f.append(b"x").is_err());
        assert!(f.sync().is_err());
        assert!(env.create(&dir.path().join("g")).is_err());
        assert_eq!(std::fs::metadata(dir.path().join("f"))?.len(), 0);
        assert_eq!(env.injected_total(), 0);
        Ok(())
    }
}
