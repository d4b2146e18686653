//! Checkpoints (backups) and restores, and crypto-shredding against them: a backup equals
//! the data at its moment, restored or opened directly; one taken during writes holds a
//! prefix of them with every acknowledged one; a tampered backup is an error, never a
//! smaller database; a restored database writes only new files; a table dropped with its
//! key deleted is unreadable in an older backup, while under the shared default key the
//! backup keeps it (as DESIGN.md, "Crypto-shredding", says).

mod common;
mod hooked_kms;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use hooked_kms::Hooked;
use sealdb::kms::{Caller, CreateKeyRequest, KeyState, Kms, Principal};
use sealdb::{Db, Error, LockReason, Table, TableOptions};

type Model = BTreeMap<(String, Vec<u8>), Vec<u8>>;
/// Picks a file of a backup by name.
type Pick = fn(&str) -> bool;

fn admin() -> Caller {
    Caller::direct(Principal::assumed_role(common::ACCOUNT, "Admin", "user01"))
}

fn new_key(fx: &EncryptedFixture, description: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(fx
        .kms
        .create_key(&admin(), CreateKeyRequest::new(description))?
        .arn)
}

/// Every table's rows, as the model holds them.
fn contents(db: &Db) -> Result<Model, Box<dyn std::error::Error>> {
    let mut out = Model::new();
    for name in db.tables() {
        for item in db.table(&name)?.iter()? {
            let (k, v) = item?;
            out.insert((name.clone(), k.to_vec()), v.to_vec());
        }
    }
    Ok(out)
}

/// The bytes of every WAL segment and SSTable in `dir`, by name.
fn data_files(dir: &Path) -> Result<HashMap<String, Vec<u8>>, std::io::Error> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") || name.ends_with(".sst") {
            out.insert(name, std::fs::read(e.path())?);
        }
    }
    Ok(out)
}

fn number_of(name: &str) -> Option<u64> {
    name.split('.').next()?.parse().ok()
}

/// Writes `n` operations (puts, and every seventh a delete) across `tables`.
fn churn(db: &Db, tables: &[&str], model: &mut Model, seed: u64, n: u64) -> TestResult {
    for i in 0..n {
        let table = tables[(i % tables.len() as u64) as usize];
        let key = format!("k{:05}", (i * 7919 + seed) % 1500).into_bytes();
        let t = db.table(table)?;
        if i % 7 == 3 {
            t.delete(&key)?;
            model.remove(&(table.to_owned(), key));
        } else {
            let value = format!("{table}-{seed}-{i}-{}", "v".repeat((i % 40) as usize));
            t.put(&key, &value)?;
            model.insert((table.to_owned(), key), value.into_bytes());
        }
    }
    Ok(())
}

/// True if a put into `t` (a plaintext table: no KMS call of its own) completes within
/// `wait`, run on another thread; a put that waits longer finishes in the background.
fn write_goes_through(t: &Table, wait: Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = t.clone();
    std::thread::spawn(move || {
        let _ = tx.send(t.put("probe", "written while the KMS was asked"));
    });
    matches!(rx.recv_timeout(wait), Ok(Ok(())))
}

