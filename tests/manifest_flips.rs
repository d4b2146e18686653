//! Every byte of the live MANIFEST and of CURRENT flipped in turn (not sampled), on a small
//! database with an encrypted and a plaintext table, rows in SSTables and rows only in the
//! WAL. Each flip must give an error, or read back exactly what was written; never fewer
//! tables or rows with success, never a value that was not written, and an open that fails
//! must leave every file as it was.

mod common;
mod manifest_craft;

use std::path::Path;
use std::time::Instant;

use manifest_craft::check::{dir_map, open_and_check, restore_dir, scratch_dir, DirMap, Outcome};
use manifest_craft::check::{read_back, Tally};
use manifest_craft::fixture::{
    add_wal_only_session, build_standard, BoxResult, Fixture, TestResult,
};
use manifest_craft::live_manifest_path;

/// Flips byte `at` of file `name` (xor `mask`) in a copy of `pristine` at `dir`, opens it
/// and checks the invariant; a successful open is closed and opened once more (a flip that
/// an open accepted must not lose anything at the next one either).
fn flip_case(
    fx: &Fixture,
    pristine: &DirMap,
    dir: &Path,
    name: &str,
    at: usize,
    mask: u8,
) -> BoxResult<Outcome> {
    let mut mutated = pristine.clone();
    let Some(file) = mutated.get_mut(name) else {
        return Err(format!("no file {name}").into());
    };
    file[at] ^= mask;
    restore_dir(dir, &mutated)?;
    let (outcome, db) = open_and_check(dir, fx.options(), &fx.expected, &mutated);
    let Some(db) = db else { return Ok(outcome) };
    drop(db);
    if outcome != Outcome::Exact {
        return Ok(outcome);
    }
    // The first open accepted the flip and wrote a fresh manifest; the data must survive
    // a second open too (the first may have deleted files it should not have).
    let second = match sealdb::Db::open(dir, fx.options()) {
        Ok(db) => read_back(&db, &fx.expected),
        Err(e) => Outcome::SilentLoss(format!(
            "the first open accepted the flip, the second fails: {e}"
        )),
    };
    Ok(second)
}

fn flip_every_byte(
    fx: &Fixture,
    pristine: &DirMap,
    name: &str,
    masks: &[u8],
    tally: &mut Tally,
) -> TestResult {
    let scratch = scratch_dir()?;
    let dir = scratch.path().join("db");
    std::fs::create_dir_all(&dir)?;
    let len = pristine.get(name).map(Vec::len).unwrap_or_default();
    for &mask in masks {
        for at in 0..len {
            let outcome = flip_case(fx, pristine, &dir, name, at, mask)?;
            if std::env::var_os("FLIPS_VERBOSE").is_some() {
                println!("{name} byte {at} ^ {mask:#04x}: {outcome:?}");
            }
            tally.add(&format!("{name} byte {at} ^ {mask:#04x}"), &outcome);
        }
    }
    Ok(())
}

/// Flips every byte of the live manifest and of CURRENT of `fx`'s database, twice: every
/// bit of each byte (0xFF), then its lowest bit alone (0x01: lengths and counters off by
/// one). Returns the tallies for the manifest and CURRENT.
fn flip_all(fx: &Fixture, min_records: usize) -> BoxResult<(Tally, Tally)> {
    let db = fx.db_dir();
    let pristine = dir_map(&db)?;
    // Sanity: the pristine database reads back whole.
    {
        let copy = scratch_dir()?;
        restore_dir(copy.path(), &pristine)?;
        let (o, _) = open_and_check(copy.path(), fx.options(), &fx.expected, &pristine);
        assert_eq!(o, Outcome::Exact, "pristine copy");
    }
    let manifest_path = live_manifest_path(&db)?;
    let manifest = manifest_craft::Manifest::read(&manifest_path)?;
    assert!(
        manifest.records.len() >= min_records,
        "the manifest has the shape the test claims"
    );
    let manifest_name = manifest_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or("manifest name")?;
    println!(
        "{manifest_name}: {} bytes, format {}, {} records; CURRENT: {} bytes",
        pristine[&manifest_name].len(),
        manifest.version(),
        manifest.records.len(),
        pristine["CURRENT"].len()
    );
    let start = Instant::now();
    let mut m = Tally::default();
    flip_every_byte(fx, &pristine, &manifest_name, &[0xFF, 0x01], &mut m)?;
    let manifest_time = start.elapsed();
    let start = Instant::now();
    let mut c = Tally::default();
    flip_every_byte(fx, &pristine, "CURRENT", &[0xFF, 0x01], &mut c)?;
    println!(
        "MANIFEST: {} flips ({} bytes x 2 masks), {} detected (error), {} benign (exact data), \
         {} silent losses, {:.1} s",
        m.cases,
        pristine[&manifest_name].len(),
        m.detected,
        m.benign,
        m.silent_losses(),
        manifest_time.as_secs_f64()
    );
    println!(
        "CURRENT: {} flips, {} detected, {} benign, {} silent losses, {:.1} s",
        c.cases,
        c.detected,
        c.benign,
        c.silent_losses(),
        start.elapsed().as_secs_f64()
    );
    Ok((m, c))
}

/// The manifest of a session that flushed: its snapshot, then appended flush records.
#[test]
fn every_byte_flipped_in_a_manifest_with_appended_records_is_an_error_or_exact_data() -> TestResult
{
    let mut fx = Fixture::new(true)?;
    build_standard(&mut fx, true)?;
    let (m, c) = flip_all(&fx, 4)?;
    m.assert_clean("MANIFEST flips");
    c.assert_clean("CURRENT flips");
    Ok(())
}

/// The manifest of a session that only wrote to the WAL: the snapshot alone, so a flip in
/// its last record is at the end of the file (the case that used to empty the database).
#[test]
fn every_byte_flipped_in_a_snapshot_only_manifest_is_an_error_or_exact_data() -> TestResult {
    let mut fx = Fixture::new(true)?;
    build_standard(&mut fx, true)?;
    add_wal_only_session(&mut fx)?;
    let (m, c) = flip_all(&fx, 2)?;
    m.assert_clean("MANIFEST flips");
    c.assert_clean("CURRENT flips");
    Ok(())
}
