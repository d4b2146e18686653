//! The crash loop: a child process writes (puts, overwrites, deletes, batches across
//! tables, lockstep batches) from several threads while flushes, compactions and table
//! creates and drops run, and dies by SIGKILL at a random moment or at a kill point of the
//! file system seam (the k-th append, sync, create, rename, directory sync or removal of a
//! WAL, table, manifest or CURRENT file), optionally with a simulated power loss. The
//! parent reopens and checks every key against what the child acknowledged.
//!
//! Protocol (child stdout, one line per write, each written whole): `B <gen> <t>.<k>.<p>,..`
//! before a write (p: 1 put, 0 delete), `A <gen>` once it returned. The child holds each
//! key's lock from its `B` to its `A`, so per key at most one write is unacknowledged: the
//! key must show the acknowledged state or that write, and an unacknowledged batch must be
//! all there or all absent, across tables.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealdb::storage::fault::{FaultEnv, FaultOp, FileClass, KillPoint, PowerLoss};
use sealdb::storage::{Env, StdEnv};
use sealdb::{TableOptions, WriteBatch, WriteOptions};

use crate::model::{self, key, key_index, parse_value, value, BATCH_REGION, TABLES};
use crate::oracle::Oracle;

/// Small memtables in the child, so a short life still flushes and compacts.
const CHILD_WRITE_BUFFER: usize = 16 << 10;

#[derive(Clone, Debug)]
pub struct CrashConfig {
    pub seed: u64,
    pub iterations: u64,
    pub keys: usize,
    pub root: Option<PathBuf>,
    pub verbose: bool,
    /// Children also create and drop tables (the default; `--no-table-churn` turns it off).
    /// It was off while the bug of tests/engine_bug_compaction_missing_file.rs (a runtime
    /// scan deleted a live SSTable) failed the loop every ~150 crashes; fixed in 4542c65.
    pub table_churn: bool,
    /// Power losses may also tear a 4 KiB page mid-write (`PowerLoss::torn_page`;
    /// `--torn-pages`). Off by default only so that a seed replays the draws of earlier
    /// versions; the engine survives torn pages since WAL format 2 and the manifest's
    /// in-flight-append rule (DESIGN.md sections 5 and 7).
    pub torn_pages: bool,
}

/// How one child dies.
#[derive(Clone, Debug)]
pub struct ChildPlan {
    pub seed: u64,
    pub gen_base: u64,
    pub keys: usize,
    pub sync_only: bool,
    pub kill: Option<KillPoint>,
    pub table_churn: bool,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn op_name(op: FaultOp) -> String {
    format!("{op:?}").to_lowercase()
}

fn parse_op(s: &str) -> Option<FaultOp> {
    FaultOp::ALL.into_iter().find(|o| op_name(*o) == s)
}

fn parse_class(s: &str) -> Option<FileClass> {
    FileClass::ALL
        .into_iter()
        .find(|c| format!("{c:?}").to_lowercase() == s)
}

impl ChildPlan {
    /// The plan of iteration `i` of a loop seeded with `master`.
    pub fn for_iteration(
        master: u64,
        i: u64,
        keys: usize,
        table_churn: bool,
        torn_pages: bool,
    ) -> (ChildPlan, Duration) {
        let seed = mix(master ^ mix(i));
        let mut rng = StdRng::seed_from_u64(seed);
        let gen_base = (i + 1) << 32;
        if rng.gen_bool(0.5) {
            // SIGKILL at a random moment: early (during open) now and then.
            let ms = if rng.gen_ratio(1, 6) {
                rng.gen_range(5..120)
            } else {
                rng.gen_range(120..900)
            };
            let plan = ChildPlan {
                seed,
                gen_base,
                keys,
                sync_only: false,
                kill: None,
                table_churn,
            };
            return (plan, Duration::from_millis(ms));
        }
        // A kill point: (op, file class, how many matching calls to let through).
        const POINTS: [(FaultOp, FileClass, u64); 16] = [
            (FaultOp::Append, FileClass::Wal, 400),
            (FaultOp::Sync, FileClass::Wal, 100),
            (FaultOp::Create, FileClass::Wal, 4),
            (FaultOp::Remove, FileClass::Wal, 4),
            (FaultOp::Create, FileClass::Table, 8),
            (FaultOp::Append, FileClass::Table, 60),
            (FaultOp::Sync, FileClass::Table, 8),
            (FaultOp::Rename, FileClass::Table, 8),
            (FaultOp::Remove, FileClass::Table, 8),
            (FaultOp::Append, FileClass::Manifest, 30),
            (FaultOp::Sync, FileClass::Manifest, 30),
            (FaultOp::Create, FileClass::Manifest, 2),
            (FaultOp::Append, FileClass::Current, 2),
            (FaultOp::Rename, FileClass::Current, 2),
            (FaultOp::SyncDir, FileClass::Any, 12),
            (FaultOp::Remove, FileClass::Manifest, 2),
        ];
        let (op, file, range) = POINTS[rng.gen_range(0..POINTS.len())];
        let after = rng.gen_range(0..range);
        // The tear, when power is lost: none or a prefix kept, or with `torn_pages` also a
        // page torn mid-write (without it the draws are those of earlier versions, so
        // their seeds replay).
        let power_loss = rng.gen_bool(0.5).then(|| {
            let tear = if torn_pages {
                rng.gen_range(0..3u8)
            } else {
                u8::from(rng.gen_bool(0.5))
            };
            PowerLoss {
                torn_tail: tear == 1,
                torn_page: tear == 2,
                lose_unsynced_removes: rng.gen_bool(0.5),
                seed: rng.gen(),
            }
        });
        let plan = ChildPlan {
            seed,
            gen_base,
            keys,
            // After a power loss only synced writes are promised.
            sync_only: power_loss.is_some(),
            kill: Some(KillPoint {
                op,
                file,
                after,
                power_loss,
            }),
            table_churn,
        };
        // If the point is not reached, a SIGKILL ends the child anyway.
        (plan, Duration::from_millis(rng.gen_range(600..1500)))
    }

