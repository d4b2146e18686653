//! The engine and the KMS together, as the seed describes DynamoDB: per-principal table-key
//! cache with a 5-minute idle re-check and a 12-hour ceiling, grants for maintenance,
//! key state, crypto-shredding on drop, and the audit trail of it all.

mod common;

use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use sealdb::kms::{Caller, CreateKeyRequest, Kms, Principal};
use sealdb::{Db, Error, TableOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;

fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

fn root() -> Caller {
    Caller::direct(Principal::root(ACCOUNT))
}

fn grant_of(db: &Db, table: &str) -> Result<(String, String), Box<dyn std::error::Error>> {
    let s = db.encryption_status();
    let t = s.iter().find(|s| s.table == table).ok_or("no such table")?;
    Ok((
        t.key_arn.clone().ok_or("no key")?,
        t.grant_id.clone().ok_or("no grant")?,
    ))
}

/// A customer managed key whose policy lets every principal of the account use it.
fn customer_key(fx: &EncryptedFixture) -> Result<String, Box<dyn std::error::Error>> {
    let md = fx
        .kms
        .create_key(&root(), CreateKeyRequest::new("test key"))?;
    Ok(md.arn)
}

#[test]
fn cached_key_makes_no_kms_call_until_five_minutes_idle() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    let decrypts = || fx.kms.call_count("Decrypt");
    let d0 = decrypts();
    t.put("k", "v")?;
    assert_eq!(
        decrypts(),
        d0 + 1,
        "first use by this principal calls Decrypt"
    );
    for _ in 0..5 {
        fx.clock.advance(minutes(4));
        assert_eq!(t.get("k")?.as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(decrypts(), d0 + 1, "used every 4 minutes: no re-check");
    fx.clock.advance(minutes(6));
    t.get("k")?;
    assert_eq!(decrypts(), d0 + 2, "after 5 minutes idle: one Decrypt");
    t.get("k")?;
    assert_eq!(decrypts(), d0 + 2);
    Ok(())
}

#[test]
fn revoked_principal_loses_access_after_five_idle_minutes() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = customer_key(&fx)?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted_with(&key))?;
    t.put("k", "v")?;
    let bob = Principal::user(ACCOUNT, "bob");
    let bob_db = db.as_principal(bob.clone())?;
    let bob_t = bob_db.table("Books")?;
    assert_eq!(bob_t.get("k")?.as_deref(), Some(&b"v"[..]));
    let deny_bob = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Sid":"all","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}},
          {{"Sid":"nobob","Effect":"Deny","Principal":{{"AWS":"{}"}},"Action":"kms:Decrypt","Resource":"*"}}]}}"#,
        bob.arn
    );
    fx.kms.put_key_policy(&root(), &key, &deny_bob)?;
    fx.clock.advance(minutes(2));
    assert!(
        bob_t.get("k")?.is_some(),
        "cached: the change is not seen yet"
    );
    fx.clock.advance(minutes(6));
    match bob_t.get("k") {
        Err(Error::Kms(e)) => assert!(e.to_string().contains("not authorized"), "{e}"),
        other => panic!("bob should be denied now, got {other:?}"),
    }
    assert!(t.get("k")?.is_some(), "the creator is not affected");
    Ok(())
}

#[test]
fn kms_outage_is_invisible_for_twelve_hours_then_fails_closed() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    t.put("k0", "v")?;
    db.flush()?;
    fx.kms.set_available(false);
    for hour in 1..=11 {
        fx.clock.advance(minutes(60));
        t.put(format!("k{hour}"), "v")?;
        assert!(t.get("k0")?.is_some(), "hour {hour}");
    }
    db.flush()?;
    fx.clock.advance(minutes(61));
    let err = t
        .get("k0")
        .expect_err("past 12 hours the cached key must not be used");
    assert!(matches!(err, Error::TableUnavailable { .. }), "{err}");
    assert!(err.to_string().contains("unavailable"), "{err}");
    fx.kms.set_available(true);
    for hour in 0..=11 {
        assert!(
            t.get(format!("k{hour}"))?.is_some(),
            "after the outage, k{hour}"
        );
    }
    Ok(())
}

