//! The CLI over AWS KMS (`--kms aws:<key> --kms-endpoint URL`), against moto's server on
//! 127.0.0.1 (`.ci/aws_kms.sh`); needs the `aws-kms` feature.
#![cfg(feature = "aws-kms")]

#[path = "../../../tests/common/moto.rs"]
mod moto;

use moto::{fixture, TestResult, ACCOUNT};

/// The CLI over AWS KMS: `--kms aws:<key> --kms-endpoint URL`.
#[test]
fn the_cli_runs_over_aws_kms() -> TestResult {
    let Some(f) = fixture("the_cli_runs_over_aws_kms")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    let run = |args: &[&str]| -> Result<std::process::Output, std::io::Error> {
        std::process::Command::new(env!("CARGO_BIN_EXE_sealdb"))
            .arg("--db")
            .arg(&db)
            .args([
                "--kms",
                &format!("aws:{}", f.key_arn),
                "--kms-endpoint",
                &f.endpoint,
            ])
            .args(["--region", "us-east-1", "--account", ACCOUNT])
            .args(args)
            .output()
    };
    for args in [
        &["create-table", "Books"][..],
        &["put", "Books", "dune", "Frank Herbert"],
        &["flush"],
    ] {
        let out = run(args)?;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["get", "Books", "dune"])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Frank Herbert");
    let out = run(&["audit"])?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "the local audit needs the local KMS"
    );
    Ok(())
}
