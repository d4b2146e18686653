//! A manifest append or sync that fails during a flush, a compaction or a table creation:
//! the call returns an error, the whole database is poisoned (every later write is
//! `Error::Poisoned`), the background worker stops writing new SSTables, and the database
//! reopens cleanly with every acknowledged synced write and no SSTable the manifest does
//! not name.
//!
//! `FaultEnv` counts faults per operation kind, not per file, so a thin wrapper over it
//! fails only appends or syncs of `MANIFEST-*` files (the n-th one from arming); the
//! `FaultEnv` underneath still simulates the crash. A failed append lets half its bytes
//! land, as `FaultEnv` does. Each fault is aimed at the record the step writes: a dry run
//! on a copy finds its index, and the real run checks that the failed record is it.

mod common;
mod manifest_craft;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use manifest_craft::check::{
    copy_files, dir_diff, dir_map, files_with_ext, read_back, scratch_dir, Outcome,
};
use manifest_craft::fixture::{BoxResult, Fixture, TestResult};
use manifest_craft::{Edit, Payload, RECORD_HEADER_LEN};
use sealdb::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};
use sealdb::storage::{Env, FileLock, FileSyncer, RandomAccessFile, StdEnv, WritableFile};
use sealdb::{Db, Error, Options, TableOptions, WriteOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultAt {
    Append,
    Sync,
}

#[derive(Default)]
struct Plan {
    /// Fail the manifest operation of this kind with this index (counted from arming).
    armed: Option<(FaultAt, u64)>,
    appends_since_arm: u64,
    syncs_since_arm: u64,
    /// Every manifest append since arming (whole, as the engine asked).
    appended: Vec<Vec<u8>>,
    /// The append in progress when the armed sync failed, or the failed append.
    failed_record: Option<Vec<u8>>,
    injected: u64,
    /// Renames and directory syncs in call order (never reset): "rename NAME" or "sync_dir".
    ops: Vec<String>,
}

/// Fails manifest appends or syncs on request; everything else goes to `FaultEnv`.
#[derive(Clone)]
struct ManifestFaults {
    inner: FaultEnv,
    plan: Arc<Mutex<Plan>>,
}

impl ManifestFaults {
    fn new() -> ManifestFaults {
        ManifestFaults {
            inner: FaultEnv::new(),
            plan: Arc::new(Mutex::new(Plan::default())),
        }
    }

    /// Starts counting manifest appends and syncs; fails the `index`-th of `at` (if any).
    fn arm(&self, at: Option<(FaultAt, u64)>) {
        let mut p = self.plan.lock();
        let ops = std::mem::take(&mut p.ops);
        *p = Plan {
            armed: at,
            ops,
            ..Plan::default()
        };
    }
}

fn injected(at: FaultAt) -> io::Error {
    io::Error::other(format!("injected manifest {at:?} fault (EIO)"))
}

struct ManifestFile {
    inner: Box<dyn WritableFile>,
    plan: Arc<Mutex<Plan>>,
}

impl WritableFile for ManifestFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let fail = {
            let mut p = self.plan.lock();
            let n = p.appends_since_arm;
            p.appends_since_arm += 1;
            p.appended.push(data.to_vec());
            let fail = p.armed == Some((FaultAt::Append, n));
            if fail {
                p.injected += 1;
                p.failed_record = Some(data.to_vec());
            }
            fail
        };
        if fail {
            // A short write: half the bytes land.
            self.inner.append(&data[..data.len() / 2])?;
            return Err(injected(FaultAt::Append));
        }
        self.inner.append(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_fails(&self.plan)?;
        self.inner.sync()
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(ManifestSyncer {
            inner: self.inner.syncer()?,
            plan: Arc::clone(&self.plan),
        }))
    }
}

/// Counts a manifest sync; fails it when armed.
fn sync_fails(plan: &Mutex<Plan>) -> io::Result<()> {
    let mut p = plan.lock();
    let n = p.syncs_since_arm;
    p.syncs_since_arm += 1;
    if p.armed == Some((FaultAt::Sync, n)) {
        p.injected += 1;
        p.failed_record = p.appended.last().cloned();
        return Err(injected(FaultAt::Sync));
    }
    Ok(())
}

struct ManifestSyncer {
    inner: Box<dyn FileSyncer>,
    plan: Arc<Mutex<Plan>>,
}

impl FileSyncer for ManifestSyncer {
    fn sync(&self) -> io::Result<()> {
        sync_fails(&self.plan)?;
        self.inner.sync()
    }
}

