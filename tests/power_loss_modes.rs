//! Every power-loss mode of the fault env against the engine: synced overwrites across
//! WAL rotations, flushes and compactions, then a power loss in each mode at many points;
//! after each, every acknowledged synced write is there with its latest value.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::rel::{local_kms, TestResult};
use sealdb::storage::fault::{FaultEnv, FaultOp, FileClass, KillPoint, PowerLoss};
use sealdb::{Db, Options, TableOptions, WriteOptions};

fn open(root: &std::path::Path, env: &FaultEnv) -> sealdb::Result<Db> {
    let kms: Arc<dyn sealdb::kms::Kms> = Arc::new(local_kms(&root.join("kms"))?);
    Db::open(root.join("db"), {
        let mut o = Options::default();
        o.write_buffer_size = 2 << 10;
        o.block_size = 256;
        o.l0_compaction_trigger = 2;
        o.env = Arc::new(env.clone());
        o.kms = Some(kms);
        o
    })
}

/// Writes `n` synced overwrites of 16 keys (stopping at `halt`, if given: the power goes
/// at that call), loses power in `mode`, and checks.
pub fn run(mode: PowerLoss, n: u64, halt: Option<KillPoint>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let env = FaultEnv::new();
    // Per key: the acknowledged value, and one that failed after it (may have landed).
    let mut acked: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    {
        let db = open(dir.path(), &env).map_err(|e| e.to_string())?;
        let t = db
            .create_table("t", TableOptions::plaintext())
            .map_err(|e| e.to_string())?;
        if let Some(p) = halt {
            env.set_halt_point(p);
        }
        for i in 0..n {
            let k = format!("key{:02}", i % 16);
            let v = format!("value-{i}-{}", "x".repeat((i % 50) as usize));
            let e = acked.entry(k.clone()).or_default();
            match t.put_opt(&k, &v, WriteOptions::synced()) {
                Ok(()) => *e = (Some(v), None),
                Err(_) if env.is_halted() => {
                    e.1 = Some(v);
                    break;
                }
                Err(err) => return Err(format!("put {i}: {err}")),
            }
        }
        env.halt();
    }
    env.crash_with(mode).map_err(|e| e.to_string())?;
    let db = open(dir.path(), &env).map_err(|e| format!("{mode:?} n={n}: reopen: {e}"))?;
    let t = db
        .table("t")
        .map_err(|e| format!("{mode:?} n={n}: table: {e}"))?;
    for (k, (v, maybe)) in &acked {
        let got = t
            .get(k)
            .map_err(|e| e.to_string())?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        if got != *v && (maybe.is_none() || got != *maybe) {
            return Err(format!(
                "{mode:?} n={n} halt={halt:?}: {k} is {got:?}, acknowledged {v:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn every_power_loss_mode_keeps_every_synced_write() -> TestResult {
    let mut failures = Vec::new();
    for n in [1, 7, 60, 150, 300] {
        for (m, mode) in PowerLoss::all_modes(n).into_iter().enumerate() {
            if let Err(e) = run(mode, n, None) {
                failures.push(format!("mode {m}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// The power goes at the k-th sync, create, rename, directory sync or removal of each
/// class of file, in each mode.
#[test]
fn power_loss_at_any_sync_or_entry_change_keeps_every_synced_write() -> TestResult {
    let mut failures = Vec::new();
    let mut runs = 0;
    for op in [
        FaultOp::Sync,
        FaultOp::Create,
        FaultOp::Rename,
        FaultOp::SyncDir,
        FaultOp::Remove,
    ] {
        for file in [
            FileClass::Table,
            FileClass::Wal,
            FileClass::Manifest,
            FileClass::Current,
        ] {
            for after in 0..2u64 {
                let modes = PowerLoss::all_modes(after);
                for m in [after as usize, after as usize + 2] {
                    let mode = modes[m];
                    let p = KillPoint {
                        op,
                        file,
                        after,
                        power_loss: None,
                    };
                    runs += 1;
                    if let Err(e) = run(mode, 200, Some(p)) {
                        failures.push(format!("mode {m}: {e}"));
                    }
                }
            }
        }
    }
    println!("{runs} power losses at halt points");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
