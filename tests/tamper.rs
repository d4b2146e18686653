//! Tampering with every file kind, for plaintext and encrypted tables: SSTables, WAL
//! segments, the manifest, CURRENT and the LocalKms keystore. Each file is flipped,
//! zeroed in places, truncated and extended; SSTable blocks are swapped at the same
//! offset between two files of one table and between files of two tables. After every case
//! "no silent loss" holds: an error at open or read, or every table exactly as written (the
//! same tables, every key with its value, forward and reverse full scans with values
//! checked). A table that is gone is a loss, not a detection. The one exception: a WAL
//! shortened, or zeroed at its end, reads as a torn tail, which a crash can produce, so the
//! loss of its newest writes (a suffix of the write order, nothing else) is allowed, never a
//! wrong value. (An attacker can always cut a WAL: DESIGN.md section 13.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::rel::{copy_tree, local_kms, value_for, TestResult};
use sealdb::storage::StdEnv;
use sealdb::{Db, Options, TableOptions, WriteOptions};

/// Four tables: two plaintext, two encrypted.
const TABLES: [(&str, bool); 4] = [
    ("plain", false),
    ("plain2", false),
    ("enc", true),
    ("enc2", true),
];
const KEYS_PER_STEP: u64 = 40;

fn options(root: &Path) -> Result<Options, Box<dyn std::error::Error>> {
    Ok({
        let mut o = Options::default();
        // Large: only explicit flushes write SSTables, so file numbers follow the tables.
        o.write_buffer_size = 8 << 20;
        o.block_size = 256;
        o.env = Arc::new(StdEnv);
        o.kms = Some(Arc::new(local_kms(&root.join("kms"))?));
        o
    })
}

fn key(table: usize, i: u64) -> Vec<u8> {
    format!("t{table}-key-{i:05}").into_bytes()
}

fn value(table: usize, i: u64) -> Vec<u8> {
    value_for(i * 10 + table as u64, table as u64)
}

/// Each table gets two SSTables (in table order) and then keys that stay in the WAL.
fn build(root: &Path) -> Result<BTreeMap<usize, Vec<u64>>, Box<dyn std::error::Error>> {
    let db = Db::open(root.join("db"), options(root)?)?;
    let mut written: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut handles = Vec::new();
    for (ti, (name, enc)) in TABLES.iter().enumerate() {
        let opts = if *enc {
            TableOptions::encrypted()
        } else {
            TableOptions::plaintext()
        };
        let t = db.create_table(name, opts)?;
        for step in 0..2 {
            for j in 0..KEYS_PER_STEP {
                let i = step * KEYS_PER_STEP + j;
                t.put(key(ti, i), value(ti, i))?;
                written.entry(ti).or_default().push(i);
            }
            db.flush()?;
        }
        handles.push(t);
    }
    for (ti, t) in handles.iter().enumerate() {
        for i in 2 * KEYS_PER_STEP..2 * KEYS_PER_STEP + 10 {
            t.put_opt(key(ti, i), value(ti, i), WriteOptions::synced())?;
            written.entry(ti).or_default().push(i);
        }
    }
    Ok(written)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// Open or a read failed.
    Error,
    /// Every key present with its value, in both scan directions.
    Intact,
    /// Keys missing without any error (their indices); a table gone is all of them.
    SilentLoss(Vec<u64>),
    /// A table, key or value that was never written to this table, or scans that disagree.
    Wrong(String),
}

/// Reads one table every way: each key by `get`, then full forward and reverse scans with
/// every value checked against what was written.
fn inspect_table(
    db: &Db,
    ti: usize,
    name: &str,
    written: &BTreeMap<usize, Vec<u64>>,
) -> sealdb::Result<Seen> {
    let keys = &written[&ti];
    let t = match db.table(name) {
        Ok(t) => t,
        // A table that vanished is a loss, not a detection.
        Err(sealdb::Error::TableNotFound(_)) => return Ok(Seen::SilentLoss(keys.clone())),
        Err(e) => return Err(e),
    };
    let written_value = |k: &[u8]| keys.iter().find(|&&i| key(ti, i) == k).copied();
    let mut missing = BTreeSet::new();
    for &i in keys {
        match t.get(key(ti, i))? {
            Some(v) if v.as_ref() != value(ti, i).as_slice() => {
                return Ok(Seen::Wrong(format!(
                    "key {i} has a value never written to it"
                )))
            }
            Some(_) => {}
            None => {
                missing.insert(i);
            }
        }
    }
    let mut forward = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let Some(i) = written_value(&k) else {
            return Ok(Seen::Wrong(format!(
                "phantom key {:?}",
                String::from_utf8_lossy(&k)
            )));
        };
        if v.as_ref() != value(ti, i).as_slice() {
            return Ok(Seen::Wrong(format!(
                "forward scan: key {i} has a foreign value"
            )));
        }
        forward.push(i);
    }
    let mut reverse = Vec::new();
    for item in t.iter()?.rev() {
        let (k, v) = item?;
        let Some(i) = written_value(&k) else {
            return Ok(Seen::Wrong(format!(
                "reverse scan: phantom key {:?}",
                String::from_utf8_lossy(&k)
            )));
        };
        if v.as_ref() != value(ti, i).as_slice() {
            return Ok(Seen::Wrong(format!(
                "reverse scan: key {i} has a foreign value"
            )));
        }
        reverse.push(i);
    }
    reverse.reverse();
    if forward != reverse {
        return Ok(Seen::Wrong(format!(
            "forward scan saw {} keys, reverse {} (or another order)",
            forward.len(),
            reverse.len()
        )));
    }
    let scanned: BTreeSet<u64> = forward.iter().copied().collect();
    if scanned.len() != forward.len() {
        return Ok(Seen::Wrong("a key returned twice by a scan".into()));
    }
    for &i in keys {
        if !scanned.contains(&i) {
            missing.insert(i);
        } else if missing.contains(&i) {
            return Ok(Seen::Wrong(format!("key {i} scanned but not found by get")));
        }
    }
    Ok(if missing.is_empty() {
        Seen::Intact
    } else {
        Seen::SilentLoss(missing.into_iter().collect())
    })
}