    fn args(&self, root: &Path) -> Vec<String> {
        let mut a = vec![
            "child".into(),
            "--root".into(),
            root.display().to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--gen-base".into(),
            self.gen_base.to_string(),
            "--keys".into(),
            self.keys.to_string(),
        ];
        if self.sync_only {
            a.push("--sync-only".into());
        }
        if self.table_churn {
            a.push("--table-churn".into());
        }
        if let Some(k) = &self.kill {
            a.push("--kill".into());
            let pl = match k.power_loss {
                None => "none".to_string(),
                Some(p) => format!(
                    "{}{}{}:{}",
                    if p.torn_tail { "t" } else { "-" },
                    if p.torn_page { "p" } else { "-" },
                    if p.lose_unsynced_removes { "r" } else { "-" },
                    p.seed
                ),
            };
            a.push(format!(
                "{},{},{},{pl}",
                op_name(k.op),
                format!("{:?}", k.file).to_lowercase(),
                k.after
            ));
        }
        a
    }

    /// Parses `--kill`'s value.
    pub fn parse_kill(s: &str) -> Option<KillPoint> {
        let mut p = s.split(',');
        let op = parse_op(p.next()?)?;
        let file = parse_class(p.next()?)?;
        let after = p.next()?.parse().ok()?;
        let pl = p.next()?;
        let power_loss = if pl == "none" {
            None
        } else {
            let (flags, seed) = pl.split_once(':')?;
            Some(PowerLoss {
                torn_tail: flags.contains('t'),
                torn_page: flags.contains('p'),
                lose_unsynced_removes: flags.contains('r'),
                seed: seed.parse().ok()?,
            })
        };
        Some(KillPoint {
            op,
            file,
            after,
            power_loss,
        })
    }
}

/// The child: writes until killed. Never returns normally.
pub fn child(root: &Path, plan: &ChildPlan) -> Result<(), String> {
    let fault = FaultEnv::new();
    let env: Arc<dyn Env> = if plan.kill.is_some() {
        Arc::new(fault.clone())
    } else {
        Arc::new(StdEnv)
    };
    let (db, tables) =
        model::open(root, env, CHILD_WRITE_BUFFER).map_err(|e| format!("child open: {e}"))?;
    if let Some(k) = plan.kill {
        fault.set_kill_point(k);
    }
    let out = Arc::new(parking_lot::Mutex::new(std::io::stdout()));
    emit(&out, "READY".into())?;
    let oracle = Arc::new(Oracle::new(TABLES.len(), plan.keys));
    let next = Arc::new(AtomicU64::new(plan.gen_base));
    let db = Arc::new(db);
    let tables = Arc::new(tables);
    let mut handles = Vec::new();
    for id in 0..3u64 {
        let fault = fault.clone();
        let (db, tables, oracle, next, out) = (
            Arc::clone(&db),
            Arc::clone(&tables),
            Arc::clone(&oracle),
            Arc::clone(&next),
            Arc::clone(&out),
        );
        let plan = plan.clone();
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut rng = StdRng::seed_from_u64(plan.seed ^ mix(id + 1));
            loop {
                let nt = TABLES.len();
                let entries: Vec<(usize, usize, bool)> = match rng.gen_range(0..10) {
                    0..=5 => vec![(
                        rng.gen_range(0..nt),
                        rng.gen_range(BATCH_REGION..plan.keys),
                        rng.gen_ratio(3, 4),
                    )],
                    6..=7 => {
                        let mut e: Vec<_> = (0..rng.gen_range(2..7))
                            .map(|_| {
                                (
                                    rng.gen_range(0..nt),
                                    rng.gen_range(BATCH_REGION..plan.keys),
                                    rng.gen_ratio(3, 4),
                                )
                            })
                            .collect();
                        e.sort_by_key(|x| (x.0, x.1));
                        e.dedup_by_key(|x| (x.0, x.1));
                        e
                    }
                    _ => {
                        let k = rng.gen_range(0..BATCH_REGION);
                        (0..nt).map(|t| (t, k, rng.gen_ratio(4, 5))).collect()
                    }
                };
                let sync = plan.sync_only || rng.gen_bool(0.5);
                let keys: Vec<(usize, usize)> = entries.iter().map(|e| (e.0, e.1)).collect();
                let _locks = oracle.lock(&keys);
                let gen = next.fetch_add(1, Ordering::SeqCst);
                let desc: Vec<String> = entries
                    .iter()
                    .map(|(t, k, p)| format!("{t}.{k}.{}", u8::from(*p)))
                    .collect();
                emit(&out, format!("B {gen} {}", desc.join(",")))?;
                let wo = WriteOptions::with_sync(sync);
                let r = if entries.len() == 1 {
                    let (t, k, put) = entries[0];
                    if put {
                        tables[t].put_opt(key(k), value(t, k, gen), wo)
                    } else {
                        tables[t].delete_opt(key(k), wo)
                    }
                } else {
                    let mut b = WriteBatch::new();
                    for &(t, k, put) in &entries {
                        if put {
                            b.put(&tables[t], key(k), value(t, k, gen));
                        } else {
                            b.delete(&tables[t], key(k));
                        }
                    }
                    db.write(&b, wo)
                };
                if let Err(e) = r {
                    // Keep the key locks: no other write of these keys may start.
                    die(&fault, &format!("child write {gen}: {e}"));
                }
                emit(&out, format!("A {gen}"))?;
            }
        }));
    }
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0xf1);
    let mut scratch = 0u64;
    // Scratch tables a crash left behind are dropped (a drop after recovery).
    for name in db.tables().into_iter().filter(|n| n.starts_with("scratch")) {
        if let Err(e) = db.drop_table(&name) {
            die(
                &fault,
                &format!("child: dropping {name} left by a crash: {e}"),
            );
        }
    }
    loop {
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..120)));
        if handles.iter().any(|h| h.is_finished()) {
            break;
        }
        let r = match rng.gen_range(0..4) {
            0 | 1 => db.flush(),
            2 => {
                let t = rng.gen_range(0..TABLES.len());
                let a = rng.gen_range(0..plan.keys);
                db.compact_range(TABLES[t].0, key(a)..key(plan.keys))
            }
            _ if !plan.table_churn => db.flush(),
            _ => {
                // A table created and dropped: manifest edits, a KMS call for the encrypted one.
                scratch += 1;
                let name = format!("scratch{}_{scratch}", plan.gen_base >> 32);
                let o = if scratch.is_multiple_of(2) {
                    TableOptions::encrypted()
                } else {
                    TableOptions::plaintext()
                };
                db.create_table(&name, o)
                    .and_then(|t| t.put("k", "v"))
                    .and_then(|_| db.drop_table(&name))
            }
        };
        if let Err(e) = r {
            die(&fault, &format!("child maintenance: {e}"));
        }
    }
    for h in handles {
        h.join().map_err(|_| "writer panicked".to_string())??;
    }
    Err("the writers stopped".into())
}

