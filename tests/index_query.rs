//! Secondary indexes end to end: declaring, backfilling, querying forward and reverse at a
//! snapshot, uniqueness, stale entries, dropping, reopening.

mod common;

use common::{open, TestResult};
use sealdb::{Db, Error, IndexEntry, IndexExtractors, IndexSpec, TableOptions, WriteBatch};

fn doc(author: &str, city: &str) -> String {
    format!(r#"{{"author":"{author}","address":{{"city":"{city}"}}}}"#)
}

fn pks(entries: Vec<IndexEntry>) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                String::from_utf8_lossy(&e.index_key),
                String::from_utf8_lossy(&e.primary_key)
            )
        })
        .collect()
}

fn collect(it: sealdb::IndexIter) -> sealdb::Result<Vec<IndexEntry>> {
    it.collect()
}

#[test]
fn backfill_then_range_prefix_reverse_and_snapshot() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let books = db.create_table("books", TableOptions::plaintext())?;
    books.put("b1", doc("ann", "Oslo"))?;
    books.put("b2", doc("bob", "Rome"))?;
    books.put("b3", doc("ann", "Rome"))?;
    books.put("b4", "not json")?;
    books.create_index("by_author", IndexSpec::json_pointer("/author"))?;
    books.create_index("by_city", IndexSpec::json_pointer("/address/city"))?;
    let status = books.indexes();
    assert_eq!(status.len(), 2);
    assert!(
        status.iter().all(|s| s.ready && s.backfilled == 4),
        "{status:?}"
    );

    let by_author = books.index("by_author")?;
    assert_eq!(
        pks(collect(by_author.range::<&str>(..)?)?),
        ["ann=b1", "ann=b3", "bob=b2"]
    );
    assert_eq!(
        pks(collect(by_author.range::<&str>(..)?.rev())?),
        ["bob=b2", "ann=b3", "ann=b1"]
    );
    assert_eq!(pks(collect(by_author.prefix("an")?)?), ["ann=b1", "ann=b3"]);
    assert_eq!(pks(collect(by_author.range("b".."c")?)?), ["bob=b2"]);
    assert_eq!(
        pks(collect(by_author.range("ann"..="ann")?)?),
        ["ann=b1", "ann=b3"]
    );
    assert_eq!(
        pks(collect(books.index("by_city")?.prefix("Rome")?)?),
        ["Rome=b2", "Rome=b3"]
    );
    let first = collect(by_author.prefix("bob")?)?;
    assert_eq!(
        first.first().map(|e| e.value.to_vec()),
        Some(doc("bob", "Rome").into_bytes())
    );

    // A snapshot sees the index as it was; the live view sees the overwrite and delete.
    let snap = db.snapshot();
    books.put("b1", doc("cid", "Oslo"))?;
    books.delete("b2")?;
    assert_eq!(
        pks(collect(by_author.range_at_snapshot::<&str>(.., &snap)?)?),
        ["ann=b1", "ann=b3", "bob=b2"]
    );
    assert_eq!(
        pks(collect(by_author.range::<&str>(..)?)?),
        ["ann=b3", "cid=b1"]
    );
    // Written after the index existed: maintained by the write itself.
    books.put("b5", doc("ann", "Oslo"))?;
    assert_eq!(
        pks(collect(by_author.prefix("ann")?)?),
        ["ann=b3", "ann=b5"]
    );
    Ok(())
}

/// Stale entries: the index LSM itself holds no entry for an overwritten or deleted item's
/// old key (maintenance deleted it in the same record), before and after flushes.
#[test]
fn overwrites_and_deletes_leave_no_stale_entry() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    t.create_index("by_author", IndexSpec::json_pointer("/author"))?;
    let idx = t.index("by_author")?;
    for round in 0..3 {
        for i in 0..200 {
            t.put(
                format!("k{i:03}"),
                doc(&format!("a{}", (i + round) % 7), "x"),
            )?;
        }
        for i in (0..200).step_by(5) {
            t.delete(format!("k{i:03}"))?;
        }
        db.flush()?;
    }
    let got = collect(idx.range::<&str>(..)?)?;
    assert_eq!(got.len(), 160);
    for e in &got {
        let v = t.get(&e.primary_key)?.ok_or("indexed item missing")?;
        assert_eq!(v, e.value);
        let author = serde_json::from_slice::<serde_json::Value>(&v)?["author"]
            .as_str()
            .map(str::to_owned);
        assert_eq!(author.as_deref().map(str::as_bytes), Some(&e.index_key[..]));
    }
    // The index LSM itself holds exactly the live items' entries: no stale one.
    let c = idx.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (160, 0, 0), "{c:?}");
    // Each live item is found exactly once, under its current key only.
    let mut seen: Vec<_> = got.iter().map(|e| e.primary_key.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 160);
    Ok(())
}

