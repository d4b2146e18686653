//! Damaged SSTables give integrity errors, never wrong data.

mod common;

use common::{files_with_ext, open, TestResult};
use sealdb::TableOptions;

#[test]
fn flipped_bytes_in_an_sstable_are_detected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let n = 2000;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        for i in 0..n {
            t.put(format!("key{i:05}"), format!("value{i:05}"))?;
        }
        db.flush()?;
    }
    let sst = files_with_ext(dir.path(), "sst");
    let path = sst.first().ok_or("no sstable")?.clone();
    let original = std::fs::read(&path)?;
    let mut detected = 0;
    let step = (original.len() / 97).max(1);
    for offset in (0..original.len()).step_by(step) {
        let mut bad = original.clone();
        bad[offset] ^= 0x01;
        std::fs::write(&path, &bad)?;
        let outcome = (|| -> sealdb::Result<bool> {
            let db = open(dir.path())?;
            let t = db.table("t")?;
            let mut all_ok = true;
            for i in (0..n).step_by(7) {
                match t.get(format!("key{i:05}"))? {
                    Some(v) => assert_eq!(
                        v.as_ref(),
                        format!("value{i:05}").as_bytes(),
                        "wrong data at flip {offset}"
                    ),
                    None => all_ok = false,
                }
            }
            let count = t.iter()?.collect::<sealdb::Result<Vec<_>>>()?.len();
            Ok(all_ok && count == n)
        })();
        match outcome {
            Err(e) => {
                assert!(e.is_integrity_failure(), "flip at {offset}: {e}");
                detected += 1;
            }
            Ok(complete) => panic!("flip at {offset} went unnoticed (data complete: {complete})"),
        }
        std::fs::write(&path, &original)?;
    }
    assert!(detected > 0);
    Ok(())
}
