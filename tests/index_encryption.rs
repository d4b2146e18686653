//! What an encrypted table's index leaves on disk: no attribute value in any file (WAL,
//! index SSTables, the manifest's boundaries) at any stage, although the table keeps its
//! own boundaries plaintext; a plaintext table's index beside it shows the scan finds them.

mod common;

use common::{files_containing, EncryptedFixture, TestResult};
use sealdb::{IndexSpec, TableOptions};

fn marker(kind: &str, i: usize) -> String {
    format!("MARK-{kind}-{i:06}-Zq")
}

#[test]
fn encrypted_index_entries_and_boundaries_appear_in_no_file() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    // Plaintext boundaries for the table itself: its primary keys (no markers) may leak,
    // its index's boundaries (attribute values) must not.
    let secret = db.create_table("secret", TableOptions::encrypted())?;
    let open = db.create_table("open", TableOptions::plaintext())?;
    secret.create_index("by_author", IndexSpec::json_pointer("/author"))?;
    open.create_index("by_author", IndexSpec::json_pointer("/author"))?;
    let n = 2000;
    let doc = |kind: &str, i: usize| format!(r#"{{"author":"{}"}}"#, marker(kind, i));
    for i in 0..n {
        secret.put(format!("k{i:05}"), doc("sattr", i))?;
        open.put(format!("k{i:05}"), doc("pattr", i))?;
    }
    let data = fx.db_path();
    let check = |stage: &str| -> TestResult {
        for i in (0..n).step_by(37).chain([0, n - 1]) {
            let hits = files_containing(&data, marker("sattr", i).as_bytes());
            assert!(hits.is_empty(), "{stage}: attribute {i} found in {hits:?}");
        }
        let seen = (0..n)
            .step_by(37)
            .filter(|i| !files_containing(&data, marker("pattr", *i).as_bytes()).is_empty())
            .count();
        assert!(
            seen > 0,
            "{stage}: the plaintext table's attributes are not found"
        );
        Ok(())
    };
    check("WAL only")?;
    db.flush()?;
    check("after flush")?;
    for i in 0..n {
        secret.put(format!("k{i:05}"), doc("sattr", n - 1 - i))?;
    }
    db.flush()?;
    db.compact_all()?;
    check("after overwrite, flush and compaction")?;
    // inspect: the index's boundaries are sealed, the table's are not.
    let layout = db.inspect();
    let table = layout
        .iter()
        .find(|l| l.table == "secret")
        .ok_or("no table")?;
    let index = layout
        .iter()
        .find(|l| l.table == "secret/by_author")
        .ok_or("no index")?;
    assert!(!index.files.is_empty());
    assert!(index
        .files
        .iter()
        .all(|f| f.smallest.is_none() && f.largest.is_none()));
    assert!(table.files.iter().all(|f| f.smallest.is_some()));
    let status = secret.indexes();
    assert!(status.first().is_some_and(|s| s.sealed_boundaries));
    assert!(open.indexes().first().is_some_and(|s| !s.sealed_boundaries));
    drop((secret, open, db));
    let db = fx.open()?;
    check("after reopen")?;
    let got: Vec<_> = db
        .table("secret")?
        .index("by_author")?
        .prefix(marker("sattr", 7))?
        .collect::<sealdb::Result<_>>()?;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got.first().map(|e| e.primary_key.to_vec()),
        Some(format!("k{:05}", n - 1 - 7).into_bytes())
    );
    // Files verify (every unit authenticated), the index's included.
    db.verify()?;
    Ok(())
}

/// A local index of an encrypted table: its entries live in the table's own files, sealed
/// with its items, and the table's boundaries are sealed (they may be index entries), so
/// no attribute value reaches any file; a plaintext table's local index shows the scan
/// would find them.
#[test]
fn encrypted_local_index_entries_appear_in_no_file() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let by_author = || IndexSpec::json_pointer("/author");
    let secret = db.create_table(
        "secret",
        TableOptions::encrypted().with_local_index("by_author", by_author()),
    )?;
    let open = db.create_table(
        "open",
        TableOptions::plaintext().with_local_index("by_author", by_author()),
    )?;
    let n = 2000;
    // The attribute is not in the value as stored: only the index entry carries it in
    // the clear (the value holds it escaped), so a hit can only be an entry.
    let doc = |kind: &str, i: usize| {
        format!(
            r#"{{"author":"{}"}}"#,
            marker(kind, i).replace('-', "\\u002d")
        )
    };
    for i in 0..n {
        secret.put(format!("k{i:05}"), doc("sattr", i))?;
        open.put(format!("k{i:05}"), doc("pattr", i))?;
    }
    let data = fx.db_path();
    let check = |stage: &str| -> TestResult {
        for i in (0..n).step_by(37).chain([0, n - 1]) {
            let hits = files_containing(&data, marker("sattr", i).as_bytes());
            assert!(hits.is_empty(), "{stage}: attribute {i} found in {hits:?}");
        }
        let seen = (0..n)
            .step_by(37)
            .filter(|i| !files_containing(&data, marker("pattr", *i).as_bytes()).is_empty())
            .count();
        assert!(
            seen > 0,
            "{stage}: the plaintext table's index entries are not found"
        );
        Ok(())
    };
    check("WAL only")?;
    db.flush()?;
    check("after flush")?;
    for i in 0..n {
        secret.put(format!("k{i:05}"), doc("sattr", n - 1 - i))?;
    }
    db.flush()?;
    db.compact_all()?;
    check("after overwrite, flush and compaction")?;
    let layout = db.inspect();
    let table = layout
        .iter()
        .find(|l| l.table == "secret")
        .ok_or("no table")?;
    assert!(!table.files.is_empty());
    assert!(table
        .files
        .iter()
        .all(|f| f.smallest.is_none() && f.largest.is_none()));
    assert!(secret
        .indexes()
        .first()
        .is_some_and(|s| s.local && s.sealed_boundaries));
    drop((secret, open, db));
    let db = fx.open()?;
    check("after reopen")?;
    let got: Vec<_> = db
        .table("secret")?
        .index("by_author")?
        .prefix(marker("sattr", 7))?
        .collect::<sealdb::Result<_>>()?;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got.first().map(|e| e.primary_key.to_vec()),
        Some(format!("k{:05}", n - 1 - 7).into_bytes())
    );
    db.verify()?;
    Ok(())
}