#[test]
fn unique_index_refuses_a_duplicate_and_applies_nothing_of_the_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let users = db.create_table("users", TableOptions::plaintext())?;
    users.put("u1", r#"{"email":"a@x"}"#)?;
    users.create_index("by_email", IndexSpec::json_pointer("/email").unique())?;
    let by_email = users.index("by_email")?;
    assert_eq!(
        by_email.get("a@x")?.map(|e| e.primary_key.to_vec()),
        Some(b"u1".to_vec())
    );
    // A batch whose second put duplicates an existing key: nothing of it is applied.
    let mut b = WriteBatch::new();
    b.put(&users, "u2", r#"{"email":"b@x"}"#);
    b.put(&users, "u3", r#"{"email":"a@x"}"#);
    assert!(matches!(
        db.write(&b, Default::default()),
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(users.get("u2")?, None);
    assert_eq!(by_email.get("b@x")?, None);
    // A duplicate inside one batch.
    let mut b = WriteBatch::new();
    b.put(&users, "u4", r#"{"email":"c@x"}"#);
    b.put(&users, "u5", r#"{"email":"c@x"}"#);
    assert!(matches!(
        db.write(&b, Default::default()),
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(users.get("u4")?, None);
    // Moving a key between items in one batch is no duplicate.
    let mut b = WriteBatch::new();
    b.put(&users, "u1", r#"{"email":"z@x"}"#);
    b.put(&users, "u6", r#"{"email":"a@x"}"#);
    db.write(&b, Default::default())?;
    assert_eq!(
        by_email.get("a@x")?.map(|e| e.primary_key.to_vec()),
        Some(b"u6".to_vec())
    );
    // Rewriting an item with its own key is no duplicate either.
    users.put("u6", r#"{"email":"a@x","n":2}"#)?;
    // A unique index over items that already share a key cannot be built, and leaves
    // nothing behind.
    users.put("u7", r#"{"team":"red"}"#)?;
    users.put("u8", r#"{"team":"red"}"#)?;
    assert!(matches!(
        users.create_index("by_team", IndexSpec::json_pointer("/team").unique()),
        Err(Error::UniqueViolation { .. })
    ));
    assert!(matches!(
        users.index("by_team"),
        Err(Error::IndexUnavailable { .. })
    ));
    assert_eq!(users.indexes().len(), 1);
    Ok(())
}

#[test]
fn indexes_survive_reopen_and_drop_removes_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        t.create_index("by_author", IndexSpec::json_pointer("/author"))?;
        t.create_index("gone", IndexSpec::json_pointer("/address/city"))?;
        for i in 0..500 {
            t.put(format!("k{i:03}"), doc(&format!("a{}", i % 10), "c"))?;
        }
        db.flush()?;
        t.put("k999", doc("a3", "c"))?; // in the WAL only
        t.drop_index("gone")?;
        assert!(t.index("gone").is_err());
    }
    let db = open(dir.path())?;
    assert_eq!(db.tables(), ["t"]);
    let t = db.table("t")?;
    assert_eq!(t.indexes().len(), 1);
    let got = collect(t.index("by_author")?.prefix("a3")?)?;
    assert_eq!(got.len(), 51);
    // Dropping the table drops its indexes with it.
    db.drop_table("t")?;
    drop((t, db));
    let db = open(dir.path())?;
    assert!(db.tables().is_empty());
    let t = db.create_table("t", TableOptions::plaintext())?;
    assert!(t.indexes().is_empty());
    Ok(())
}

#[test]
fn a_named_extractor_must_be_registered_at_every_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    let with = || {
        let mut x = IndexExtractors::new();
        x.register("lower", |v: &[u8]| vec![v.to_ascii_lowercase()]);
        let mut o = common::small_options();
        o.index_extractors = x;
        o
    };
    {
        let db = Db::open(dir.path(), with())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        t.put("1", "Ann")?;
        t.put("2", "ANN")?;
        t.put("3", "bob")?;
        t.create_index("ci", IndexSpec::named("lower"))?;
        assert_eq!(collect(t.index("ci")?.prefix("ann")?)?.len(), 2);
    }
    match Db::open(dir.path(), common::small_options()) {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("lower"), "{why}"),
        other => panic!("open without the extractor: {other:?}"),
    }
    let db = Db::open(dir.path(), with())?;
    assert_eq!(
        collect(db.table("t")?.index("ci")?.prefix("ann")?)?.len(),
        2
    );
    Ok(())
}

/// Synced and unsynced writers overwriting the same items at once: a synced write inserts
/// after its fsync, outside the write lock, so maintenance must not read an item's old value
/// past one in flight; the index ends with no stale and no missing entry.
#[test]
fn concurrent_synced_and_unsynced_overwrites_keep_the_index_exact() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    t.create_index("by_author", IndexSpec::json_pointer("/author"))?;
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let t = t.clone();
            std::thread::spawn(move || -> sealdb::Result<()> {
                let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for _ in 0..300 {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let k = format!("k{:02}", (x >> 33) % 20);
                    let v = doc(&format!("w{w}-{}", (x >> 40) % 5), "c");
                    if (x >> 20) % 7 == 0 {
                        t.delete_opt(&k, sealdb::WriteOptions::with_sync(w % 2 == 0))?;
                    } else {
                        t.put_opt(&k, v, sealdb::WriteOptions::with_sync(w % 2 == 0))?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().map_err(|_| "writer panicked")??;
    }
    let c = t.index("by_author")?.check()?;
    assert_eq!((c.stale, c.missing), (0, 0), "{c:?}");
    assert_eq!(c.entries as usize, t.iter()?.count());
    Ok(())
}

/// Regression (found by tests/index_model.rs): a batch that gives an item a taken unique
/// key and then deletes that item leaves no duplicate, so it is accepted.
#[test]
fn a_unique_key_taken_and_dropped_again_in_one_batch_is_no_duplicate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    t.create_index("by_code", IndexSpec::json_pointer("/code").unique())?;
    t.put("item00", r#"{"code":"c11"}"#)?;
    let mut b = WriteBatch::new();
    b.put(&t, "item03", r#"{"code":"c11"}"#);
    b.delete(&t, "item03");
    db.write(&b, Default::default())?;
    let owner = t.index("by_code")?.get("c11")?;
    assert_eq!(
        owner.map(|e| e.primary_key.to_vec()),
        Some(b"item00".to_vec())
    );
    let c = t.index("by_code")?.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (1, 0, 0));
    Ok(())
}
