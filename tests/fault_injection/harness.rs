//! The fault-injection harness shared by tests/fault_injection.rs and the engine-bug
//! reproducers (see tests/fault_injection.rs for what it does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::common::rel::{
    self, copy_tree, local_kms, panic_counter, value_for, with_deadline, TestResult,
};
use sealdb::storage::fault::{FaultEnv, FaultKind, FaultOp, PowerLoss, Trigger};
use sealdb::storage::{Env, StdEnv};
use sealdb::{Db, Error, Options, Table, TableOptions, WriteBatch, WriteOptions};

pub const TABLES: [&str; 2] = ["plain", "enc"];
pub const BASE_KEYS: u64 = 16;
pub const OPS: u64 = 40;

/// Each (table, key)'s allowed states after a crash: `None` is absent.
pub type Allowed = BTreeMap<(usize, Vec<u8>), BTreeSet<Option<Vec<u8>>>>;

pub fn key(i: u64) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

pub fn tmpdir() -> std::io::Result<tempfile::TempDir> {
    match std::fs::metadata("/dev/shm") {
        Ok(m) if m.is_dir() => tempfile::tempdir_in("/dev/shm"),
        _ => tempfile::tempdir(),
    }
}

pub fn open(root: &Path, env: Arc<dyn Env>) -> sealdb::Result<(Db, Vec<Table>)> {
    let kms: Arc<dyn sealdb::kms::Kms> = Arc::new(local_kms(&root.join("kms"))?);
    let db = Db::open(root.join("db"), {
        let mut o = Options::default();
        o.write_buffer_size = 4 << 20;
        o.block_size = 256;
        o.block_cache_bytes = 16 << 10;
        o.disable_auto_compactions = true;
        o.env = env;
        o.kms = Some(kms);
        o
    })?;
    let mut tables = Vec::new();
    for (i, name) in TABLES.iter().enumerate() {
        tables.push(match db.table(name) {
            Ok(t) => t,
            Err(_) if i == 0 => db.create_table(name, TableOptions::plaintext())?,
            Err(_) => db.create_table(name, TableOptions::encrypted())?,
        });
    }
    Ok((db, tables))
}

/// The base database: `BASE_KEYS` synced keys per table, half flushed, half in the WAL.
pub fn build_base(root: &Path) -> Result<Allowed, Box<dyn std::error::Error>> {
    let (db, tables) = open(root, Arc::new(StdEnv))?;
    let mut allowed = Allowed::new();
    for i in 0..BASE_KEYS {
        for (t, table) in tables.iter().enumerate() {
            table.put_opt(key(i), value_for(i, t as u64), WriteOptions::synced())?;
            allowed.insert((t, key(i)), [Some(value_for(i, t as u64))].into());
        }
        if i == BASE_KEYS / 2 {
            db.flush()?;
        }
    }
    drop(tables);
    drop(db);
    // A torn record at the end of the newest WAL segment, as a crash mid-append leaves:
    // every open of the base truncates it (the Truncate call sites).
    let mut logs: Vec<_> = std::fs::read_dir(root.join("db"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
    });
    if let Some(last) = logs.last() {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(last)?
            .write_all(&[0x5a; 11])?;
    }
    Ok(allowed)
}

/// What one scenario saw.
#[derive(Default)]
pub struct Outcome {
    errors: u64,
    poisoned: bool,
    /// Reads under faults that returned what was never allowed.
    wrong: Vec<String>,
}

/// One key a write changes: (table, key, new state; `None` deletes).
pub type Change = (usize, Vec<u8>, Option<Vec<u8>>);

/// Applies one write's result to the allowed states.
pub fn record(allowed: &mut Allowed, out: &mut Outcome, entries: &[Change], r: sealdb::Result<()>) {
    let failed = r.is_err();
    if let Err(e) = r {
        out.errors += 1;
        out.poisoned |= matches!(e, Error::Poisoned(_));
    }
    for (t, k, state) in entries {
        let states = allowed
            .entry((*t, k.clone()))
            .or_insert_with(|| [None].into());
        if failed {
            states.insert(state.clone());
        } else {
            *states = [state.clone()].into();
        }
    }
}

