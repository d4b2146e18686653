//! A fault-injecting, crash-simulating [`Env`] over the real file system: a test tool.
//!
//! Compiled only with the `fault-injection` feature (the crate's own tests enable it
//! through a dev-dependency on the crate itself); it is not part of the stable API.
//!
//! Faults: each operation kind ([`FaultOp`]) has a counter and a [`Trigger`]; when the
//! trigger fires the operation fails with EIO or ENOSPC ([`FaultKind`]). A failed append
//! first lets half its bytes land, as a real short write does.
//!
//! Crashes ([`FaultEnv::crash`] and [`FaultEnv::crash_with`]), after LevelDB's
//! `fault_injection_test`, in the modes of [`PowerLoss`]:
//! - every file this env wrote is cut back to the length it had at its last sync
//!   (a `FileSyncer` sync counts; so does `truncate`, which syncs), or, with
//!   [`PowerLoss::torn_tail`], keeps a random prefix of its unsynced tail (a torn write);
//! - a file created since the last sync of its directory is deleted;
//! - a rename not followed by a sync of the target's directory is undone: the file goes
//!   back to its old name and the file it replaced, if any, comes back;
//! - with [`PowerLoss::lose_unsynced_removes`], a file removed since the last sync of its
//!   directory comes back with the bytes it had durably;
//! - a failed sync is honest (fsyncgate): the bytes that sync should have made durable are
//!   zeroed at the crash even if a later sync of the file succeeded, because the kernel
//!   drops the dirty pages of a failed writeback and a retried fsync then reports success.
//!
//! Kill points ([`FaultEnv::set_kill_point`]): the k-th call of a kind on a class of file
//! ([`FileClass`]) simulates the power loss at once (optionally) and aborts the process, so
//! a crash test can die mid-flush, mid-compaction or mid manifest switch without any hook in
//! the engine.
//!
//! - with [`PowerLoss::torn_page`], a file keeps a random prefix of its unsynced tail and
//!   one 4 KiB page (aligned on the file offset) of that kept, unsynced part is zeros or
//!   garbage, with the kept bytes after it intact: a write torn in the middle, as a disk
//!   that wrote its pages out of order leaves it. Synced bytes are never damaged.
//!
//! Not modelled: directory creation is durable at once.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Env, FileLock, FileSyncer, RandomAccessFile, StdEnv, WritableFile};

/// The kinds of operation a fault can be armed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultOp {
    /// `Env::create` and `Env::create_private` (opening a file for writing).
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
    /// Reads only: the call succeeds but one bit of what it returns is flipped (a disk or
    /// bus error the device did not report). Other kinds fail with EIO instead.
    BitFlip,
}

impl FaultKind {
    fn error(self, op: FaultOp) -> io::Error {
        let errno = match self {
            FaultKind::Eio | FaultKind::BitFlip => 5, // EIO
            FaultKind::Enospc => 28,                  // ENOSPC
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
    /// Byte ranges a failed sync should have made durable: lost at a crash whatever
    /// later syncs report.
    failed_sync: Vec<(u64, u64)>,
}

/// The classes of file a kill point can be restricted to, by file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileClass {
    /// Any file (and calls with no path, such as a `FileSyncer` sync of any file).
    Any,
    /// `*.sst`: table files (flush and compaction outputs).
    Table,
    /// `*.log`: WAL segments.
    Wal,
    /// `MANIFEST-*`.
    Manifest,
    /// `CURRENT` and `CURRENT.tmp` (the manifest switch).
    Current,
    /// Files outside the database's own names (the KMS keystore and audit log).
    Other,
}

impl FileClass {
    /// Every class, for tests that loop over them.
    pub const ALL: [FileClass; 6] = [
        FileClass::Any,
        FileClass::Table,
        FileClass::Wal,
        FileClass::Manifest,
        FileClass::Current,
        FileClass::Other,
    ];

    /// The class of a path, by its file name.
    pub fn of(path: &Path) -> FileClass {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".sst") {
            FileClass::Table
        } else if name.ends_with(".log") {
            FileClass::Wal
        } else if name.starts_with("MANIFEST") {
            FileClass::Manifest
        } else if name.starts_with("CURRENT") {
            FileClass::Current
        } else {
            FileClass::Other
        }
    }

