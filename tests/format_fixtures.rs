//! Every earlier on-disk format keeps opening: a database written by an older sealdb
//! (tests/fixtures/) is opened by this one, read back exactly, upgraded, and reopened.

use std::path::Path;
use std::sync::Arc;

use sealdb::kms::{LocalKms, LocalKmsOptions, RootKeySource};
use sealdb::{Db, Options};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(root: &Path) -> Result<Db, Box<dyn std::error::Error>> {
    let mut kms_opts = LocalKmsOptions::new("111122223333", "us-west-2");
    kms_opts.root_key = RootKeySource::KeyFile(root.join("root.key"));
    let kms = Arc::new(LocalKms::open(&root.join("kms"), kms_opts)?);
    Ok(Db::open(root.join("db"), {
        let mut o = Options::default();
        o.kms = Some(kms);
        o.create_if_missing = false;
        o
    })?)
}

/// Copies the tree `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

fn all(db: &Db, table: &str) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for item in db.table(table)?.iter()? {
        let (k, v) = item?;
        out.push((
            String::from_utf8(k.to_vec())?,
            String::from_utf8(v.to_vec())?,
        ));
    }
    Ok(out)
}

/// A scratch copy of `tests/fixtures/<name>`.
fn fixture_copy(name: &str) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        dir.path(),
    )?;
    Ok(dir)
}

/// The format version byte of the fixture copy's manifest.
fn manifest_version(root: &Path) -> Result<Option<u8>, Box<dyn std::error::Error>> {
    let m = std::fs::read_dir(root.join("db"))?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("MANIFEST-"))
        .ok_or("no manifest")?;
    Ok(std::fs::read(m.path())?.get(8).copied())
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn format_1_database_opens_reads_back_and_upgrades() -> TestResult {
    let dir = fixture_copy("v1")?;
    let books = pairs(&[
        ("dune", "F. Herbert"),
        ("emma", "Jane Austen"),
        ("ulysses", "James Joyce"),
        ("zorba", "Nikos Kazantzakis"),
    ]);
    let metrics = pairs(&[("disk", "0.9"), ("mem", "0.7")]);
    for round in 0..2 {
        let db = open(dir.path())?;
        assert_eq!(
            db.tables(),
            vec!["Books".to_string(), "Metrics".to_string()]
        );
        assert!(db.encrypted_table("Books").is_ok());
        assert!(db.encrypted_table("Metrics").is_err());
        assert_eq!(all(&db, "Books")?, books, "round {round}");
        assert_eq!(all(&db, "Metrics")?, metrics, "round {round}");
        assert!(db.unreferenced_files()?.is_empty());
        db.verify()?;
        drop(db);
        // The first open rewrote the manifest in the current format (5: local indexes).
        assert_eq!(manifest_version(dir.path())?, Some(5));
    }
    Ok(())
}

#[test]
fn format_2_database_opens_reads_back_and_upgrades() -> TestResult {
    let dir = fixture_copy("v2")?;
    assert_eq!(manifest_version(dir.path())?, Some(2));
    let books = pairs(&[
        ("dune", "F. Herbert"),
        ("emma", "Jane Austen"),
        ("ulysses", "James Joyce"),
        ("zorba", "Nikos Kazantzakis"),
    ]);
    let metrics = pairs(&[("disk", "0.9"), ("mem", "0.7")]);
    let shelves = pairs(&[("a1", "fiction"), ("b2", "history"), ("c3", "poetry")]);
    for round in 0..2 {
        let db = open(dir.path())?;
        assert_eq!(db.tables(), ["Books", "Metrics", "Shelves"]);
        assert!(db.encrypted_table("Books").is_ok());
        assert!(db.encrypted_table("Shelves").is_ok());
        assert!(db.encrypted_table("Metrics").is_err());
        assert_eq!(all(&db, "Books")?, books, "round {round}");
        assert_eq!(all(&db, "Metrics")?, metrics, "round {round}");
        assert_eq!(all(&db, "Shelves")?, shelves, "round {round}");
        assert!(db.unreferenced_files()?.is_empty());
        db.verify()?;
        drop(db);
        assert_eq!(manifest_version(dir.path())?, Some(5), "round {round}");
    }
    Ok(())
}
