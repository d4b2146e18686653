//! One table's key never takes the database down. Three tables (two encrypted under
//! different KMS keys, one plaintext), data in SSTables and in the WAL; for each cause
//! (grant revoked, key disabled, pending deletion, deleted) a reopen keeps the other two
//! tables reading and writing, the table whose key is gone reports why, nothing is lost,
//! and once the cause is removed every acknowledged write of that table is back, without a
//! reopen and after one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use sealdb::kms::{Caller, CreateKeyRequest, Kms, Principal};
use sealdb::{Db, Error, LockReason, TableOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;

type Model = BTreeMap<&'static str, BTreeMap<String, String>>;

fn root() -> Caller {
    Caller::direct(Principal::root(ACCOUNT))
}

/// A customer managed key whose policy lets every principal of the account use it.
fn customer_key(fx: &EncryptedFixture) -> Result<String, Box<dyn std::error::Error>> {
    let md = fx
        .kms
        .create_key(&root(), CreateKeyRequest::new("Books key"))?;
    Ok(md.arn)
}

/// Writes `n` rows to `table` from `from`, remembering them in `model`.
fn write(db: &Db, model: &mut Model, table: &'static str, from: usize, n: usize) -> TestResult {
    let t = db.table(table)?;
    for i in from..from + n {
        let (k, v) = (format!("k{i:04}"), format!("{table}-v{i}"));
        t.put(&k, &v)?;
        model.entry(table).or_default().insert(k, v);
    }
    // An overwrite and a delete, so replay order matters.
    let k = format!("k{from:04}");
    t.put(&k, "overwritten")?;
    model
        .entry(table)
        .or_default()
        .insert(k, "overwritten".into());
    let k = format!("k{:04}", from + 1);
    t.delete(&k)?;
    model.entry(table).or_default().remove(&k);
    Ok(())
}

fn rows(db: &Db, table: &str) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    for item in db.table(table)?.iter()? {
        let (k, v) = item?;
        out.insert(
            String::from_utf8(k.to_vec())?,
            String::from_utf8(v.to_vec())?,
        );
    }
    Ok(out)
}

fn assert_exact(db: &Db, model: &Model, table: &'static str) -> TestResult {
    let want = model.get(table).cloned().unwrap_or_default();
    assert_eq!(rows(db, table)?, want, "table {table}");
    Ok(())
}

/// The three tables, part of each in SSTables and part only in the WAL. Returns the
/// model and the customer key's ARN (the `Books` table's key).
fn populate(fx: &EncryptedFixture) -> Result<(Model, String), Box<dyn std::error::Error>> {
    let key = customer_key(fx)?;
    let db = fx.open()?;
    db.create_table(
        "Books",
        TableOptions::encrypted_with(&key).with_sealed_boundaries(),
    )?;
    db.create_table("Orders", TableOptions::encrypted())?;
    db.create_table("Metrics", TableOptions::plaintext())?;
    let mut model = Model::new();
    for t in ["Books", "Orders", "Metrics"] {
        write(&db, &mut model, t, 0, 200)?;
    }
    db.flush()?;
    for t in ["Books", "Orders", "Metrics"] {
        write(&db, &mut model, t, 200, 50)?;
    }
    drop(db);
    Ok((model, key))
}

/// The other two tables work normally while `Books` is locked (or cannot be maintained:
/// then a whole-database flush reports it, and only the others are flushed).
fn others_work(db: &Db, model: &mut Model, round: usize) -> TestResult {
    assert_exact(db, model, "Orders")?;
    assert_exact(db, model, "Metrics")?;
    write(db, model, "Orders", 1000 + 100 * round, 20)?;
    write(db, model, "Metrics", 1000 + 100 * round, 20)?;
    match db.flush() {
        Ok(()) => {}
        Err(Error::TableUnavailable { table, .. }) if table == "Books" => {}
        Err(e) => return Err(e.into()),
    }
    assert_exact(db, model, "Orders")?;
    assert_exact(db, model, "Metrics")?;
    Ok(())
}