    fn matches(self, path: Option<&Path>) -> bool {
        match (self, path) {
            (FileClass::Any, _) => true,
            (_, None) => false,
            (c, Some(p)) => FileClass::of(p) == c,
        }
    }
}

/// What a simulated power loss does to what was not made durable. The default is
/// LevelDB's model: unsynced bytes dropped whole, removals durable at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PowerLoss {
    /// Each file keeps a random prefix (none to all) of its unsynced tail instead of
    /// losing it whole: a write torn at an arbitrary byte.
    pub torn_tail: bool,
    /// A removal not followed by a sync of its directory is undone: the file comes back
    /// with its durable bytes.
    pub lose_unsynced_removes: bool,
    /// Each file keeps a random prefix of its unsynced tail (as with `torn_tail`), and one
    /// 4 KiB-aligned page of that kept tail is zeros or garbage (chosen by the seed): a
    /// write torn in the middle. Implies a torn tail.
    pub torn_page: bool,
    /// Seeds the torn lengths, so a failing crash replays.
    pub seed: u64,
}

/// The page a [`PowerLoss::torn_page`] crash damages: 4 KiB, aligned on the file offset.
pub const TORN_PAGE_BYTES: u64 = 4096;

impl PowerLoss {
    /// The default mode with pages torn mid-write ([`PowerLoss::torn_page`]).
    pub fn torn_page(seed: u64) -> PowerLoss {
        PowerLoss {
            torn_page: true,
            seed,
            ..PowerLoss::default()
        }
    }

    /// Every combination of the modes, for tests that loop over them: the first four are
    /// the prefix-tear and lost-remove combinations, the last two tear a page mid-write.
    pub fn all_modes(seed: u64) -> [PowerLoss; 6] {
        let m = |torn_tail, lose_unsynced_removes, torn_page| PowerLoss {
            torn_tail,
            lose_unsynced_removes,
            torn_page,
            seed,
        };
        [
            m(false, false, false),
            m(true, false, false),
            m(false, true, false),
            m(true, true, false),
            m(false, false, true),
            m(false, true, true),
        ]
    }
}

/// Where [`FaultEnv::set_kill_point`] ends the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KillPoint {
    /// The kind of call.
    pub op: FaultOp,
    /// The files whose calls count.
    pub file: FileClass,
    /// Matching calls let through before the one that kills (0: the first kills).
    pub after: u64,
    /// Simulate this power loss before aborting; `None`: a plain process kill (what the
    /// OS already has survives).
    pub power_loss: Option<PowerLoss>,
}

/// A small deterministic generator (splitmix64) for torn lengths.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

type Shared = Arc<Mutex<Written>>;

/// A rename whose directory has not been synced since.
struct PendingRename {
    from: PathBuf,
    to: PathBuf,
    /// What `to` held before, if it existed.
    replaced: Option<Vec<u8>>,
}

/// A removal whose directory has not been synced since, with the bytes the file had
/// durably (what a power loss brings back).
struct PendingRemove {
    path: PathBuf,
    durable: Vec<u8>,
}

#[derive(Default)]
struct State {
    armed: [Option<Armed>; FaultOp::ALL.len()],
    files: HashMap<PathBuf, Shared>,
    renames: Vec<PendingRename>,
    removes: Vec<PendingRemove>,
    /// The kill point, matching calls seen, and whether it aborts (else it only halts).
    kill: Option<(KillPoint, u64, bool)>,
    /// A kill point reached, to fire once the caller has left the gate.
    pending_kill: Option<KillPoint>,
}

struct Core {
    state: Mutex<State>,
    calls: [AtomicU64; FaultOp::ALL.len()],
    injected: [AtomicU64; FaultOp::ALL.len()],
    /// Set by `halt`/`crash`: nothing reaches the disk any more.
    halted: AtomicBool,
    /// Every mutating call holds this shared while it runs; a kill point takes it
    /// exclusively, so the power-loss image is taken with no call half done (a call that
    /// completed is in the image, and only such a call can have been acknowledged).
    gate: parking_lot::RwLock<()>,
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
                gate: parking_lot::RwLock::new(()),
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

    /// Disarms every fault (and the kill point).
    pub fn disarm_all(&self) {
        let mut st = self.core.state.lock();
        st.armed = Default::default();
        st.kill = None;
    }