/// Waits until the background worker (which ticks every 500 ms at most) has expired every
/// cached key of `db`'s encrypted tables; false if it never did.
fn wait_for_expiry(db: &Db) -> bool {
    for _ in 0..300 {
        let none_cached = db
            .encryption_status()
            .iter()
            .filter(|s| s.encrypted)
            .all(|s| s.cached_keys.is_empty());
        if none_cached {
            // The worker clears the engine's copies right after the cache.
            std::thread::sleep(Duration::from_millis(20));
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_checkpoint_never_asks_the_kms_while_writers_wait_on_its_locks() -> TestResult {
    // The engine's cached keys expire between the checkpoint's warm-up (which unwraps them
    // before the locks) and its freeze (under the write and manifest locks): the freeze
    // must use what the warm-up obtained, never ask the KMS while writers wait.
    let fx = EncryptedFixture::new()?;
    let kms = Hooked::new(&fx.kms);
    let db = Db::open(fx.db_path(), kms.options(&fx))?;
    for name in ["a", "b"] {
        db.create_table(name, TableOptions::encrypted())?;
    }
    let plain = db.create_table("plain", TableOptions::plaintext())?;
    for name in ["a", "b"] {
        db.table(name)?.put("k", name)?;
    }
    plain.put("k", "v")?;
    // Past the keys' maximum age: the warm-up has both keys to unwrap.
    fx.clock.advance(Duration::from_secs(13 * 3600));
    assert!(wait_for_expiry(&db), "the keys did not expire");

    let checkpointer = std::thread::current().id();
    let engine_decrypts = Arc::new(AtomicU64::new(0));
    let blocked = Arc::new(AtomicU64::new(0));
    {
        let (db, plain, clock) = (db.clone(), plain.clone(), fx.clock.clone());
        let (engine_decrypts, blocked) = (Arc::clone(&engine_decrypts), Arc::clone(&blocked));
        *kms.on_decrypt.lock() = Some(Arc::new(move |c: &Caller, _: &[u8]| {
            if std::thread::current().id() != checkpointer || !c.principal().is_service() {
                return Ok(());
            }
            let n = engine_decrypts.fetch_add(1, Ordering::SeqCst);
            if !write_goes_through(&plain, Duration::from_secs(1)) {
                blocked.fetch_add(1, Ordering::SeqCst);
            }
            if n == 1 {
                // The warm-up's second unwrap: the first table's key, just unwrapped,
                // expires before the freeze.
                clock.advance(Duration::from_secs(13 * 3600));
                wait_for_expiry(&db);
            }
            Ok(())
        }));
    }
    let backup = fx.root.path().join("backup");
    let report = db.checkpoint(&backup);
    *kms.on_decrypt.lock() = None;
    report?;
    assert!(
        engine_decrypts.load(Ordering::SeqCst) >= 2,
        "the warm-up unwrapped both keys"
    );
    assert_eq!(
        blocked.load(Ordering::SeqCst),
        0,
        "a KMS call was made while writers waited on the checkpoint's locks"
    );
    drop((plain, db));
    let b = Db::open(&backup, fx.options())?;
    for name in ["a", "b"] {
        assert_eq!(
            b.table(name)?.get("k")?.as_deref(),
            Some(name.as_bytes()),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn restore_and_the_backup_itself_equal_the_data_at_backup_time() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let own_key = new_key(&fx, "orders")?;
    let db = fx.open()?;
    db.create_table("enc", TableOptions::encrypted())?;
    db.create_table("own", TableOptions::encrypted_with(&own_key))?;
    db.create_table("plain", TableOptions::plaintext())?;
    let tables = ["enc", "own", "plain"];
    let mut model = Model::new();
    churn(&db, &tables, &mut model, 1, 3000)?;
    db.flush()?;
    // Some of it only in the WAL (and the memtables) at the checkpoint.
    churn(&db, &tables, &mut model, 2, 900)?;
    let backup = fx.root.path().join("backup");
    let report = db.checkpoint(&backup)?;
    assert!(report.sstables >= 3, "{report:?}");
    assert_eq!(
        report.hard_linked, report.sstables,
        "same file system: links"
    );
    assert!(report.wal_segments >= 1, "{report:?}");
    let at_backup = model.clone();
    let pristine = data_files(&backup)?;
    assert!(!std::fs::read_dir(&backup)?.any(|e| e
        .map(|e| e.file_name().to_string_lossy().contains("kms"))
        .unwrap_or(false)));

    // The database moves on: overwrites, deletes, a compaction, a dropped table.
    churn(&db, &tables, &mut model, 3, 2000)?;
    db.compact_all()?;
    db.drop_table("plain")?;
    assert_ne!(contents(&db)?, at_backup);

    // Into a non-empty directory: refused, and nothing there changes.
    let occupied = fx.root.path().join("occupied");
    std::fs::create_dir(&occupied)?;
    std::fs::write(occupied.join("mine"), b"keep")?;
    let refused = Db::restore_checkpoint(&backup, &occupied, fx.options());
    assert!(
        matches!(refused, Err(Error::InvalidArgument(_))),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(occupied.join("mine"))?, b"keep");
    assert!(matches!(
        db.checkpoint(&occupied),
        Err(Error::InvalidArgument(_))
    ));

    let restored_dir = fx.root.path().join("restored");
    let r = Db::restore_checkpoint(&backup, &restored_dir, fx.options())?;
    assert!(r.verify.locked.is_empty(), "{r:?}");
    assert_eq!(r.verify.tables, 3, "{r:?}");
    assert!(!fx.root.path().join("restored.tmp-restore").exists());
    {
        let restored = Db::open(&restored_dir, fx.options())?;
        assert_eq!(restored.tables(), vec!["enc", "own", "plain"]);
        assert_eq!(
            contents(&restored)?,
            at_backup,
            "restored equals the backup's moment"
        );
        // It takes writes, into new files only.
        let mut later = at_backup.clone();
        churn(&restored, &tables, &mut later, 4, 1200)?;
        restored.flush()?;
        assert_eq!(contents(&restored)?, later);
    }
    // A restored database never appends to a file it copied: any file it shares a name
    // with the backup is byte for byte the backup's, and every file it wrote is numbered
    // past all of the backup's, under a data key of its own.
    let newest_in_backup = pristine.keys().filter_map(|n| number_of(n)).max();
    let mut new_files = 0;
    for (name, bytes) in data_files(&restored_dir)? {
        match pristine.get(&name) {
            Some(old) => assert!(old == &bytes, "{name} was changed after the restore"),
            None => {
                assert!(number_of(&name) > newest_in_backup, "{name}");
                new_files += 1;
            }
        }
    }
    assert!(new_files >= 2, "the writes went to new files");

    // The backup opens directly as a database, equal to the same moment.
    let opened = Db::open(&backup, fx.options())?;
    assert_eq!(contents(&opened)?, at_backup, "the backup opened directly");
    assert_eq!(opened.verify()?.tables, 3);
    Ok(())
}

#[test]
fn a_backup_during_writes_holds_a_prefix_with_every_acknowledged_write() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("enc", TableOptions::encrypted())?;
    db.create_table("plain", TableOptions::plaintext())?;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let value = |i: u64| format!("{i:08}-{}", "x".repeat(100));
    let writers: Vec<_> = ["enc", "plain"]
        .iter()
        .zip(&acked)
        .map(|(name, acked)| {
            let t = db.table(name)?;
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(acked));
            Ok(std::thread::spawn(move || -> sealdb::Result<()> {
                let mut i = 0u64;
                // Enough to flush and compact meanwhile (256 KiB write buffers).
                while !stop.load(Ordering::Acquire) && i < 60_000 {
                    t.put(format!("{i:08}"), value(i))?;
                    i += 1;
                    acked.store(i, Ordering::Release);
                }
                Ok(())
            }))
        })
        .collect::<sealdb::Result<_>>()?;
    let mut taken = Vec::new();
    for round in 0..4u64 {
        let goal = (round + 1) * 4_000;
        while acked.iter().any(|a| a.load(Ordering::Acquire) < goal) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
        let dir = fx.root.path().join(format!("backup-{round}"));
        db.checkpoint(&dir)?;
        let after: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
        taken.push((dir, before, after));
    }
    stop.store(true, Ordering::Release);
    for w in writers {
        w.join().map_err(|_| "writer panicked")??;
    }
    for (dir, before, after) in taken {
        let b = Db::open(&dir, fx.options())?;
        for (n, name) in ["enc", "plain"].iter().enumerate() {
            let mut count = 0u64;
            for item in b.table(name)?.iter()? {
                let (k, v) = item?;
                // A prefix: exactly keys 0..count, in order, with their values.
                assert_eq!(
                    k.as_ref(),
                    format!("{count:08}").as_bytes(),
                    "{name} in {dir:?}"
                );
                assert_eq!(v.as_ref(), value(count).as_bytes());
                count += 1;
            }
            assert!(
                count >= before[n],
                "{name} in {dir:?}: {count} rows, {} acknowledged before the checkpoint",
                before[n]
            );
            // At most the write in flight when the checkpoint ended.
            assert!(count <= after[n] + 1, "{name}: {count} > {} + 1", after[n]);
        }
    }
    Ok(())
}

/// A copy of `backup` with one byte of `victim` (a file name picked by `pick`) flipped.
fn tampered(
    backup: &Path,
    to: &Path,
    pick: impl Fn(&str) -> bool,
) -> Result<String, Box<dyn std::error::Error>> {
    common::copy_dir(backup, to)?;
    let mut names: Vec<String> = std::fs::read_dir(to)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| pick(n))
        .collect();
    names.sort();
    let victim = names.first().ok_or("no such file in the backup")?.clone();
    let path = to.join(&victim);
    let mut bytes = std::fs::read(&path)?;
    // A third in: past the file header, inside a record or block that is not the last.
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    // Replace the file (the backup's SSTables are hard links to the database's).
    std::fs::remove_file(&path)?;
    std::fs::write(&path, &bytes)?;
    Ok(victim)
}

#[test]
fn a_tampered_backup_is_an_error_never_less_data() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("enc", TableOptions::encrypted())?;
    let mut model = Model::new();
    churn(&db, &["enc"], &mut model, 1, 3000)?;
    db.flush()?;
    churn(&db, &["enc"], &mut model, 2, 3000)?;
    let backup = fx.root.path().join("backup");
    db.checkpoint(&backup)?;
    drop(db);

    let kinds: [(&str, Pick); 3] = [
        ("sst", |n| n.ends_with(".sst")),
        ("wal", |n| n.ends_with(".log")),
        ("manifest", |n| n.starts_with("MANIFEST-")),
    ];
    for (kind, pick) in kinds {
        let copy = fx.root.path().join(format!("tampered-{kind}"));
        let victim = tampered(&backup, &copy, pick)?;
        let target = fx.root.path().join(format!("restored-{kind}"));
        let r = Db::restore_checkpoint(&copy, &target, fx.options());
        let e = match r {
            Ok(r) => {
                return Err(format!("{kind} {victim} tampered, restore succeeded: {r:?}").into())
            }
            Err(e) => e,
        };
        assert!(
            e.is_integrity_failure() || matches!(e, Error::Corruption { .. }),
            "{kind}: {e}"
        );
        assert!(!target.exists(), "{kind}: a failed restore made {target:?}");
        assert!(!fx
            .root
            .path()
            .join(format!("restored-{kind}.tmp-restore"))
            .exists());
        // Opened directly and read whole: an error too, never a shorter table.
        let whole = Db::open(&copy, fx.options()).and_then(|d| {
            let rows = d
                .table("enc")?
                .iter()?
                .collect::<sealdb::Result<Vec<_>>>()?;
            d.verify()?;
            Ok(rows.len())
        });
        assert!(
            whole.is_err(),
            "{kind} {victim}: read {whole:?} rows of {}",
            model.len()
        );
    }
    // The untouched backup restores, whole.
    let target = fx.root.path().join("restored");
    Db::restore_checkpoint(&backup, &target, fx.options())?;
    assert_eq!(contents(&Db::open(&target, fx.options())?)?, model);
    Ok(())
}

fn restore_fresh(
    fx: &EncryptedFixture,
    backup: &Path,
    name: &str,
) -> Result<(Db, PathBuf), Box<dyn std::error::Error>> {
    let copy = fx.root.path().join(format!("{name}-copy"));
    common::copy_dir(backup, &copy)?;
    let dir = fx.root.path().join(name);
    let r = Db::restore_checkpoint(&copy, &dir, fx.options())?;
    eprintln!("{name}: {:?}", r.verify);
    Ok((Db::open(&dir, fx.options())?, dir))
}

fn assert_locked(r: sealdb::Result<impl std::fmt::Debug>, want: LockReason) {
    match r {
        Err(Error::TableLocked { reason, .. }) if reason == want => {}
        other => panic!("expected the table locked ({want:?}), got {other:?}"),
    }
}

#[test]
fn a_table_dropped_with_its_key_deleted_is_unreadable_in_an_older_backup() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let secret_key = new_key(&fx, "secret")?;
    let shared_key = new_key(&fx, "shared by two")?;
    let db = fx.open()?;
    db.create_table("secret", TableOptions::encrypted_with(&secret_key))?;
    db.create_table("a", TableOptions::encrypted_with(&shared_key))?;
    db.create_table("b", TableOptions::encrypted_with(&shared_key))?;
    db.create_table("default", TableOptions::encrypted())?;
    db.create_table("plain", TableOptions::plaintext())?;
    let all = ["secret", "a", "b", "default", "plain"];
    let mut model = Model::new();
    churn(&db, &all, &mut model, 1, 2500)?;
    db.flush()?;
    churn(&db, &all, &mut model, 2, 500)?;
    let backup = fx.root.path().join("backup");
    db.checkpoint(&backup)?;

    // Refused, with nothing dropped: the shared default key, a key two tables use, a
    // plaintext table, a pending window out of range.
    for (table, days) in [("default", 7), ("a", 7), ("plain", 7), ("secret", 3)] {
        let r = db.drop_table_and_delete_key(table, days);
        match (&r, table) {
            (Err(Error::InvalidArgument(_)), "secret") => {}
            (Err(Error::KeyNotDeletable { reason, .. }), _) if table != "secret" => {
                if table == "a" {
                    assert!(reason.contains('b'), "{reason}");
                }
            }
            _ => return Err(format!("{table}: {r:?}").into()),
        }
        assert!(
            db.tables().contains(&table.to_owned()),
            "{table} was dropped"
        );
    }
    let deletion = db.drop_table_and_delete_key("secret", 7)?;
    assert_eq!(deletion.key_arn, secret_key);
    assert!(!db.tables().contains(&"secret".to_owned()));
    let md = fx.kms.describe_key(&admin(), &secret_key)?;
    assert_eq!(md.key_state, KeyState::PendingDeletion);
    assert!(md.deletion_date.is_some());

    // Pending: the backup's copy of the table is locked, not readable, not empty.
    {
        let (b, _) = restore_fresh(&fx, &backup, "pending")?;
        let t = b.table("secret")?;
        assert_locked(t.get("k00000"), LockReason::KeyPendingDeletion);
    }

    // Past the window the KMS deletes the key: every copy of the table is unreadable for
    // good, with that reason; every other table reads back whole.
    fx.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let (b, _) = restore_fresh(&fx, &backup, "deleted")?;
    let t = b.table("secret")?;
    assert_eq!(t.locked(), Some(LockReason::KeyDeleted));
    assert_locked(t.get("k00000"), LockReason::KeyDeleted);
    assert_locked(t.iter().map(|_| ()), LockReason::KeyDeleted);
    for name in ["a", "b", "default", "plain"] {
        let want: Model = model
            .iter()
            .filter(|((t, _), _)| t == name)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut got = Model::new();
        for item in b.table(name)?.iter()? {
            let (k, v) = item?;
            got.insert((name.to_owned(), k.to_vec()), v.to_vec());
        }
        assert_eq!(got, want, "{name}");
    }
    // The backup itself, opened in place: the same.
    drop(b);
    let direct = Db::open(&backup, fx.options())?;
    assert_locked(
        direct.table("secret")?.get("k00000"),
        LockReason::KeyDeleted,
    );
    Ok(())
}

