//! Random operation sequences on the engine and on a `BTreeMap` model agree, across
//! batches, flushes and reopens, on a plaintext table and an encrypted LZ4 table (a
//! LocalKms). Crashes are the `engine_model` fuzz target's and the crash loop's part.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use sealdb::{Db, Options, TableOptions, WriteBatch, WriteOptions};

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16, Vec<u8>),
    Delete(u8, u16),
    Batch(Vec<(u8, u16, Option<Vec<u8>>)>),
    Flush,
    Reopen,
    Scan(u8, u16, u16, bool),
    Compact(u8),
    Snapshot,
    SnapshotRead(u8, usize, u16, bool),
}

fn key(k: u16) -> Vec<u8> {
    format!("k{k:04}").into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    let val = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        10 => (0..2u8, 0..200u16, val.clone()).prop_map(|(t, k, v)| Op::Put(t, k, v)),
        4 => (0..2u8, 0..200u16).prop_map(|(t, k)| Op::Delete(t, k)),
        2 => proptest::collection::vec((0..2u8, 0..200u16, proptest::option::of(val)), 1..8).prop_map(Op::Batch),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        2 => (0..2u8, 0..200u16, 0..200u16, any::<bool>()).prop_map(|(t, a, b, r)| Op::Scan(t, a, b, r)),
        1 => (0..2u8).prop_map(Op::Compact),
        1 => Just(Op::Snapshot),
        2 => (0..2u8, 0..4usize, 0..200u16, any::<bool>()).prop_map(|(t, s, k, r)| Op::SnapshotRead(t, s, k, r)),
    ]
}

fn options(kms: &Arc<dyn sealdb::kms::Kms>) -> Options {
    let mut o = Options::default();
    o.kms = Some(Arc::clone(kms));
    o.write_buffer_size = 4 << 10;
    o.level_base_bytes = Some(8 << 10);
    o.target_file_size = 4 << 10;
    o
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let fail = |e: sealdb::Error| TestCaseError::fail(e.to_string());
    let names = ["t0", "t1"];
    let kms: Arc<dyn sealdb::kms::Kms> = Arc::new(
        common::rel::local_kms(&dir.path().join("kms"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    let db_dir = dir.path().join("db");
    let mut db = Db::open(&db_dir, options(&kms)).map_err(fail)?;
    db.create_table(names[0], TableOptions::plaintext())
        .map_err(fail)?;
    db.create_table(
        names[1],
        TableOptions::encrypted().with_compression(sealdb::Compression::Lz4),
    )
    .map_err(fail)?;
    // Work-around for the engine bug in tests/engine_bug_flush_needs_idle_encrypted_key.rs
    // (a flush fails while an encrypted table has never been written): one write there.
    let t1 = db.table(names[1]).map_err(fail)?;
    t1.put("warm", "").map_err(fail)?;
    t1.delete("warm").map_err(fail)?;
    drop(t1);
    let mut model: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(), BTreeMap::new()];
    // Live snapshots with the model as each saw it (released at reopen).
    type Model = Vec<BTreeMap<Vec<u8>, Vec<u8>>>;
    let mut snaps: Vec<(sealdb::Snapshot, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Put(t, k, v) => {
                db.table(names[t as usize])
                    .map_err(fail)?
                    .put(key(k), &v)
                    .map_err(fail)?;
                model[t as usize].insert(key(k), v);
            }
            Op::Delete(t, k) => {
                db.table(names[t as usize])
                    .map_err(fail)?
                    .delete(key(k))
                    .map_err(fail)?;
                model[t as usize].remove(&key(k));
            }
            Op::Batch(entries) => {
                let mut b = WriteBatch::new();
                let tables: Vec<_> = names
                    .iter()
                    .map(|n| db.table(n))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                for (t, k, v) in entries {
                    match v {
                        Some(v) => {
                            b.put(&tables[t as usize], key(k), &v);
                            model[t as usize].insert(key(k), v);
                        }
                        None => {
                            b.delete(&tables[t as usize], key(k));
                            model[t as usize].remove(&key(k));
                        }
                    }
                }
                db.write(&b, WriteOptions::default()).map_err(fail)?;
            }
            Op::Flush => db.flush().map_err(fail)?,
            Op::Compact(t) => db.compact_table(names[t as usize]).map_err(fail)?,
            Op::Snapshot => {
                if snaps.len() >= 4 {
                    snaps.remove(0);
                }
                snaps.push((db.snapshot(), model.clone()));
            }
            Op::SnapshotRead(t, s, k, rev) => {
                if let Some((snap, seen)) = snaps.get(s % snaps.len().max(1)) {
                    let table = db.table(names[t as usize]).map_err(fail)?;
                    prop_assert_eq!(
                        table
                            .get_at(key(k), snap)
                            .map_err(fail)?
                            .map(|v| v.to_vec()),
                        seen[t as usize].get(&key(k)).cloned()
                    );
                    let it = table.range_at_snapshot(key(k).., snap).map_err(fail)?;
                    let it = if rev { it.rev() } else { it };
                    let got: Vec<(Vec<u8>, Vec<u8>)> = it
                        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                        .collect::<Result<_, _>>()
                        .map_err(fail)?;
                    let mut want: Vec<(Vec<u8>, Vec<u8>)> = seen[t as usize]
                        .range(key(k)..)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if rev {
                        want.reverse();
                    }
                    prop_assert_eq!(got, want);
                }
            }
            Op::Reopen => {
                snaps.clear();
                drop(db);
                db = Db::open(&db_dir, options(&kms)).map_err(fail)?;
            }
            Op::Scan(t, a, b, rev) => {
                let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                let table = db.table(names[t as usize]).map_err(fail)?;
                let it = table.range(lo.clone()..hi.clone()).map_err(fail)?;
                let it = if rev { it.rev() } else { it };
                let got: Vec<(Vec<u8>, Vec<u8>)> = it
                    .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                    .collect::<Result<_, _>>()
                    .map_err(fail)?;
                let mut want: Vec<(Vec<u8>, Vec<u8>)> = model[t as usize]
                    .range(lo..hi)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if rev {
                    want.reverse();
                }
                prop_assert_eq!(got, want);
            }
        }
    }
    for (i, n) in names.iter().enumerate() {
        let table = db.table(n).map_err(fail)?;
        for k in 0..200u16 {
            prop_assert_eq!(
                table.get(key(k)).map_err(fail)?.map(|v| v.to_vec()),
                model[i].get(&key(k)).cloned()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_btreemap(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
