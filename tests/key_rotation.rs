//! Rotation of a KMS key's material, in the local KMS and in the engine: a rotation adds
//! material, blobs name the material that sealed them, old blobs still decrypt and new
//! ones use the newest; the engine re-wraps each table key under the newest material
//! (ReEncrypt, same context), on demand and in the background on the clock, without
//! rewriting data; every row written before and after reads back, before and after reopen.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{EncryptedFixture, TestResult};
use sealdb::clock::ManualClock;
use sealdb::kms::{
    AuditQuery, Caller, CreateKeyRequest, DataKeySpec, EncryptionContext, Kms, KmsError, LocalKms,
    Principal, RotationType, MAX_ON_DEMAND_ROTATIONS, SERVICE_DEFAULT_ALIAS,
};
use sealdb::{Db, TableOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;
const DAY: Duration = Duration::from_secs(86_400);

fn admin() -> Caller {
    Caller::direct(Principal::assumed_role(ACCOUNT, "Admin", "user01"))
}

fn new_key(kms: &LocalKms) -> Result<String, KmsError> {
    Ok(kms
        .create_key(&admin(), CreateKeyRequest::new("rotating"))?
        .arn)
}

fn events(kms: &LocalKms, name: &str) -> Result<Vec<serde_json::Value>, KmsError> {
    kms.audit().query(&AuditQuery {
        event_name: Some(name.into()),
        ..Default::default()
    })
}

fn material_of(db: &Db, table: &str) -> Result<String, Box<dyn std::error::Error>> {
    let s = db.encryption_status();
    let t = s.iter().find(|s| s.table == table).ok_or("no table")?;
    Ok(t.key_material.clone().ok_or("no material shown")?)
}

fn current_material(kms: &LocalKms, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(kms
        .describe_key(&admin(), key)?
        .current_key_material_id
        .ok_or("no current material")?)
}

#[test]
fn on_demand_rotation_adds_material_and_old_blobs_still_decrypt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms = common::local_kms(dir.path(), Arc::new(clock.clone()))?;
    let key = new_key(&kms)?;
    let ctx = EncryptionContext::for_table("T", ACCOUNT);
    let before = kms.encrypt(&admin(), &key, b"sealed before", &ctx)?;
    let m0 = kms.key_material_of(&before).ok_or("no material")?;
    assert_eq!(current_material(&kms, &key)?, m0);
    assert!(kms.list_key_rotations(&admin(), &key)?.is_empty());

    clock.advance(DAY);
    assert_eq!(kms.rotate_key_on_demand(&admin(), &key)?, key);
    let m1 = current_material(&kms, &key)?;
    assert_ne!(m1, m0);
    let after = kms.encrypt(&admin(), &key, b"sealed after", &ctx)?;
    assert_eq!(kms.key_material_of(&after).as_deref(), Some(m1.as_str()));
    assert_eq!(
        &kms.decrypt(&admin(), &before, &ctx, Some(&key))?.plaintext[..],
        b"sealed before"
    );
    assert_eq!(
        &kms.decrypt(&admin(), &after, &ctx, None)?.plaintext[..],
        b"sealed after"
    );
    // ReEncrypt moves an old blob to the newest material, same context.
    let moved = kms.re_encrypt(&admin(), &before, &ctx, &key, &ctx)?;
    assert_eq!(kms.key_material_of(&moved).as_deref(), Some(m1.as_str()));
    assert_eq!(
        &kms.decrypt(&admin(), &moved, &ctx, None)?.plaintext[..],
        b"sealed before"
    );
    let rotations = kms.list_key_rotations(&admin(), &key)?;
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].key_material_id, m1);
    assert_eq!(rotations[0].rotation_type, RotationType::OnDemand);
    assert_eq!(events(&kms, "RotateKeyOnDemand")?.len(), 1);

    // The quota: MAX_ON_DEMAND_ROTATIONS in a key's life.
    for _ in 1..MAX_ON_DEMAND_ROTATIONS {
        kms.rotate_key_on_demand(&admin(), &key)?;
    }
    let err = kms
        .rotate_key_on_demand(&admin(), &key)
        .err()
        .ok_or("rotated past the quota")?;
    assert!(matches!(err, KmsError::LimitExceeded(_)), "{err:?}");

    // Everything survives a reopen of the keystore.
    drop(kms);
    let kms = common::local_kms(dir.path(), Arc::new(clock.clone()))?;
    assert_eq!(
        kms.list_key_rotations(&admin(), &key)?.len(),
        MAX_ON_DEMAND_ROTATIONS
    );
    assert_eq!(
        &kms.decrypt(&admin(), &before, &ctx, None)?.plaintext[..],
        b"sealed before"
    );
    Ok(())
}

