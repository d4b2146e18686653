//! Snapshots and iterators keep their view while compactions rewrite the files beneath
//! them; releasing a snapshot lets compaction drop what only it could see.

mod common;

use common::TestResult;
use sealdb::{Db, Options, TableOptions};

fn options() -> Options {
    let mut o = Options::default();
    o.write_buffer_size = 16 << 10;
    o.level_base_bytes = Some(64 << 10);
    o.target_file_size = 16 << 10;
    o
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

fn collect(it: sealdb::RangeIter) -> sealdb::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

#[test]
fn a_snapshot_taken_before_a_delete_reads_the_old_value_after_compactions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for i in 0..3000 {
        t.put(key(i), format!("old{i}"))?;
    }
    db.flush()?;
    let snap = db.snapshot();
    for i in 0..3000 {
        if i % 2 == 0 {
            t.delete(key(i))?;
        } else {
            t.put(key(i), format!("new{i}"))?;
        }
    }
    db.compact_table("t")?;
    db.compact_table("t")?;
    for i in (0..3000).step_by(7) {
        let old = format!("old{i}").into_bytes();
        assert_eq!(t.get_at(key(i), &snap)?.as_deref(), Some(old.as_slice()));
        let now = t.get(key(i))?;
        if i % 2 == 0 {
            assert_eq!(now, None);
        } else {
            assert_eq!(now.as_deref(), Some(format!("new{i}").as_bytes()));
        }
    }
    assert_eq!(
        collect(t.range_at_snapshot::<&[u8]>(.., &snap)?)?.len(),
        3000
    );
    let with_snapshot = db.stats().tables[0].total_bytes;
    // Released: the old versions and the tombstones go at the next compaction.
    drop(snap);
    db.compact_table("t")?;
    let after = db.stats().tables[0].total_bytes;
    assert!(
        after * 10 < with_snapshot * 6,
        "{after} bytes after release vs {with_snapshot} before"
    );
    assert_eq!(collect(t.iter()?)?.len(), 1500);
    Ok(())
}

#[test]
fn an_iterator_started_before_a_compaction_returns_the_data_at_its_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for i in 0..4000 {
        t.put(key(i), format!("v1-{i}"))?;
    }
    db.flush()?;
    let want = collect(t.iter()?)?;
    let untouched = t.iter()?;
    let mut partial = t.iter()?;
    let mut got_partial: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..100 {
        if let Some(kv) = partial.next() {
            let (k, v) = kv?;
            got_partial.push((k.to_vec(), v.to_vec()));
        }
    }
    let reverse = t.iter()?.rev();
    // Everything changes beneath the iterators, and compaction rewrites every file.
    for i in 0..4000 {
        if i % 3 == 0 {
            t.delete(key(i))?;
        } else {
            t.put(key(i), format!("v2-{i}"))?;
        }
    }
    db.compact_table("t")?;
    for kv in partial {
        let (k, v) = kv?;
        got_partial.push((k.to_vec(), v.to_vec()));
    }
    assert!(got_partial == want, "partly consumed iterator changed");
    assert!(collect(untouched)? == want, "unstarted iterator changed");
    let mut back = collect(reverse)?;
    back.reverse();
    assert!(back == want, "reverse iterator changed");
    Ok(())
}

#[test]
fn sequential_loads_move_files_down_without_rewriting_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options())?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for i in 0..20_000 {
        t.put(key(i), [b'x'; 40])?;
    }
    db.flush()?;
    let start = std::time::Instant::now();
    while db.stats().trivial_moves == 0 && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let s = db.stats();
    assert!(s.trivial_moves > 0, "{s:#?}");
    assert_eq!(collect(t.iter()?)?.len(), 20_000);
    drop(t);
    drop(db);
    let db = Db::open(dir.path(), options())?;
    assert_eq!(collect(db.table("t")?.iter()?)?.len(), 20_000);
    Ok(())
}

#[test]
fn compact_range_touches_only_the_range_and_keeps_the_data() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut opts = options();
    opts.disable_auto_compactions = true;
    let db = Db::open(dir.path(), opts)?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for round in 0..3 {
        for i in 0..2000 {
            t.put(key(i), format!("r{round}-{i}"))?;
        }
        db.flush()?;
    }
    assert!(db.stats().tables[0].levels[0].files >= 3);
    db.compact_range("t", key(0)..key(500))?;
    let s = db.stats();
    assert!(s.compactions > 0);
    assert_eq!(s.tables[0].levels[0].files, 0, "level 0 goes whole");
    for i in (0..2000).step_by(11) {
        assert_eq!(
            t.get(key(i))?.as_deref(),
            Some(format!("r2-{i}").as_bytes())
        );
    }
    Ok(())
}
