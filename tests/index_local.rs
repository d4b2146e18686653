//! Local indexes: declared with the table, living in its own LSM. The table's scans, gets
//! and counts never see an index entry, whatever bytes its keys hold; queries, uniqueness
//! and the catalogue work as for global indexes, across flushes, compactions and reopens.

mod common;

use std::collections::BTreeMap;

use common::TestResult;
use sealdb::{Db, Error, IndexSpec, Options, TableOptions, WriteBatch, MAX_KEY_LEN};

fn options() -> Options {
    let mut o = Options::default();
    o.write_buffer_size = 16 << 10;
    o.target_file_size = 8 << 10;
    o
}

fn table_options() -> TableOptions {
    TableOptions::plaintext()
        .with_local_index("by_city", IndexSpec::json_pointer("/city"))
        .with_local_index("by_mail", IndexSpec::json_pointer("/mail").unique())
}

fn doc(i: u32) -> String {
    format!(r#"{{"city":"c{:02}","mail":"m{i}@x"}}"#, i % 13)
}

/// Keys with every awkward first byte: empty, 0x00, 0x01 (the index space's byte), 0xFF.
fn keys() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![vec![], vec![0x00], vec![0x01], vec![0x01, 0x00], vec![0xFF]];
    v.extend((0..300u32).map(|i| format!("k{i:04}").into_bytes()));
    v
}