/// Opens the tampered copy and reads every table every way.
fn inspect(root: &Path, written: &BTreeMap<usize, Vec<u64>>) -> Vec<Seen> {
    let opts = match options(root) {
        Ok(o) => o,
        Err(_) => return vec![Seen::Error; TABLES.len()],
    };
    let db = match Db::open(root.join("db"), opts) {
        Ok(db) => db,
        Err(_) => return vec![Seen::Error; TABLES.len()],
    };
    let mut seen = Vec::new();
    for (ti, (name, _)) in TABLES.iter().enumerate() {
        seen.push(inspect_table(&db, ti, name, written).unwrap_or(Seen::Error));
    }
    let names = db.tables();
    if let Some(extra) = names.iter().find(|n| !TABLES.iter().any(|(t, _)| t == n)) {
        seen.push(Seen::Wrong(format!("table {extra:?} was never created")));
    }
    seen
}

fn files(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(&pred))
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                        .parse()
                        .unwrap_or(0);
                    (n, e.path())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// One way to damage a file's bytes; `None` when it does not apply to this file.
type Mutation = Box<dyn Fn(&[u8]) -> Option<Vec<u8>>>;

fn mutations() -> Vec<(String, Mutation)> {
    let mut v: Vec<(String, Mutation)> = Vec::new();
    for k in 0..8u64 {
        v.push((
            format!("flip byte {k}/8"),
            Box::new(move |b: &[u8]| {
                let mut b = b.to_vec();
                let len = b.len() as u64;
                let at = usize::try_from(len.checked_sub(1)? * k / 7).ok()?;
                *b.get_mut(at)? ^= 0x40;
                Some(b)
            }),
        ));
    }
    for (label, frac) in [("start", 0u64), ("middle", 1), ("end", 2)] {
        v.push((
            format!("zero 64 bytes at the {label}"),
            Box::new(move |b: &[u8]| {
                let mut b = b.to_vec();
                let n = b.len().min(64);
                let start = usize::try_from((b.len() - n) as u64 * frac / 2).ok()?;
                let range = b.get_mut(start..start + n)?;
                if range.iter().all(|&x| x == 0) {
                    return None;
                }
                range.fill(0);
                Some(b)
            }),
        ));
    }
    v.push((
        "truncate by one byte".into(),
        Box::new(|b: &[u8]| Some(b.get(..b.len().checked_sub(1)?)?.to_vec())),
    ));
    v.push((
        "truncate to half".into(),
        Box::new(|b: &[u8]| Some(b.get(..b.len() / 2)?.to_vec())),
    ));
    v.push((
        "truncate to empty".into(),
        Box::new(|_: &[u8]| Some(Vec::new())),
    ));
    v.push((
        "extend by a zero byte".into(),
        Box::new(|b: &[u8]| Some([b, &[0]].concat())),
    ));
    v.push((
        "extend by 300 bytes of junk".into(),
        Box::new(|b: &[u8]| {
            let junk: Vec<u8> = (0..300u32).map(|i| (i * 37 + 11) as u8).collect();
            Some([b, &junk].concat())
        }),
    ));
    v
}

/// Outcomes a case may have besides an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tolerate {
    /// Only an error will do.
    Nothing,
    /// What a crash can produce (a torn tail): keys past the cut may be lost silently.
    TornTail,
    /// Bytes a reader may ignore (a partial frame header past the last record).
    Harmless,
}

