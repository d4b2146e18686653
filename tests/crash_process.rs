//! Process crashes: a child process writes with `sync: true` and prints each acknowledged
//! key; the parent kills it with SIGKILL at a random moment (while it opens, writes,
//! rotates the WAL or flushes), reopens, and checks that every acknowledged key is there
//! with its value and that no key appears that was never written.
//!
//! The child is this test binary again, run with `SEALDB_CRASH_CHILD_DIR` set.
//! `SEALDB_CRASH_ITERATIONS` sets the number of kills (default 40; `scripts/crash-loop.sh`
//! runs many more).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::rel::{open, value_for, TestResult};
use rand::Rng;
use sealdb::storage::StdEnv;
use sealdb::{Db, TableOptions, WriteBatch, WriteOptions};

const CHILD_DIR: &str = "SEALDB_CRASH_CHILD_DIR";
const CHILD_START: &str = "SEALDB_CRASH_CHILD_START";
const TABLES: [&str; 2] = ["plain", "enc"];

fn key(i: u64) -> Vec<u8> {
    format!("k{i:010}").into_bytes()
}

fn open_db(root: &Path) -> sealdb::Result<Db> {
    open(&root.join("db"), Arc::new(StdEnv), Some(&root.join("kms")))
}

/// The child: writes keys `start..` forever, alternating tables, every fifth write an
/// atomic batch over both; prints `ACK <i>` once each synced write returns.
fn child(root: &Path, start: u64) -> TestResult {
    let db = open_db(root)?;
    let plain = match db.table(TABLES[0]) {
        Ok(t) => t,
        Err(_) => db.create_table(TABLES[0], TableOptions::plaintext())?,
    };
    let enc = match db.table(TABLES[1]) {
        Ok(t) => t,
        Err(_) => db.create_table(TABLES[1], TableOptions::encrypted())?,
    };
    println!("READY");
    let out = std::io::stdout();
    for i in start.. {
        if i % 5 == 0 {
            let mut b = WriteBatch::new();
            b.put(&plain, key(i), value_for(i, 0));
            b.put(&enc, key(i), value_for(i, 0));
            db.write(&b, WriteOptions::synced())?;
        } else {
            let t = if i % 2 == 0 { &plain } else { &enc };
            t.put_opt(key(i), value_for(i, 0), WriteOptions::synced())?;
        }
        let mut lock = out.lock();
        writeln!(lock, "ACK {i}")?;
        lock.flush()?;
    }
    Ok(())
}

#[test]
fn child_writer() -> TestResult {
    // Only does something when run as the child.
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return Ok(());
    };
    let start: u64 = std::env::var(CHILD_START)?.parse()?;
    child(Path::new(&dir), start)
}

/// Which tables key `i` was written to.
fn tables_of(i: u64) -> &'static [&'static str] {
    if i.is_multiple_of(5) {
        &TABLES
    } else if i.is_multiple_of(2) {
        &TABLES[..1]
    } else {
        &TABLES[1..]
    }
}

/// Runs one child until a random moment, kills it, and returns the acknowledged indices
/// and the highest index it may have attempted.
fn run_child(
    root: &Path,
    start: u64,
    kill_after: Duration,
) -> Result<(Vec<u64>, bool), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, root)
        .env(CHILD_START, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        let mut ready = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.ends_with("READY") {
                ready = true;
            } else if let Some(n) = line.strip_prefix("ACK ") {
                if let Ok(n) = n.trim().parse::<u64>() {
                    acked.push(n);
                }
            }
        }
        (acked, ready)
    });
    let deadline = Instant::now() + kill_after;
    loop {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err)?;
            }
            return Err(format!("the child exited by itself ({status}): {err}").into());
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL on unix.
    child.kill()?;
    child.wait()?;
    let (acked, ready) = reader.join().map_err(|_| "reader thread panicked")?;
    Ok((acked, ready))
}

/// Every acknowledged key is present with its value; every present key was written.
fn verify(root: &Path, acked: &BTreeMap<u64, ()>, attempted_max: u64) -> TestResult {
    let db = open_db(root)?;
    let tables = db.tables();
    for name in TABLES {
        if !tables.iter().any(|t| t == name) {
            assert!(
                acked.is_empty(),
                "table {name} lost after acknowledged writes"
            );
            continue;
        }
        let t = db.table(name)?;
        for &i in acked.keys() {
            if tables_of(i).contains(&name) {
                let got = t.get(key(i))?;
                assert_eq!(
                    got.as_deref(),
                    Some(value_for(i, 0).as_slice()),
                    "{name}: acknowledged key {i} lost or wrong"
                );
            }
        }
        for item in t.iter()? {
            let (k, v) = item?;
            let s = std::str::from_utf8(&k)?;
            let i: u64 = s.strip_prefix('k').ok_or("foreign key")?.parse()?;
            assert!(i <= attempted_max, "{name}: phantom key {i}");
            assert!(
                tables_of(i).contains(&name),
                "{name}: key {i} in the wrong table"
            );
            assert_eq!(
                v.as_ref(),
                value_for(i, 0).as_slice(),
                "{name}: key {i} has a wrong value"
            );
        }
    }
    Ok(())
}

fn iterations() -> u64 {
    std::env::var("SEALDB_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

#[test]
fn sigkill_loses_no_acknowledged_write() -> TestResult {
    if std::env::var(CHILD_DIR).is_ok() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let root: PathBuf = dir.path().to_path_buf();
    // Seeded and printed, so the kill times of a failing run can be replayed
    // (`SEALDB_CRASH_SEED`); `sealdb-stress crash` is the deeper loop.
    let seed: u64 = std::env::var("SEALDB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("crash test seed {seed} (replay with SEALDB_CRASH_SEED={seed})");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut acked = BTreeMap::new();
    let mut next = 0u64;
    let mut attempted_max = 0u64;
    let mut killed_while_writing = 0;
    let n = iterations();
    for iter in 0..n {
        // Mostly mid-write; sometimes during open.
        let ms = if iter % 4 == 0 {
            rng.gen_range(5..150)
        } else {
            rng.gen_range(150..900)
        };
        let (new, ready) = run_child(&root, next, Duration::from_millis(ms))?;
        if ready {
            killed_while_writing += 1;
        }
        let last = new.last().copied();
        for i in new {
            acked.insert(i, ());
        }
        // The child may have written (not acknowledged) the key after its last ack.
        let attempted = last.map_or(next, |l| l + 1);
        attempted_max = attempted_max.max(attempted);
        verify(&root, &acked, attempted_max)
            .map_err(|e| format!("seed {seed}, kill {iter}: {e}"))?;
        // Skip past the in-flight key so each index is written at most once.
        next = attempted + 1;
    }
    println!(
        "crash test: {n} SIGKILLs ({killed_while_writing} mid-write), {} acknowledged writes checked",
        acked.len()
    );
    assert!(
        acked.len() as u64 > n,
        "the children acknowledged too few writes"
    );
    Ok(())
}
