//! `backup`, `restore` and `drop-table --delete-key` from the command line.

use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `sealdb` on database `db` with the keystore `kms`: (exit code, stdout, stderr).
fn run(db: &Path, kms: &Path, args: &[&str]) -> Result<(i32, String, String), std::io::Error> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealdb"));
    for var in [
        "SEALDB_PRINCIPAL",
        "SEALDB_ACCOUNT",
        "SEALDB_REGION",
        "SEALDB_KMS_PASSPHRASE",
        "SEALDB_KMS_KEY_FILE",
    ] {
        c.env_remove(var);
    }
    let o = c
        .env("SEALDB_DB", db)
        .env("SEALDB_KMS", kms)
        .args(args)
        .output()?;
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
    ))
}

#[test]
fn backup_restore_and_a_refused_key_deletion() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (db, kms) = (dir.path().join("data"), dir.path().join("data.kms"));
    let backup = dir.path().join("backup");
    let restored = dir.path().join("restored");
    let ok = |args: &[&str], on: &Path| -> Result<String, Box<dyn std::error::Error>> {
        let (code, out, err) = run(on, &kms, args)?;
        if code != 0 {
            return Err(format!("{args:?}: exit {code}: {err}").into());
        }
        Ok(out)
    };
    ok(&["create-table", "T"], &db)?;
    ok(&["put", "T", "k1", "at-backup"], &db)?;
    let out = ok(&["backup", backup.to_str().ok_or("path")?, "--json"], &db)?;
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert!(report["wal_segments"].as_u64() >= Some(1), "{out}");
    ok(&["put", "T", "k1", "after-backup"], &db)?;

    let out = ok(
        &[
            "restore",
            backup.to_str().ok_or("path")?,
            restored.to_str().ok_or("path")?,
        ],
        &db,
    )?;
    assert!(out.contains("verified 1 tables"), "{out}");
    assert_eq!(ok(&["get", "T", "k1"], &restored)?.trim(), "at-backup");
    assert_eq!(ok(&["get", "T", "k1"], &db)?.trim(), "after-backup");
    // `verify` runs on the backup itself.
    assert!(ok(&["verify"], &backup)?.starts_with("ok: 1 tables"));

    // A second restore into the now non-empty directory: a usage error, nothing changed.
    let (code, _, err) = run(
        &db,
        &kms,
        &[
            "restore",
            backup.to_str().ok_or("path")?,
            restored.to_str().ok_or("path")?,
        ],
    )?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(ok(&["get", "T", "k1"], &restored)?.trim(), "at-backup");

    // The service default key is shared: --delete-key is refused and the table stays.
    let (code, _, err) = run(&db, &kms, &["drop-table", "T", "--delete-key"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("service default key"), "{err}");
    assert_eq!(ok(&["get", "T", "k1"], &db)?.trim(), "after-backup");
    let help = ok(&["drop-table", "--help"], &db)?;
    assert!(help.contains("older backups"), "{help}");
    assert!(help.contains("--pending-days"), "{help}");
    Ok(())
}