    /// Ends the process at `point` (see the module docs); counting starts now.
    pub fn set_kill_point(&self, point: KillPoint) {
        self.core.state.lock().kill = Some((point, 0, true));
    }

    /// The in-process twin of a kill point: at `point` the env halts (that call and every
    /// later one fail, nothing more reaches the disk) instead of aborting, so a test can
    /// drop the database and [`crash_with`](Self::crash_with) as of that instant.
    /// `point.power_loss` is ignored: the test picks the mode when it crashes.
    pub fn set_halt_point(&self, point: KillPoint) {
        self.core.state.lock().kill = Some((point, 0, false));
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

    /// True once halted (by `halt`, a crash in progress or a kill point being reached).
    pub fn is_halted(&self) -> bool {
        self.core.halted.load(Ordering::SeqCst)
    }

    /// Simulates a power loss in the default mode ([`PowerLoss::default`]).
    pub fn crash(&self) -> io::Result<()> {
        self.crash_with(PowerLoss::default())
    }

    /// Simulates a power loss in `mode` (see the module docs for what is modelled), then
    /// brings the file system back with no fault armed. Halts first; files still mapped by
    /// an open database must not be among those cut, so drop the database before calling it.
    pub fn crash_with(&self, mode: PowerLoss) -> io::Result<()> {
        self.halt();
        let mut st = self.core.state.lock();
        apply_power_loss(&mut st, mode)?;
        st.armed = Default::default();
        st.kill = None;
        drop(st);
        self.core.halted.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Counts a call of `op` on `path` and decides whether it fails (or kills).
    fn check(&self, op: FaultOp, path: Option<&Path>) -> io::Result<Option<FaultKind>> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        self.core.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        let mut st = self.core.state.lock();
        if let Some((point, seen, abort)) = st.kill.as_mut() {
            if point.op == op && point.file.matches(path) {
                if *seen == point.after {
                    let point = *point;
                    if *abort {
                        st.pending_kill = Some(point);
                    }
                    st.kill = None;
                    self.halt();
                    return Err(halted_error());
                }
                *seen += 1;
            }
        }
        let Some(armed) = st.armed[op.index()].as_mut() else {
            return Ok(None);
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
            return Ok(Some(armed.kind));
        }
        Ok(None)
    }

    /// Like `check`, with a fired fault as its error (a bit flip is an error where the
    /// call returns no data).
    fn check_err(&self, op: FaultOp, path: Option<&Path>) -> io::Result<()> {
        match self.check(op, path)? {
            None => Ok(()),
            Some(kind) => Err(kind.error(op)),
        }
    }

    /// Runs one call inside the gate, then fires a kill point the call reached.
    fn guarded<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let gate = self.core.gate.read();
        let r = f();
        drop(gate);
        let pending = self.core.state.lock().pending_kill.take();
        if let Some(point) = pending {
            self.kill(point);
        }
        r
    }

    /// A kill point fired: halt, wait for calls in progress, optionally lose power, and
    /// abort (no destructor runs, as with SIGKILL).
    fn kill(&self, point: KillPoint) -> ! {
        self.halt();
        let _all = self.core.gate.write();
        if let Some(mode) = point.power_loss {
            let mut st = self.core.state.lock();
            if let Err(e) = apply_power_loss(&mut st, mode) {
                eprintln!("kill point {point:?}: power-loss simulation failed: {e}");
            }
        }
        eprintln!("kill point {point:?} reached: aborting");
        std::process::abort();
    }

    fn track_new(&self, path: &Path) -> Shared {
        let shared = Arc::new(Mutex::new(Written {
            new_entry: true,
            ..Written::default()
        }));
        let mut st = self.core.state.lock();
        // Re-creating a removed name: the new file is what a crash must reason about.
        st.removes.retain(|r| r.path != path);
        st.files.insert(path.to_path_buf(), Arc::clone(&shared));
        shared
    }
}

