//! A WAL cut anywhere inside its last record still opens, with every earlier synced write.

mod common;

use common::{copy_dir, files_with_ext, open, TestResult};
use sealdb::{TableOptions, WriteOptions};

#[test]
fn truncating_the_last_record_at_every_byte_keeps_earlier_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let n = 50;
    let (before, after) = {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        for i in 0..n {
            t.put_opt(format!("k{i:03}"), format!("v{i}"), WriteOptions::synced())?;
        }
        let wal = files_with_ext(dir.path(), "log");
        let last = wal.last().ok_or("no WAL segment")?.clone();
        let before = std::fs::metadata(&last)?.len();
        t.put_opt(
            "last-key",
            "last-value-with-some-length",
            WriteOptions::synced(),
        )?;
        let after = std::fs::metadata(&last)?.len();
        (before, after)
    };
    assert!(after > before);
    let wal = files_with_ext(dir.path(), "log");
    // The reopen above is not done yet: the newest segment is the one written.
    let last_name = wal
        .last()
        .ok_or("no WAL segment")?
        .file_name()
        .ok_or("name")?
        .to_owned();
    for cut in before..after {
        let trial = tempfile::tempdir()?;
        copy_dir(dir.path(), trial.path())?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(trial.path().join(&last_name))?;
        f.set_len(cut)?;
        drop(f);
        let db = open(trial.path())?;
        let t = db.table("t")?;
        for i in 0..n {
            assert_eq!(
                t.get(format!("k{i:03}"))?.as_deref(),
                Some(format!("v{i}").as_bytes()),
                "cut at {cut}"
            );
        }
        assert_eq!(t.get("last-key")?, None, "cut at {cut}");
    }
    // Uncut, the last write is there.
    let db = open(dir.path())?;
    assert!(db.table("t")?.get("last-key")?.is_some());
    Ok(())
}

#[test]
fn a_damaged_record_before_the_tail_is_an_error_not_silent_loss() -> TestResult {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let t = db.create_table("t", TableOptions::plaintext())?;
        for i in 0..100 {
            t.put_opt(
                format!("k{i:03}"),
                format!("value-{i}"),
                WriteOptions::synced(),
            )?;
        }
    }
    let wal = files_with_ext(dir.path(), "log");
    let last = wal.last().ok_or("no WAL")?;
    let mut bytes = std::fs::read(last)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(last, &bytes)?;
    let r = open(dir.path());
    match r {
        Err(e) => assert!(e.is_integrity_failure(), "{e}"),
        Ok(_) => panic!("a damaged WAL record mid-segment must not open silently"),
    }
    Ok(())
}