#[test]
fn under_the_default_key_a_drop_leaves_the_older_backup_readable() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("default", TableOptions::encrypted())?;
    let mut model = Model::new();
    churn(&db, &["default"], &mut model, 1, 2000)?;
    db.flush()?;
    churn(&db, &["default"], &mut model, 2, 300)?;
    let backup = fx.root.path().join("backup");
    db.checkpoint(&backup)?;
    db.drop_table("default")?;
    assert!(db.tables().is_empty());
    drop(db);

    // DESIGN.md: the drop destroyed this database's wrapped table key and retired the
    // table's grant (which the backup shares); the backup keeps its own wrapped copy, and
    // the default key still unwraps it for a principal its policy allows.
    let (b, dir) = restore_fresh(&fx, &backup, "restored")?;
    assert_eq!(
        contents(&b)?,
        model,
        "the dropped table reads back from the backup"
    );
    // Read through the principal's own access; the engine's maintenance waits for a new
    // grant, which renew-grant makes.
    let status = b.encryption_status();
    let s = status
        .iter()
        .find(|s| s.table == "default")
        .ok_or("no status")?;
    assert!(s.maintenance.contains("renew-grant"), "{}", s.maintenance);
    b.renew_grant("default")?;
    let t = b.table("default")?;
    t.put("after-restore", "x")?;
    b.flush()?;
    drop((t, b));
    let b = Db::open(&dir, fx.options())?;
    model.insert(("default".into(), b"after-restore".to_vec()), b"x".to_vec());
    assert_eq!(contents(&b)?, model);
    Ok(())
}

