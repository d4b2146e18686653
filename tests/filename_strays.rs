//! Files whose names only resemble the engine's (`42.log`, `0000042.sst`, `MANIFEST-1`):
//! open, verify and the unreferenced-file listing all read names through one `filename`
//! module, so they agree that such files are not the database's, and leave them alone.
//! (Open used to replay `42.log` as WAL segment 42 while verify skipped it.)

mod common;

use common::{open, TestResult};
use sealdb::TableOptions;

const STRAYS: [&str; 6] = [
    "42.log",
    "0000042.log",
    "7.sst",
    "0000007.sst",
    "MANIFEST-1",
    "000009.log.bak",
];

#[test]
fn look_alike_names_are_not_database_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        for i in 0..100u32 {
            t.put(format!("k{i:03}"), format!("v{i}"))?;
        }
        db.flush()?;
        t.put("unflushed", "in the WAL")?;
    }
    // Garbage under each look-alike name: replayed or parsed as a table, it would fail.
    for name in STRAYS {
        std::fs::write(dir.path().join(name), b"not a sealdb file")?;
    }

    let db = open(dir.path())?;
    let t = db.table("t")?;
    assert_eq!(t.get(b"k042")?.as_deref(), Some(&b"v42"[..]));
    assert_eq!(t.get(b"unflushed")?.as_deref(), Some(&b"in the WAL"[..]));
    assert_eq!(t.iter()?.collect::<sealdb::Result<Vec<_>>>()?.len(), 101);
    let report = db.verify()?;
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
    assert!(db.remove_unreferenced_files()?.is_empty());
    drop(t);
    drop(db);
    for name in STRAYS {
        assert!(dir.path().join(name).exists(), "{name} was removed");
    }
    Ok(())
}
