//! Fail-safe drop and audit: a drop that committed finishes its cleanup even when the KMS
//! refuses RetireGrant (and retires later, across a restart too); an audit write that fails
//! refuses the call with its own error, undoes what the call changed, and never leaves a
//! principal's cached key serving on.

mod common;
mod hooked_kms;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{files_with_ext, EncryptedFixture, TestResult};
use hooked_kms::Hooked;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    Caller, CreateKeyRequest, KdfParams, KeyState, Kms, KmsError, LocalKms, LocalKmsOptions,
    Principal, RootKeySource,
};
use sealdb::{Db, Error, TableOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;

fn root() -> Caller {
    Caller::direct(Principal::root(ACCOUNT))
}

fn grant_ids(kms: &LocalKms, key: &str) -> Result<Vec<String>, KmsError> {
    Ok(kms
        .list_grants(&root(), key)?
        .into_iter()
        .map(|g| g.grant_id)
        .collect())
}

/// Waits (at most 20 s of real time) for the background worker to empty the queue.
fn wait_until_retired(db: &Db, clock: &ManualClock) -> TestResult {
    let start = Instant::now();
    while !db.grants_to_retire().is_empty() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("still pending: {:?}", db.grants_to_retire()).into());
        }
        // Past the retry interval after a failed try.
        clock.advance(Duration::from_secs(31));
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn a_committed_drop_finishes_when_retire_grant_fails_and_retires_after_a_restart() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let flaky = Hooked::new(&fx.kms);
    let db = Db::open(fx.db_path(), flaky.options(&fx))?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    for i in 0..500 {
        t.put(format!("k{i:03}"), "secret")?;
    }
    db.flush()?;
    db.create_table("Other", TableOptions::encrypted())?
        .put("o", "1")?;
    let status = db.encryption_status();
    let books = status.iter().find(|s| s.table == "Books").ok_or("Books")?;
    let (key, grant) = (
        books.key_arn.clone().ok_or("key")?,
        books.grant_id.clone().ok_or("grant")?,
    );
    let ssts = files_with_ext(&fx.db_path(), "sst");
    assert!(!ssts.is_empty());
    drop(t);

    flaky.fail_retire.store(true, Ordering::SeqCst);
    db.drop_table("Books")?;
    // Cleanup finished: the table is gone, its files deleted, no manifest holds its key.
    assert!(matches!(db.table("Books"), Err(Error::TableNotFound(_))));
    for f in &ssts {
        assert!(!f.exists(), "{} left behind", f.display());
    }
    let manifests: Vec<_> = std::fs::read_dir(fx.db_path())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("MANIFEST-"))
        .collect();
    assert_eq!(manifests.len(), 1);
    // The grant is still in the KMS and queued, durably.
    assert!(grant_ids(&fx.kms, &key)?.contains(&grant));
    assert!(db.grants_to_retire().iter().any(|(_, g)| *g == grant));
    assert!(fx.db_path().join("GRANTS-TO-RETIRE").exists());
    // Other tables work.
    assert_eq!(db.table("Other")?.get("o")?.as_deref(), Some(&b"1"[..]));
    // Re-created under the same name while the old grant is still in the KMS: the old grant
    // serves nothing of the new table (its constraint names the old incarnation), so once
    // the new table's own grant is revoked, its maintenance stops.
    let t = db.create_table("Books", TableOptions::encrypted())?;
    let status = db.encryption_status();
    let again = status.iter().find(|s| s.table == "Books").ok_or("Books")?;
    let new_grant = again.grant_id.clone().ok_or("grant")?;
    assert_ne!(new_grant, grant);
    fx.kms.revoke_grant(&root(), &key, &new_grant)?;
    fx.clock.advance(Duration::from_secs(6 * 60));
    t.put("n", "1")?;
    let err = db
        .flush()
        .err()
        .ok_or("maintained through the dropped table's grant")?;
    assert!(err.to_string().contains("grant revoked"), "{err}");
    db.renew_grant("Books")?;
    db.flush()?;
    drop((t, db));

    // A restart with the KMS back: the worker retires it.
    let db = fx.open()?;
    assert!(db.grants_to_retire().iter().any(|(_, g)| *g == grant));
    wait_until_retired(&db, &fx.clock)?;
    assert!(!grant_ids(&fx.kms, &key)?.contains(&grant));
    assert!(!fx.db_path().join("GRANTS-TO-RETIRE").exists());
    assert_eq!(db.tables(), vec!["Books".to_owned(), "Other".to_owned()]);
    assert_eq!(db.table("Books")?.get("n")?.as_deref(), Some(&b"1"[..]));
    Ok(())
}