struct Tally {
    cases: u64,
    detected: u64,
    failures: Vec<String>,
}

fn check_case(
    pristine: &Path,
    written: &BTreeMap<usize, Vec<u64>>,
    case: &str,
    tolerate: Tolerate,
    tamper: impl FnOnce(&Path) -> std::io::Result<bool>,
    tally: &mut Tally,
) -> TestResult {
    let dir = tempfile::tempdir()?;
    copy_tree(pristine, dir.path())?;
    if !tamper(dir.path())? {
        return Ok(());
    }
    let seen = inspect(dir.path(), written);
    tally.cases += 1;
    if seen.contains(&Seen::Error) {
        tally.detected += 1;
    }
    let mut lost: BTreeSet<(usize, u64)> = BTreeSet::new();
    for (ti, s) in seen.iter().enumerate() {
        let name = TABLES.get(ti).map_or("(extra)", |t| t.0);
        match s {
            Seen::Wrong(what) => tally.failures.push(format!("{case}: table {name}: {what}")),
            Seen::SilentLoss(keys) if tolerate != Tolerate::TornTail => {
                tally.failures.push(format!(
                    "{case}: table {name} lost {} of {} keys without an error (first {:?})",
                    keys.len(),
                    written.get(&ti).map_or(0, Vec::len),
                    &keys[..keys.len().min(5)]
                ))
            }
            Seen::SilentLoss(keys) => lost.extend(keys.iter().map(|&i| (ti, i))),
            _ => {}
        }
    }
    // A torn WAL tail may lose only the newest writes: a suffix of the WAL's write order.
    if !lost.is_empty() {
        let order = wal_write_order();
        let is_suffix =
            (0..=order.len()).any(|k| order[k..].iter().copied().collect::<BTreeSet<_>>() == lost);
        if !is_suffix {
            tally.failures.push(format!(
                "{case}: lost {} keys that are not the newest writes: {lost:?}",
                lost.len()
            ));
        }
    }
    if tolerate == Tolerate::Nothing
        && !seen.contains(&Seen::Error)
        && seen.iter().all(|s| *s == Seen::Intact)
    {
        tally
            .failures
            .push(format!("{case}: went unnoticed (data intact)"));
    }
    Ok(())
}

/// The keys `build` left only in the WAL, in the order it wrote them.
fn wal_write_order() -> Vec<(usize, u64)> {
    (0..TABLES.len())
        .flat_map(|ti| (2 * KEYS_PER_STEP..2 * KEYS_PER_STEP + 10).map(move |i| (ti, i)))
        .collect()
}

/// A pristine database to copy and damage.
struct Fixture {
    pristine: tempfile::TempDir,
    written: BTreeMap<usize, Vec<u64>>,
    /// SSTables in file-number order: two per table, in `TABLES` order.
    ssts: Vec<PathBuf>,
}

fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let pristine = tempfile::tempdir()?;
    let written = build(pristine.path())?;
    // Sanity: a copy of the pristine database reads back whole. (A copy: opening flushes
    // the replayed WAL, which would leave no WAL segment to tamper with.)
    let sanity = tempfile::tempdir()?;
    copy_tree(pristine.path(), sanity.path())?;
    assert!(inspect(sanity.path(), &written)
        .iter()
        .all(|s| *s == Seen::Intact));
    let ssts = files(&pristine.path().join("db"), |n| n.ends_with(".sst"));
    assert_eq!(
        ssts.len(),
        2 * TABLES.len(),
        "one SSTable per flush per table"
    );
    Ok(Fixture {
        pristine,
        written,
        ssts,
    })
}

/// SSTables `a` and `b` trade places whole.
fn swap_whole_files(
    fx: &Fixture,
    a: usize,
    b: usize,
    label: &str,
    tally: &mut Tally,
) -> TestResult {
    let root = fx.pristine.path();
    let (ra, rb) = (
        fx.ssts[a].strip_prefix(root)?.to_path_buf(),
        fx.ssts[b].strip_prefix(root)?.to_path_buf(),
    );
    check_case(
        root,
        &fx.written,
        &format!("swap whole files {label}"),
        Tolerate::Nothing,
        |d| {
            let x = std::fs::read(d.join(&ra))?;
            std::fs::copy(d.join(&rb), d.join(&ra))?;
            std::fs::write(d.join(&rb), x)?;
            Ok(true)
        },
        tally,
    )
}

fn new_tally() -> Tally {
    Tally {
        cases: 0,
        detected: 0,
        failures: Vec::new(),
    }
}