/// Puts the disk in the state a power loss in `mode` leaves (see the module docs).
fn apply_power_loss(st: &mut State, mode: PowerLoss) -> io::Result<()> {
    let mut rng = mode.seed ^ 0x005e_ed0f_7012_u64;
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
    let removes = std::mem::take(&mut st.removes);
    let mut files: Vec<(PathBuf, Shared)> = st.files.drain().collect();
    // A fixed order, so the torn lengths follow from the seed alone.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file) in files {
        let f = file.lock();
        if !path.exists() {
            continue;
        }
        if f.new_entry {
            std::fs::remove_file(&path)?;
            continue;
        }
        let on_disk = std::fs::metadata(&path)?.len();
        let synced = f.synced.min(on_disk);
        let mut keep = synced;
        if (mode.torn_tail || mode.torn_page) && on_disk > keep {
            keep += splitmix(&mut rng) % (on_disk - keep + 1);
        }
        let h = std::fs::OpenOptions::new().write(true).open(&path)?;
        if keep < on_disk {
            h.set_len(keep)?;
        }
        if mode.torn_page && keep > synced {
            tear_a_page(&h, synced, keep, &mut rng)?;
        }
        for &(from, to) in &f.failed_sync {
            let to = to.min(keep);
            if from < to {
                use std::os::unix::fs::FileExt;
                let zeros = vec![0u8; usize::try_from(to - from).unwrap_or(0)];
                h.write_all_at(&zeros, from)?;
            }
        }
        h.sync_all()?;
    }
    if mode.lose_unsynced_removes {
        for r in removes {
            if !r.path.exists() {
                std::fs::write(&r.path, &r.durable)?;
            }
        }
    }
    Ok(())
}

/// Damages one 4 KiB-aligned page of the kept, unsynced range `[synced, keep)` of a file:
/// zeros or garbage, chosen by `rng`, clipped to that range (synced bytes stay intact).
fn tear_a_page(h: &std::fs::File, synced: u64, keep: u64, rng: &mut u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let first = synced / TORN_PAGE_BYTES;
    let last = (keep - 1) / TORN_PAGE_BYTES;
    let page = first + splitmix(rng) % (last - first + 1);
    let from = (page * TORN_PAGE_BYTES).max(synced);
    let to = ((page + 1) * TORN_PAGE_BYTES).min(keep);
    let len = usize::try_from(to - from).unwrap_or(0);
    let garbage = splitmix(rng) % 2 == 1;
    let mut bytes = vec![0u8; len];
    if garbage {
        let mut g = *rng;
        for chunk in bytes.chunks_mut(8) {
            let word = splitmix(&mut g).to_le_bytes();
            chunk.copy_from_slice(word.get(..chunk.len()).unwrap_or_default());
        }
        *rng = g;
    }
    h.write_all_at(&bytes, from)
}

struct FaultFile {
    env: FaultEnv,
    path: PathBuf,
    inner: Box<dyn WritableFile>,
    written: Shared,
}

/// A sync through either handle: on success what was appended before it is durable; on
/// failure that range is lost for good (see the module docs).
fn sync_file(
    env: &FaultEnv,
    path: &Path,
    written: &Shared,
    inner: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let len = written.lock().len;
    let failed = match env.check(FaultOp::Sync, Some(path)) {
        Ok(None) => inner().err(),
        Ok(Some(kind)) => Some(kind.error(FaultOp::Sync)),
        Err(e) => return Err(e),
    };
    let mut w = written.lock();
    match failed {
        None => {
            w.synced = w.synced.max(len);
            Ok(())
        }
        Some(e) => {
            let from = w.synced;
            if from < len {
                w.failed_sync.push((from, len));
            }
            Err(e)
        }
    }
}

impl WritableFile for FaultFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let env = self.env.clone();
        env.guarded(|| self.append_unguarded(data))
    }

    fn sync(&mut self) -> io::Result<()> {
        let env = self.env.clone();
        env.guarded(|| {
            let inner = &mut self.inner;
            sync_file(&self.env, &self.path, &self.written, || inner.sync())
        })
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(FaultSyncer {
            env: self.env.clone(),
            path: self.path.clone(),
            inner: self.inner.syncer()?,
            written: Arc::clone(&self.written),
        }))
    }
}