/// The table against `model`: every scan, prefix, range, reverse scan and get.
fn assert_items(db: &Db, model: &BTreeMap<Vec<u8>, String>) -> TestResult {
    let t = db.table("people")?;
    let all: Vec<(Vec<u8>, Vec<u8>)> = t
        .iter()?
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<sealdb::Result<_>>()?;
    let want: Vec<(Vec<u8>, Vec<u8>)> = model
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    assert_eq!(all.len(), model.len(), "the scan's count is the items'");
    assert!(all == want, "scan differs from the items");
    let rev: Vec<Vec<u8>> = t
        .iter()?
        .rev()
        .map(|kv| kv.map(|(k, _)| k.to_vec()))
        .collect::<sealdb::Result<_>>()?;
    assert!(rev.iter().eq(model.keys().rev()), "reverse scan differs");
    assert_eq!(t.prefix(b"")?.count(), model.len());
    assert_eq!(
        t.prefix([0x01u8])?.count(),
        model.keys().filter(|k| k.first() == Some(&0x01)).count()
    );
    assert_eq!(
        t.range::<&[u8]>(..)?.count(),
        model.len(),
        "an unbounded range is the items"
    );
    let upper: &[u8] = &[0xFF, 0xFF];
    assert_eq!(t.range(..=upper)?.count(), model.len());
    for k in keys() {
        assert_eq!(
            t.get(&k)?.map(|v| v.to_vec()),
            model.get(&k).map(|v| v.clone().into_bytes()),
            "get {k:?}"
        );
    }
    for name in ["by_city", "by_mail"] {
        let c = t.index(name)?.check()?;
        assert_eq!((c.stale, c.missing), (0, 0), "{name}: {c:?}");
        assert_eq!(c.entries, model.len() as u64, "{name}: {c:?}");
    }
    let want_city: Vec<Vec<u8>> = model
        .iter()
        .filter(|(_, v)| v.contains(r#""city":"c03""#))
        .map(|(k, _)| k.clone())
        .collect();
    let got_city: Vec<Vec<u8>> = t
        .index("by_city")?
        .prefix("c03")?
        .map(|e| e.map(|e| e.primary_key.to_vec()))
        .collect::<sealdb::Result<_>>()?;
    assert_eq!(got_city, want_city);
    Ok(())
}

#[test]
fn local_index_entries_never_appear_in_the_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut model = BTreeMap::new();
    {
        let db = Db::open(dir.path(), options())?;
        let t = db.create_table("people", table_options())?;
        for (i, k) in keys().into_iter().enumerate() {
            let v = doc(i as u32);
            t.put(&k, &v)?;
            model.insert(k, v);
        }
        assert_items(&db, &model)?;
        // Overwrites move items between cities; deletes remove their entries.
        for (i, k) in keys().into_iter().enumerate().step_by(3) {
            let v = doc(i as u32 + 1000);
            t.put(&k, &v)?;
            model.insert(k, v);
        }
        for k in keys().into_iter().step_by(7) {
            t.delete(&k)?;
            model.remove(&k);
        }
        db.flush()?;
        assert_items(&db, &model)?;
        db.compact_all()?;
        assert_items(&db, &model)?;
        // The files hold the entries too: more entries than items (what `inspect` counts).
        let layout = db.inspect();
        let files: u64 = layout
            .iter()
            .filter(|l| l.table == "people")
            .flat_map(|l| l.files.iter().map(|f| f.entries))
            .sum();
        assert!(files > model.len() as u64, "{files} entries in files");
    }
    let db = Db::open(dir.path(), options())?;
    assert_items(&db, &model)?;
    let t = db.table("people")?;
    let st = t.indexes();
    assert_eq!(st.len(), 2);
    assert!(st.iter().all(|s| s.local && s.ready), "{st:?}");
    Ok(())
}

#[test]
fn a_unique_local_index_refuses_a_duplicate_and_the_whole_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("people", table_options())?;
    t.put("ann", r#"{"city":"c1","mail":"a@x"}"#)?;
    match t.put("bob", r#"{"city":"c1","mail":"a@x"}"#) {
        Err(Error::UniqueViolation { index, .. }) => assert_eq!(index, "by_mail"),
        other => return Err(format!("a duplicate mail gave {other:?}").into()),
    }
    let mut b = WriteBatch::new();
    b.put(&t, "cat", r#"{"city":"c2","mail":"c@x"}"#);
    b.put(&t, "dan", r#"{"city":"c2","mail":"c@x"}"#);
    assert!(matches!(
        db.write(&b, Default::default()),
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(t.iter()?.count(), 1, "nothing of the refused batch applied");
    assert_eq!(t.index("by_city")?.prefix("c2")?.count(), 0);
    // A batch may move a key from one item to another.
    let mut b = WriteBatch::new();
    b.put(&t, "ann", r#"{"city":"c1","mail":"new@x"}"#);
    b.put(&t, "bob", r#"{"city":"c1","mail":"a@x"}"#);
    db.write(&b, Default::default())?;
    let got = t.index("by_mail")?.get("a@x")?.ok_or("a@x is bob's")?;
    assert_eq!(&got.primary_key[..], b"bob");
    Ok(())
}

#[test]
fn local_indexes_are_declared_only_with_their_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("people", table_options())?;
    assert!(matches!(
        t.drop_index("by_city"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.create_index("by_city", IndexSpec::json_pointer("/x")),
        Err(Error::InvalidArgument(_))
    ));
    // A global index beside the local ones, backfilled from the item key space only.
    for i in 0..50u32 {
        t.put(format!("p{i}"), doc(i))?;
    }
    t.create_index("by_mail_global", IndexSpec::json_pointer("/mail"))?;
    let c = t.index("by_mail_global")?.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (50, 0, 0), "{c:?}");
    let e = t.index("by_mail_global")?.get_at("m7@x", None);
    assert!(matches!(e, Err(Error::InvalidArgument(_))), "not unique");
    let got: Vec<_> = t
        .index("by_mail_global")?
        .prefix("m7@")?
        .collect::<sealdb::Result<_>>()?;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got.first().map(|e| e.primary_key.to_vec()),
        Some(b"p7".to_vec())
    );
    // Bad declarations fail before anything is created.
    for bad in [
        TableOptions::plaintext()
            .with_local_index("a", IndexSpec::json_pointer("/x"))
            .with_local_index("a", IndexSpec::json_pointer("/y")),
        TableOptions::plaintext().with_local_index("a", IndexSpec::named("missing")),
        TableOptions::plaintext().with_local_index("bad/name", IndexSpec::json_pointer("/x")),
    ] {
        assert!(db.create_table("other", bad).is_err());
        assert!(db.table("other").is_err());
    }
    let mut many = TableOptions::plaintext();
    for i in 0..17 {
        many = many.with_local_index(format!("i{i}"), IndexSpec::json_pointer("/x"));
    }
    assert!(matches!(
        db.create_table("other", many),
        Err(Error::InvalidArgument(_))
    ));
    // A key at the engine's limit no longer fits with the key-space byte: refused, typed.
    let at_limit = vec![b'x'; MAX_KEY_LEN];
    assert!(matches!(
        t.put(&at_limit, "{}"),
        Err(Error::InvalidArgument(_))
    ));
    t.put(&at_limit[1..], "{}")?;
    // An item whose index entry would pass the limit fails whole: nothing is applied.
    let near = vec![b'y'; MAX_KEY_LEN - 4];
    assert!(matches!(
        t.put(&near, doc(1)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(t.get(&near)?.is_none());
    let c = t.index("by_city")?.check()?;
    assert_eq!((c.stale, c.missing), (0, 0), "{c:?}");
    Ok(())
}

/// The same for a global index: an entry past the key limit fails the write (before, the
/// entry was dropped and the write applied, leaving the index missing the item).
#[test]
fn an_index_entry_past_the_key_limit_fails_the_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("plain", TableOptions::plaintext())?;
    t.create_index("by_city", IndexSpec::json_pointer("/city"))?;
    let near = vec![b'y'; MAX_KEY_LEN - 4];
    assert!(matches!(
        t.put(&near, doc(1)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(t.get(&near)?.is_none());
    t.put(&near, "{}")?;
    let c = t.index("by_city")?.check()?;
    assert_eq!((c.entries, c.stale, c.missing), (0, 0, 0), "{c:?}");
    Ok(())
}