/// A failed call in the child: while a kill point is taking the process down that is
/// expected (the file system is halted), so wait for the abort; otherwise it is a failure
/// the parent reports (exit status 2 and the message in child.log).
fn die(fault: &FaultEnv, why: &str) -> ! {
    if fault.is_halted() {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    eprintln!("child: {why}");
    std::process::exit(2);
}

fn emit(out: &parking_lot::Mutex<std::io::Stdout>, line: String) -> Result<(), String> {
    let o = out.lock();
    let mut l = o.lock();
    l.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| l.flush())
        .map_err(|e| format!("stdout: {e}"))
}

/// The parent's expected state: per (table, key) the acknowledged generation (None: absent).
struct Expected {
    keys: usize,
    state: Vec<Option<u64>>,
}

/// Counts for the summary.
#[derive(Default, Debug)]
pub struct CrashStats {
    pub iterations: u64,
    pub sigkills: u64,
    pub kill_points: u64,
    pub kill_points_reached: u64,
    pub power_losses: u64,
    pub acked_writes: u64,
    pub key_checks: u64,
    pub inflight_applied: u64,
    pub inflight_absent: u64,
    pub lost: u64,
}

type Entries = Vec<(usize, usize, bool)>;

fn parse_entries(s: &str) -> Option<Entries> {
    s.split(',')
        .map(|e| {
            let mut p = e.split('.');
            let t: usize = p.next()?.parse().ok()?;
            let k: usize = p.next()?.parse().ok()?;
            let put = p.next()? == "1";
            Some((t, k, put))
        })
        .collect()
}

