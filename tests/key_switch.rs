//! Switching a table's KMS key (DynamoDB's UpdateTable with SSESpecification): the same
//! table key re-wrapped under the new key, a grant on the new key, the old one retired,
//! all in the audit trail; the table readable and writable throughout; and a crash at any
//! file operation of the switch leaves the table under exactly one of the two keys, with
//! every acknowledged write and exactly one engine grant, on that key.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{EncryptedFixture, TestResult};
use sealdb::clock::ManualClock;
use sealdb::kms::{
    AuditQuery, Caller, CreateKeyRequest, Kms, KmsError, LocalKms, Principal, SERVICE_DEFAULT_ALIAS,
};
use sealdb::storage::fault::{FaultEnv, FaultOp, FileClass, KillPoint};
use sealdb::{Db, Options, TableOptions, WriteOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;
const TABLE: &str = "Orders";

fn admin() -> Caller {
    Caller::direct(Principal::assumed_role(ACCOUNT, "Admin", "user01"))
}

fn new_key(kms: &LocalKms) -> Result<String, KmsError> {
    Ok(kms
        .create_key(&admin(), CreateKeyRequest::new("orders"))?
        .arn)
}

fn key_of(db: &Db) -> Result<(String, String), Box<dyn std::error::Error>> {
    let s = db.encryption_status();
    let t = s.iter().find(|s| s.table == TABLE).ok_or("no table")?;
    Ok((
        t.key_arn.clone().ok_or("no key")?,
        t.grant_id.clone().ok_or("no grant")?,
    ))
}

/// The engine's grants for the table on `key`.
fn table_grants(kms: &LocalKms, key: &str) -> Result<Vec<String>, KmsError> {
    Ok(kms
        .list_grants(&admin(), key)?
        .into_iter()
        .filter(|g| g.name.as_deref() == Some(&format!("sealdb-table-{TABLE}")))
        .map(|g| g.grant_id)
        .collect())
}

fn event_names(kms: &LocalKms) -> Result<Vec<String>, KmsError> {
    Ok(kms
        .audit()
        .query(&AuditQuery::default())?
        .iter()
        .filter_map(|e| e["eventName"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn default_to_customer_key_and_back_while_a_writer_runs() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let customer = new_key(&fx.kms)?;
    let default = fx.kms.describe_key(&admin(), SERVICE_DEFAULT_ALIAS)?.arn;
    let db = fx.open()?;
    let t = db.create_table(TABLE, TableOptions::encrypted())?;
    for i in 0..200u64 {
        t.put(format!("pre{i:04}"), i.to_string())?;
    }
    db.flush()?;
    let (arn0, grant0) = key_of(&db)?;
    assert_eq!(arn0, default);
    let sst_before = common::files_with_ext(&fx.db_path(), "sst");

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (t, stop, acked) = (t.clone(), Arc::clone(&stop), Arc::clone(&acked));
        std::thread::spawn(move || -> sealdb::Result<()> {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) || i < 50 {
                t.put_opt(format!("w{i:06}"), i.to_string(), WriteOptions::synced())?;
                i += 1;
                acked.store(i, Ordering::Release);
            }
            Ok(())
        })
    };
    while acked.load(Ordering::Acquire) < 20 {
        std::thread::yield_now();
    }
    let before_events = event_names(&fx.kms)?.len();
    assert_eq!(db.update_table_key(TABLE, Some(&customer))?, customer);
    let (arn1, grant1) = key_of(&db)?;
    assert_eq!(arn1, customer);
    assert_ne!(grant1, grant0);
    assert_eq!(table_grants(&fx.kms, &customer)?, vec![grant1.clone()]);
    assert!(
        table_grants(&fx.kms, &default)?.is_empty(),
        "old grant retired"
    );
    // DynamoDB's sequence: CreateGrant on the new key, ReEncrypt, RetireGrant of the old.
    let names = event_names(&fx.kms)?;
    let switch: Vec<&str> = names[before_events..]
        .iter()
        .map(String::as_str)
        .filter(|n| ["CreateGrant", "ReEncrypt", "RetireGrant"].contains(n))
        .collect();
    assert_eq!(switch, ["CreateGrant", "ReEncrypt", "RetireGrant"]);
    let mid = acked.load(Ordering::Acquire);

    // Same key again: nothing happens.
    assert_eq!(db.update_table_key(TABLE, Some(&customer))?, customer);
    assert_eq!(key_of(&db)?.1, grant1);

    while acked.load(Ordering::Acquire) < mid + 20 {
        std::thread::yield_now();
    }
    assert_eq!(db.update_table_key(TABLE, None)?, default);
    let (arn2, grant2) = key_of(&db)?;
    assert_eq!(arn2, default);
    assert!(table_grants(&fx.kms, &customer)?.is_empty());
    assert_eq!(table_grants(&fx.kms, &default)?, vec![grant2]);
    stop.store(true, Ordering::Release);
    writer.join().map_err(|_| "writer panicked")??;
    let n = acked.load(Ordering::Acquire);
    assert!(n >= mid + 20);

    // No data was rewritten by the switches: the flushed files are still there.
    let sst_after = common::files_with_ext(&fx.db_path(), "sst");
    assert!(sst_before.iter().all(|f| sst_after.contains(f)));
    // The customer key no longer matters to the table: disabling it changes nothing.
    fx.kms.disable_key(&admin(), &customer)?;
    let check = |t: &sealdb::Table| -> TestResult {
        for i in 0..200u64 {
            assert_eq!(
                t.get(format!("pre{i:04}"))?.as_deref(),
                Some(i.to_string().as_bytes())
            );
        }
        for i in 0..n {
            assert_eq!(
                t.get(format!("w{i:06}"))?.as_deref(),
                Some(i.to_string().as_bytes())
            );
        }
        Ok(())
    };
    check(&t)?;
    drop((t, db));
    let db = fx.open()?;
    assert_eq!(key_of(&db)?.0, default);
    check(&db.table(TABLE)?)?;
    Ok(())
}

#[test]
fn a_principal_who_cannot_use_the_table_key_cannot_switch_it() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let customer = new_key(&fx.kms)?;
    let db = fx.open()?;
    db.create_table(TABLE, TableOptions::encrypted_with(&customer))?
        .put("k", "v")?;
    let deny = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "admins", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/Admin")},
             "Action": "kms:*", "Resource": "*"}
        ]
    })
    .to_string();
    fx.kms.put_key_policy(&admin(), &customer, &deny)?;
    let mallory = db.as_principal(Principal::user(ACCOUNT, "mallory"))?;
    let err = mallory
        .update_table_key(TABLE, None)
        .err()
        .ok_or("switched without access")?;
    assert!(
        matches!(
            err,
            sealdb::Error::Kms(KmsError::AccessDenied { .. })
                | sealdb::Error::TableUnavailable { .. }
        ),
        "{err:?}"
    );
    assert_eq!(key_of(&db)?.0, customer);
    let plain = db.create_table("Plain", TableOptions::plaintext())?;
    drop(plain);
    assert!(db.update_table_key("Plain", Some(&customer)).is_err());
    Ok(())
}

