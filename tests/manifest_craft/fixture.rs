//! Small databases to attack: a LocalKms beside the data directory (cheap KDF), tables
//! written through a recorder that keeps what a reader must get back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealdb::clock::ManualClock;
use sealdb::kms::LocalKms;
use sealdb::{Db, Options, Table, TableOptions, WriteOptions};

use super::check::{scratch_dir, Expected};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A LocalKms in `dir` under a fixed passphrase and the fast test KDF.
pub fn local_kms(dir: &Path) -> Result<LocalKms, sealdb::kms::KmsError> {
    let clock = Arc::new(ManualClock::default());
    LocalKms::open(
        dir,
        crate::common::local_kms_options("manifest attack tests", clock, 1 << 20),
    )
}

/// A database directory (`root/db`) and, for encrypted fixtures, a KMS (`root/kms`).
pub struct Fixture {
    pub root: tempfile::TempDir,
    pub kms: Option<Arc<LocalKms>>,
    pub expected: Expected,
    /// Added to every value generation: a sibling database with another offset writes the
    /// same keys with values of the same length that differ.
    pub gen_offset: u32,
    pub write_buffer_size: usize,
}

impl Fixture {
    pub fn new(with_kms: bool) -> BoxResult<Fixture> {
        let root = scratch_dir()?;
        let kms = if with_kms {
            Some(Arc::new(local_kms(&root.path().join("kms"))?))
        } else {
            None
        };
        Ok(Fixture {
            root,
            kms,
            expected: Expected::new(),
            gen_offset: 0,
            write_buffer_size: 1 << 20,
        })
    }

    /// Another fixture sharing this one's KMS (a second database of the same owner).
    pub fn sibling(&self) -> BoxResult<Fixture> {
        Ok(Fixture {
            root: scratch_dir()?,
            kms: self.kms.clone(),
            expected: Expected::new(),
            gen_offset: 5,
            write_buffer_size: self.write_buffer_size,
        })
    }

    pub fn db_dir(&self) -> PathBuf {
        self.root.path().join("db")
    }

    /// Large buffers by default (only explicit flushes write SSTables), small blocks, no background
    /// compaction (the manifest's records then follow the test's steps).
    pub fn options(&self) -> Options {
        {
            let mut o = Options::default();
            o.write_buffer_size = self.write_buffer_size;
            o.block_size = 256;
            o.block_cache_bytes = 256 << 10;
            o.disable_auto_compactions = true;
            o.kms = self
                .kms
                .as_ref()
                .map(|k| Arc::clone(k) as Arc<dyn sealdb::kms::Kms>);
            o
        }
    }

    pub fn open(&self) -> sealdb::Result<Db> {
        Db::open(self.db_dir(), self.options())
    }

    /// A copy of the database directory to attack, in a scratch directory of its own
    /// (the KMS stays shared). Returns the scratch root and the copy's path.
    pub fn copy(&self) -> BoxResult<(tempfile::TempDir, PathBuf)> {
        let scratch = scratch_dir()?;
        let dir = scratch.path().join("db");
        super::check::copy_files(&self.db_dir(), &dir)?;
        Ok((scratch, dir))
    }

    pub fn create(&mut self, db: &Db, name: &str, encrypted: bool) -> sealdb::Result<Table> {
        let opts = if encrypted {
            TableOptions::encrypted()
        } else {
            TableOptions::plaintext()
        };
        let t = db.create_table(name, opts)?;
        self.expected.entry(name.to_owned()).or_default();
        Ok(t)
    }

    /// Puts keys `range` of `t` with values of generation `gen`, synced.
    pub fn put_range(
        &mut self,
        t: &Table,
        range: std::ops::Range<u32>,
        gen: u32,
    ) -> sealdb::Result<()> {
        for i in range {
            let (k, v) = (key(i), value(t.name(), i, gen + self.gen_offset));
            t.put_opt(&k, &v, WriteOptions::synced())?;
            self.expected
                .entry(t.name().to_owned())
                .or_default()
                .insert(k, v);
        }
        Ok(())
    }

    pub fn delete(&mut self, t: &Table, i: u32) -> sealdb::Result<()> {
        t.delete_opt(key(i), WriteOptions::synced())?;
        if let Some(rows) = self.expected.get_mut(t.name()) {
            rows.remove(&key(i));
        }
        Ok(())
    }
}

pub fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// Distinct per table, key and generation: a stale or foreign value never matches.
pub fn value(table: &str, i: u32, gen: u32) -> Vec<u8> {
    format!("{table}-value-{i:05}-gen{gen}").into_bytes()
}

/// The standard small database: tables `first` (encrypted when `encrypted`) and `plain`.
/// Session 1 writes 20 rows each and flushes; session 2 overwrites 5, writes 10 more and
/// flushes (so the live manifest has a snapshot and appended records), deletes one key,
/// then writes 10 rows each that stay in the WAL. Closed.
pub fn build_standard(fx: &mut Fixture, encrypted: bool) -> TestResult {
    let first = if encrypted { "enc" } else { "plain2" };
    {
        let db = fx.open()?;
        let a = fx.create(&db, first, encrypted)?;
        let b = fx.create(&db, "plain", false)?;
        for t in [&a, &b] {
            fx.put_range(t, 0..20, 1)?;
        }
        db.flush()?;
    }
    let db = fx.open()?;
    let a = db.table(first)?;
    let b = db.table("plain")?;
    for t in [&a, &b] {
        fx.put_range(t, 0..5, 2)?;
        fx.put_range(t, 20..30, 1)?;
    }
    db.flush()?;
    for t in [&a, &b] {
        fx.delete(t, 7)?;
        fx.put_range(t, 30..40, 1)?;
    }
    Ok(())
}

/// One more session over a standard database: 5 rows more per table that stay in the WAL,
/// no flush. The live manifest is then the snapshot the open wrote, and nothing after it.
pub fn add_wal_only_session(fx: &mut Fixture) -> TestResult {
    let db = fx.open()?;
    for name in db.tables() {
        let t = db.table(&name)?;
        fx.put_range(&t, 40..45, 1)?;
    }
    Ok(())
}
