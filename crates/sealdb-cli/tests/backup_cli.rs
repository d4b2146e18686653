//! `backup`, `restore` and `drop-table --delete-key` from the command line.

mod common;

use std::path::Path;

use common::{Fixture, TestResult};

#[test]
fn backup_restore_and_a_refused_key_deletion() -> TestResult {
    let f = Fixture::new()?;
    let db = f.db.clone();
    let backup = f.dir.path().join("backup");
    let restored = f.dir.path().join("restored");
    let ok = |args: &[&str], on: &Path| -> Result<String, String> {
        let r = f.run_on(on, args).map_err(|e| e.to_string())?;
        r.ok()
            .map(|r| r.stdout)
            .map_err(|e| format!("{args:?}: {e}"))
    };
    ok(&["create-table", "T"], &db)?;
    ok(&["put", "T", "k1", "at-backup"], &db)?;
    let out = ok(&["backup", backup.to_str().ok_or("path")?, "--json"], &db)?;
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert!(report["wal_segments"].as_u64() >= Some(1), "{out}");
    ok(&["put", "T", "k1", "after-backup"], &db)?;

    let restore = [
        "restore",
        backup.to_str().ok_or("path")?,
        restored.to_str().ok_or("path")?,
    ];
    let out = ok(&restore, &db)?;
    assert!(out.contains("verified 1 tables"), "{out}");
    assert_eq!(ok(&["get", "T", "k1"], &restored)?.trim(), "at-backup");
    assert_eq!(ok(&["get", "T", "k1"], &db)?.trim(), "after-backup");
    // `verify` runs on the backup itself.
    assert!(ok(&["verify"], &backup)?.starts_with("ok: 1 tables"));

    // A second restore into the now non-empty directory: a usage error, nothing changed.
    let r = f.run(&restore)?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(ok(&["get", "T", "k1"], &restored)?.trim(), "at-backup");

    // The service default key is shared: --delete-key is refused and the table stays.
    let r = f.run(&["drop-table", "T", "--delete-key"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("service default key"), "{}", r.stderr);
    assert_eq!(ok(&["get", "T", "k1"], &db)?.trim(), "after-backup");
    let help = ok(&["drop-table", "--help"], &db)?;
    assert!(help.contains("older backups"), "{help}");
    assert!(help.contains("--pending-days"), "{help}");
    Ok(())
}
