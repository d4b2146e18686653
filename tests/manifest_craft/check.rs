//! The "no silent loss" check: after an attack, opening the database either fails (and
//! then leaves every file exactly as it was) or reads back exactly what was written:
//! the same tables, every key with its value, forward and reverse full scans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sealdb::{Db, Error, Options};

/// What was written: table name -> key -> value.
pub type Expected = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A directory's regular files: name -> contents.
pub type DirMap = BTreeMap<String, Vec<u8>>;

pub fn dir_map(dir: &Path) -> std::io::Result<DirMap> {
    let mut m = DirMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            m.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path())?,
            );
        }
    }
    Ok(m)
}

/// What differs between two directory maps, for messages.
pub fn dir_diff(before: &DirMap, after: &DirMap) -> String {
    let mut out = Vec::new();
    for (name, data) in before {
        match after.get(name) {
            None => out.push(format!("{name} removed")),
            Some(d) if d != data => out.push(format!(
                "{name} changed ({} -> {} bytes)",
                data.len(),
                d.len()
            )),
            _ => {}
        }
    }
    for name in after.keys() {
        if !before.contains_key(name) {
            out.push(format!("{name} created"));
        }
    }
    out.join(", ")
}

/// Number of regular files in `dir`.
pub fn file_count(dir: &Path) -> std::io::Result<usize> {
    Ok(dir_map(dir)?.len())
}

/// Files in `dir` ending with `.ext`.
pub fn files_with_ext(dir: &Path, ext: &str) -> std::io::Result<Vec<String>> {
    let suffix = format!(".{ext}");
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(&suffix))
        .collect();
    v.sort();
    Ok(v)
}

/// The number in `NNNNNN.ext`.
pub fn file_number(name: &str) -> Option<u64> {
    name.split('.').next()?.parse().ok()
}

/// How one attacked database behaved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Open failed with this error; the directory is as it was.
    OpenError(String),
    /// Open succeeded; a read failed with this error (detection, not loss).
    ReadError(String),
    /// Everything written reads back exactly.
    Exact,
    /// Success with fewer tables or rows than written: the forbidden outcome.
    SilentLoss(String),
    /// A table, key or value that was never written: forbidden too.
    Wrong(String),
    /// Open failed but changed the directory: forbidden.
    FailedOpenChangedFiles(String),
}

impl Outcome {
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::OpenError(_) | Outcome::ReadError(_))
    }

    /// The outcomes the invariant forbids.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            Outcome::SilentLoss(_) | Outcome::Wrong(_) | Outcome::FailedOpenChangedFiles(_)
        )
    }
}

/// Reads every table of `db` every way and compares with `expected`.
pub fn read_back(db: &Db, expected: &Expected) -> Outcome {
    let names = db.tables();
    let want: Vec<String> = expected.keys().cloned().collect();
    for n in &names {
        if !expected.contains_key(n) {
            return Outcome::Wrong(format!("table {n:?} was never created (tables {names:?})"));
        }
    }
    for (name, rows) in expected {
        let t = match db.table(name) {
            Ok(t) => t,
            // A table that is gone after an attack is a loss, not a detection.
            Err(Error::TableNotFound(_)) => {
                return Outcome::SilentLoss(format!(
                    "table {name:?} not found (tables {names:?}, expected {want:?})"
                ))
            }
            Err(e) => return Outcome::ReadError(format!("table {name:?}: {e}")),
        };
        let r = (|| -> sealdb::Result<Outcome> {
            let mut missing = 0usize;
            for (k, v) in rows {
                match t.get(k)? {
                    Some(got) if got.as_ref() != v.as_slice() => {
                        return Ok(Outcome::Wrong(format!(
                            "table {name:?}: key {:?} has a value never written to it",
                            String::from_utf8_lossy(k)
                        )))
                    }
                    Some(_) => {}
                    None => missing += 1,
                }
            }
            let mut fwd = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                fwd.push((k.to_vec(), v.to_vec()));
            }
            let mut rev = Vec::new();
            for item in t.iter()?.rev() {
                let (k, v) = item?;
                rev.push((k.to_vec(), v.to_vec()));
            }
            let want_fwd: Vec<(Vec<u8>, Vec<u8>)> =
                rows.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut want_rev = want_fwd.clone();
            want_rev.reverse();
            for (dir, got, want) in [("forward", &fwd, &want_fwd), ("reverse", &rev, &want_rev)] {
                if got == want {
                    continue;
                }
                // Anything in the scan that was not written is wrong; fewer rows is loss.
                for (k, v) in got {
                    if rows.get(k) != Some(v) {
                        return Ok(Outcome::Wrong(format!(
                            "table {name:?}: {dir} scan returned {:?} with a value never written",
                            String::from_utf8_lossy(k)
                        )));
                    }
                }
                return Ok(Outcome::SilentLoss(format!(
                    "table {name:?}: {dir} scan saw {} of {} rows",
                    got.len(),
                    want.len()
                )));
            }
            if missing > 0 {
                return Ok(Outcome::SilentLoss(format!(
                    "table {name:?}: {missing} of {} keys missing on get",
                    rows.len()
                )));
            }
            Ok(Outcome::Exact)
        })();
        match r {
            Ok(Outcome::Exact) => {}
            Ok(other) => return other,
            Err(e) => return Outcome::ReadError(format!("table {name:?}: {e}")),
        }
    }
    Outcome::Exact
}