/// Runs one child to its death; returns its stdout lines and whether a kill point ended it.
fn run_child(root: &Path, plan: &ChildPlan, life: Duration) -> Result<(Vec<String>, bool), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(root.join("child.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(plan.args(root))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + life;
    let mut by_itself = None;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            by_itself = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let reached = match by_itself {
        None => {
            child.kill().map_err(|e| e.to_string())?;
            child.wait().map_err(|e| e.to_string())?;
            false
        }
        Some(status) => {
            use std::os::unix::process::ExitStatusExt;
            // SIGABRT (6) is a kill point; anything else is the child failing.
            if status.signal() != Some(6) || plan.kill.is_none() {
                let log = std::fs::read_to_string(root.join("child.log")).unwrap_or_default();
                return Err(format!("the child ended by itself ({status}):\n{log}"));
            }
            true
        }
    };
    let lines = reader.join().map_err(|_| "reader panicked")?;
    Ok((lines, reached))
}

/// Reopens and checks; on success the expected state becomes what was found.
fn verify(
    root: &Path,
    exp: &mut Expected,
    lines: &[String],
    st: &mut CrashStats,
) -> Result<(), String> {
    let mut pending: HashMap<u64, Entries> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    for line in lines {
        if let Some(rest) = line.strip_prefix("B ") {
            let (g, e) = rest.split_once(' ').ok_or("bad B line")?;
            let gen: u64 = g.parse().map_err(|_| "bad gen")?;
            pending.insert(gen, parse_entries(e).ok_or("bad entries")?);
            order.push(gen);
        } else if let Some(g) = line.strip_prefix("A ") {
            let gen: u64 = g.parse().map_err(|_| "bad gen")?;
            let entries = pending.remove(&gen).ok_or("ack of an unknown write")?;
            for (t, k, put) in entries {
                exp.state[t * exp.keys + k] = put.then_some(gen);
            }
            st.acked_writes += 1;
        }
    }
    // Per key, the unacknowledged write that may or may not have landed.
    let mut inflight: HashMap<(usize, usize), (u64, bool)> = HashMap::new();
    for (gen, entries) in &pending {
        for &(t, k, put) in entries {
            if inflight.insert((t, k), (*gen, put)).is_some() {
                return Err(format!(
                    "two unacknowledged writes of {t}/{k}: the child broke its key locks"
                ));
            }
        }
    }
    let (db, tables) = model::open(root, Arc::new(StdEnv), CHILD_WRITE_BUFFER)
        .map_err(|e| format!("reopen after the crash failed: {e}"))?;
    let mut found = vec![None; exp.state.len()];
    for (t, table) in tables.iter().enumerate() {
        for k in 0..exp.keys {
            let got = table
                .get(key(k))
                .map_err(|e| format!("get {}/{k}: {e}", TABLES[t].0))?;
            let g = match got.as_deref() {
                None => None,
                Some(v) => match parse_value(v) {
                    Some((vt, vk, g)) if vt == t && vk == k => Some(g),
                    _ => {
                        return Err(format!(
                            "{}/{k}: a value never written for this key",
                            TABLES[t].0
                        ))
                    }
                },
            };
            let acked = exp.state[t * exp.keys + k];
            let ok = g == acked
                || inflight
                    .get(&(t, k))
                    .is_some_and(|&(gen, put)| g == put.then_some(gen));
            if !ok {
                st.lost += 1;
                return Err(format!(
                    "{}/{k}: found {g:?}, acknowledged {acked:?}, in flight {:?} -- an acknowledged write lost or a phantom",
                    TABLES[t].0,
                    inflight.get(&(t, k))
                ));
            }
            found[t * exp.keys + k] = g;
            st.key_checks += 1;
        }
        // The iterator agrees with the point reads and shows nothing else.
        let mut n = 0;
        for item in table.iter().map_err(|e| e.to_string())? {
            let (kb, v) = item.map_err(|e| format!("scan {}: {e}", TABLES[t].0))?;
            let k = key_index(&kb)
                .ok_or_else(|| format!("{}: a foreign key in a scan", TABLES[t].0))?;
            let g = parse_value(&v).map(|p| p.2);
            if g.is_none() || found[t * exp.keys + k] != g {
                return Err(format!(
                    "{}/{k}: the scan shows {g:?}, the point read {:?}",
                    TABLES[t].0,
                    found[t * exp.keys + k]
                ));
            }
            n += 1;
        }
        let expect_n = found[t * exp.keys..(t + 1) * exp.keys]
            .iter()
            .filter(|g| g.is_some())
            .count();
        if n != expect_n {
            return Err(format!(
                "{}: the scan shows {n} keys, point reads {expect_n}",
                TABLES[t].0
            ));
        }
    }
    // Every unacknowledged write is all there or all absent, across its tables.
    for gen in order.iter().filter(|g| pending.contains_key(g)) {
        let entries = &pending[gen];
        let (mut new, mut old) = (false, false);
        for &(t, k, put) in entries {
            let g = found[t * exp.keys + k];
            let is_new = g == put.then_some(*gen);
            let is_old = g == exp.state[t * exp.keys + k];
            match (is_new, is_old) {
                (true, false) => new = true,
                (false, true) => old = true,
                _ => {}
            }
        }
        if new && old {
            return Err(format!(
                "write {gen} ({entries:?}) is torn: some of its keys landed, some not"
            ));
        }
        if new {
            st.inflight_applied += 1;
        } else {
            st.inflight_absent += 1;
        }
    }
    exp.state = found;
    drop(tables);
    drop(db);
    Ok(())
}

/// Runs the loop; the first failure ends it (the database directory is kept).
pub fn run(cfg: &CrashConfig) -> Result<CrashStats, String> {
    let tmp;
    let root = match &cfg.root {
        Some(r) => {
            std::fs::create_dir_all(r).map_err(|e| e.to_string())?;
            r.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("sealdb-crash-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            tmp.path().to_path_buf()
        }
    };
    let mut exp = Expected {
        keys: cfg.keys,
        state: vec![None; TABLES.len() * cfg.keys],
    };
    let mut st = CrashStats::default();
    for i in 0..cfg.iterations {
        let (plan, life) =
            ChildPlan::for_iteration(cfg.seed, i, cfg.keys, cfg.table_churn, cfg.torn_pages);
        let what = format!(
            "iteration {i} (loop seed {}, child seed {}, kill {:?}, life {life:?})",
            cfg.seed, plan.seed, plan.kill
        );
        let (lines, reached) = run_child(&root, &plan, life).map_err(|e| format!("{what}: {e}"))?;
        let before = st.acked_writes;
        verify(&root, &mut exp, &lines, &mut st).map_err(|e| {
            let keep = root
                .join("..")
                .join(format!("sealdb-crash-failure-{}", cfg.seed));
            let _ = copy_dir(&root, &keep);
            format!("{what}: {e} (database kept in {})", keep.display())
        })?;
        st.iterations += 1;
        match plan.kill {
            None => st.sigkills += 1,
            Some(k) => {
                st.kill_points += 1;
                if reached {
                    st.kill_points_reached += 1;
                    st.power_losses += u64::from(k.power_loss.is_some());
                }
            }
        }
        if cfg.verbose {
            println!(
                "{what}: reached={reached} acked={}",
                st.acked_writes - before
            );
        }
    }
    Ok(st)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_point_survives_the_command_line() {
        let mut torn_pages = 0;
        for i in 0..128 {
            let (plan, _) = ChildPlan::for_iteration(7, i, 100, i % 2 == 0, i % 4 < 2);
            if let Some(k) = plan.kill {
                torn_pages += u32::from(k.power_loss.is_some_and(|p| p.torn_page));
                let args = plan.args(Path::new("/x"));
                let v = args
                    .iter()
                    .position(|a| a == "--kill")
                    .and_then(|p| args.get(p + 1));
                assert_eq!(v.and_then(|s| ChildPlan::parse_kill(s)), Some(k));
            }
        }
        assert!(torn_pages > 0, "--torn-pages never tore a page");
        // Without --torn-pages, never.
        for i in 0..128 {
            let (plan, _) = ChildPlan::for_iteration(7, i, 100, true, false);
            assert!(!plan
                .kill
                .is_some_and(|k| k.power_loss.is_some_and(|p| p.torn_page)));
        }
    }
}