fn assert_clean(tally: &Tally) {
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

/// Found by this test: a plaintext SSTable carries no identity (file number or table id)
/// and its CRCs do not cover one, so a whole file moved into another's place (same table
/// or another plaintext table) is read as if it belonged there: keys vanish silently or
/// another table's keys appear. Fixed: opening a file checks its key range and entry count
/// against the manifest's (unique sequence numbers make them a file's identity).
#[test]
fn regression_plaintext_sstables_swapped_whole_are_detected() -> TestResult {
    let fx = fixture()?;
    let mut tally = new_tally();
    swap_whole_files(&fx, 0, 1, "within plain", &mut tally)?;
    swap_whole_files(&fx, 0, 2, "plain/plain2", &mut tally)?;
    assert_clean(&tally);
    Ok(())
}

#[test]
fn every_tampered_file_gives_an_error_or_exact_data_never_a_silent_loss() -> TestResult {
    let fx = fixture()?;
    let pristine = &fx.pristine;
    let written = &fx.written;
    let ssts = &fx.ssts;
    let db = pristine.path().join("db");
    let wals = files(&db, |n| n.ends_with(".log"));
    let manifests = files(&db, |n| n.starts_with("MANIFEST"));
    let mut targets: Vec<(PathBuf, &str)> = Vec::new();
    targets.extend(ssts.iter().map(|p| (p.clone(), "sst")));
    targets.extend(wals.iter().map(|p| (p.clone(), "wal")));
    targets.extend(manifests.iter().map(|p| (p.clone(), "manifest")));
    targets.push((db.join("CURRENT"), "current"));
    targets.push((
        pristine.path().join("kms").join(sealdb::kms::KEYSTORE_FILE),
        "keystore",
    ));
    let mut tally = new_tally();
    for (path, kind) in &targets {
        let rel = path.strip_prefix(pristine.path())?.to_path_buf();
        let original = std::fs::read(path)?;
        for (label, m) in mutations() {
            let Some(bad) = m(&original) else { continue };
            let case = format!("{kind} {}: {label}", rel.display());
            // A WAL cut short, or zeroed at its end (which also wipes the closing sync point
            // that vouched for it), is a torn tail: loss of its suffix is what a crash gives.
            // Bytes after the last WAL or manifest record (a stray byte, junk) are what a
            // power loss during an unsynced append leaves: ignored, nothing is lost. The
            // last byte of a cleanly closed WAL is in its closing sync point, which carries
            // no data: damage there reads as a torn tail after every batch.
            let tolerate = match (*kind, label.as_str()) {
                ("wal", l) if l.starts_with("truncate") => Tolerate::TornTail,
                ("wal", "zero 64 bytes at the end") => Tolerate::TornTail,
                ("wal" | "manifest", "extend by a zero byte" | "extend by 300 bytes of junk") => {
                    Tolerate::Harmless
                }
                ("wal", "flip byte 7/8") => Tolerate::Harmless,
                _ => Tolerate::Nothing,
            };
            check_case(
                pristine.path(),
                written,
                &case,
                tolerate,
                |d| std::fs::write(d.join(&rel), &bad).map(|_| true),
                &mut tally,
            )?;
        }
    }
    // Same-offset block swaps: within a table (files 0 and 1 of table t) and between tables
    // of the same kind (file 0 of `plain` and `plain2`, of `enc` and `enc2`).
    let pairs = [
        (0, 1, "within plain"),
        (4, 5, "within enc"),
        (0, 2, "plain/plain2"),
        (4, 6, "enc/enc2"),
        (0, 4, "plain/enc"),
    ];
    for (a, b, label) in pairs {
        let (ra, rb) = (
            ssts[a].strip_prefix(pristine.path())?.to_path_buf(),
            ssts[b].strip_prefix(pristine.path())?.to_path_buf(),
        );
        let len = std::fs::metadata(&ssts[a])?
            .len()
            .min(std::fs::metadata(&ssts[b])?.len());
        for block in [0u64, 256, 512, len.saturating_sub(256)] {
            let case = format!("swap 256 bytes at {block} {label}");
            check_case(
                pristine.path(),
                written,
                &case,
                Tolerate::Nothing,
                |d| {
                    let (mut x, mut y) = (std::fs::read(d.join(&ra))?, std::fs::read(d.join(&rb))?);
                    let (s, e) = (block as usize, (block + 256).min(len) as usize);
                    if s >= e || x[s..e] == y[s..e] {
                        return Ok(false);
                    }
                    let tmp = x[s..e].to_vec();
                    x[s..e].copy_from_slice(&y[s..e]);
                    y[s..e].copy_from_slice(&tmp);
                    std::fs::write(d.join(&ra), x)?;
                    std::fs::write(d.join(&rb), y)?;
                    Ok(true)
                },
                &mut tally,
            )?;
        }
        if label != "within plain" && label != "plain/plain2" {
            swap_whole_files(&fx, a, b, label, &mut tally)?;
        }
    }
    println!(
        "tamper: {} cases over {} files, {} detected",
        tally.cases,
        targets.len(),
        tally.detected
    );
    assert_clean(&tally);
    Ok(())
}
