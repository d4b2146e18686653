//! The one helper module of the integration tests: every test binary says `mod common;`
//! and takes what it needs. `kms` holds the KMS tests' principals and set-up, `rel` the
//! reliability tests' (fault injection, crashes, tampering); both open their LocalKms
//! through [`local_kms_options`], the one KMS set-up.
// Each test binary uses a part of this module; the rest is dead (or an unused re-export)
// in that binary.
#![allow(dead_code, unused_imports)]

pub mod kms;
pub mod rel;

use std::path::{Path, PathBuf};

use sealdb::{Db, Options};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The account and region every test KMS serves (the engine's defaults).
pub const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;
pub const REGION: &str = sealdb::DEFAULT_REGION;

/// Small buffers so tests exercise flushes and many files quickly.
pub fn small_options() -> Options {
    let mut o = Options::default();
    o.write_buffer_size = 256 << 10;
    o.block_cache_bytes = 1 << 20;
    o
}

pub fn open(path: &Path) -> sealdb::Result<Db> {
    Db::open(path, small_options())
}

/// Copies every regular file of `from` into a new directory `to`, as the files stood at one
/// moment. The engine's background threads may create, grow, rename or delete files while
/// the copy runs (a flush's new SSTable missed by the listing while the manifest copied
/// after it names it; an obsolete file deleted mid-copy), so the copy starts over until the
/// directory is the same before and after it: the same names, and every file other than a
/// WAL segment or a manifest with the same length and modification time. Those two only
/// grow by appends, and a copy that caught one at a shorter length is what a crash then
/// leaves (its unsynced tail lost), so writers may keep writing while a copy is taken.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        let before = listing(from);
        let copied = copy_dir_once(from, to);
        match (before, copied, listing(from)) {
            (Ok(b), Ok(()), Ok(a)) if a == b => return Ok(()),
            (_, Err(e), _) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {
                std::fs::remove_dir_all(to)?;
                std::thread::yield_now();
            }
        }
    }
    Err(std::io::Error::other(format!(
        "{} kept changing while it was copied",
        from.display()
    )))
}

/// Each regular file of `dir`: name, and length and modification time unless it is a WAL
/// segment or a manifest (append-only), sorted.
fn listing(dir: &Path) -> std::io::Result<Vec<(std::ffi::OsString, u64, std::time::SystemTime)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        if m.is_file() {
            let name = e.file_name();
            let text = name.to_string_lossy();
            if text.ends_with(".log") || text.starts_with("MANIFEST-") {
                v.push((name, 0, std::time::SystemTime::UNIX_EPOCH));
            } else {
                v.push((name, m.len(), m.modified()?));
            }
        }
    }
    v.sort();
    Ok(v)
}

fn copy_dir_once(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Files in `dir` whose names end with `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

use std::sync::Arc;

use sealdb::clock::{Clock, ManualClock};
use sealdb::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};

/// The options of every test LocalKms: [`ACCOUNT`], [`REGION`], `passphrase` under the fast
/// test KDF, `clock`, audit files rotated at `audit_max_bytes` (0: never).
pub fn local_kms_options(
    passphrase: &str,
    clock: Arc<dyn Clock>,
    audit_max_bytes: u64,
) -> LocalKmsOptions {
    LocalKmsOptions::new(ACCOUNT, REGION)
        .with_root_key(RootKeySource::Passphrase {
            passphrase: zeroize::Zeroizing::new(passphrase.to_owned()),
            kdf: KdfParams::insecure_fast_for_tests(),
        })
        .with_clock(clock)
        .with_audit_max_bytes(audit_max_bytes)
}

/// A local KMS in `dir` with cheap KDF parameters and the given clock.
pub fn local_kms(dir: &Path, clock: Arc<dyn Clock>) -> sealdb::Result<Arc<LocalKms>> {
    let opts = local_kms_options("test passphrase", clock, 0);
    Ok(Arc::new(LocalKms::open(dir, opts)?))
}

/// Options for a database whose encrypted tables use `kms`, on `clock`.
pub fn kms_options(kms: &Arc<LocalKms>, clock: Arc<dyn Clock>) -> Options {
    let mut o = small_options();
    o.kms = Some(Arc::clone(kms) as Arc<dyn sealdb::kms::Kms>);
    o.clock = clock;
    o
}

/// A database directory and a keystore directory side by side, with a manual clock.
pub struct EncryptedFixture {
    pub root: tempfile::TempDir,
    pub clock: ManualClock,
    pub kms: Arc<LocalKms>,
}

impl EncryptedFixture {
    pub fn new() -> Result<EncryptedFixture, Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let clock = ManualClock::default();
        let kms = local_kms(&root.path().join("kms"), Arc::new(clock.clone()))?;
        Ok(EncryptedFixture { root, clock, kms })
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.path().join("db")
    }

    pub fn options(&self) -> Options {
        kms_options(&self.kms, Arc::new(self.clock.clone()))
    }

    pub fn open(&self) -> sealdb::Result<Db> {
        Db::open(self.db_path(), self.options())
    }
}

/// Every file under `dir` (recursively) that contains `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}