#[test]
fn automatic_rotation_follows_the_period_on_the_clock() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms = common::local_kms(dir.path(), Arc::new(clock.clone()))?;
    let key = new_key(&kms)?;
    let st = kms.get_key_rotation_status(&admin(), &key)?;
    assert!(!st.key_rotation_enabled);
    for bad in [89, 2561] {
        let err = kms.enable_key_rotation(&admin(), &key, Some(bad)).err();
        assert!(
            matches!(err, Some(KmsError::InvalidArgument(_))),
            "{bad}: {err:?}"
        );
    }
    kms.enable_key_rotation(&admin(), &key, Some(90))?;
    let st = kms.get_key_rotation_status(&admin(), &key)?;
    assert!(st.key_rotation_enabled);
    assert_eq!(st.rotation_period_in_days, Some(90));
    assert_eq!(
        st.next_rotation_date,
        Some(sealdb::clock::Clock::now(&clock) + 90 * DAY)
    );
    let m0 = current_material(&kms, &key)?;

    clock.advance(89 * DAY);
    assert_eq!(current_material(&kms, &key)?, m0, "not yet due");
    clock.advance(2 * DAY);
    let m1 = current_material(&kms, &key)?;
    assert_ne!(m1, m0, "due after 90 days");
    let r = kms.list_key_rotations(&admin(), &key)?;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rotation_type, RotationType::Automatic);
    let rotate_events = events(&kms, "RotateKey")?;
    assert_eq!(rotate_events.len(), 1);
    assert_eq!(rotate_events[0]["userIdentity"]["type"], "AWSService");
    assert_eq!(
        rotate_events[0]["responseElements"]["keyMaterialId"],
        m1.as_str()
    );

    // A clock that jumps catches up one rotation per period, then stops when disabled.
    clock.advance(200 * DAY);
    assert_eq!(kms.list_key_rotations(&admin(), &key)?.len(), 3);
    kms.disable_key_rotation(&admin(), &key)?;
    clock.advance(400 * DAY);
    assert_eq!(kms.list_key_rotations(&admin(), &key)?.len(), 3);
    assert!(
        !kms.get_key_rotation_status(&admin(), &key)?
            .key_rotation_enabled
    );

    // The service default key rotates yearly, and its rotation is not the customer's.
    let default = kms.describe_key(&admin(), SERVICE_DEFAULT_ALIAS)?.arn;
    let st = kms.get_key_rotation_status(&admin(), &default)?;
    assert!(st.key_rotation_enabled);
    assert_eq!(st.rotation_period_in_days, Some(365));
    for err in [
        kms.enable_key_rotation(&admin(), &default, Some(90)).err(),
        kms.disable_key_rotation(&admin(), &default).err(),
        kms.rotate_key_on_demand(&admin(), &default).err(),
    ] {
        assert!(
            matches!(err, Some(KmsError::UnsupportedOperation(_))),
            "{err:?}"
        );
    }
    // A disabled key does not rotate while disabled.
    let quiet = new_key(&kms)?;
    kms.enable_key_rotation(&admin(), &quiet, Some(90))?;
    kms.disable_key(&admin(), &quiet)?;
    clock.advance(100 * DAY);
    kms.enable_key(&admin(), &quiet)?;
    // The enable call itself ran with the key disabled; the next call rotates it.
    let _ = kms.describe_key(&admin(), &quiet)?;
    assert_eq!(kms.list_key_rotations(&admin(), &quiet)?.len(), 1);
    let _ = kms.generate_data_key(
        &admin(),
        &quiet,
        DataKeySpec::Aes256,
        &EncryptionContext::new(),
    )?;
    Ok(())
}

/// Writes `range` rows of `t`; every row's value names its key.
fn write_rows(t: &sealdb::Table, range: std::ops::Range<u32>) -> sealdb::Result<()> {
    for i in range {
        t.put(format!("k{i:05}"), format!("v{i}"))?;
    }
    Ok(())
}

fn check_rows(t: &sealdb::Table, n: u32) -> TestResult {
    for i in 0..n {
        let got = t.get(format!("k{i:05}"))?;
        assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "row {i}");
    }
    assert_eq!(t.iter()?.count(), n as usize);
    Ok(())
}