pub fn workload(root: &Path, env: &FaultEnv, allowed: &mut Allowed) -> Outcome {
    let mut out = Outcome::default();
    let (db, tables) = match open(root, Arc::new(env.clone())) {
        Ok(v) => v,
        Err(_) => {
            out.errors += 1;
            env.halt();
            return out;
        }
    };
    for ((t, k), states) in allowed.iter() {
        match tables[*t].get(k) {
            Ok(v) => {
                let v = v.map(|b| b.to_vec());
                if !states.contains(&v) {
                    out.wrong.push(format!(
                        "read {t}/{:?} returned {v:?}",
                        String::from_utf8_lossy(k)
                    ));
                }
            }
            Err(_) => out.errors += 1,
        }
    }
    let mut after_first_error = 0;
    let sync = WriteOptions::synced();
    for i in 0..OPS {
        let t = (i % 2) as usize;
        match i % 8 {
            0..=3 => {
                let (k, v) = (key(100 + i), value_for(100 + i, 1));
                let r = tables[t].put_opt(&k, &v, sync);
                record(allowed, &mut out, &[(t, k, Some(v))], r);
            }
            4 => {
                let (k, v) = (key(i % BASE_KEYS), value_for(i % BASE_KEYS, 100 + i));
                let r = tables[t].put_opt(&k, &v, sync);
                record(allowed, &mut out, &[(t, k, Some(v))], r);
            }
            5 => {
                let k = key((i + 3) % BASE_KEYS);
                let r = tables[t].delete_opt(&k, sync);
                record(allowed, &mut out, &[(t, k, None)], r);
            }
            6 => {
                let mut b = WriteBatch::new();
                let (k, v) = (key(200 + i), value_for(200 + i, 2));
                let gone = key(100 + i - 6);
                b.put(&tables[0], &k, &v);
                b.put(&tables[1], &k, &v);
                b.delete(&tables[0], &gone);
                let r = db.write(&b, sync);
                let entries = [
                    (0, k.clone(), Some(v.clone())),
                    (1, k, Some(v)),
                    (0, gone, None),
                ];
                record(allowed, &mut out, &entries, r);
            }
            _ => {
                if db.flush().is_err() {
                    out.errors += 1;
                }
            }
        }
        if i == 20 {
            for name in TABLES {
                if db.compact_table(name).is_err() {
                    out.errors += 1;
                }
            }
        }
        if i == 30 {
            let r = db
                .create_table("scratch", TableOptions::encrypted())
                .and_then(|s| s.put_opt("k", "v", sync))
                .and_then(|_| db.drop_table("scratch"));
            if r.is_err() {
                out.errors += 1;
            }
        }
        if out.errors > 0 {
            after_first_error += 1;
            if after_first_error > 4 {
                break;
            }
        }
    }
    if out.poisoned {
        // Poisoned means read-only: nothing more is acknowledged.
        let r = tables[0].put_opt(b"after-poison", b"x", sync);
        if r.is_ok() {
            out.wrong
                .push("a poisoned database acknowledged a write".into());
        }
        allowed
            .entry((0, b"after-poison".to_vec()))
            .or_insert_with(|| [None].into())
            .insert(Some(b"x".to_vec()));
    }
    env.halt();
    drop(tables);
    drop(db);
    out
}

/// Reopens with the real file system and checks every key against what is allowed.
pub fn verify(root: &Path, allowed: &Allowed, what: &str) -> Result<(), String> {
    let (db, tables) = open(root, Arc::new(StdEnv))
        .map_err(|e| format!("{what}: reopen after the crash failed: {e}"))?;
    for ((t, k), states) in allowed {
        let got = tables[*t]
            .get(k)
            .map_err(|e| format!("{what}: get: {e}"))?
            .map(|b| b.to_vec());
        if !states.contains(&got) {
            return Err(format!(
                "{what}: {}/{} is {:?}, allowed {:?}",
                TABLES[*t],
                String::from_utf8_lossy(k),
                got.as_deref().map(String::from_utf8_lossy),
                states
                    .iter()
                    .map(|s| s.as_deref().map(String::from_utf8_lossy))
                    .collect::<Vec<_>>()
            ));
        }
    }
    for (t, table) in tables.iter().enumerate() {
        for item in table.iter().map_err(|e| format!("{what}: iter: {e}"))? {
            let (k, v) = item.map_err(|e| format!("{what}: scan: {e}"))?;
            let states = allowed
                .get(&(t, k.to_vec()))
                .ok_or_else(|| format!("{what}: phantom key {k:?}"))?;
            if !states.contains(&Some(v.to_vec())) {
                return Err(format!("{what}: wrong value for {k:?} in a scan"));
            }
        }
    }
    tables[1]
        .put_opt(b"after-recovery", b"ok", WriteOptions::synced())
        .map_err(|e| format!("{what}: a write after recovery failed: {e}"))?;
    drop(tables);
    db.compact_all()
        .map_err(|e| format!("{what}: compaction after recovery: {e}"))?;
    Ok(())
}