fn assert_locked(db: &Db, reason: LockReason) -> TestResult {
    let books = db.table("Books")?;
    assert_eq!(books.locked(), Some(reason));
    match books.get("k0005") {
        Err(Error::TableLocked { table, reason: r }) => {
            assert_eq!((table.as_str(), r), ("Books", reason));
        }
        other => panic!("a locked table must refuse reads, got {other:?}"),
    }
    assert!(matches!(
        books.put("new", "x"),
        Err(Error::TableLocked { .. })
    ));
    let status = db.encryption_status();
    let s = status.iter().find(|s| s.table == "Books").ok_or("status")?;
    assert_eq!(s.locked.as_deref(), Some(reason.as_str()));
    assert_eq!(db.tables(), ["Books", "Metrics", "Orders"]);
    let report = db.verify()?;
    assert_eq!(report.locked, [format!("Books: {reason}")]);
    Ok(())
}

/// Runs one cause: `break_it` makes the key unusable, `fix_it` brings it back.
fn cause(
    reason: LockReason,
    break_it: impl Fn(&EncryptedFixture, &str) -> TestResult,
    fix_it: impl Fn(&EncryptedFixture, &str) -> TestResult,
) -> TestResult {
    let fx = EncryptedFixture::new()?;
    let (mut model, key) = populate(&fx)?;
    break_it(&fx, &key)?;
    // Two opens while the key is gone: the second must still find the locked table's WAL
    // records (their segments are kept for it).
    for round in 0..2 {
        let db = fx.open()?;
        assert_locked(&db, reason)?;
        others_work(&db, &mut model, round)?;
    }
    let db = fx.open()?;
    assert_locked(&db, reason)?;
    fix_it(&fx, &key)?;
    // The next access past the backoff unlocks it in place.
    fx.clock.advance(Duration::from_secs(60));
    assert_exact(&db, &model, "Books")?;
    assert_eq!(db.table("Books")?.locked(), None);
    write(&db, &mut model, "Books", 500, 30)?;
    db.flush()?;
    for t in ["Books", "Orders", "Metrics"] {
        assert_exact(&db, &model, t)?;
    }
    drop(db);
    let db = fx.open()?;
    for t in ["Books", "Orders", "Metrics"] {
        assert_exact(&db, &model, t)?;
    }
    assert!(db.verify()?.locked.is_empty());
    // The segments kept for the locked table went once it was flushed.
    let logs = common::files_with_ext(&fx.db_path(), "log").len();
    assert!(logs <= 2, "{logs} WAL segments left");
    assert!(db.unreferenced_files()?.is_empty());
    Ok(())
}

#[test]
fn a_disabled_key_locks_its_table_only_and_enabling_it_brings_every_write_back() -> TestResult {
    cause(
        LockReason::KeyDisabled,
        |fx, key| Ok(fx.kms.disable_key(&root(), key)?),
        |fx, key| Ok(fx.kms.enable_key(&root(), key)?),
    )
}

#[test]
fn a_key_pending_deletion_locks_its_table_until_the_deletion_is_cancelled() -> TestResult {
    cause(
        LockReason::KeyPendingDeletion,
        |fx, key| {
            fx.kms.schedule_key_deletion(&root(), key, 7)?;
            Ok(())
        },
        |fx, key| {
            fx.kms.cancel_key_deletion(&root(), key)?;
            // As in AWS KMS, a cancelled deletion leaves the key disabled.
            let _ = fx.kms.enable_key(&root(), key);
            Ok(())
        },
    )
}

