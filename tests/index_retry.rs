//! A global index's backfill that fails on a transient error (an I/O error reading the
//! table's files) is retried in the same process, with a backoff, and completes exact once
//! the fault is gone; a permanent error (a corrupt read) leaves the index failed, with its
//! error in its status, without retries.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestResult;
use sealdb::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};
use sealdb::{Db, Error, IndexSpec, IndexStatus, Options, Table, TableOptions};

const ITEMS: u64 = 600;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn options(env: &FaultEnv) -> Options {
    let mut o = Options::default();
    o.env = Arc::new(env.clone());
    o
}

/// A database whose table `items` is all in files (none in memtables) and not yet read
/// since the open (no reader or block cached): the backfill must read the files.
fn populated(dir: &std::path::Path, env: &FaultEnv) -> Res<Db> {
    {
        let db = Db::open(dir, options(env))?;
        let t = db.create_table("items", TableOptions::plaintext())?;
        for i in 0..ITEMS {
            t.put(format!("i{i:04}"), format!(r#"{{"g":"g{:02}"}}"#, i % 37))?;
        }
        db.flush()?;
    }
    Ok(Db::open(dir, options(env))?)
}

fn status(db: &Db) -> Res<IndexStatus> {
    let t = db.table("items")?;
    Ok(t.indexes().into_iter().next().ok_or("no index")?)
}

/// A populated database whose every `op` fails with `kind`, and the backfill of index
/// `by_g` (over `/g`) of its table started under that fault.
fn backfill_under_fault(
    op: FaultOp,
    kind: FaultKind,
) -> Res<(tempfile::TempDir, FaultEnv, Db, Table)> {
    let dir = tempfile::tempdir()?;
    let env = FaultEnv::new();
    let db = populated(dir.path(), &env)?;
    let t = db.table("items")?;
    env.arm(op, Trigger::Always, kind);
    t.start_index("by_g", &IndexSpec::json_pointer("/g"))?;
    Ok((dir, env, db, t))
}

/// Waits until `f` holds of the index's status (at most 20 s).
fn wait_for(db: &Db, f: impl Fn(&IndexStatus) -> bool) -> Res<IndexStatus> {
    let start = Instant::now();
    loop {
        let s = status(db)?;
        if f(&s) {
            return Ok(s);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("index status never got there: {s:?}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_transient_backfill_failure_is_retried_in_process() -> TestResult {
    // Every open of a file for reading fails: the backfill cannot read the table.
    let (_dir, env, db, t) = backfill_under_fault(FaultOp::OpenRead, FaultKind::Eio)?;
    let s = wait_for(&db, |s| s.backfill_retrying)?;
    assert!(!s.ready);
    let why = s
        .backfill_error
        .clone()
        .ok_or("a retrying index names its error")?;
    assert!(why.contains("injected"), "{why}");
    assert!(env.injected(FaultOp::OpenRead) > 0);
    // It keeps retrying while the fault lasts (a second failed attempt is reported).
    wait_for(&db, |s| {
        s.backfill_error
            .as_deref()
            .is_some_and(|e| e.starts_with("attempt 2 failed"))
    })?;
    env.disarm_all();
    t.wait_index("by_g")?;
    let s = status(&db)?;
    assert!(
        s.ready && !s.backfill_retrying && s.backfill_error.is_none(),
        "{s:?}"
    );
    let idx = t.index("by_g")?;
    let c = idx.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (ITEMS, 0, 0), "{c:?}");
    assert_eq!(
        idx.prefix("g05")?.count() as u64,
        (0..ITEMS).filter(|i| i % 37 == 5).count() as u64
    );
    Ok(())
}

#[test]
fn a_permanent_backfill_failure_is_left_failed_with_its_error() -> TestResult {
    // Every read returns flipped bits: the table's blocks fail their checksums.
    let (dir, env, db, t) = backfill_under_fault(FaultOp::Read, FaultKind::BitFlip)?;
    let waited = t.wait_index("by_g");
    env.disarm_all();
    match waited {
        Err(Error::IndexUnavailable { reason, .. }) => {
            assert!(reason.contains("backfill failed"), "{reason}")
        }
        other => return Err(format!("a corrupt read gave {other:?}").into()),
    }
    let s = status(&db)?;
    assert!(!s.ready && !s.backfill_retrying, "{s:?}");
    let why = s.backfill_error.ok_or("a failed index names its error")?;
    // Not retried: the first attempt's error, with no attempt count.
    assert!(!why.contains("attempt"), "{why}");
    assert!(matches!(
        t.index("by_g"),
        Err(Error::IndexUnavailable { .. })
    ));
    // The next open resumes it, and it completes.
    drop(t);
    drop(db);
    let db = Db::open(dir.path(), options(&env))?;
    let t = db.table("items")?;
    t.wait_index("by_g")?;
    let c = t.index("by_g")?.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (ITEMS, 0, 0), "{c:?}");
    Ok(())
}
