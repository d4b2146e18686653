//! Two recovery bugs that `tests/fault_injection.rs` found once the recovery rewrite from
//! main (76f4893) was merged, both in src/db recovery, fixed in f04c9ca. These are their
//! regressions (they run; neither is ignored), and `fault_injection.rs` fails on either
//! shape again (strict since eebd62a). Each test is one scenario of that harness,
//! deterministic.
//!
//! A. The base database has a torn record at the end of its WAL. Open no longer truncates
//!    it; after newer segments exist the old one is removed without a directory sync, a
//!    power loss brings it back (`PowerLoss::lose_unsynced_removes`), and the reopen fails
//!    with "record header cut short by the end of the file" for a segment the manifest
//!    already treats as obsolete, instead of ignoring or removing it.
//! B. A failed directory sync after a new WAL segment is created is not fatal: the segment
//!    is recorded in the manifest, the power loss removes its unsynced directory entry, and
//!    the reopen fails with "the manifest lists this WAL segment but it is missing".

mod common;
#[path = "fault_injection/harness.rs"]
#[allow(dead_code)]
mod harness;

use common::rel::TestResult;
use harness::{build_base, scenario, tmpdir, Tally};
use sealdb::storage::fault::{FaultKind, FaultOp, PowerLoss, Trigger};

fn one(op: FaultOp, k: u64, mode: PowerLoss) -> TestResult {
    let base = tmpdir()?;
    let allowed = build_base(base.path())?;
    let mut tally = Tally::default();
    scenario(
        base.path(),
        &allowed,
        op,
        Trigger::Nth(k),
        FaultKind::Eio,
        mode,
        &mut tally,
    )?;
    Ok(())
}

#[test]
fn a_resurrected_obsolete_wal_with_a_torn_tail_does_not_fail_the_reopen() -> TestResult {
    one(FaultOp::Create, 3, PowerLoss::all_modes(3)[3])
}

#[test]
fn a_failed_directory_sync_never_leaves_the_manifest_naming_a_missing_wal() -> TestResult {
    one(FaultOp::SyncDir, 24, PowerLoss::all_modes(24)[0])
}