#[test]
fn the_worker_retries_a_failed_retire_in_the_same_process() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let flaky = Hooked::new(&fx.kms);
    flaky.fail_retire.store(true, Ordering::SeqCst);
    let db = Db::open(fx.db_path(), flaky.options(&fx))?;
    db.create_table("Books", TableOptions::encrypted())?;
    let first = db.encryption_status()[0].grant_id.clone().ok_or("grant")?;
    let key = db.encryption_status()[0].key_arn.clone().ok_or("key")?;
    // A renewal whose RetireGrant of the replaced grant fails still succeeds...
    let second = db.renew_grant("Books")?;
    assert!(db.grants_to_retire().iter().any(|(_, g)| *g == first));
    assert!(grant_ids(&fx.kms, &key)?.contains(&first));
    // ... and once the KMS answers, the worker retires the old grant.
    flaky.fail_retire.store(false, Ordering::SeqCst);
    wait_until_retired(&db, &fx.clock)?;
    let ids = grant_ids(&fx.kms, &key)?;
    assert!(!ids.contains(&first) && ids.contains(&second), "{ids:?}");
    Ok(())
}

/// A local KMS that rotates its audit file on every event, so that a directory put where
/// the next file goes makes the next audit write fail (a real failure of the real sink).
fn rotating_kms(dir: &Path, clock: &ManualClock) -> Result<Arc<LocalKms>, KmsError> {
    Ok(Arc::new(LocalKms::open(
        dir,
        LocalKmsOptions::new(ACCOUNT, sealdb::DEFAULT_REGION)
            .with_root_key(RootKeySource::Passphrase {
                passphrase: zeroize::Zeroizing::new("test passphrase".into()),
                kdf: KdfParams::insecure_fast_for_tests(),
            })
            .with_clock(Arc::new(clock.clone()))
            .with_audit_max_bytes(1),
    )?))
}

/// Makes the next audit write fail; returns what to remove to heal it.
fn block_audit(kms: &LocalKms) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let dir = kms.audit().dir().to_path_buf();
    let last = std::fs::read_dir(&dir)?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("audit-"))
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u32>().ok())
        })
        .max()
        .unwrap_or(1);
    let next = dir.join(format!("audit-{:06}.jsonl", last + 1));
    std::fs::create_dir(&next)?;
    Ok(next)
}

#[test]
fn a_failed_audit_write_refuses_and_undoes_a_key_state_change() -> TestResult {
    let root_dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms_dir = root_dir.path().join("kms");
    let kms = rotating_kms(&kms_dir, &clock)?;
    let key = kms.create_key(&root(), CreateKeyRequest::default())?.arn;
    let blocked = block_audit(&kms)?;
    let err = kms
        .disable_key(&root(), &key)
        .err()
        .ok_or("disabled unaudited")?;
    assert!(matches!(err, KmsError::AuditFailed(_)), "{err}");
    assert!(!matches!(err, KmsError::Unavailable(_)));
    std::fs::remove_dir(&blocked)?;
    // Not in effect: the key is enabled, in memory and on disk.
    assert_eq!(
        kms.describe_key(&root(), &key)?.key_state,
        KeyState::Enabled
    );
    drop(kms);
    let kms = rotating_kms(&kms_dir, &clock)?;
    assert_eq!(
        kms.describe_key(&root(), &key)?.key_state,
        KeyState::Enabled
    );
    // A CreateKey refused for want of an audit record leaves no key behind either.
    let before = kms.list_keys(&root())?.len();
    let blocked = block_audit(&kms)?;
    assert!(matches!(
        kms.create_key(&root(), CreateKeyRequest::default()),
        Err(KmsError::AuditFailed(_))
    ));
    std::fs::remove_dir(&blocked)?;
    assert_eq!(kms.list_keys(&root())?.len(), before);
    Ok(())
}

#[test]
fn a_failed_audit_write_drops_the_cached_key_and_is_its_own_error() -> TestResult {
    let root_dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms = rotating_kms(&root_dir.path().join("kms"), &clock)?;
    let mut opts = common::small_options();
    opts.kms = Some(Arc::clone(&kms) as Arc<dyn Kms>);
    opts.clock = Arc::new(clock.clone());
    let db = Db::open(root_dir.path().join("db"), opts)?;
    db.create_table("Books", TableOptions::encrypted())?
        .put("k", "v")?;
    let bob = db.as_principal(Principal::user(ACCOUNT, "bob"))?;
    let t = bob.table("Books")?;
    assert!(t.get("k")?.is_some());
    let decrypts = || kms.call_count("Decrypt");

    // Past the idle interval the read re-checks with the KMS, whose audit write fails: the
    // read fails closed with the audit error (not "KMS unavailable", which would let the
    // cached key serve on), and bob's cached key is gone.
    clock.advance(Duration::from_secs(6 * 60));
    let blocked = block_audit(&kms)?;
    let err = t.get("k").err().ok_or("served without an audit record")?;
    assert!(matches!(err, Error::Kms(KmsError::AuditFailed(_))), "{err}");
    assert!(!err.to_string().contains("unavailable"), "{err}");
    assert!(db
        .encryption_status()
        .iter()
        .flat_map(|s| s.cached_keys.iter())
        .all(|c| !c.principal.ends_with("user/bob")));
    // Still refused while the trail cannot be written, and never from a stale entry.
    assert!(t.get("k").is_err());
    std::fs::remove_dir(&blocked)?;
    let d0 = decrypts();
    assert!(t.get("k")?.is_some());
    assert_eq!(decrypts(), d0 + 1, "back to the KMS, not to a cached key");
    Ok(())
}