impl FaultFile {
    fn append_unguarded(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.env.check_err(FaultOp::Append, Some(&self.path)) {
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
}

struct FaultSyncer {
    env: FaultEnv,
    path: PathBuf,
    inner: Box<dyn FileSyncer>,
    written: Shared,
}

impl FileSyncer for FaultSyncer {
    fn sync(&self) -> io::Result<()> {
        self.env
            .guarded(|| sync_file(&self.env, &self.path, &self.written, || self.inner.sync()))
    }
}

/// Reads of a mapped file: `read_at` is the only way the engine reads a mapping, so a
/// fault here is a fault of the mmap read path.
struct FaultReader {
    env: FaultEnv,
    path: PathBuf,
    inner: Arc<dyn RandomAccessFile>,
}

/// Flips one bit of `data`, chosen by its length (a deterministic corruption).
fn flip_a_bit(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    let n = v.len();
    if let Some(b) = v.get_mut(n / 2) {
        *b ^= 0x10;
    }
    v
}

impl FaultReader {
    /// A read through the fault schedule; `whole`: by `read_whole_at`.
    fn read(&self, offset: u64, len: usize, whole: bool) -> io::Result<Bytes> {
        match self.env.check(FaultOp::Read, Some(&self.path))? {
            None if whole => self.inner.read_whole_at(offset, len),
            None => self.inner.read_at(offset, len),
            Some(FaultKind::BitFlip) => {
                let data = self.inner.read_at(offset, len)?;
                Ok(Bytes::from(flip_a_bit(&data)))
            }
            Some(kind) => Err(kind.error(FaultOp::Read)),
        }
    }
}

impl RandomAccessFile for FaultReader {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.read(offset, len, false)
    }

    fn read_whole_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.read(offset, len, true)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl FaultEnv {
    fn create_dir_all_unguarded(&self, path: &Path) -> io::Result<()> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.create_dir_all(path)
    }

    /// A create (`FaultOp::Create`) by `open`: `StdEnv::create` or `create_private`.
    fn create_unguarded(
        &self,
        path: &Path,
        open: impl FnOnce(&Path) -> io::Result<Box<dyn WritableFile>>,
    ) -> io::Result<Box<dyn WritableFile>> {
        self.check_err(FaultOp::Create, Some(path))?;
        let inner = open(path)?;
        let written = self.track_new(path);
        Ok(Box::new(FaultFile {
            env: self.clone(),
            path: path.to_path_buf(),
            inner,
            written,
        }))
    }

    fn open_read_unguarded(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.check_err(FaultOp::OpenRead, Some(path))?;
        Ok(Arc::new(FaultReader {
            env: self.clone(),
            path: path.to_path_buf(),
            inner: StdEnv.open_read(path)?,
        }))
    }

    fn read_all_unguarded(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.check(FaultOp::Read, Some(path))? {
            None => StdEnv.read_all(path),
            Some(FaultKind::BitFlip) => Ok(flip_a_bit(&StdEnv.read_all(path)?)),
            Some(kind) => Err(kind.error(FaultOp::Read)),
        }
    }

    fn rename_unguarded(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_err(FaultOp::Rename, Some(to))?;
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

    fn truncate_unguarded(&self, path: &Path, len: u64) -> io::Result<()> {
        self.check_err(FaultOp::Truncate, Some(path))?;
        StdEnv.truncate(path, len)?;
        if let Some(f) = self.core.state.lock().files.get(path) {
            let mut f = f.lock();
            f.len = len;
            f.synced = len;
            f.failed_sync.retain(|r| r.0 < len);
        }
        Ok(())
    }

    fn remove_file_unguarded(&self, path: &Path) -> io::Result<()> {
        self.check_err(FaultOp::Remove, Some(path))?;
        // What a power loss before the next directory sync brings back: the durable
        // bytes of a file whose entry was durable; nothing for a file never made durable.
        let durable = {
            let st = self.core.state.lock();
            match st.files.get(path) {
                Some(f) if f.lock().new_entry => None,
                Some(f) => {
                    let synced = f.lock().synced;
                    let mut data = std::fs::read(path).unwrap_or_default();
                    data.truncate(usize::try_from(synced).unwrap_or(usize::MAX));
                    Some(data)
                }
                None => std::fs::read(path).ok(),
            }
        };
        StdEnv.remove_file(path)?;
        let mut st = self.core.state.lock();
        st.files.remove(path);
        if let Some(durable) = durable {
            st.removes.push(PendingRemove {
                path: path.to_path_buf(),
                durable,
            });
        }
        Ok(())
    }

    fn sync_dir_unguarded(&self, path: &Path) -> io::Result<()> {
        self.check_err(FaultOp::SyncDir, Some(path))?;
        StdEnv.sync_dir(path)?;
        let mut st = self.core.state.lock();
        for (p, f) in &st.files {
            if parent(p) == path {
                f.lock().new_entry = false;
            }
        }
        st.renames.retain(|r| parent(&r.to) != path);
        st.removes.retain(|r| parent(&r.path) != path);
        Ok(())
    }

    fn list_dir_unguarded(&self, path: &Path) -> io::Result<Vec<String>> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.list_dir(path)
    }

    fn lock_unguarded(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        if self.core.halted.load(Ordering::SeqCst) {
            return Err(halted_error());
        }
        StdEnv.lock(path)
    }
}

impl Env for FaultEnv {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.create_dir_all_unguarded(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.guarded(|| self.create_unguarded(path, |p| StdEnv.create(p)))
    }