#[test]
fn revoked_grant_stops_maintenance_without_losing_writes_and_a_new_grant_resumes_it() -> TestResult
{
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    t.put("before", "1")?;
    db.flush()?;
    let (key, grant) = grant_of(&db, "Books")?;
    fx.kms.revoke_grant(&root(), &key, &grant)?;
    fx.clock.advance(minutes(6));
    let mut acked = Vec::new();
    let mut stalled = None;
    for i in 0..20_000 {
        match t.put(format!("k{i:06}"), [b'x'; 100]) {
            Ok(()) => acked.push(i),
            Err(e) => {
                stalled = Some(e);
                break;
            }
        }
    }
    let err = stalled.ok_or("writes should stall once the memtables are full")?;
    assert!(err.to_string().contains("grant revoked"), "{err}");
    let status = db.encryption_status();
    assert!(
        status[0].maintenance.contains("grant revoked"),
        "{}",
        status[0].maintenance
    );
    assert!(db.flush().is_err());
    // Every acknowledged write is readable now ...
    for i in &acked {
        assert!(t.get(format!("k{i:06}"))?.is_some());
    }
    // ... and after a new grant, maintenance resumes and nothing was lost.
    let new_grant = db.renew_grant("Books")?;
    assert_ne!(new_grant, grant);
    db.flush()?;
    assert_eq!(db.encryption_status()[0].maintenance, "ok");
    drop((t, db));
    let db = fx.open()?;
    let t = db.table("Books")?;
    for i in &acked {
        assert!(t.get(format!("k{i:06}"))?.is_some(), "k{i} after reopen");
    }
    assert!(t.get("before")?.is_some());
    Ok(())
}

#[test]
fn disabled_key_makes_the_table_inaccessible_and_enabling_restores_it() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = customer_key(&fx)?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted_with(&key))?;
    t.put("k", "v")?;
    fx.kms.disable_key(&root(), &key)?;
    fx.clock.advance(minutes(6));
    let err = t.get("k").expect_err("a disabled key denies access");
    assert!(err.to_string().contains("disabled"), "{err}");
    fx.kms.enable_key(&root(), &key)?;
    assert_eq!(t.get("k")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn a_hundred_thousand_operations_make_a_handful_of_kms_calls() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    let ops = [
        "Decrypt",
        "GenerateDataKey",
        "DescribeKey",
        "CreateGrant",
        "Encrypt",
    ];
    let before: u64 = ops.iter().map(|o| fx.kms.call_count(o)).sum();
    for i in 0..50_000u32 {
        t.put(i.to_be_bytes(), i.to_le_bytes())?;
        t.get((i / 2).to_be_bytes())?;
    }
    db.flush()?;
    let after: u64 = ops.iter().map(|o| fx.kms.call_count(o)).sum();
    assert!(
        after - before <= 4,
        "{} KMS calls for 100k operations",
        after - before
    );
    Ok(())
}