/// Opens `dir` with `opts` and checks the invariant. On a failed open, the directory must
/// equal `before`. On success, the database is returned too (for follow-up checks).
pub fn open_and_check(
    dir: &Path,
    opts: Options,
    expected: &Expected,
    before: &DirMap,
) -> (Outcome, Option<Db>) {
    match Db::open(dir, opts) {
        Err(e) => {
            let after = match dir_map(dir) {
                Ok(m) => m,
                Err(io) => return (Outcome::FailedOpenChangedFiles(io.to_string()), None),
            };
            if &after != before {
                return (
                    Outcome::FailedOpenChangedFiles(format!(
                        "open failed ({e}) and changed the directory: {}",
                        dir_diff(before, &after)
                    )),
                    None,
                );
            }
            (Outcome::OpenError(e.to_string()), None)
        }
        Ok(db) => {
            let o = read_back(&db, expected);
            (o, Some(db))
        }
    }
}

/// A scratch directory on a memory file system when there is one (these tests open
/// databases thousands of times; fsync on a disk would dominate), else the default.
pub fn scratch_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("sealdb-test-")
            .tempdir_in(&shm)
        {
            return Ok(d);
        }
    }
    tempfile::tempdir()
}

/// Copies the regular files of `from` into `to` (created).
pub fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Writes `map` as the whole contents of `dir` (files not in it are removed).
pub fn restore_dir(dir: &Path, map: &DirMap) -> std::io::Result<()> {
    for name in dir_map(dir)?.keys() {
        if !map.contains_key(name) {
            std::fs::remove_file(dir.join(name))?;
        }
    }
    for (name, data) in map {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}

/// Tally of outcomes over many cases.
#[derive(Default, Debug)]
pub struct Tally {
    pub cases: u64,
    pub detected: u64,
    pub benign: u64,
    pub violations: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, case: &str, o: &Outcome) {
        self.cases += 1;
        if o.is_error() {
            self.detected += 1;
        } else if *o == Outcome::Exact {
            self.benign += 1;
        }
        if o.is_violation() {
            self.violations.push(format!("{case}: {o:?}"));
        }
    }

    pub fn silent_losses(&self) -> usize {
        self.violations.len()
    }

    pub fn assert_clean(&self, what: &str) {
        assert!(
            self.violations.is_empty(),
            "{what}: {} violations of 'no silent loss' in {} cases:\n{}",
            self.violations.len(),
            self.cases,
            self.violations
                .iter()
                .take(40)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// After an open that accepted an attack with exact data: more acknowledged work must not
/// lose anything either (a lowered counter could make a new write older than an old one,
/// or a new file reuse a live file's number). Overwrites three keys and adds one per
/// table, synced; flushes; compacts everything; checks; reopens; checks again.
pub fn survives_more_work(db: Db, dir: &Path, opts: Options, expected: &Expected) -> Outcome {
    let mut exp = expected.clone();
    let r = (|| -> sealdb::Result<()> {
        for (name, rows) in exp.iter_mut() {
            let t = db.table(name)?;
            let mut keys: Vec<Vec<u8>> = rows.keys().take(3).cloned().collect();
            keys.push(b"zz-written-after-the-attack".to_vec());
            for k in keys {
                let v = [b"after-attack-".as_slice(), name.as_bytes(), b"-", &k].concat();
                t.put_opt(&k, &v, sealdb::WriteOptions::synced())?;
                rows.insert(k, v);
            }
        }
        db.flush()?;
        db.compact_all()?;
        Ok(())
    })();
    if let Err(e) = r {
        return Outcome::ReadError(format!("work after the open: {e}"));
    }
    let o = read_back(&db, &exp);
    if o != Outcome::Exact {
        return o;
    }
    drop(db);
    match Db::open(dir, opts) {
        Ok(db) => read_back(&db, &exp),
        Err(e) => Outcome::SilentLoss(format!(
            "accepted at the first open, refused after more work: {e}"
        )),
    }
}
