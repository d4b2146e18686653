//! A table whose key cannot be had is locked, and so are its indexes: they are under its
//! key. Writes and queries are refused with `TableLocked` (never answered from a partial
//! index), status says so, and once the key is back the first access unlocks the table
//! and its indexes together: every acknowledged write is in the index, which is exact.
//! Dropping a table drops its indexes in the same record.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use sealdb::kms::{Caller, CreateKeyRequest, Kms, Principal};
use sealdb::{Db, Error, IndexSpec, LockReason, TableOptions};

fn root() -> Caller {
    Caller::direct(Principal::root(sealdb::DEFAULT_ACCOUNT))
}

fn doc(author: &str, n: usize) -> String {
    format!(r#"{{"author":"{author}","n":{n}}}"#)
}

/// (author, primary key) of every item, as the index must hold them.
fn want(model: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = model
        .iter()
        .filter_map(|(k, v)| {
            let d: serde_json::Value = serde_json::from_str(v).ok()?;
            Some((d["author"].as_str()?.to_owned(), k.clone()))
        })
        .collect();
    v.sort();
    v
}

fn assert_exact(db: &Db, model: &BTreeMap<String, String>) -> TestResult {
    let t = db.table("Books")?;
    for name in ["by_author", "by_isbn"] {
        let c = t.index(name)?.check()?;
        assert_eq!((c.stale, c.missing), (0, 0), "{name}: {c:?}");
    }
    let got: Vec<(String, String)> = t
        .index("by_author")?
        .range::<&str>(..)?
        .map(|e| {
            let e = e?;
            Ok((
                String::from_utf8(e.index_key.to_vec())?,
                String::from_utf8(e.primary_key.to_vec())?,
            ))
        })
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    assert_eq!(got, want(model));
    Ok(())
}

fn assert_locked(db: &Db) -> TestResult {
    let t = db.table("Books")?;
    assert_eq!(t.locked(), Some(LockReason::KeyDisabled));
    match t.index("by_author") {
        Err(Error::TableLocked { table, reason }) => {
            assert_eq!((table.as_str(), reason), ("Books", LockReason::KeyDisabled));
        }
        other => panic!("an index of a locked table must be locked, got {other:?}"),
    }
    assert!(matches!(
        t.put("b9999", doc("zed", 1)),
        Err(Error::TableLocked { .. })
    ));
    let st = t.indexes();
    assert_eq!(st.len(), 2);
    for s in &st {
        assert_eq!(s.locked, Some("key disabled"), "{s:?}");
        assert!(s.ready, "{s:?}");
    }
    // The index's own files are reported locked too.
    let status = db.encryption_status();
    for name in ["Books", "Books/by_author", "Books/by_isbn"] {
        let s = status.iter().find(|s| s.table == name).ok_or(name)?;
        assert_eq!(s.locked.as_deref(), Some("key disabled"), "{name}");
    }
    Ok(())
}

#[test]
fn a_locked_tables_indexes_are_locked_and_unlock_with_it() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = fx
        .kms
        .create_key(&root(), CreateKeyRequest::new("Books key"))?
        .arn;
    let mut model = BTreeMap::new();
    {
        let db = fx.open()?;
        let t = db.create_table("Books", TableOptions::encrypted_with(&key))?;
        t.create_index("by_author", IndexSpec::json_pointer("/author"))?;
        t.create_index("by_isbn", IndexSpec::json_pointer("/n").unique())?;
        // Part in SSTables, part only in the WAL (index entries too), with overwrites
        // and deletes that leave nothing stale behind.
        for i in 0..300 {
            let (k, v) = (format!("b{i:04}"), doc(["ann", "bob", "cy"][i % 3], i));
            t.put(&k, &v)?;
            model.insert(k, v);
            if i == 200 {
                db.flush()?;
            }
        }
        for i in (0..300).step_by(7) {
            let (k, v) = (format!("b{i:04}"), doc("dee", i));
            t.put(&k, &v)?;
            model.insert(k, v);
        }
        for i in (0..300).step_by(11) {
            let k = format!("b{i:04}");
            t.delete(&k)?;
            model.remove(&k);
        }
        assert_exact(&db, &model)?;
    }
    fx.kms.disable_key(&root(), &key)?;
    let db = fx.open()?;
    assert_locked(&db)?;
    // Still locked after a reopen: the locked index's WAL records are kept for it.
    drop(db);
    let db = fx.open()?;
    assert_locked(&db)?;

    fx.kms.enable_key(&root(), &key)?;
    fx.clock.advance(Duration::from_secs(60));
    // The first access to the table unlocks it and its indexes.
    let t = db.table("Books")?;
    assert_eq!(
        t.get("b0001")?.as_deref(),
        model.get("b0001").map(String::as_bytes)
    );
    assert_eq!(t.locked(), None);
    assert!(t.indexes().iter().all(|s| s.locked.is_none()));
    assert_exact(&db, &model)?;
    // Writes maintain the indexes again, and the unique index still refuses duplicates.
    for i in 300..340 {
        let (k, v) = (format!("b{i:04}"), doc("eve", i));
        t.put(&k, &v)?;
        model.insert(k, v);
    }
    assert!(matches!(
        t.put("dup", doc("eve", 301)),
        Err(Error::UniqueViolation { .. })
    ));
    db.flush()?;
    db.compact_all()?;
    assert_exact(&db, &model)?;
    drop((t, db));
    let db = fx.open()?;
    assert_exact(&db, &model)?;

    // Dropping the table drops its indexes: their files go with it.
    db.drop_table("Books")?;
    assert!(db
        .encryption_status()
        .iter()
        .all(|s| !s.table.starts_with("Books")));
    drop(db);
    let db = fx.open()?;
    assert!(db.tables().is_empty());
    assert!(db.inspect().is_empty());
    assert!(common::files_with_ext(&fx.db_path(), "sst").is_empty());
    Ok(())
}
