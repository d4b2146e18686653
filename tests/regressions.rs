//! Bugs found by the model and fuzz tests, each kept as a named test with its origin.

mod common;

use common::TestResult;
use sealdb::{Db, Options, TableOptions, WriteBatch, WriteOptions};

/// Origin: tests/engine_model.rs. A batch over two tables where the second table's full
/// memtable switched the WAL segment after the first table had registered in the old one:
/// the append then named a table the new segment did not know, and poisoned the database.
#[test]
fn batch_whose_second_table_switches_the_wal_segment() -> TestResult {
    // Some fill count leaves "b"'s memtable exactly full when the batch arrives.
    for fill in 0..12 {
        let dir = tempfile::tempdir()?;
        let mut opts = Options::default();
        opts.write_buffer_size = 1024;
        let db = Db::open(dir.path(), opts.clone())?;
        let a = db.create_table("a", TableOptions::plaintext())?;
        let b = db.create_table("b", TableOptions::plaintext())?;
        for i in 0..fill {
            b.put(format!("fill{i}"), [7u8; 64])?;
        }
        let mut batch = WriteBatch::new();
        batch.put(&a, "ka", "va");
        batch.put(&b, "kb", "vb");
        db.write(&batch, WriteOptions::default())?;
        drop((a, b, db));
        let db = Db::open(dir.path(), opts)?;
        assert_eq!(db.table("a")?.get("ka")?.as_deref(), Some(&b"va"[..]));
        assert_eq!(db.table("b")?.get("kb")?.as_deref(), Some(&b"vb"[..]));
    }
    Ok(())
}