#[test]
fn a_switch_during_a_table_key_rotation_moves_every_version_to_the_new_key() -> TestResult {
    // The older table-key version is wrapped under the current KMS key too: the switch
    // re-encrypts it to the new key in the same record, so that with the old KMS key
    // disabled every file (under either version) still opens, after reopen as well.
    let fx = EncryptedFixture::new()?;
    let (old_key, new_key_arn) = (new_key(&fx.kms)?, new_key(&fx.kms)?);
    let mut opts = fx.options();
    opts.disable_auto_compactions = true;
    let db = Db::open(fx.db_path(), opts.clone())?;
    let t = db.create_table(TABLE, TableOptions::encrypted_with(&old_key))?;
    for i in 0..200u32 {
        t.put(format!("k{i:04}"), format!("v{i}"))?;
    }
    db.flush()?;
    db.rotate_table_key(TABLE)?;
    for i in 200..300u32 {
        t.put(format!("k{i:04}"), format!("v{i}"))?;
    }
    let status = |db: &Db| {
        db.table_key_status()
            .into_iter()
            .find(|s| s.table == TABLE)
            .ok_or("no key status")
    };
    assert_eq!(status(&db)?.live_versions, 2, "the rotation is in progress");
    assert_eq!(db.update_table_key(TABLE, Some(&new_key_arn))?, new_key_arn);
    assert_eq!(key_of(&db)?.0, new_key_arn);
    assert_eq!(status(&db)?.live_versions, 2, "the rotation goes on");
    let read_all = |db: &Db, when: &str| -> TestResult {
        let t = db.table(TABLE)?;
        for i in 0..300u32 {
            let got = t.get(format!("k{i:04}"))?;
            assert_eq!(
                got.as_deref(),
                Some(format!("v{i}").as_bytes()),
                "{when}: {i}"
            );
        }
        Ok(())
    };
    read_all(&db, "after the switch")?;
    drop((t, db));
    // Nothing needs the old KMS key any more: disabled, and the database reopened (every
    // version's key unwrapped afresh, through the new key's grant).
    fx.kms.disable_key(&admin(), &old_key)?;
    let db = Db::open(fx.db_path(), opts.clone())?;
    assert_eq!(key_of(&db)?.0, new_key_arn);
    assert_eq!(status(&db)?.live_versions, 2);
    read_all(&db, "reopened, old key disabled")?;
    while db.continue_table_key_rotations(8)?.pending {
        db.flush()?;
    }
    assert_eq!(status(&db)?.live_versions, 1);
    read_all(&db, "after the rotation finished")?;
    db.verify()?;
    // Exactly one engine grant for the table, on the new key.
    for _ in 0..200 {
        if db.grants_to_retire().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    fx.kms.enable_key(&admin(), &old_key)?;
    assert!(
        table_grants(&fx.kms, &old_key)?.is_empty(),
        "the old grant stayed"
    );
    assert_eq!(table_grants(&fx.kms, &new_key_arn)?.len(), 1);
    Ok(())
}

fn open_faulty(
    root: &std::path::Path,
    env: &FaultEnv,
    kms: &Arc<LocalKms>,
    clock: &ManualClock,
) -> sealdb::Result<Db> {
    let mut o = Options::default();
    o.env = Arc::new(env.clone());
    o.kms = Some(Arc::clone(kms) as Arc<dyn Kms>);
    o.clock = Arc::new(clock.clone());
    Db::open(root.join("db"), o)
}

/// Waits until the queue of grants to retire has settled: exactly one engine grant for the
/// table, on the key the table is under, and it is the table's.
fn settled(db: &Db, kms: &LocalKms, clock: &ManualClock, keys: [&str; 2]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (arn, grant) = key_of(db).map_err(|e| e.to_string())?;
        let mut all = Vec::new();
        for k in keys {
            for g in table_grants(kms, k).map_err(|e| e.to_string())? {
                all.push((k.to_owned(), g));
            }
        }
        if all == vec![(arn.clone(), grant.clone())] && db.grants_to_retire().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "grants never settled: table under {arn} with {grant}; engine grants {all:?}; \
                 queued {:?}",
                db.grants_to_retire()
            ));
        }
        // A retry that failed waits 30 s of the clock.
        clock.advance(Duration::from_secs(31));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_crash_at_any_file_operation_of_a_switch_leaves_one_key() -> TestResult {
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    let mut points = Vec::new();
    for op in [
        FaultOp::Create,
        FaultOp::Append,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::SyncDir,
        FaultOp::Remove,
    ] {
        for file in [FileClass::Other, FileClass::Manifest] {
            for after in 0..3 {
                points.push(KillPoint {
                    op,
                    file,
                    after,
                    power_loss: None,
                });
            }
        }
    }
    for point in points {
        let root = tempfile::tempdir()?;
        let clock = ManualClock::default();
        let kms = Arc::new(common::local_kms(
            &root.path().join("kms"),
            Arc::new(clock.clone()),
        )?);
        let customer = new_key(&kms)?;
        let default = kms.describe_key(&admin(), SERVICE_DEFAULT_ALIAS)?.arn;
        let env = FaultEnv::new();
        let db = open_faulty(root.path(), &env, &kms, &clock)?;
        let t = db.create_table(TABLE, TableOptions::encrypted())?;
        for i in 0..50u32 {
            t.put_opt(format!("k{i:03}"), format!("v{i}"), WriteOptions::synced())?;
        }
        env.set_halt_point(point);
        let res = db.update_table_key(TABLE, Some(&customer));
        let halted = env.is_halted();
        env.halt();
        drop((t, db));
        env.crash()?;

        let db = open_faulty(root.path(), &env, &kms, &clock)
            .map_err(|e| format!("{point:?}: reopen failed: {e}"))?;
        let (arn, _) = key_of(&db)?;
        assert!(arn == default || arn == customer, "{point:?}: under {arn}");
        if res.is_ok() {
            assert_eq!(arn, customer, "{point:?}: an acknowledged switch was lost");
        }
        let t = db.table(TABLE)?;
        for i in 0..50u32 {
            assert_eq!(
                t.get(format!("k{i:03}"))?.as_deref(),
                Some(format!("v{i}").as_bytes()),
                "{point:?}: row {i}"
            );
        }
        t.put_opt("after", "crash", WriteOptions::synced())?;
        db.flush()?;
        settled(&db, &kms, &clock, [&default, &customer]).map_err(|e| format!("{point:?}: {e}"))?;
        let outcome = format!(
            "{}{}",
            if arn == customer {
                "customer key"
            } else {
                "default key"
            },
            match (halted, res.is_ok()) {
                (false, _) => " (switch completed, no crash point reached)",
                (true, true) => " (crash after the switch was acknowledged)",
                (true, false) => " (crash during the switch)",
            }
        );
        *outcomes.entry(outcome).or_default() += 1;
    }
    println!("crash points of a key switch: {outcomes:#?}");
    assert!(
        outcomes
            .keys()
            .any(|k| k.starts_with("default key (crash during")),
        "some crash left the old key: {outcomes:?}"
    );
    assert!(
        outcomes.keys().any(|k| k.starts_with("customer key")),
        "{outcomes:?}"
    );
    Ok(())
}
