//! Whole-engine durability: many keys across tables survive close/reopen, with and
//! without flushes in between.

mod common;

use std::collections::BTreeMap;

use common::{open, TestResult};
use sealdb::{TableOptions, WriteBatch, WriteOptions};

fn key(i: u64) -> Vec<u8> {
    format!("key-{:08}", (i * 2_654_435_761) % 1_000_003).into_bytes()
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn load(
    path: &std::path::Path,
    n: u64,
    flush_midway: bool,
) -> Result<Vec<Model>, Box<dyn std::error::Error>> {
    let db = open(path)?;
    let names = ["alpha", "beta", "gamma"];
    let tables: Vec<_> = names
        .iter()
        .map(|n| db.create_table(n, TableOptions::plaintext()))
        .collect::<Result<_, _>>()?;
    let mut models = vec![BTreeMap::new(); 3];
    for i in 0..n {
        let t = (i % 3) as usize;
        let k = key(i);
        let v = format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes();
        tables[t].put(&k, &v)?;
        models[t].insert(k, v);
        if i % 7 == 0 {
            // Overwrite an earlier key.
            let old = key(i / 2);
            let t2 = ((i / 2) % 3) as usize;
            let v2 = format!("over-{i}").into_bytes();
            tables[t2].put(&old, &v2)?;
            models[t2].insert(old, v2);
        }
        if i % 11 == 0 {
            let old = key(i / 3);
            let t3 = ((i / 3) % 3) as usize;
            tables[t3].delete(&old)?;
            models[t3].remove(&old);
        }
        if i % 1000 == 0 {
            // Cross-table atomic batch.
            let mut b = WriteBatch::new();
            let k = format!("batch-{i}").into_bytes();
            for (j, t) in tables.iter().enumerate() {
                b.put(t, &k, format!("b{j}"));
                models[j].insert(k.clone(), format!("b{j}").into_bytes());
            }
            db.write(&b, WriteOptions::default())?;
        }
        if flush_midway && i == n / 2 {
            db.flush()?;
        }
    }
    Ok(models)
}

fn check(path: &std::path::Path, models: &[BTreeMap<Vec<u8>, Vec<u8>>]) -> TestResult {
    let db = open(path)?;
    assert_eq!(db.tables(), vec!["alpha", "beta", "gamma"]);
    for (name, model) in ["alpha", "beta", "gamma"].iter().zip(models) {
        let t = db.table(name)?;
        for (k, v) in model {
            assert_eq!(t.get(k)?.as_deref(), Some(v.as_slice()), "{name} {k:?}");
        }
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()?
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()?;
        let expected: Vec<(Vec<u8>, Vec<u8>)> =
            model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(scanned.len(), expected.len(), "{name}");
        assert!(scanned == expected, "{name} scan differs");
        let mut rev: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()?
            .rev()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()?;
        rev.reverse();
        assert!(rev == expected, "{name} reverse scan differs");
    }
    Ok(())
}

#[test]
fn two_hundred_thousand_keys_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let models = load(dir.path(), 200_000, false)?;
    check(dir.path(), &models)?;
    // And a second reopen, after the first one rewrote the manifest.
    check(dir.path(), &models)
}

#[test]
fn keys_survive_reopen_after_a_flush_midway() -> TestResult {
    let dir = tempfile::tempdir()?;
    let models = load(dir.path(), 200_000, true)?;
    check(dir.path(), &models)
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let again = open(dir.path());
    assert!(
        matches!(again, Err(sealdb::Error::AlreadyOpen(_))),
        "{again:?}"
    );
    drop(db);
    open(dir.path())?;
    Ok(())
}

#[test]
fn oversized_keys_and_values_are_refused_cleanly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = open(dir.path())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    assert!(matches!(
        t.put(vec![0u8; sealdb::MAX_KEY_LEN + 1], b"v"),
        Err(sealdb::Error::InvalidArgument(_))
    ));
    assert!(matches!(
        t.put(b"k", vec![0u8; sealdb::MAX_VALUE_LEN + 1]),
        Err(sealdb::Error::InvalidArgument(_))
    ));
    t.put(vec![1u8; sealdb::MAX_KEY_LEN], vec![2u8; 1 << 20])?;
    db.flush()?;
    assert_eq!(
        t.get(vec![1u8; sealdb::MAX_KEY_LEN])?.map(|v| v.len()),
        Some(1 << 20)
    );
    Ok(())
}

#[test]
fn tables_are_created_listed_and_dropped() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let a = db.create_table("a", TableOptions::plaintext())?;
        db.create_table("b", TableOptions::plaintext())?;
        assert!(matches!(
            db.create_table("a", TableOptions::plaintext()),
            Err(sealdb::Error::TableExists(_))
        ));
        assert!(matches!(
            db.create_table("bad name/", TableOptions::plaintext()),
            Err(sealdb::Error::InvalidArgument(_))
        ));
        a.put(b"k", b"v")?;
        db.flush()?;
        db.drop_table("a")?;
        assert!(matches!(
            db.table("a"),
            Err(sealdb::Error::TableNotFound(_))
        ));
        assert!(a.get(b"k").is_err());
        assert_eq!(db.tables(), vec!["b"]);
    }
    let db = open(dir.path())?;
    assert_eq!(db.tables(), vec!["b"]);
    // The dropped table's file is gone.
    assert!(common::files_with_ext(dir.path(), "sst").is_empty());
    Ok(())
}

#[test]
fn orphan_files_from_a_crash_mid_flush_are_removed_at_open() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        for i in 0..1000 {
            t.put(format!("k{i}"), "v")?;
        }
        db.flush()?;
    }
    // What a crash between writing an SSTable and recording it would leave behind.
    std::fs::write(dir.path().join("000777.sst"), b"half-written table")?;
    std::fs::write(dir.path().join("CURRENT.tmp"), b"MANIFEST-000999")?;
    let db = open(dir.path())?;
    assert!(!dir.path().join("000777.sst").exists());
    assert!(!dir.path().join("CURRENT.tmp").exists());
    assert_eq!(db.table("t")?.get("k999")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn concurrent_synced_writers_all_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || -> sealdb::Result<()> {
                    for i in 0..250 {
                        t.put_opt(
                            format!("w{w}-{i:04}"),
                            format!("{i}"),
                            WriteOptions::synced(),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for th in threads {
            th.join().map_err(|_| "writer panicked")??;
        }
    }
    let db = open(dir.path())?;
    let t = db.table("t")?;
    for w in 0..4 {
        for i in 0..250 {
            assert_eq!(
                t.get(format!("w{w}-{i:04}"))?.as_deref(),
                Some(format!("{i}").as_bytes())
            );
        }
    }
    assert_eq!(t.iter()?.count(), 1000);
    Ok(())
}
