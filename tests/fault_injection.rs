//! I/O faults at truly every call site of a deterministic workload: a fault-free run counts
//! the calls of each kind (twice, to prove the count is deterministic), then for every kind
//! and every k the k-th call alone fails (EIO or ENOSPC; a bit flip for reads), and for a
//! sample of k every call from the k-th on. Each scenario ends in a simulated power loss (the
//! four modes of `PowerLoss` in turn) and a clean reopen with the real file system.
//!
//! The workload is deterministic: background compaction off and memtables too large to
//! fill, so flushes and compactions happen only when the workload asks (the worker thread
//! still runs them, while the caller waits). It opens a database with a plaintext and an
//! encrypted table, reads every key, then does synced puts, overwrites, deletes,
//! cross-table batches, flushes (each a WAL rotation), a compaction of both tables and a
//! table create and drop (manifest edits).
//!
//! After each scenario: no panic, no hang (30 s), every read under faults returned an error
//! or an allowed value (never wrong bytes), the reopen succeeds, every acknowledged synced
//! write is there, nothing acknowledged as deleted is back, no value appears that was
//! never written, and the database takes writes again.

mod common;
#[path = "fault_injection/harness.rs"]
mod harness;

use std::sync::Arc;

use common::rel::TestResult;
use harness::{open, run_kinds, tmpdir};
use sealdb::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};
use sealdb::{Error, WriteOptions};

#[test]
fn a_fault_at_any_write_call_loses_no_synced_write() -> TestResult {
    run_kinds(&[FaultOp::Append], 4)
}

#[test]
fn a_fault_at_any_sync_loses_no_synced_write() -> TestResult {
    run_kinds(&[FaultOp::Sync], 3)
}

#[test]
fn a_fault_at_any_create_rename_dir_sync_remove_or_truncate_loses_no_synced_write() -> TestResult {
    run_kinds(
        &[
            FaultOp::Create,
            FaultOp::Rename,
            FaultOp::SyncDir,
            FaultOp::Remove,
            FaultOp::Truncate,
        ],
        2,
    )
}

#[test]
fn a_fault_at_any_read_or_map_returns_no_wrong_data() -> TestResult {
    run_kinds(&[FaultOp::OpenRead, FaultOp::Read], 3)
}

/// ENOSPC on every write, then space comes back: what the open database does, and that
/// a reopen takes writes again with every acknowledged write kept.
#[test]
fn enospc_then_space_freed_writes_resume_after_a_reopen() -> TestResult {
    let dir = tmpdir()?;
    let root = dir.path();
    let env = FaultEnv::new();
    let (db, tables) = open(root, Arc::new(env.clone()))?;
    tables[0].put_opt("before", "1", WriteOptions::synced())?;
    env.arm(FaultOp::Append, Trigger::Always, FaultKind::Enospc);
    let full = tables[0].put_opt("full", "x", WriteOptions::synced());
    assert!(full.is_err(), "a write with the disk full succeeded");
    env.disarm_all();
    // Space is back: the open database stays read-only (poisoned) or takes writes.
    let in_process = tables[0].put_opt("freed", "2", WriteOptions::synced());
    println!("after ENOSPC and space freed, without a reopen: {in_process:?}");
    if let Err(e) = &in_process {
        assert!(
            matches!(e, Error::Poisoned(_)),
            "expected Poisoned, got {e}"
        );
    }
    drop(tables);
    drop(db);
    let (_db, tables) = open(root, Arc::new(env.clone()))?;
    assert_eq!(tables[0].get("before")?.as_deref(), Some(&b"1"[..]));
    if in_process.is_ok() {
        assert_eq!(tables[0].get("freed")?.as_deref(), Some(&b"2"[..]));
    }
    tables[0].put_opt("after-reopen", "3", WriteOptions::synced())?;
    assert_eq!(tables[0].get("after-reopen")?.as_deref(), Some(&b"3"[..]));
    Ok(())
}
