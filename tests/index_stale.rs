//! Stale index entries, against a `BTreeMap` model: items with several index keys each
//! (a JSON array, and a named extractor splitting a field into words) are overwritten with
//! other keys and deleted, across flushes and compactions, and every query (forward,
//! reverse, by exact key, at snapshots) returns exactly the model's items. The index
//! itself is checked too (`Index::check`): not one entry left behind by an overwrite or a
//! delete, so what queries return does not rest on their skipping stale entries.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sealdb::{Db, Error, IndexExtractors, IndexSpec, Options, Snapshot, TableOptions};

/// Item -> (tags, words).
type Model = BTreeMap<u8, (BTreeSet<u8>, BTreeSet<u8>)>;

#[derive(Debug, Clone)]
enum Op {
    /// Item, tag bits, word bits.
    Put(u8, u8, u8),
    Delete(u8),
    Flush,
    Compact,
    Snapshot,
    Check(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..12u8, any::<u8>(), any::<u8>()).prop_map(|(i, t, w)| Op::Put(i, t, w)),
        4 => (0..12u8).prop_map(Op::Delete),
        2 => Just(Op::Flush),
        2 => Just(Op::Compact),
        1 => Just(Op::Snapshot),
        2 => any::<bool>().prop_map(Op::Check),
    ]
}

fn bits(b: u8, n: u8) -> BTreeSet<u8> {
    (0..n).filter(|i| b & (1 << i) != 0).collect()
}

fn pk(i: u8) -> String {
    format!("item{i:02}")
}

fn value(tags: &BTreeSet<u8>, words: &BTreeSet<u8>) -> String {
    let tags: Vec<String> = tags.iter().map(|t| format!("\"t{t}\"")).collect();
    let words: Vec<String> = words.iter().map(|w| format!("w{w}")).collect();
    format!(
        r#"{{"tags":[{}],"note":"{}"}}"#,
        tags.join(","),
        words.join(" ")
    )
}

fn options() -> Options {
    let mut o = Options::default();
    o.write_buffer_size = 2 << 10;
    o.level_base_bytes = Some(8 << 10);
    o.target_file_size = 2 << 10;
    let mut x = IndexExtractors::new();
    x.register("words", |v: &[u8]| {
        let doc: serde_json::Value = serde_json::from_slice(v).unwrap_or_default();
        doc["note"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    });
    o.index_extractors = x;
    o
}

/// The model's entries of one index: (index key, primary key), in index order.
fn entries(m: &Model, words: bool) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m
        .iter()
        .flat_map(|(i, (tags, ws))| {
            let keys: Vec<String> = if words {
                ws.iter().map(|w| format!("w{w}")).collect()
            } else {
                tags.iter().map(|t| format!("t{t}")).collect()
            };
            keys.into_iter().map(move |k| (k, pk(*i)))
        })
        .collect();
    v.sort();
    v
}

fn check(db: &Db, m: &Model, snap: Option<&Snapshot>, reverse: bool) -> Result<(), TestCaseError> {
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let t = db.table("t").map_err(fail)?;
    for (name, words) in [("by_tag", false), ("by_word", true)] {
        let index = t.index(name).map_err(fail)?;
        let collect = |it: sealdb::IndexIter| -> Result<Vec<(String, String)>, TestCaseError> {
            it.map(|e| {
                e.map(|e| {
                    (
                        String::from_utf8_lossy(&e.index_key).into_owned(),
                        String::from_utf8_lossy(&e.primary_key).into_owned(),
                    )
                })
                .map_err(fail)
            })
            .collect()
        };
        let all = match snap {
            Some(s) => index.range_at_snapshot::<&str>(.., s),
            None => index.range::<&str>(..),
        }
        .map_err(fail)?;
        let mut want = entries(m, words);
        let got = collect(if reverse { all.rev() } else { all })?;
        if reverse {
            want.reverse();
        }
        prop_assert_eq!(&got, &want, "{} all", name);
        want.sort();
        // Each exact key: its items, and nothing an overwrite took away.
        for k in 0..8u8 {
            let key = format!("{}{k}", if words { "w" } else { "t" });
            let exact = match snap {
                Some(s) => index.range_at_snapshot(key.as_str()..=key.as_str(), s),
                None => index.range(key.as_str()..=key.as_str()),
            }
            .map_err(fail)?;
            let got = collect(exact)?;
            let want: Vec<(String, String)> =
                want.iter().filter(|(ik, _)| *ik == key).cloned().collect();
            prop_assert_eq!(got, want, "{} key {}", name, key);
        }
        if snap.is_none() {
            let c = index.check().map_err(fail)?;
            prop_assert_eq!((c.stale, c.missing), (0, 0), "{}: {:?}", name, c);
            prop_assert_eq!(c.entries, want.len() as u64, "{}", name);
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let db = Db::open(dir.path(), options()).map_err(fail)?;
    let t = db
        .create_table("t", TableOptions::plaintext())
        .map_err(fail)?;
    t.create_index("by_tag", IndexSpec::json_pointer("/tags"))
        .map_err(fail)?;
    t.create_index("by_word", IndexSpec::named("words"))
        .map_err(fail)?;
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Put(i, tb, wb) => {
                let (tags, words) = (bits(tb, 8), bits(wb, 8));
                t.put(pk(i), value(&tags, &words)).map_err(fail)?;
                model.insert(i, (tags, words));
            }
            Op::Delete(i) => {
                t.delete(pk(i)).map_err(fail)?;
                model.remove(&i);
            }
            Op::Flush => db.flush().map_err(fail)?,
            Op::Compact => db.compact_all().map_err(fail)?,
            Op::Snapshot => {
                if snaps.len() >= 2 {
                    snaps.remove(0);
                }
                snaps.push((db.snapshot(), model.clone()));
            }
            Op::Check(reverse) => {
                check(&db, &model, None, reverse)?;
                for (s, m) in &snaps {
                    check(&db, m, Some(s), !reverse)?;
                }
            }
        }
    }
    db.flush().map_err(fail)?;
    db.compact_all().map_err(fail)?;
    check(&db, &model, None, false)?;
    for (s, m) in &snaps {
        check(&db, m, Some(s), true)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn overwritten_and_deleted_items_leave_no_index_entry(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(ops)?;
    }
}

/// The rule for index names is the rule for table names.
#[test]
fn index_names_follow_the_table_name_rule() -> common::TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for bad in ["", "a/b", "sp ace", &"x".repeat(256)] {
        let table = db.create_table(bad, TableOptions::plaintext());
        let index = t.create_index(bad, IndexSpec::json_pointer("/a"));
        for r in [table.map(drop), index] {
            match r {
                Err(Error::InvalidArgument(why)) => {
                    assert!(why.contains("must be 1-255 characters"), "{why}")
                }
                other => panic!("{bad:?} accepted: {other:?}"),
            }
        }
    }
    t.create_index("Ok_name-1.2", IndexSpec::json_pointer("/a"))?;
    Ok(())
}
