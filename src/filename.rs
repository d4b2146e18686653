//! The names of the files in a data directory: the one place that writes and parses them.
//! Open (recovery), verify, flush, compaction and the WAL all go through it, so they agree on
//! which names are the engine's.
//!
//! ```text
//! NNNNNN.log        WAL segment          NNNNNN = the file number, zero-padded to 6 digits
//! NNNNNN.sst        SSTable                       (more digits past 999999, no padding then)
//! MANIFEST-NNNNNN   manifest
//! CURRENT           names the live manifest (manifest/current.rs)
//! CURRENT.tmp       CURRENT being replaced
//! LOCK              the process lock
//! ```
//!
//! A name parses only if it is exactly what this module writes for its number: `42.log`,
//! `0000042.log` (a seventh, leading zero), `+00042.log`, `000042.LOG` and numbers past
//! `u64::MAX` are not the engine's files, and nothing treats them as such (two names can
//! never stand for one file number).

use crate::types::FileNumber;

/// The file that names the live manifest.
pub(crate) const CURRENT: &str = "CURRENT";
/// `CURRENT` being replaced (written, synced, then renamed over `CURRENT`).
pub(crate) const CURRENT_TMP: &str = "CURRENT.tmp";
/// The lock file held by the process that has the database open.
pub(crate) const LOCK: &str = "LOCK";

const WAL_EXT: &str = ".log";
const SST_EXT: &str = ".sst";
const MANIFEST_PREFIX: &str = "MANIFEST-";

/// A file of the data directory, by what its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbFile {
    Wal(FileNumber),
    Sst(FileNumber),
    Manifest(FileNumber),
    Current,
    CurrentTmp,
    Lock,
}

/// `NNNNNN.log`.
pub(crate) fn wal(n: FileNumber) -> String {
    format!("{n}{WAL_EXT}")
}

/// `NNNNNN.sst`.
pub(crate) fn sst(n: FileNumber) -> String {
    format!("{n}{SST_EXT}")
}

/// `MANIFEST-NNNNNN`.
pub(crate) fn manifest(n: FileNumber) -> String {
    format!("{MANIFEST_PREFIX}{n}")
}

/// What `name` is, if it is one of the engine's files.
pub(crate) fn parse(name: &str) -> Option<DbFile> {
    match name {
        CURRENT => return Some(DbFile::Current),
        CURRENT_TMP => return Some(DbFile::CurrentTmp),
        LOCK => return Some(DbFile::Lock),
        _ => {}
    }
    if let Some(stem) = name.strip_suffix(WAL_EXT) {
        return number(stem).map(DbFile::Wal);
    }
    if let Some(stem) = name.strip_suffix(SST_EXT) {
        return number(stem).map(DbFile::Sst);
    }
    name.strip_prefix(MANIFEST_PREFIX)
        .and_then(number)
        .map(DbFile::Manifest)
}

/// The segment number, if `name` names a WAL segment.
pub(crate) fn wal_number(name: &str) -> Option<FileNumber> {
    match parse(name) {
        Some(DbFile::Wal(n)) => Some(n),
        _ => None,
    }
}

/// The file number, if `name` names an SSTable.
pub(crate) fn sst_number(name: &str) -> Option<FileNumber> {
    match parse(name) {
        Some(DbFile::Sst(n)) => Some(n),
        _ => None,
    }
}

/// The manifest number, if `name` names a manifest.
pub(crate) fn manifest_number(name: &str) -> Option<FileNumber> {
    match parse(name) {
        Some(DbFile::Manifest(n)) => Some(n),
        _ => None,
    }
}

/// The number `digits` spells, if it is spelled the way `FileNumber`'s `Display` writes it.
fn number(digits: &str) -> Option<FileNumber> {
    // `u64::from_str` alone would also take "+1", "42" and "0000042".
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = FileNumber(digits.parse().ok()?);
    (n.to_string() == digits).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [0, 1, 42, 999_999, 1_000_000, 1_234_567, u64::MAX] {
            let n = FileNumber(n);
            assert_eq!(parse(&wal(n)), Some(DbFile::Wal(n)));
            assert_eq!(parse(&sst(n)), Some(DbFile::Sst(n)));
            assert_eq!(parse(&manifest(n)), Some(DbFile::Manifest(n)));
            assert_eq!(wal_number(&wal(n)), Some(n));
            assert_eq!(sst_number(&sst(n)), Some(n));
            assert_eq!(manifest_number(&manifest(n)), Some(n));
        }
        assert_eq!(wal(FileNumber(42)), "000042.log");
        assert_eq!(sst(FileNumber(42)), "000042.sst");
        assert_eq!(manifest(FileNumber(3)), "MANIFEST-000003");
        assert_eq!(sst(FileNumber(1_234_567)), "1234567.sst");
        assert_eq!(parse("CURRENT"), Some(DbFile::Current));
        assert_eq!(parse("CURRENT.tmp"), Some(DbFile::CurrentTmp));
        assert_eq!(parse("LOCK"), Some(DbFile::Lock));
    }

    #[test]
    fn only_the_written_spelling_parses() {
        for name in [
            // too few digits: the spelling `db::names` used to accept and the WAL refused
            "42.log",
            "42.sst",
            "MANIFEST-3",
            // a leading zero past six digits: would alias 000042.log
            "0000042.log",
            "0000042.sst",
            "MANIFEST-0000003",
            "01234567.sst",
            // signs, spaces, other digits, empty stems
            "+00042.log",
            "-00042.log",
            " 000042.log",
            "000042 .log",
            "00004a.log",
            "٠٠٠٠٤٢.log",
            ".log",
            ".sst",
            "MANIFEST-",
            // past u64::MAX
            "18446744073709551616.sst",
            "99999999999999999999999.log",
            // other extensions, cases, suffixes, prefixes
            "000042.LOG",
            "000042.Sst",
            "000042.log.tmp",
            "000042.sst~",
            "000042",
            "000042.",
            "x000042.log",
            "manifest-000003",
            "MANIFEST-000003.tmp",
            "current",
            "CURRENT.bak",
            "LOCK.1",
            "",
        ] {
            assert_eq!(parse(name), None, "{name:?}");
        }
        // The right kind only.
        assert_eq!(wal_number("000042.sst"), None);
        assert_eq!(sst_number("000042.log"), None);
        assert_eq!(manifest_number("000042.log"), None);
        assert_eq!(wal_number("CURRENT"), None);
    }
}