#[test]
fn audit_trail_shows_create_reopen_read_and_drop() -> TestResult {
    let fx = EncryptedFixture::new()?;
    {
        let db = fx.open()?;
        db.create_table("Books", TableOptions::encrypted())?
            .put("k", "v")?;
    }
    let db = fx.open()?;
    let t = db.table("Books")?;
    assert!(t.get("k")?.is_some());
    drop(t);
    db.drop_table("Books")?;
    let events = fx.kms.audit().query(&Default::default())?;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventName"].as_str())
        .collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .ok_or(format!("no {n} in {names:?}"))
    };
    assert!(pos("DescribeKey")? < pos("CreateGrant")?);
    assert!(pos("CreateGrant")? < pos("GenerateDataKey")?);
    assert!(pos("GenerateDataKey")? < pos("Decrypt")?);
    // The drop retires the table's grant, then looks for any other grant on its context.
    assert_eq!(
        names.get(names.len().saturating_sub(2)..),
        Some(&["RetireGrant", "ListGrants"][..]),
        "{names:?}"
    );
    for e in &events {
        assert_eq!(
            e["userIdentity"]["invokedBy"], "sealdb.amazonaws.com",
            "{e}"
        );
        let name = e["eventName"].as_str().unwrap_or_default();
        if name == "GenerateDataKey" || name == "Decrypt" {
            let ctx = &e["requestParameters"]["encryptionContext"];
            // The table's key, or the database key that authenticates the manifest.
            if ctx["sealdb:databaseId"].is_string() {
                assert!(ctx["sealdb:tableName"].is_null(), "{e}");
            } else {
                assert_eq!(ctx["sealdb:tableName"], "Books");
                // Bound to this database and this creation of the table.
                assert!(ctx["sealdb:tableDatabaseId"].is_string(), "{e}");
                assert!(ctx["sealdb:tableIncarnation"].is_string(), "{e}");
            }
            assert_eq!(ctx["sealdb:subscriberId"], ACCOUNT);
        }
    }
    // The user's Decrypt names the user; the engine's names the engine.
    let decrypt_arns: Vec<&str> = events
        .iter()
        .filter(|e| e["eventName"] == "Decrypt")
        .filter_map(|e| e["userIdentity"]["arn"].as_str())
        .collect();
    assert!(
        decrypt_arns.contains(&"arn:aws:sts::111122223333:assumed-role/Admin/user01"),
        "{decrypt_arns:?}"
    );
    let gdk = events
        .iter()
        .find(|e| e["eventName"] == "GenerateDataKey")
        .ok_or("gdk")?;
    assert_eq!(gdk["userIdentity"]["type"], "AWSService");
    assert_eq!(gdk["requestParameters"]["keySpec"], "AES_256");
    Ok(())
}

#[test]
fn dropping_a_table_shreds_its_key_and_retires_its_grant() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    for i in 0..1000 {
        t.put(format!("k{i}"), "secret")?;
    }
    db.flush()?;
    let (key, grant) = grant_of(&db, "Books")?;
    let manifest_before: Vec<_> = std::fs::read_dir(fx.db_path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("MANIFEST"))
        .map(|e| std::fs::read(e.path()))
        .collect::<Result<_, _>>()?;
    let old_files = common::files_with_ext(&fx.db_path(), "sst");
    let saved = tempfile::tempdir()?;
    common::copy_dir(&fx.db_path(), saved.path())?;
    drop(t);
    db.drop_table("Books")?;
    let grants = fx.kms.list_grants(&root(), &key)?;
    assert!(
        grants.iter().all(|g| g.grant_id != grant),
        "the grant is retired"
    );
    for f in &old_files {
        assert!(!f.exists(), "{} should be deleted", f.display());
    }
    // The wrapped table key lived only in the manifest; no manifest on disk holds it now.
    let now: Vec<Vec<u8>> = std::fs::read_dir(fx.db_path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("MANIFEST"))
        .map(|e| std::fs::read(e.path()))
        .collect::<Result<_, _>>()?;
    assert_eq!(now.len(), 1);
    assert!(now[0].len() < manifest_before[0].len());
    // Old data files put back are unreferenced: not readable, never deleted by an open
    // (it cannot tell them from files it must keep), reported, and removed on request.
    for f in &old_files {
        let name = f.file_name().ok_or("name")?;
        std::fs::copy(saved.path().join(name), fx.db_path().join(name))?;
    }
    drop(db);
    let db = fx.open()?;
    assert!(matches!(db.table("Books"), Err(Error::TableNotFound(_))));
    assert_eq!(
        common::files_with_ext(&fx.db_path(), "sst").len(),
        old_files.len()
    );
    assert_eq!(db.unreferenced_files()?.len(), old_files.len());
    assert_eq!(db.remove_unreferenced_files()?.len(), old_files.len());
    assert!(common::files_with_ext(&fx.db_path(), "sst").is_empty());
    assert!(db.unreferenced_files()?.is_empty());
    Ok(())
}
