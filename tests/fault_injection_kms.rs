//! The local KMS's keystore and audit log under I/O faults and power losses, through the
//! same `Env` seam as the engine: every write, sync, rename, directory sync and create
//! of a call is faulted (EIO and ENOSPC) or made the instant the power goes, in every
//! power-loss mode. After each: the call returned a typed error or succeeded; the KMS
//! reopens; no key that existed before, or whose creation was acknowledged, is lost or
//! unreadable; and every call that succeeded has its event in the audit trail.

mod common;

use std::sync::Arc;

use common::kms::*;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    Caller, CreateKeyRequest, EncryptionContext, Kms, KmsError, LocalKms, Principal,
};
use sealdb::storage::fault::{
    FaultEnv, FaultKind, FaultOp, FileClass, KillPoint, PowerLoss, Trigger,
};
use serde_json::Value;

const PASSPHRASE: &str = "correct horse battery staple";
/// The kinds of call a KMS call makes on its files.
const WRITE_OPS: [FaultOp; 6] = [
    FaultOp::Create,
    FaultOp::Append,
    FaultOp::Sync,
    FaultOp::Rename,
    FaultOp::SyncDir,
    FaultOp::Read,
];

fn alice() -> Caller {
    Caller::direct(Principal::user(ACCOUNT, "alice"))
}

fn open_on(
    dir: &std::path::Path,
    env: &FaultEnv,
    clock: &ManualClock,
) -> Result<LocalKms, KmsError> {
    LocalKms::open(
        dir,
        options(clock, PASSPHRASE).with_env(Arc::new(env.clone())),
    )
}

/// A KMS with one acknowledged key and a blob sealed under it.
struct Before {
    key_id: String,
    blob: Vec<u8>,
    ctx: EncryptionContext,
}

fn set_up(kms: &LocalKms) -> Result<Before, KmsError> {
    let key = kms.create_key(&alice(), CreateKeyRequest::new("before"))?;
    let ctx = EncryptionContext::for_table("Before", ACCOUNT);
    let blob = kms.encrypt(&alice(), &key.key_id, b"acknowledged", &ctx)?;
    Ok(Before {
        key_id: key.key_id,
        blob,
        ctx,
    })
}

fn events(kms: &LocalKms, name: &str) -> Result<Vec<Value>, KmsError> {
    let q = sealdb::kms::AuditQuery {
        event_name: Some(name.to_owned()),
        ..Default::default()
    };
    kms.audit().query(&q)
}

/// After a crash: the KMS opens, the key from before decrypts its blob, a key whose
/// creation was acknowledged is there, and every acknowledged call is in the trail.
fn check_after(
    kms: &LocalKms,
    before: &Before,
    created: Option<&str>,
    what: &str,
) -> Result<(), String> {
    let back = kms
        .decrypt(&alice(), &before.blob, &before.ctx, None)
        .map_err(|e| format!("{what}: the key from before cannot decrypt: {e}"))?;
    if &back.plaintext[..] != b"acknowledged" {
        return Err(format!("{what}: wrong plaintext"));
    }
    let creates = events(kms, "CreateKey").map_err(|e| format!("{what}: query: {e}"))?;
    let shows = |id: &str| {
        creates
            .iter()
            .any(|e| e.get("errorCode").is_none() && e.to_string().contains(id))
    };
    if !shows(&before.key_id) {
        return Err(format!(
            "{what}: the acknowledged CreateKey is not in the trail"
        ));
    }
    if let Some(id) = created {
        kms.describe_key(&alice(), id)
            .map_err(|e| format!("{what}: key {id}, acknowledged, is lost: {e}"))?;
        if !shows(id) {
            return Err(format!(
                "{what}: CreateKey of {id} succeeded but is not in the trail"
            ));
        }
    }
    let encrypts = events(kms, "Encrypt").map_err(|e| format!("{what}: query: {e}"))?;
    if encrypts.is_empty() {
        return Err(format!(
            "{what}: the acknowledged Encrypt is not in the trail"
        ));
    }
    Ok(())
}

