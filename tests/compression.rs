//! LZ4 block compression through the engine: an encrypted table created with
//! `with_compression(Lz4)` stores the same data in fewer bytes than one without, across
//! flush, compaction and reopen, and the setting survives reopen (it is in the manifest).

mod common;

use common::{files_containing, EncryptedFixture, TestResult};
use sealdb::{Compression, Db, TableOptions};

fn key(i: usize) -> String {
    format!("user/{i:08}")
}

/// Compressible but distinct per key: a JSON-ish record with repeated field names.
fn value(i: usize, round: usize) -> String {
    format!(
        "{{\"id\":{i},\"round\":{round},\"name\":\"customer-{i}\",\"status\":\"active\",\
         \"tier\":\"gold\",\"region\":\"eu-west-1\",\"notes\":\"{}\"}}",
        "lorem ipsum dolor sit amet ".repeat(4)
    )
}

fn table_bytes(db: &Db, name: &str) -> u64 {
    db.stats()
        .tables
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.total_bytes)
        .unwrap_or(0)
}

fn check_all(db: &Db, name: &str, n: usize, round: usize) -> TestResult {
    let t = db.table(name)?;
    for i in (0..n).step_by(13) {
        assert_eq!(
            t.get(key(i))?.as_deref(),
            Some(value(i, round).as_bytes()),
            "{name} {i}"
        );
    }
    let mut count = 0;
    for item in t.iter()? {
        let (k, v) = item?;
        assert_eq!(k.as_ref(), key(count).as_bytes());
        assert_eq!(v.as_ref(), value(count, round).as_bytes());
        count += 1;
    }
    assert_eq!(count, n, "{name}");
    Ok(())
}

#[test]
fn lz4_encrypted_table_is_smaller_and_reads_back_after_compaction_and_reopen() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let packed = db.create_table(
        "packed",
        TableOptions::encrypted().with_compression(Compression::Lz4),
    )?;
    let raw = db.create_table("raw", TableOptions::encrypted())?;
    let n = 4000;
    for round in 0..2 {
        for i in 0..n {
            packed.put(key(i), value(i, round))?;
            raw.put(key(i), value(i, round))?;
        }
        db.flush()?;
    }
    check_all(&db, "packed", n, 1)?;
    db.compact_all()?;
    check_all(&db, "packed", n, 1)?;
    check_all(&db, "raw", n, 1)?;
    let (p, r) = (table_bytes(&db, "packed"), table_bytes(&db, "raw"));
    assert!(p > 0 && p * 2 < r, "packed {p} bytes, raw {r} bytes");
    // Compressed, then encrypted: nothing of the values is readable on disk.
    drop((packed, raw, db));
    assert!(files_containing(&fx.db_path(), b"lorem ipsum").is_empty());
    assert!(files_containing(&fx.db_path(), b"customer-").is_empty());

    // Reopen: the files read back, and new files of the table are compressed too.
    let db = fx.open()?;
    check_all(&db, "packed", n, 1)?;
    let (packed, raw) = (db.table("packed")?, db.table("raw")?);
    for i in 0..n {
        packed.put(key(i), value(i, 2))?;
        raw.put(key(i), value(i, 2))?;
    }
    db.flush()?;
    db.compact_all()?;
    check_all(&db, "packed", n, 2)?;
    check_all(&db, "raw", n, 2)?;
    let (p, r) = (table_bytes(&db, "packed"), table_bytes(&db, "raw"));
    assert!(
        p > 0 && p * 2 < r,
        "after reopen: packed {p} bytes, raw {r} bytes"
    );
    Ok(())
}

#[test]
fn plaintext_tables_compress_too_and_default_is_none() -> TestResult {
    assert_eq!(TableOptions::plaintext().compression, Compression::None);
    assert_eq!(TableOptions::default().compression, Compression::None);
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table(
        "open",
        TableOptions::plaintext().with_compression(Compression::Lz4),
    )?;
    let n = 2000;
    for i in 0..n {
        t.put(key(i), value(i, 0))?;
    }
    db.flush()?;
    drop((t, db));
    let db = fx.open()?;
    check_all(&db, "open", n, 0)?;
    // The repeated text is compressed away: a value's tail is not stored whole.
    let whole = "lorem ipsum dolor sit amet ".repeat(4);
    let sst: Vec<_> = files_containing(&fx.db_path(), whole.as_bytes())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    assert!(sst.is_empty(), "{sst:?}");
    Ok(())
}