#[test]
fn grants_the_source_still_had_to_retire_are_retired_by_the_restored_copy() -> TestResult {
    // The source drops a table while RetireGrant is down: its grant is queued. The source
    // is then lost; the database restored from its backup must retire that grant, or it
    // stays in the KMS for good.
    let fx = EncryptedFixture::new()?;
    let kms = Hooked::new(&fx.kms);
    let own = new_key(&fx, "dropped table's key")?;
    let db = Db::open(fx.db_path(), kms.options(&fx))?;
    db.create_table("kept", TableOptions::encrypted())?;
    db.create_table("gone", TableOptions::encrypted_with(&own))?;
    db.table("kept")?.put("k", "v")?;
    db.table("gone")?.put("k", "v")?;
    let root = Caller::direct(Principal::root(common::ACCOUNT));
    let grants_on = |key: &str| -> Result<Vec<String>, Box<dyn std::error::Error>> {
        Ok(fx
            .kms
            .list_grants(&root, key)?
            .into_iter()
            .map(|g| g.grant_id)
            .collect())
    };
    let gone_grants = grants_on(&own)?;
    assert_eq!(gone_grants.len(), 1);
    kms.fail_retire.store(true, Ordering::SeqCst);
    db.drop_table("gone")?;
    let queued: Vec<String> = db.grants_to_retire().into_iter().map(|(_, g)| g).collect();
    assert_eq!(queued, gone_grants, "the drop queued its grant");
    let backup = fx.root.path().join("backup");
    let report = db.checkpoint(&backup)?;
    assert_eq!(report.grants_to_retire, 1, "{report:?}");
    assert!(backup.join("GRANTS-TO-RETIRE").exists());
    // The source is lost with its queue, before the KMS lets it retire anything.
    drop(db);
    std::fs::remove_dir_all(fx.db_path())?;
    assert_eq!(grants_on(&own)?, gone_grants, "nothing retired it yet");

    kms.fail_retire.store(false, Ordering::SeqCst);
    let target = fx.root.path().join("restored");
    Db::restore_checkpoint(&backup, &target, kms.options(&fx))?;
    let restored = Db::open(&target, kms.options(&fx))?;
    // The worker retires queued grants on its first tick (every 500 ms at most).
    for _ in 0..300 {
        if grants_on(&own)?.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        grants_on(&own)?.is_empty(),
        "the restored database never retired the dropped table's grant"
    );
    assert!(restored.grants_to_retire().is_empty());
    assert_eq!(
        restored.table("kept")?.get("k")?.as_deref(),
        Some(&b"v"[..])
    );
    // The table that lives on keeps its grant.
    let status = restored.encryption_status();
    let kept = status
        .iter()
        .find(|s| s.table == "kept")
        .ok_or("no status")?;
    let (key, grant) = (
        kept.key_arn.clone().ok_or("no key")?,
        kept.grant_id.clone().ok_or("no grant")?,
    );
    assert!(grants_on(&key)?.contains(&grant), "kept lost its grant");
    Ok(())
}