impl Env for ManifestFaults {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = self.inner.create(path)?;
        let is_manifest = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("MANIFEST-"));
        if is_manifest {
            Ok(Box::new(ManifestFile {
                inner: f,
                plan: Arc::clone(&self.plan),
            }))
        } else {
            Ok(f)
        }
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.inner.open_read(path)
    }
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let name = to.file_name().map(|n| n.to_string_lossy().into_owned());
        self.plan
            .lock()
            .ops
            .push(format!("rename {}", name.unwrap_or_default()));
        self.inner.rename(from, to)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.plan.lock().ops.push("sync_dir".into());
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}

/// The step whose manifest record fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Flush,
    Compaction,
    CreateTable,
}

/// What a manifest append holds: the edits of each framed record in it.
fn edits_of(append: &[u8], version: u8) -> Vec<Edit> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + RECORD_HEADER_LEN <= append.len() {
        let len = u32::from_le_bytes([append[at], append[at + 1], append[at + 2], append[at + 3]])
            as usize;
        let start = at + RECORD_HEADER_LEN;
        let Some(payload) = append.get(start..start + len) else {
            break;
        };
        if let Ok(p) = Payload::decode(payload, version) {
            out.extend(p.edits);
        }
        at = start + len;
    }
    out
}

fn is_step_record(step: Step, edits: &[Edit]) -> bool {
    let add = edits.iter().any(|e| matches!(e, Edit::AddFile { .. }));
    let remove = edits.iter().any(|e| matches!(e, Edit::RemoveFile { .. }));
    let create = edits
        .iter()
        .any(|e| matches!(e, Edit::CreateTable { name, .. } if name == b"created-in-the-fault"));
    match step {
        Step::Flush => add && !remove,
        Step::Compaction => add && remove,
        Step::CreateTable => create,
    }
}

fn manifest_version(dir: &Path) -> BoxResult<u8> {
    let m = std::fs::read(manifest_craft::live_manifest_path(dir)?)?;
    Ok(*m.get(8).ok_or("short manifest")?)
}

/// The base database: `enc` (encrypted) and `plain`, 20 synced rows each in one SSTable
/// per table. Closed.
fn base() -> BoxResult<Fixture> {
    let mut fx = Fixture::new(true)?;
    let db = fx.open()?;
    for (name, enc) in [("enc", true), ("plain", false)] {
        let t = fx.create(&db, name, enc)?;
        fx.put_range(&t, 0..20, 1)?;
    }
    db.flush()?;
    Ok(fx)
}

fn options(fx: &Fixture, env: Arc<dyn Env>) -> Options {
    let mut o = fx.options();
    o.env = env;
    o
}

/// Runs the steps before the faulty one (30 more synced rows per table, and for a
/// compaction a flush, so each table has two SSTables), then arms and runs `step`.
fn run_step(
    fx: &mut Fixture,
    dir: &Path,
    env: &ManifestFaults,
    step: Step,
    arm: Option<(FaultAt, u64)>,
) -> BoxResult<(Db, sealdb::Result<()>)> {
    let db = Db::open(dir, options(fx, Arc::new(env.clone())))?;
    for name in ["enc", "plain"] {
        let t = db.table(name)?;
        fx.put_range(&t, 20..30, 1)?;
    }
    if step == Step::Compaction {
        db.flush()?;
    }
    env.arm(arm);
    let r = match step {
        Step::Flush => db.flush(),
        Step::Compaction => db.compact_table("enc"),
        Step::CreateTable => db
            .create_table("created-in-the-fault", TableOptions::encrypted())
            .map(|_| ()),
    };
    Ok((db, r))
}

/// Index of the manifest append (and of the sync after it) that writes `step`'s record,
/// from a dry run on a copy of the base.
fn calibrate(fx: &Fixture, step: Step) -> BoxResult<u64> {
    let scratch = scratch_dir()?;
    let dir = scratch.path().join("db");
    copy_files(&fx.db_dir(), &dir)?;
    let env = ManifestFaults::new();
    let mut dry = Fixture {
        root: scratch_dir()?,
        kms: fx.kms.clone(),
        expected: fx.expected.clone(),
        gen_offset: 0,
        write_buffer_size: fx.write_buffer_size,
    };
    let (db, r) = run_step(&mut dry, &dir, &env, step, None)?;
    r?;
    let version = manifest_version(&dir)?;
    drop(db);
    let p = env.plan.lock();
    let index = p
        .appended
        .iter()
        .position(|a| is_step_record(step, &edits_of(a, version)))
        .ok_or_else(|| format!("{step:?} wrote no record of its kind"))?;
    // One sync per append: the sync of record `index` is sync `index`.
    assert_eq!(
        p.appends_since_arm, p.syncs_since_arm,
        "{step:?}: one sync per manifest append"
    );
    Ok(index as u64)
}

/// Every .sst in `dir` is a file of some table's current version.
fn unreferenced_ssts(db: &Db, dir: &Path) -> BoxResult<Vec<String>> {
    let live: BTreeSet<String> = db
        .inspect()
        .into_iter()
        .flat_map(|t| t.files.into_iter().map(|f| f.file))
        .collect();
    Ok(files_with_ext(dir, "sst")?
        .into_iter()
        .filter(|f| !live.contains(f))
        .collect())
}

