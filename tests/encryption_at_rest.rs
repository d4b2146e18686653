//! What an encrypted table leaves on disk: no stored key or value in any file, before and
//! after flushes; the plaintext table beside it proves the scan would find them.

mod common;

use common::{files_containing, EncryptedFixture, TestResult};
use sealdb::{Error, TableOptions};

fn marker(kind: &str, i: usize) -> String {
    format!("MARK-{kind}-{i:06}-Zq")
}

#[test]
fn encrypted_markers_appear_in_no_file_plaintext_markers_do() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    // Sealed boundaries: with plain ones each file's first and last key would sit in the
    // manifest by design (the next test shows exactly that leak and no more).
    let secret = db.create_table("secret", TableOptions::encrypted().with_sealed_boundaries())?;
    let open = db.create_table("open", TableOptions::plaintext())?;
    let n = 3000;
    for i in 0..n {
        secret.put(marker("skey", i), marker("sval", i))?;
        open.put(marker("pkey", i), marker("pval", i))?;
    }
    let data = fx.db_path();
    let check = |stage: &str| -> TestResult {
        for i in (0..n).step_by(97) {
            for kind in ["skey", "sval"] {
                let hits = files_containing(&data, marker(kind, i).as_bytes());
                assert!(hits.is_empty(), "{stage}: {kind} {i} found in {hits:?}");
            }
        }
        // The scan works: the plaintext table's markers are on disk.
        // (Values, because SSTables prefix-compress keys: a key is whole only at restarts.)
        for i in (0..n).step_by(97) {
            let hits = files_containing(&data, marker("pval", i).as_bytes());
            assert!(!hits.is_empty(), "{stage}: plaintext value {i} not found");
        }
        // Nor does anything of the encrypted table sit in the keystore directory.
        assert!(files_containing(&fx.root.path().join("kms"), b"MARK-s").is_empty());
        Ok(())
    };
    check("WAL only")?;
    db.flush()?;
    check("after flush")?;
    for i in 0..n {
        secret.put(marker("skey", i), marker("sval", i + 1))?;
    }
    db.flush()?;
    check("after overwrite and second flush")?;
    db.compact_table("secret")?;
    db.compact_table("open")?;
    check("after compaction")?;
    drop((secret, open, db));
    let db = fx.open()?;
    check("after reopen")?;
    let secret = db.table("secret")?;
    assert_eq!(
        secret.get(marker("skey", 42))?.as_deref(),
        Some(marker("sval", 43).as_bytes())
    );
    Ok(())
}

#[test]
fn sealed_boundaries_hide_the_range_keys_that_plain_boundaries_show() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let plain_b = db.create_table("plainb", TableOptions::encrypted())?;
    let sealed_b = db.create_table(
        "sealedb",
        TableOptions::encrypted().with_sealed_boundaries(),
    )?;
    for i in 0..500 {
        plain_b.put(format!("BOUNDP-{i:04}"), "v")?;
        sealed_b.put(format!("BOUNDS-{i:04}"), "v")?;
    }
    db.flush()?;
    let data = fx.db_path();
    // The seed's documented leak: the smallest and largest key of each file, in the manifest.
    let manifests: Vec<_> = files_containing(&data, b"BOUNDP-0000");
    assert!(
        manifests
            .iter()
            .all(|p| p.to_string_lossy().contains("MANIFEST")),
        "{manifests:?}"
    );
    assert!(!manifests.is_empty());
    assert!(
        files_containing(&data, b"BOUNDP-0001").is_empty(),
        "only boundaries leak"
    );
    assert!(files_containing(&data, b"BOUNDS-0000").is_empty());
    assert!(files_containing(&data, b"BOUNDS-0499").is_empty());
    let layout = db.inspect();
    let sealed = layout
        .iter()
        .find(|t| t.table == "sealedb")
        .ok_or("table")?;
    assert!(sealed
        .files
        .iter()
        .all(|f| f.smallest.is_none() && f.largest.is_none()));
    let plain = layout.iter().find(|t| t.table == "plainb").ok_or("table")?;
    assert_eq!(
        plain.files[0].smallest.as_deref(),
        Some(hex::encode("BOUNDP-0000").as_str())
    );
    drop((plain_b, sealed_b, db));
    let db = fx.open()?;
    assert_eq!(
        db.table("sealedb")?.get("BOUNDS-0250")?.as_deref(),
        Some(&b"v"[..])
    );
    Ok(())
}

#[test]
fn verify_authenticates_every_file_and_names_a_damaged_one() -> TestResult {
    let fx = EncryptedFixture::new()?;
    {
        let db = fx.open()?;
        let t = db.create_table("t", TableOptions::encrypted())?;
        for i in 0..2000 {
            t.put(format!("k{i:05}"), format!("v{i}"))?;
        }
        db.flush()?;
        t.put("in-wal", "yes")?;
        let report = db.verify()?;
        assert_eq!(report.tables, 1);
        assert!(
            report.sstables >= 1 && report.wal_segments >= 1,
            "{report:?}"
        );
    }
    let sst = common::files_with_ext(&fx.db_path(), "sst");
    let path = sst.first().ok_or("no sst")?;
    let mut bytes = std::fs::read(path)?;
    bytes[100] ^= 0x20;
    std::fs::write(path, &bytes)?;
    let db = fx.open()?;
    match db.verify() {
        Err(Error::Integrity { file, offset }) => {
            assert!(path.to_string_lossy().ends_with(&file), "{file}");
            assert_eq!(offset, 0, "the first data block starts at 0");
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn every_flush_uses_a_fresh_data_key() -> TestResult {
    let fx = EncryptedFixture::new()?;
    // No background compaction: the files counted below must stay put.
    let db = sealdb::Db::open(fx.db_path(), {
        let mut o = fx.options();
        o.disable_auto_compactions = true;
        o
    })?;
    let t = db.create_table("t", TableOptions::encrypted())?;
    for round in 0..4 {
        // The same keys and values each round: only fresh data keys make the files differ.
        for i in 0..200 {
            t.put(format!("k{i:04}"), "same value")?;
        }
        db.flush()?;
        assert_eq!(db.inspect()[0].files.len(), round + 1);
    }
    let files = common::files_with_ext(&fx.db_path(), "sst");
    assert!(files.len() >= 4);
    let contents: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    // The first data block of each file (same plaintext at the same offset) must differ.
    let heads: std::collections::HashSet<&[u8]> = contents.iter().map(|c| &c[..64]).collect();
    assert_eq!(heads.len(), contents.len());
    let status = db.encryption_status();
    assert_eq!(status[0].sstables, files.len());
    assert!(status[0].data_keys >= files.len());
    Ok(())
}