#[test]
fn a_leftover_staging_directory_is_cleared_only_if_it_holds_engine_files() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("enc", TableOptions::encrypted())?;
    db.table("enc")?.put("k", "v")?;
    let root = fx.root.path();
    // A crashed checkpoint's and restore's leftovers: engine files only.
    for staging in ["backup.tmp-checkpoint", "restored.tmp-restore"] {
        let d = root.join(staging);
        std::fs::create_dir(&d)?;
        for name in [
            "000007.sst",
            "000008.log",
            "MANIFEST-000009",
            "CURRENT",
            "GRANTS-TO-RETIRE",
        ] {
            std::fs::write(d.join(name), b"left by a crash")?;
        }
    }
    let backup = root.join("backup");
    db.checkpoint(&backup)?;
    assert!(!root.join("backup.tmp-checkpoint").exists());
    let restored = root.join("restored");
    Db::restore_checkpoint(&backup, &restored, fx.options())?;
    assert!(!root.join("restored.tmp-restore").exists());
    assert_eq!(
        Db::open(&restored, fx.options())?
            .table("enc")?
            .get("k")?
            .as_deref(),
        Some(&b"v"[..])
    );

    // A directory of that name holding anything else is someone's: refused, untouched.
    for (staging, target) in [("b2.tmp-checkpoint", "b2"), ("r2.tmp-restore", "r2")] {
        let d = root.join(staging);
        std::fs::create_dir(&d)?;
        std::fs::write(d.join("000010.sst"), b"engine-like")?;
        std::fs::write(d.join("notes.txt"), b"not the engine's")?;
        let r = if target == "b2" {
            db.checkpoint(root.join(target)).map(|_| ())
        } else {
            Db::restore_checkpoint(&backup, root.join(target), fx.options()).map(|_| ())
        };
        match r {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("notes.txt"), "{m}"),
            other => return Err(format!("{staging}: {other:?}").into()),
        }
        assert_eq!(std::fs::read(d.join("notes.txt"))?, b"not the engine's");
        assert_eq!(std::fs::read(d.join("000010.sst"))?, b"engine-like");
        assert!(!root.join(target).exists(), "{target} was made");
    }
    Ok(())
}