fn scenario(step: Step, at: FaultAt, crash: bool) -> TestResult {
    let label = format!(
        "{step:?}, manifest {at:?} fails{}",
        if crash { ", then a crash" } else { "" }
    );
    let mut fx = base()?;
    let index = calibrate(&fx, step)?;
    let dir: PathBuf = fx.db_dir();
    let env = ManifestFaults::new();
    let (db, r) = run_step(&mut fx, &dir, &env, step, Some((at, index)))?;
    let version = manifest_version(&dir)?;
    {
        let p = env.plan.lock();
        assert_eq!(p.injected, 1, "{label}: the fault fired once");
        let failed = p.failed_record.as_deref().unwrap_or_default();
        assert!(
            is_step_record(step, &edits_of(failed, version)),
            "{label}: the failed manifest record is the {step:?} record"
        );
    }
    let err = match r {
        Err(e) => e,
        Ok(()) => panic!("{label}: the step succeeded although its manifest record failed"),
    };
    println!("{label}: the step returned: {err}");

    // The whole database is poisoned: writes to every table, and new tables.
    let mut attempted = Vec::new();
    for name in ["enc", "plain"] {
        let t = db.table(name)?;
        let (k, v) = (format!("after-fault-{name}"), format!("v-{name}"));
        let w = t.put_opt(&k, &v, WriteOptions::synced());
        attempted.push((name, k, v));
        assert!(
            matches!(w, Err(Error::Poisoned(_))),
            "{label}: a write to {name} after the fault: {w:?}"
        );
    }
    let c = db.create_table("after-fault", TableOptions::plaintext());
    assert!(
        matches!(c, Err(Error::Poisoned(_))),
        "{label}: create_table after the fault: {:?}",
        c.map(|_| ())
    );

    // The background worker does not keep writing SSTables.
    let before = files_with_ext(&dir, "sst")?;
    std::thread::sleep(Duration::from_millis(1100));
    let after = files_with_ext(&dir, "sst")?;
    assert_eq!(
        before, after,
        "{label}: SSTables written after the database was poisoned"
    );

    if crash {
        env.inner.halt();
        drop(db);
        env.inner.crash()?;
    } else {
        drop(db);
    }

    // A clean reopen, with every acknowledged synced write and nothing else.
    let db = Db::open(&dir, options(&fx, Arc::new(StdEnv)))
        .map_err(|e| format!("{label}: reopen after the fault failed: {e}"))?;
    let mut expected = fx.expected.clone();
    for (name, k, v) in &attempted {
        // Not acknowledged: it may be there (with its value) or not.
        if db.table(name)?.get(k)?.as_deref() == Some(v.as_bytes()) {
            expected
                .entry((*name).to_owned())
                .or_default()
                .insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
    }
    if step == Step::CreateTable && db.tables().iter().any(|t| t == "created-in-the-fault") {
        // Not acknowledged either: present (empty) or absent.
        expected.entry("created-in-the-fault".into()).or_default();
    }
    let o = read_back(&db, &expected);
    assert_eq!(o, Outcome::Exact, "{label}: after the reopen");
    let orphans = unreferenced_ssts(&db, &dir)?;
    assert!(
        orphans.is_empty(),
        "{label}: SSTables no table refers to after the reopen: {orphans:?}"
    );
    let reported = db.unreferenced_files()?;
    let report = db.verify()?;
    assert!(
        reported.is_empty() && report.unreferenced.is_empty(),
        "{label}: the engine reports unreferenced files after the reopen: {reported:?}, \
         verify: {:?}",
        report.unreferenced
    );
    println!("{label}: reopened cleanly: {o:?}, {report:?}");
    Ok(())
}

#[test]
fn a_failed_manifest_append_during_a_flush_poisons_and_recovers() -> TestResult {
    scenario(Step::Flush, FaultAt::Append, false)
}

#[test]
fn a_failed_manifest_sync_during_a_flush_poisons_and_recovers() -> TestResult {
    scenario(Step::Flush, FaultAt::Sync, false)
}

#[test]
fn a_failed_manifest_sync_during_a_flush_then_a_crash_recovers() -> TestResult {
    scenario(Step::Flush, FaultAt::Sync, true)
}

#[test]
fn a_failed_manifest_append_during_a_compaction_poisons_and_recovers() -> TestResult {
    scenario(Step::Compaction, FaultAt::Append, false)
}

#[test]
fn a_failed_manifest_sync_during_a_compaction_poisons_and_recovers() -> TestResult {
    scenario(Step::Compaction, FaultAt::Sync, false)
}

#[test]
fn a_failed_manifest_sync_during_a_compaction_then_a_crash_recovers() -> TestResult {
    scenario(Step::Compaction, FaultAt::Sync, true)
}

#[test]
fn a_failed_manifest_append_during_a_table_creation_poisons_and_recovers() -> TestResult {
    scenario(Step::CreateTable, FaultAt::Append, false)
}

#[test]
fn a_failed_manifest_sync_during_a_table_creation_poisons_and_recovers() -> TestResult {
    scenario(Step::CreateTable, FaultAt::Sync, false)
}

#[test]
fn a_failed_manifest_sync_during_a_table_creation_then_a_crash_recovers() -> TestResult {
    scenario(Step::CreateTable, FaultAt::Sync, true)
}

/// Arms the faults of one case.
type ArmFn = Box<dyn Fn(&ManifestFaults)>;

/// Opening writes a fresh manifest (and, with WAL data to recover, level-0 files first).
/// When that fails (the manifest's append or sync, or the rename that switches CURRENT),
/// the open fails and leaves every file exactly as it was; a later open reads everything.
#[test]
fn a_failed_manifest_write_at_open_leaves_every_file_as_it_was() -> TestResult {
    let mut fx = base()?;
    {
        // Rows only the WAL holds, so that the open has something to recover.
        let db = fx.open()?;
        for name in ["enc", "plain"] {
            let t = db.table(name)?;
            fx.put_range(&t, 20..25, 1)?;
        }
    }
    // Which directory sync of an open makes the CURRENT switch durable (a dry run).
    let after_switch = {
        let scratch = scratch_dir()?;
        let dir = scratch.path().join("db");
        copy_files(&fx.db_dir(), &dir)?;
        let env = ManifestFaults::new();
        drop(Db::open(&dir, options(&fx, Arc::new(env.clone())))?);
        let ops = env.plan.lock().ops.clone();
        let at = ops
            .iter()
            .position(|o| o == "rename CURRENT")
            .ok_or("the open renames CURRENT")?;
        ops[..at].iter().filter(|o| *o == "sync_dir").count() as u64
    };
    let cases: [(&str, ArmFn); 5] = [
        (
            "manifest append",
            Box::new(|e: &ManifestFaults| e.arm(Some((FaultAt::Append, 0)))),
        ),
        (
            "manifest sync",
            Box::new(|e: &ManifestFaults| e.arm(Some((FaultAt::Sync, 0)))),
        ),
        (
            "CURRENT rename",
            Box::new(|e: &ManifestFaults| {
                e.arm(None);
                e.inner
                    .arm(FaultOp::Rename, Trigger::Always, FaultKind::Eio)
            }),
        ),
        (
            "every directory sync",
            Box::new(|e: &ManifestFaults| {
                e.arm(None);
                e.inner
                    .arm(FaultOp::SyncDir, Trigger::Always, FaultKind::Eio)
            }),
        ),
        (
            "the directory sync after the CURRENT rename",
            Box::new(move |e: &ManifestFaults| {
                e.arm(None);
                e.inner
                    .arm(FaultOp::SyncDir, Trigger::Nth(after_switch), FaultKind::Eio)
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (what, arm) in cases {
        let scratch = scratch_dir()?;
        let dir = scratch.path().join("db");
        copy_files(&fx.db_dir(), &dir)?;
        let before = dir_map(&dir)?;
        let env = ManifestFaults::new();
        arm(&env);
        let r = Db::open(&dir, options(&fx, Arc::new(env.clone())));
        let injected = env.plan.lock().injected + env.inner.injected_total();
        let after = dir_map(&dir)?;
        match r {
            Ok(_) => {
                failures.push(format!(
                    "{what}: the open succeeded through {injected} faults"
                ));
                continue;
            }
            Err(e) => println!("{what} fails at open: {e}"),
        }
        assert!(injected >= 1, "{what}: a fault fired");
        // One case commits although the open reports an error: the rename of CURRENT went
        // through and only the directory sync after it failed, so CURRENT names the new
        // manifest and the files it names must stay (the next open reads them). Even then
        // nothing that was there is removed.
        let committed = after.get("CURRENT") != before.get("CURRENT");
        let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
        if committed {
            if !removed.is_empty() {
                failures.push(format!("{what}: the committed open removed {removed:?}"));
            }
        } else if before != after {
            failures.push(format!(
                "{what}: the failed open changed the directory: {}",
                dir_diff(&before, &after)
            ));
        }
        match Db::open(&dir, options(&fx, Arc::new(StdEnv))) {
            Ok(db) => {
                let o = read_back(&db, &fx.expected);
                if o != Outcome::Exact {
                    failures.push(format!("{what}: the next open: {o:?}"));
                }
            }
            Err(e) => failures.push(format!("{what}: the next open (no fault) fails: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