/// How many calls of each op one `create_key` makes on the KMS's files.
fn calls_of_a_create_key() -> Result<Vec<(FaultOp, u64)>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let env = FaultEnv::new();
    let clock = ManualClock::default();
    let kms = open_on(dir.path(), &env, &clock)?;
    set_up(&kms)?;
    let before: Vec<u64> = WRITE_OPS.iter().map(|op| env.calls(*op)).collect();
    kms.create_key(&alice(), CreateKeyRequest::new("during"))?;
    Ok(WRITE_OPS
        .iter()
        .zip(before)
        .map(|(op, b)| (*op, env.calls(*op) - b))
        .collect())
}

/// One scenario: set up, `arm` the env, create a key, power loss in `mode`, reopen, check.
fn one(arm: impl FnOnce(&FaultEnv), mode: PowerLoss, what: &str) -> Result<bool, String> {
    let err = |e: &dyn std::fmt::Display| format!("{what}: {e}");
    let dir = tempfile::tempdir().map_err(|e| err(&e))?;
    let env = FaultEnv::new();
    let clock = ManualClock::default();
    let (before, created) = {
        let kms = open_on(dir.path(), &env, &clock).map_err(|e| err(&e))?;
        let before = set_up(&kms).map_err(|e| err(&e))?;
        arm(&env);
        let created = match kms.create_key(&alice(), CreateKeyRequest::new("during")) {
            Ok(m) => Some(m.key_id),
            Err(KmsError::Io { .. } | KmsError::AuditFailed(_) | KmsError::Keystore(_)) => None,
            Err(other) => return Err(format!("{what}: untyped or unexpected error: {other:?}")),
        };
        // A later call on the same KMS: it works, or is refused with a typed error.
        match kms.describe_key(&alice(), &before.key_id) {
            Ok(_) | Err(KmsError::Keystore(_) | KmsError::AuditFailed(_) | KmsError::Io { .. }) => {
            }
            Err(other) => return Err(format!("{what}: after the fault: {other:?}")),
        }
        env.halt();
        (before, created)
    };
    env.crash_with(mode).map_err(|e| err(&e))?;
    let kms = open_on(dir.path(), &env, &clock).map_err(|e| format!("{what}: reopen: {e}"))?;
    check_after(&kms, &before, created.as_deref(), what)?;
    Ok(created.is_some())
}

