//! After a load with overwrites and deletes, background compaction leaves a level shape
//! within the size targets, the data is intact, and the space used stays close to the
//! live data.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestResult;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealdb::{Db, DbStats, Options, Table, TableOptions};

struct Load {
    keys: u64,
    ops: u64,
    value_len: usize,
}

fn options(write_buffer: usize, base: u64, file: u64) -> Options {
    let mut o = Options::default();
    o.write_buffer_size = write_buffer;
    o.level_base_bytes = Some(base);
    o.target_file_size = file;
    o.block_cache_bytes = 4 << 20;
    o
}

fn key(k: u64) -> Vec<u8> {
    format!("key{k:010}").into_bytes()
}

fn value(rng: &mut StdRng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect()
}

/// Random puts (85%) and deletes (15%) over `keys` keys; returns the model.
fn load(t: &Table, l: &Load) -> sealdb::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = BTreeMap::new();
    for _ in 0..l.ops {
        let k = key(rng.gen_range(0..l.keys));
        if rng.gen_bool(0.15) {
            t.delete(&k)?;
            model.remove(&k);
        } else {
            let v = value(&mut rng, l.value_len);
            t.put(&k, &v)?;
            model.insert(k, v);
        }
    }
    Ok(model)
}

/// Waits until background compaction has brought every score below 1.
fn settle(db: &Db, limit: Duration) -> Result<DbStats, String> {
    let start = Instant::now();
    loop {
        let s = db.stats();
        let due = s
            .tables
            .iter()
            .flat_map(|t| t.levels.iter())
            .any(|l| l.score >= 1.0);
        if !due {
            return Ok(s);
        }
        if start.elapsed() > limit {
            return Err(format!("compaction did not settle: {s:#?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn live_bytes(model: &BTreeMap<Vec<u8>, Vec<u8>>) -> u64 {
    model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

fn check_contents(t: &Table, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> TestResult {
    let got: Vec<(Vec<u8>, Vec<u8>)> = t
        .iter()?
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<Result<_, _>>()?;
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert!(got == want, "scan differs from the model");
    let back: Vec<Vec<u8>> = t
        .iter()?
        .rev()
        .map(|r| r.map(|(k, _)| k.to_vec()))
        .collect::<Result<_, _>>()?;
    assert!(back.iter().rev().eq(want.iter().map(|(k, _)| k)));
    for (i, (k, v)) in model.iter().enumerate() {
        if i % 97 == 0 {
            assert_eq!(t.get(k)?.as_deref(), Some(v.as_slice()));
        }
    }
    Ok(())
}

fn run(l: &Load, opts: Options, settle_limit: Duration) -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), opts.clone())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    let model = load(&t, l)?;
    db.flush()?;
    let s = settle(&db, settle_limit)?;
    let ts = &s.tables[0];
    // Shape: level 0 below its trigger, each sized level within its target, and the data
    // has moved below level 1.
    assert!(ts.levels[0].files < opts.l0_compaction_trigger, "{ts:#?}");
    for lvl in &ts.levels[1..] {
        if let Some(target) = lvl.target_bytes {
            assert!(
                lvl.bytes <= target,
                "level {} over target: {ts:#?}",
                lvl.level
            );
        }
    }
    let deepest = ts.levels.iter().rposition(|l| l.files > 0).unwrap_or(0);
    assert!(deepest >= 2, "expected a multi-level shape: {ts:#?}");
    assert!(s.compactions > 0 && s.compaction_bytes_written > 0);
    assert!(s.write_amplification > 1.0);
    check_contents(&t, &model)?;

    // Space: the whole table compacted holds little beyond the live data.
    db.compact_table("t")?;
    let s = db.stats();
    let live = live_bytes(&model);
    let used = s.tables[0].total_bytes;
    assert!(
        (used as f64) <= 1.5 * live as f64,
        "used {used} bytes for {live} live bytes"
    );
    check_contents(&t, &model)?;

    // Everything survives a reopen (the compactions' manifest records replay).
    drop(t);
    drop(db);
    let db = Db::open(dir.path(), opts)?;
    check_contents(&db.table("t")?, &model)?;
    let json = serde_json::to_string(&db.stats())?;
    assert!(json.contains("\"write_amplification\""));
    Ok(())
}

#[test]
fn level_shape_respects_targets_after_overwrites_and_deletes() -> TestResult {
    run(
        &Load {
            keys: 20_000,
            ops: 60_000,
            value_len: 100,
        },
        options(32 << 10, 128 << 10, 32 << 10),
        Duration::from_secs(60),
    )
}

/// The full-size version: 2M keys.
#[test]
#[ignore = "minutes: run with --ignored"]
fn level_shape_two_million_keys() -> TestResult {
    run(
        &Load {
            keys: 2_000_000,
            ops: 3_000_000,
            value_len: 100,
        },
        options(4 << 20, 16 << 20, 4 << 20),
        Duration::from_secs(600),
    )
}
