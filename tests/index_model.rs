//! Random puts, overwrites, deletes and batches on a table with a non-unique and a unique
//! global index and the same two as local indexes (inside the table's own LSM), with
//! flushes, compactions, reopens, crashes (the directory copied while the database is
//! open) and snapshots, checked against a `BTreeMap` model of the table and of each index,
//! forward and reverse: the table's own scans and gets never see a local index entry.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use sealdb::{Db, Error, IndexSpec, Options, Snapshot, TableOptions, WriteBatch};

type Model = BTreeMap<String, String>;

/// Author letter and unique code (if any) of a put.
type Doc = (u8, Option<u8>);

#[derive(Debug, Clone)]
enum Op {
    /// Item, author letter, unique code (if any).
    Put(u8, u8, Option<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Doc>)>),
    Flush,
    Compact,
    Reopen,
    Crash,
    Snapshot,
    Check(u8, bool),
}

fn pk(i: u8) -> String {
    format!("item{i:02}")
}

fn value(author: u8, code: Option<u8>) -> String {
    let a = char::from(b'a' + author);
    match code {
        Some(c) => format!(r#"{{"author":"{a}{a}","code":"c{c}"}}"#),
        None => format!(r#"{{"author":"{a}{a}"}}"#),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let code = proptest::option::of(0..12u8);
    prop_oneof![
        12 => (0..40u8, 0..5u8, code.clone()).prop_map(|(i, a, c)| Op::Put(i, a, c)),
        4 => (0..40u8).prop_map(Op::Delete),
        3 => proptest::collection::vec(
            (0..40u8, proptest::option::of((0..5u8, code))),
            1..6
        )
        .prop_map(Op::Batch),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::Snapshot),
        3 => (0..5u8, any::<bool>()).prop_map(|(a, r)| Op::Check(a, r)),
    ]
}

fn options() -> Options {
    let mut o = Options::default();
    o.write_buffer_size = 4 << 10;
    o.level_base_bytes = Some(8 << 10);
    o.target_file_size = 4 << 10;
    o
}

/// The model's index entries: (index key, primary key), sorted.
fn index_of(m: &Model, field: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = m
        .iter()
        .filter_map(|(k, v)| {
            let doc: serde_json::Value = serde_json::from_str(v).ok()?;
            Some((doc.get(field)?.as_str()?.to_owned(), k.clone()))
        })
        .collect();
    v.sort();
    v
}

/// True when no two items of `m` share a code.
fn codes_unique(m: &Model) -> bool {
    let codes = index_of(m, "code");
    let distinct: BTreeSet<&String> = codes.iter().map(|(c, _)| c).collect();
    distinct.len() == codes.len()
}

/// The (author, code) index pairs: global, then local.
const INDEXES: [(&str, &str); 2] = [("by_author", "by_code"), ("l_author", "l_code")];

/// The table itself against the model: its scans (forward, reverse, prefix) and gets
/// show exactly the items, never an index entry.
fn check_table(db: &Db, m: &Model, snap: Option<&Snapshot>) -> Result<(), TestCaseError> {
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let t = db.table("t").map_err(fail)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for reverse in [false, true] {
        let it = match snap {
            Some(s) => t.range_at_snapshot::<&str>(.., s),
            None => t.iter(),
        }
        .map_err(fail)?;
        let it = if reverse { it.rev() } else { it };
        let got: Vec<(String, String)> = it
            .map(|kv| kv.map(|(k, v)| (text(&k), text(&v))))
            .collect::<sealdb::Result<_>>()
            .map_err(fail)?;
        let mut want: Vec<(String, String)> =
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if reverse {
            want.reverse();
        }
        prop_assert_eq!(got, want);
    }
    if snap.is_none() {
        prop_assert_eq!(t.prefix("item").map_err(fail)?.count(), m.len());
        prop_assert_eq!(t.range("".."item").map_err(fail)?.count(), 0);
        for i in 0..40u8 {
            let got = t.get(pk(i)).map_err(fail)?.map(|v| text(&v));
            prop_assert_eq!(got.as_ref(), m.get(&pk(i)));
        }
    }
    Ok(())
}

fn check(
    db: &Db,
    m: &Model,
    snap: Option<&Snapshot>,
    letter: u8,
    reverse: bool,
) -> Result<(), TestCaseError> {
    check_table(db, m, snap)?;
    for (author, code) in INDEXES {
        check_index(db, m, snap, letter, reverse, author, code)?;
    }
    Ok(())
}

fn check_index(
    db: &Db,
    m: &Model,
    snap: Option<&Snapshot>,
    letter: u8,
    reverse: bool,
    author: &str,
    code: &str,
) -> Result<(), TestCaseError> {
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let t = db.table("t").map_err(fail)?;
    let by_author = t.index(author).map_err(fail)?;
    let all = match snap {
        Some(s) => by_author.range_at_snapshot::<&str>(.., s),
        None => by_author.range::<&str>(..),
    }
    .map_err(fail)?;
    let all = if reverse { all.rev() } else { all };
    let got: Vec<(String, String, String)> = all
        .map(|e| {
            e.map(|e| {
                (
                    String::from_utf8_lossy(&e.index_key).into_owned(),
                    String::from_utf8_lossy(&e.primary_key).into_owned(),
                    String::from_utf8_lossy(&e.value).into_owned(),
                )
            })
        })
        .collect::<sealdb::Result<_>>()
        .map_err(fail)?;
    let mut want: Vec<(String, String, String)> = index_of(m, "author")
        .into_iter()
        .map(|(a, k)| {
            let v = m.get(&k).cloned().unwrap_or_default();
            (a, k, v)
        })
        .collect();
    if reverse {
        want.reverse();
    }
    prop_assert_eq!(&got, &want, "{}", author);
    if snap.is_none() {
        // The index itself, not only what queries return: no stale entry, none missing,
        // and as many entries as the model has keys.
        for (name, field) in [(author, "author"), (code, "code")] {
            let c = t.index(name).map_err(fail)?.check().map_err(fail)?;
            prop_assert_eq!(
                (c.entries, c.stale, c.missing),
                (index_of(m, field).len() as u64, 0, 0),
                "{}: {:?}",
                name,
                c
            );
        }
    }
    // A prefix of one author.
    let a = char::from(b'a' + letter).to_string();
    let n = by_author.prefix_at(&a, snap).map_err(fail)?.count();
    prop_assert_eq!(n, want.iter().filter(|(k, _, _)| k.starts_with(&a)).count());
    // The unique index: every code finds its one item.
    let by_code = t.index(code).map_err(fail)?;
    for code in 0..12u8 {
        let c = format!("c{code}");
        let want = index_of(m, "code")
            .into_iter()
            .find(|(k, _)| *k == c)
            .map(|(_, p)| p);
        let got = by_code
            .get_at(&c, snap)
            .map_err(fail)?
            .map(|e| String::from_utf8_lossy(&e.primary_key).into_owned());
        prop_assert_eq!(got, want, "code {}", c);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let io = |e: std::io::Error| TestCaseError::fail(e.to_string());
    let fail = |e: Error| TestCaseError::fail(e.to_string());
    let mut dirs = vec![tempfile::tempdir().map_err(io)?];
    let path = |dirs: &Vec<tempfile::TempDir>| dirs.last().map(|d| d.path().to_path_buf());
    let mut db = Db::open(path(&dirs).unwrap_or_default(), options()).map_err(fail)?;
    let t = db
        .create_table(
            "t",
            TableOptions::plaintext()
                .with_local_index("l_author", IndexSpec::json_pointer("/author"))
                .with_local_index("l_code", IndexSpec::json_pointer("/code").unique()),
        )
        .map_err(fail)?;
    t.create_index("by_author", IndexSpec::json_pointer("/author"))
        .map_err(fail)?;
    t.create_index("by_code", IndexSpec::json_pointer("/code").unique())
        .map_err(fail)?;
    drop(t);
    let mut model = Model::new();
    let mut snaps: Vec<(Snapshot, Model)> = Vec::new();
    for op in ops {
        let t = db.table("t").map_err(fail)?;
        match op {
            Op::Put(i, a, c) => {
                let mut next = model.clone();
                next.insert(pk(i), value(a, c));
                match t.put(pk(i), value(a, c)) {
                    Ok(()) => {
                        prop_assert!(codes_unique(&next));
                        model = next;
                    }
                    Err(Error::UniqueViolation { .. }) => prop_assert!(!codes_unique(&next)),
                    Err(e) => return Err(fail(e)),
                }
            }
            Op::Delete(i) => {
                t.delete(pk(i)).map_err(fail)?;
                model.remove(&pk(i));
            }
            Op::Batch(entries) => {
                let mut b = WriteBatch::new();
                let mut next = model.clone();
                for (i, v) in entries {
                    match v {
                        Some((a, c)) => {
                            b.put(&t, pk(i), value(a, c));
                            next.insert(pk(i), value(a, c));
                        }
                        None => {
                            b.delete(&t, pk(i));
                            next.remove(&pk(i));
                        }
                    }
                }
                match db.write(&b, Default::default()) {
                    Ok(()) => {
                        prop_assert!(codes_unique(&next));
                        model = next;
                    }
                    Err(Error::UniqueViolation { .. }) => prop_assert!(!codes_unique(&next)),
                    Err(e) => return Err(fail(e)),
                }
            }
            Op::Flush => db.flush().map_err(fail)?,
            Op::Compact => db.compact_all().map_err(fail)?,
            Op::Reopen => {
                snaps.clear();
                drop(t);
                drop(db);
                db = Db::open(path(&dirs).unwrap_or_default(), options()).map_err(fail)?;
            }
            Op::Crash => {
                // The files as a killed process leaves them: every write reached the OS.
                snaps.clear();
                let copy = tempfile::tempdir().map_err(io)?;
                common::copy_dir(&path(&dirs).unwrap_or_default(), copy.path()).map_err(io)?;
                drop(t);
                let p = copy.path().to_path_buf();
                dirs.push(copy);
                db = Db::open(p, options()).map_err(fail)?;
            }
            Op::Snapshot => {
                if snaps.len() >= 2 {
                    snaps.remove(0);
                }
                snaps.push((db.snapshot(), model.clone()));
            }
            Op::Check(letter, reverse) => {
                check(&db, &model, None, letter, reverse)?;
                for (s, m) in &snaps {
                    check(&db, m, Some(s), letter, !reverse)?;
                }
            }
        }
    }
    check(&db, &model, None, 0, false)?;
    check(&db, &model, None, 1, true)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn table_and_indexes_match_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