#[test]
fn a_deleted_key_leaves_its_table_permanently_locked_and_droppable() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let (mut model, key) = populate(&fx)?;
    fx.kms.schedule_key_deletion(&root(), &key, 7)?;
    fx.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let db = fx.open()?;
    // The purge happens on the KMS's next call, which the open made.
    assert_locked(&db, LockReason::KeyDeleted)?;
    others_work(&db, &mut model, 0)?;
    fx.clock.advance(Duration::from_secs(3600));
    assert!(matches!(
        db.table("Books")?.get("k0003"),
        Err(Error::TableLocked {
            reason: LockReason::KeyDeleted,
            ..
        })
    ));
    // Dropping it reclaims its space; the others are untouched.
    let before = std::fs::read_dir(fx.db_path())?.count();
    db.drop_table("Books")?;
    assert_eq!(db.tables(), ["Metrics", "Orders"]);
    drop(db);
    let db = fx.open()?;
    assert_eq!(db.tables(), ["Metrics", "Orders"]);
    others_work(&db, &mut model, 1)?;
    drop(db);
    let after = std::fs::read_dir(fx.db_path())?.count();
    assert!(
        after < before,
        "the dropped table's files go ({before} -> {after})"
    );
    Ok(())
}

#[test]
fn a_revoked_grant_keeps_the_table_readable_by_its_owner_and_stops_its_upkeep() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let (mut model, key) = populate(&fx)?;
    let grant = {
        let db = fx.open()?;
        let s = db.encryption_status();
        let books = s.iter().find(|s| s.table == "Books").ok_or("status")?;
        books.grant_id.clone().ok_or("grant")?
    };
    fx.kms.revoke_grant(&root(), &key, &grant)?;
    let db = fx.open()?;
    // The opening principal may use the key under its policy: the table opens, its WAL
    // replayed through that access, but the engine cannot maintain it.
    assert_eq!(db.table("Books")?.locked(), None);
    assert_exact(&db, &model, "Books")?;
    others_work(&db, &mut model, 0)?;
    let s = db.encryption_status();
    let books = s.iter().find(|s| s.table == "Books").ok_or("status")?;
    assert!(
        books.maintenance.contains("grant revoked"),
        "{}",
        books.maintenance
    );
    // Its writes are kept (in memory and the WAL); a flush says why it cannot finish.
    write(&db, &mut model, "Books", 600, 10)?;
    assert!(matches!(db.flush(), Err(Error::TableUnavailable { .. })));
    db.renew_grant("Books")?;
    db.flush()?;
    drop(db);
    let db = fx.open()?;
    for t in ["Books", "Orders", "Metrics"] {
        assert_exact(&db, &model, t)?;
    }
    let s = db.encryption_status();
    let books = s.iter().find(|s| s.table == "Books").ok_or("status")?;
    assert_eq!(books.maintenance, "ok");
    Ok(())
}

#[test]
fn with_the_kms_unreachable_at_open_the_open_fails_and_changes_nothing() -> TestResult {
    // The database key authenticates the manifest: serving a state it cannot verify would
    // let anyone who can edit the directory and block the KMS choose what is read.
    let fx = EncryptedFixture::new()?;
    let (model, _key) = populate(&fx)?;
    let listing = || -> Result<Vec<(String, u64)>, Box<dyn std::error::Error>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(fx.db_path())? {
            let e = e?;
            v.push((
                e.file_name().to_string_lossy().into_owned(),
                e.metadata()?.len(),
            ));
        }
        v.sort();
        Ok(v)
    };
    let before = listing()?;
    fx.kms.set_available(false);
    match fx.open() {
        Err(e @ Error::TableUnavailable { .. }) => {
            assert!(e.to_string().contains("KMS is unavailable"), "{e}");
        }
        other => panic!("an open with the KMS down must fail as unavailable, got {other:?}"),
    }
    assert_eq!(listing()?, before);
    fx.kms.set_available(true);
    let db = fx.open()?;
    for t in ["Books", "Orders", "Metrics"] {
        assert_exact(&db, &model, t)?;
    }
    Ok(())
}
