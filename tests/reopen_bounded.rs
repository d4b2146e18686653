//! A database opened and closed any number of times keeps a small, bounded number of
//! files: data recovered from old WAL segments is flushed at open, so old segments (and
//! old manifests) go once the new manifest names what replaced them. Every write of every
//! cycle reads back at the end.

mod common;
mod manifest_craft;

use std::time::Instant;

use manifest_craft::check::{dir_map, file_count, read_back};
use manifest_craft::fixture::{key, value, Fixture, TestResult};
use sealdb::{Db, Options, WriteOptions};

/// Files a database may hold between two opens: LOCK, CURRENT, one MANIFEST, one WAL
/// segment, and its SSTables: compaction runs in the background, so level 0 may hold up to
/// the stop-writes trigger (12 by default) before writers wait for it, plus a few files
/// of level 1. Independent of the number of opens.
fn max_files() -> usize {
    4 + Options::default().l0_stop_writes_trigger + 4
}

/// `n` cycles; cycle `i` writes key `slot(i)` (a new key each time, or one of a few).
fn cycles(fx: &mut Fixture, encrypted: bool, n: u32, slot: fn(u32) -> u32) -> TestResult {
    let dir = fx.db_dir();
    let mut opts = fx.options();
    opts.disable_auto_compactions = false;
    {
        let db = Db::open(&dir, opts.clone())?;
        fx.create(&db, "t", encrypted)?;
    }
    let start = Instant::now();
    let mut max_seen = 0;
    let mut at_max = 0;
    let mut last = 0;
    for i in 0..n {
        {
            let db = Db::open(&dir, opts.clone())?;
            let t = db.table("t")?;
            let (k, v) = (key(slot(i)), value("t", slot(i), i));
            t.put_opt(&k, &v, WriteOptions::synced())?;
            fx.expected.entry("t".into()).or_default().insert(k, v);
        }
        let count = file_count(&dir)?;
        last = count;
        if count > max_seen {
            max_seen = count;
            at_max = i;
        }
        assert!(
            count <= max_files(),
            "after {} open/close cycles the directory holds {count} files (bound {}): {:?}",
            i + 1,
            max_files(),
            dir_map(&dir)?.keys().collect::<Vec<_>>()
        );
    }
    let elapsed = start.elapsed();
    let db = Db::open(&dir, opts.clone())?;
    let o = read_back(&db, &fx.expected);
    println!(
        "{} table: {n} open/write/close cycles in {:.1} s; files after each close: max {max_seen} \
         (first at cycle {}), {last} at the end; read back: {o:?}",
        if encrypted { "encrypted" } else { "plaintext" },
        elapsed.as_secs_f64(),
        at_max + 1
    );
    assert_eq!(o, manifest_craft::check::Outcome::Exact);
    let distinct: std::collections::BTreeSet<u32> = (0..n).map(slot).collect();
    assert_eq!(
        db.table("t")?.iter()?.count(),
        distinct.len(),
        "one row per key written"
    );
    Ok(())
}

/// Default buffers and background compaction, as an application would run it.
fn fixture(encrypted: bool) -> Result<Fixture, Box<dyn std::error::Error>> {
    let mut fx = Fixture::new(encrypted)?;
    fx.write_buffer_size = sealdb::Options::default().write_buffer_size;
    Ok(fx)
}

#[test]
fn a_thousand_reopens_of_a_plaintext_table_keep_the_file_count_bounded() -> TestResult {
    let mut fx = fixture(false)?;
    cycles(&mut fx, false, 1000, |i| i)
}

#[test]
fn two_hundred_reopens_of_an_encrypted_table_keep_the_file_count_bounded() -> TestResult {
    let mut fx = fixture(true)?;
    cycles(&mut fx, true, 200, |i| i)
}

/// Overwrites of three keys: the level-0 files of successive opens overlap, so compaction
/// merges them (new keys each time leave disjoint files, the harder case above).
#[test]
fn a_thousand_reopens_overwriting_three_keys_keep_the_file_count_bounded() -> TestResult {
    let mut fx = fixture(false)?;
    cycles(&mut fx, false, 1000, |i| i % 3)
}