    fn create_private(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.guarded(|| self.create_unguarded(path, |p| StdEnv.create_private(p)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.open_read_unguarded(path)
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.guarded(|| self.read_all_unguarded(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.guarded(|| self.rename_unguarded(from, to))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.guarded(|| self.truncate_unguarded(path, len))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.guarded(|| self.remove_file_unguarded(path))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.guarded(|| self.sync_dir_unguarded(path))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.list_dir_unguarded(path)
    }

    fn exists(&self, path: &Path) -> bool {
        StdEnv.exists(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.lock_unguarded(path)
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
    #[test]
    fn a_torn_tail_keeps_a_prefix_of_the_unsynced_bytes() -> io::Result<()> {
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..24 {
            let dir = tempfile::tempdir()?;
            let d = dir.path();
            let env = FaultEnv::new();
            let mut f = env.create(&d.join("wal"))?;
            f.append(b"synced|")?;
            f.sync()?;
            env.sync_dir(d)?;
            f.append(b"0123456789")?;
            drop(f);
            env.crash_with(PowerLoss {
                torn_tail: true,
                seed,
                ..PowerLoss::default()
            })?;
            let got = std::fs::read(d.join("wal"))?;
            assert!(b"synced|0123456789".starts_with(&got), "{got:?}");
            assert!(got.len() >= 7, "synced bytes lost: {got:?}");
            lengths.insert(got.len());
        }
        // Different seeds tear at different bytes.
        assert!(lengths.len() > 3, "{lengths:?}");
        Ok(())
    }

    #[test]
    fn a_torn_page_damages_one_unsynced_page_and_keeps_what_follows() -> io::Result<()> {
        let synced: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
        let tail: Vec<u8> = (0..12_000u32).map(|i| (i % 241) as u8 + 1).collect();
        let (mut zeros, mut garbage, mut mid) = (0, 0, 0);
        for seed in 0..64 {
            let dir = tempfile::tempdir()?;
            let d = dir.path();
            let env = FaultEnv::new();
            let mut f = env.create(&d.join("wal"))?;
            f.append(&synced)?;
            f.sync()?;
            env.sync_dir(d)?;
            f.append(&tail)?;
            drop(f);
            env.crash_with(PowerLoss::torn_page(seed))?;
            let got = std::fs::read(d.join("wal"))?;
            let mut written = synced.clone();
            written.extend_from_slice(&tail);
            assert!(got.len() >= synced.len() && got.len() <= written.len());
            assert_eq!(
                &got[..synced.len()],
                &synced[..],
                "seed {seed}: synced bytes damaged"
            );
            let differ: Vec<usize> = (0..got.len()).filter(|&i| got[i] != written[i]).collect();
            let (Some(&lo), Some(&hi)) = (differ.first(), differ.last()) else {
                continue; // the damaged page fell on bytes that happened to match
            };
            assert_eq!(
                lo as u64 / TORN_PAGE_BYTES,
                hi as u64 / TORN_PAGE_BYTES,
                "seed {seed}: damage spans pages {lo}..{hi}"
            );
            if differ.iter().all(|&i| got[i] == 0) {
                zeros += 1;
            } else {
                garbage += 1;
            }
            if (hi + 1) < got.len() {
                mid += 1; // intact bytes after the damage: torn in the middle
            }
        }
        assert!(zeros > 0 && garbage > 0, "zeros {zeros}, garbage {garbage}");
        assert!(mid > 0, "never torn mid-write");
        Ok(())
    }

    #[test]
    fn an_unsynced_remove_comes_back_only_in_that_mode() -> io::Result<()> {
        for lose in [false, true] {
            let dir = tempfile::tempdir()?;
            let d = dir.path();
            let env = FaultEnv::new();
            let mut f = env.create(&d.join("old.log"))?;
            f.append(b"durable")?;
            f.sync()?;
            f.append(b" not")?;
            drop(f);
            env.sync_dir(d)?;
            env.remove_file(&d.join("old.log"))?;
            // A file never made durable does not come back in any mode.
            let mut g = env.create(&d.join("new.sst"))?;
            g.append(b"x")?;
            g.sync()?;
            drop(g);
            env.remove_file(&d.join("new.sst"))?;
            env.crash_with(PowerLoss {
                lose_unsynced_removes: lose,
                ..PowerLoss::default()
            })?;
            assert_eq!(d.join("old.log").exists(), lose);
            if lose {
                assert_eq!(std::fs::read(d.join("old.log"))?, b"durable");
            }
            assert!(!d.join("new.sst").exists());
            // Once the directory is synced, the removal is durable.
            let mut f = env.create(&d.join("x"))?;
            f.sync()?;
            drop(f);
            env.sync_dir(d)?;
            env.remove_file(&d.join("x"))?;
            env.sync_dir(d)?;
            env.crash_with(PowerLoss {
                lose_unsynced_removes: true,
                ..PowerLoss::default()
            })?;
            assert!(!d.join("x").exists());
        }
        Ok(())
    }

    #[test]
    fn bytes_whose_sync_failed_are_not_made_durable_by_a_later_sync() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let env = FaultEnv::new();
        let mut f = env.create(&d.join("wal"))?;
        f.append(b"aaaa")?;
        f.sync()?;
        env.sync_dir(d)?;
        f.append(b"bbbb")?;
        env.arm(FaultOp::Sync, Trigger::Nth(0), FaultKind::Eio);
        assert!(f.sync().is_err());
        // The retry "succeeds", as Linux reports after dropping the dirty pages.
        f.append(b"cccc")?;
        f.sync()?;
        drop(f);
        // Before the crash the page cache still shows everything.
        assert_eq!(std::fs::read(d.join("wal"))?, b"aaaabbbbcccc");
        env.crash()?;
        assert_eq!(std::fs::read(d.join("wal"))?, b"aaaa\0\0\0\0cccc");
        Ok(())
    }

    #[test]
    fn a_bit_flip_fault_returns_wrong_bytes_without_an_error() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789")?;
        let env = FaultEnv::new();
        let r = env.open_read(&p)?;
        env.arm(FaultOp::Read, Trigger::Nth(0), FaultKind::BitFlip);
        let bad = r.read_at(0, 10)?;
        assert_ne!(&bad[..], b"0123456789");
        assert_eq!(&r.read_at(0, 10)?[..], b"0123456789");
        env.arm(FaultOp::Read, Trigger::Nth(0), FaultKind::BitFlip);
        assert_ne!(env.read_all(&p)?, b"0123456789");
        // A whole read (the SSTable reader's) meets the same faults.
        env.arm(FaultOp::Read, Trigger::Nth(0), FaultKind::BitFlip);
        assert_ne!(&r.read_whole_at(0, 10)?[..], b"0123456789");
        assert_eq!(&r.read_whole_at(0, 10)?[..], b"0123456789");
        Ok(())
    }

    #[test]
    fn file_classes_follow_the_engine_names() {
        assert_eq!(FileClass::of(Path::new("/d/000012.sst")), FileClass::Table);
        assert_eq!(FileClass::of(Path::new("/d/7.log")), FileClass::Wal);
        assert_eq!(
            FileClass::of(Path::new("/d/MANIFEST-000003")),
            FileClass::Manifest
        );
        assert_eq!(
            FileClass::of(Path::new("/d/CURRENT.tmp")),
            FileClass::Current
        );
        assert_eq!(
            FileClass::of(Path::new("/k/keystore.bin")),
            FileClass::Other
        );
        assert!(FileClass::Any.matches(None));
        assert!(!FileClass::Wal.matches(None));
    }
}