#[test]
fn a_fault_at_every_keystore_and_audit_call_loses_no_key_and_no_event() -> TestResult {
    let counts = calls_of_a_create_key()?;
    println!("calls of one CreateKey: {counts:?}");
    assert!(
        counts.iter().all(|(op, n)| *n > 0 || *op == FaultOp::Read),
        "a CreateKey writes the keystore and the trail: {counts:?}"
    );
    let (mut runs, mut ok, mut failures) = (0, 0, Vec::new());
    for (op, n) in counts {
        for k in 0..n {
            for (m, mode) in PowerLoss::all_modes(k).into_iter().enumerate() {
                let kind = if (k + m as u64).is_multiple_of(2) {
                    FaultKind::Eio
                } else {
                    FaultKind::Enospc
                };
                let what = format!("{op:?} #{k} {kind:?}, mode {m}");
                runs += 1;
                match one(|env| env.arm(op, Trigger::Nth(k), kind), mode, &what) {
                    Ok(acked) => ok += u32::from(acked),
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    println!("{runs} faulted CreateKey calls, {ok} acknowledged anyway");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        ok < runs,
        "no fault ever failed a call: the faults did not reach the KMS"
    );
    Ok(())
}

#[test]
fn a_power_loss_at_every_keystore_and_audit_call_loses_no_key_and_no_event() -> TestResult {
    let counts = calls_of_a_create_key()?;
    let (mut runs, mut failures) = (0, Vec::new());
    for (op, n) in counts {
        for k in 0..n {
            for (m, mode) in PowerLoss::all_modes(k).into_iter().enumerate() {
                let point = KillPoint {
                    op,
                    file: FileClass::Other,
                    after: k,
                    power_loss: None,
                };
                runs += 1;
                let what = format!("power loss at {op:?} #{k}, mode {m}");
                if let Err(e) = one(|env| env.set_halt_point(point), mode, &what) {
                    failures.push(e);
                }
            }
        }
    }
    println!("{runs} power losses inside CreateKey");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Read-only calls write only the trail: each one that succeeds has its event, through a
/// fault of every audit write and a power loss after it.
#[test]
fn every_read_only_call_that_succeeded_is_in_the_trail() -> TestResult {
    let (mut runs, mut failed_calls, mut failures) = (0, 0, Vec::new());
    for op in [
        FaultOp::Create,
        FaultOp::Append,
        FaultOp::Sync,
        FaultOp::SyncDir,
    ] {
        for k in 0..6u64 {
            let dir = tempfile::tempdir()?;
            let env = FaultEnv::new();
            let clock = ManualClock::default();
            let mut acked = Vec::new();
            let before = {
                let kms = open_on(dir.path(), &env, &clock)?;
                let before = set_up(&kms)?;
                env.arm(op, Trigger::Nth(k), FaultKind::Eio);
                for i in 0..6 {
                    let table = format!("T{i}");
                    let ctx = EncryptionContext::for_table(&table, ACCOUNT);
                    match kms.encrypt(&alice(), &before.key_id, b"x", &ctx) {
                        Ok(_) => acked.push(table),
                        Err(KmsError::AuditFailed(_)) => failed_calls += 1,
                        Err(other) => failures.push(format!("{op:?} #{k}: {other:?}")),
                    }
                }
                env.halt();
                before
            };
            runs += 1;
            env.crash_with(PowerLoss::all_modes(k)[(k % 6) as usize])?;
            let kms = open_on(dir.path(), &env, &clock)?;
            if let Err(e) = check_after(&kms, &before, None, &format!("{op:?} #{k}")) {
                failures.push(e);
            }
            for table in &acked {
                let q = sealdb::kms::AuditQuery {
                    event_name: Some("Encrypt".into()),
                    table: Some(table.clone()),
                    ..Default::default()
                };
                if kms.audit().query(&q)?.is_empty() {
                    failures.push(format!(
                        "{op:?} #{k}: Encrypt for {table} succeeded, not in the trail"
                    ));
                }
            }
            // One fault costs one call: the trail moves to a new file and goes on.
            if acked.len() < 5 {
                failures.push(format!(
                    "{op:?} #{k}: only {} of 6 calls succeeded",
                    acked.len()
                ));
            }
        }
    }
    println!("{runs} runs, {failed_calls} calls refused for want of their event");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(failed_calls > 0, "no audit fault ever refused a call");
    Ok(())
}

/// A failed append leaves part of a line; the trail must stay readable after it (the next
/// event must not be written after the torn line, where it would damage the file).
#[test]
fn a_torn_audit_line_never_ends_up_in_the_middle_of_a_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let env = FaultEnv::new();
    let clock = ManualClock::default();
    let kms = open_on(dir.path(), &env, &clock)?;
    let before = set_up(&kms)?;
    env.arm(FaultOp::Append, Trigger::Nth(0), FaultKind::Enospc);
    assert!(matches!(
        kms.describe_key(&alice(), &before.key_id),
        Err(KmsError::AuditFailed(_))
    ));
    kms.describe_key(&alice(), &before.key_id)?;
    // Two DescribeKey calls refused or acknowledged, the second in the trail.
    assert_eq!(events(&kms, "DescribeKey")?.len(), 1);
    drop(kms);
    // And after a torn-tail power loss and a reopen, still readable with more events.
    env.crash_with(PowerLoss {
        torn_tail: true,
        ..PowerLoss::default()
    })?;
    let kms = open_on(dir.path(), &env, &clock)?;
    kms.describe_key(&alice(), &before.key_id)?;
    assert_eq!(events(&kms, "DescribeKey")?.len(), 2);
    check_after(&kms, &before, None, "torn line")?;
    Ok(())
}

/// The default constructor still uses the real file system.
#[test]
fn the_default_options_use_the_real_file_system() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms = open(dir.path(), &clock)?;
    set_up(&kms)?;
    assert!(dir.path().join(sealdb::kms::KEYSTORE_FILE).exists());
    assert!(std::fs::read_dir(kms.audit().dir())?.count() >= 1);
    Ok(())
}