/// Calls of each kind in a fault-free run.
pub fn profile(
    base: &Path,
    allowed: &Allowed,
) -> Result<BTreeMap<FaultOp, u64>, Box<dyn std::error::Error>> {
    let dir = tmpdir()?;
    copy_tree(base, dir.path())?;
    let env = FaultEnv::new();
    let mut allowed = allowed.clone();
    let out = workload(dir.path(), &env, &mut allowed);
    assert_eq!(out.errors, 0, "the fault-free workload failed");
    assert!(out.wrong.is_empty(), "{:?}", out.wrong);
    env.crash()?;
    verify(dir.path(), &allowed, "fault-free run")?;
    Ok(FaultOp::ALL
        .iter()
        .map(|op| (*op, env.calls(*op)))
        .collect())
}

/// Per kind: scenarios run, faults injected, errors surfaced, poisoned, failures.
#[derive(Default)]
pub struct Tally {
    scenarios: u64,
    injected: u64,
    surfaced: u64,
    poisoned: u64,
}

/// One scenario: a fresh copy of the base, the fault armed, the workload, a power loss.
pub fn scenario(
    base: &Path,
    base_allowed: &Allowed,
    op: FaultOp,
    trigger: Trigger,
    kind: FaultKind,
    mode: PowerLoss,
    tally: &mut Tally,
) -> Result<(), String> {
    let what = format!("{op:?} {trigger:?} {kind:?} {mode:?}");
    let dir = tmpdir().map_err(|e| e.to_string())?;
    copy_tree(base, dir.path()).map_err(|e| e.to_string())?;
    let root = dir.path().to_path_buf();
    let env = FaultEnv::new();
    env.arm(op, trigger, kind);
    let env2 = env.clone();
    let mut allowed = base_allowed.clone();
    let (out, allowed) = with_deadline(what.clone(), 30, move || {
        let out = workload(&root, &env2, &mut allowed);
        (out, allowed)
    })?;
    if !out.wrong.is_empty() {
        return Err(format!("{what}: {}", out.wrong.join("; ")));
    }
    tally.scenarios += 1;
    tally.injected += env.injected_total();
    tally.surfaced += u64::from(out.errors > 0);
    tally.poisoned += u64::from(out.poisoned);
    env.crash_with(mode)
        .map_err(|e| format!("{what}: crash: {e}"))?;
    verify(dir.path(), &allowed, &what)
}

pub fn fault_kind(op: FaultOp, k: u64) -> FaultKind {
    match (op, k % 3) {
        (FaultOp::Read, 2) => FaultKind::BitFlip,
        (_, 1) => FaultKind::Enospc,
        _ => FaultKind::Eio,
    }
}

/// Every k of every kind in `ops`: the k-th call alone, and from the k-th on for every
/// `after_step`-th k.
pub fn run_kinds(ops: &[FaultOp], after_step: u64) -> TestResult {
    let panics_before = panic_counter().load(Ordering::SeqCst);
    let base = tmpdir()?;
    let base_allowed = build_base(base.path())?;
    let calls = profile(base.path(), &base_allowed)?;
    let again = profile(base.path(), &base_allowed)?;
    assert_eq!(calls, again, "the workload's I/O is not deterministic");
    println!("calls in a fault-free run: {calls:?}");
    let mut failures = Vec::new();
    for &op in ops {
        let n = calls.get(&op).copied().unwrap_or(0);
        let mut tally = Tally::default();
        for k in 0..n {
            let mode = PowerLoss::all_modes(k)[(k % 4) as usize];
            let mut triggers = vec![Trigger::Nth(k)];
            if k % after_step == 0 {
                triggers.push(Trigger::After(k));
            }
            for trigger in triggers {
                if let Err(e) = scenario(
                    base.path(),
                    &base_allowed,
                    op,
                    trigger,
                    fault_kind(op, k),
                    mode,
                    &mut tally,
                ) {
                    failures.push(e);
                }
            }
        }
        println!(
            "fault kind {op:?}: {n} call sites, {} scenarios, {} faults injected, {} surfaced an error, {} poisoned",
            tally.scenarios, tally.injected, tally.surfaced, tally.poisoned
        );
        assert!(
            n == 0 || tally.injected >= n,
            "{op:?}: a call site was never faulted"
        );
    }
    let panics = panic_counter().load(Ordering::SeqCst) - panics_before;
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        panics,
        0,
        "panics: {:?}",
        rel::panic_messages().lock().map(|m| m.clone())
    );
    Ok(())
}