#[test]
fn the_engine_rewraps_table_keys_after_an_on_demand_rotation() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = new_key(&fx.kms)?;
    let db = fx.open()?;
    let t = db.create_table("Orders", TableOptions::encrypted_with(&key))?;
    let d = db.create_table("Default", TableOptions::encrypted())?;
    write_rows(&t, 0..2000)?;
    write_rows(&d, 0..10)?;
    db.flush()?;
    let sst_before = common::files_with_ext(&fx.db_path(), "sst");
    let m0 = material_of(&db, "Orders")?;
    assert_eq!(m0, current_material(&fx.kms, &key)?);
    assert!(db.rewrap_table_keys()?.is_empty(), "nothing rotated yet");

    fx.kms.rotate_key_on_demand(&admin(), &key)?;
    let m1 = current_material(&fx.kms, &key)?;
    assert_eq!(
        material_of(&db, "Orders")?,
        m0,
        "still under the old material"
    );
    let re_encrypts = fx.kms.call_count("ReEncrypt");
    let done = db.rewrap_table_keys()?;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].table, "Orders");
    assert_eq!((&done[0].from_material, &done[0].to_material), (&m0, &m1));
    assert_eq!(fx.kms.call_count("ReEncrypt"), re_encrypts + 1);
    assert_eq!(material_of(&db, "Orders")?, m1);
    // The re-wrap rewrote no data: the same SSTables, and the rows read back.
    assert_eq!(common::files_with_ext(&fx.db_path(), "sst"), sst_before);
    check_rows(&t, 2000)?;
    write_rows(&t, 2000..3000)?;
    // ReEncrypt went through the engine's grant under the table's context.
    let ev = events(&fx.kms, "ReEncrypt")?;
    let last = ev.last().ok_or("no ReEncrypt event")?;
    assert_eq!(last["userIdentity"]["type"], "AWSService");
    assert_eq!(
        last["requestParameters"]["sourceEncryptionContext"],
        last["requestParameters"]["destinationEncryptionContext"]
    );
    assert_eq!(
        last["requestParameters"]["sourceEncryptionContext"]["sealdb:tableName"],
        "Orders"
    );
    drop((t, d, db));

    let db = fx.open()?;
    assert_eq!(
        material_of(&db, "Orders")?,
        m1,
        "the re-wrap is in the manifest"
    );
    check_rows(&db.table("Orders")?, 3000)?;
    check_rows(&db.table("Default")?, 10)?;
    Ok(())
}

#[test]
fn the_worker_rewraps_in_the_background_after_an_automatic_rotation() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = new_key(&fx.kms)?;
    fx.kms.enable_key_rotation(&admin(), &key, Some(90))?;
    let db = fx.open()?;
    let t = db.create_table("Orders", TableOptions::encrypted_with(&key))?;
    t.create_index("by_value", sealdb::IndexSpec::json_pointer("/v"))?;
    write_rows(&t, 0..500)?;
    let m0 = material_of(&db, "Orders")?;

    fx.clock.advance(91 * DAY);
    let m1 = current_material(&fx.kms, &key)?;
    assert_ne!(m0, m1, "the KMS rotated on the clock");
    // The worker checks every minute of the clock; it ticks on its own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while material_of(&db, "Orders")? != m1 {
        assert!(Instant::now() < deadline, "no background re-wrap");
        fx.clock.advance(Duration::from_secs(61));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The index shares the table key: its catalogue entry moved in the same record.
    assert_eq!(material_of(&db, "Orders/by_value")?, m1);
    write_rows(&t, 500..800)?;
    check_rows(&t, 800)?;
    drop((t, db));
    let db = fx.open()?;
    assert_eq!(material_of(&db, "Orders")?, m1);
    check_rows(&db.table("Orders")?, 800)?;
    Ok(())
}

#[test]
fn a_crash_during_a_rewrap_leaves_a_table_key_that_decrypts() -> TestResult {
    use sealdb::storage::fault::{FaultEnv, FaultOp, FileClass, KillPoint};
    let mut outcomes = Vec::new();
    for op in [FaultOp::Append, FaultOp::Sync] {
        let root = tempfile::tempdir()?;
        let clock = ManualClock::default();
        let kms = common::local_kms(&root.path().join("kms"), Arc::new(clock.clone()))?;
        let key = new_key(&kms)?;
        let env = FaultEnv::new();
        let open = || {
            let mut o = common::kms_options(&kms, Arc::new(clock.clone()));
            o.env = Arc::new(env.clone());
            Db::open(root.path().join("db"), o)
        };
        let db = open()?;
        let t = db.create_table("Orders", TableOptions::encrypted_with(&key))?;
        for i in 0..100u32 {
            t.put_opt(
                format!("k{i:05}"),
                format!("v{i}"),
                sealdb::WriteOptions::synced(),
            )?;
        }
        let m0 = material_of(&db, "Orders")?;
        kms.rotate_key_on_demand(&admin(), &key)?;
        let m1 = current_material(&kms, &key)?;
        env.set_halt_point(KillPoint {
            op,
            file: FileClass::Manifest,
            after: 0,
            power_loss: None,
        });
        let res = db.rewrap_table_keys();
        assert!(res.is_err(), "{op:?}: the halted record was acknowledged");
        env.halt();
        drop((t, db));
        env.crash()?;
        let db = open()?;
        let m = material_of(&db, "Orders")?;
        assert!(m == m0 || m == m1, "{op:?}");
        check_rows(&db.table("Orders")?, 100)?;
        if m == m0 {
            assert_eq!(
                db.rewrap_table_keys()?.len(),
                1,
                "{op:?}: the re-wrap is redone"
            );
        }
        assert_eq!(material_of(&db, "Orders")?, m1);
        outcomes.push((
            op,
            if m == m0 {
                "old material"
            } else {
                "new material"
            },
        ));
    }
    println!("crash during a re-wrap: {outcomes:?}");
    Ok(())
}
