//! Every file of every fuzz target's corpus (`fuzz/corpus/<target>/`) through the same entry
//! function the cargo-fuzz target calls (`sealdb::fuzz::run`), on the stable toolchain.
//! Findings are kept as files under `fuzz/regressions/<target>/`, and run here too.
//!
//! The crate's dev-dependency on itself enables the `fuzzing` feature, so plain
//! `cargo test` runs this file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::rel::{local_kms, TestResult};
use sealdb::fuzz::{run, TARGETS};
use sealdb::kms::{
    customer_default_policy, service_default_policy, via_service_name, Caller, EncryptionContext,
    Kms, Principal,
};
use sealdb::storage::StdEnv;
use sealdb::{Db, Options, TableOptions};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

#[test]
fn every_corpus_file_runs_clean() -> TestResult {
    let mut total = 0;
    for target in TARGETS {
        let files = inputs("corpus", target);
        assert!(!files.is_empty(), "no seed corpus for {target}");
        for f in files {
            let data = std::fs::read(&f)?;
            assert!(run(target, &data), "unknown target {target}");
            total += 1;
        }
    }
    println!("fuzz corpus: {total} inputs over {} targets", TARGETS.len());
    Ok(())
}

/// Inputs that once failed or that pin a fixed bug (each file named after what it found),
/// kept as regressions: every one must run clean, every directory must name a target, and
/// the directory must hold some (an empty or missing one would make this test vacuous).
#[test]
fn every_fuzz_regression_runs_clean() -> TestResult {
    let root = fuzz_dir().join("regressions");
    let mut failures = Vec::new();
    let mut total = 0;
    for e in std::fs::read_dir(&root)? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            TARGETS.contains(&name.as_str()),
            "fuzz/regressions/{name} names no fuzz target"
        );
        for f in inputs("regressions", &name) {
            let data = std::fs::read(&f)?;
            total += 1;
            let r = std::panic::catch_unwind(|| run(&name, &data));
            if r.is_err() {
                failures.push(f.display().to_string());
            }
        }
    }
    println!("fuzz regressions: {total} inputs");
    assert!(failures.is_empty(), "regressions failing: {failures:?}");
    assert!(total > 0, "fuzz/regressions/ holds no input");
    Ok(())
}

#[test]
fn an_unknown_target_is_refused() {
    assert!(!run("no_such_target", b""));
}

/// The data-block seeds: LevelDB-format blocks of internal keys.
fn block(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        let mut ikey = k.to_vec();
        ikey.extend_from_slice(&(((i as u64 + 1) << 8) | 1).to_le_bytes());
        b.push(0); // shared
        b.push(ikey.len() as u8);
        b.push(v.len() as u8);
        b.extend_from_slice(&ikey);
        b.extend_from_slice(v);
    }
    b.extend_from_slice(&0u32.to_le_bytes()); // restart 0
    b.extend_from_slice(&1u32.to_le_bytes()); // one restart
    b
}

/// Writes the seed corpora from a real database, a real LocalKms and hand-made inputs.
/// Run by hand when a format changes: `cargo test --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "regenerates fuzz/corpus; run by hand"]
fn write_seed_corpus() -> TestResult {
    let out = |target: &str, name: &str, data: &[u8]| -> std::io::Result<()> {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), data)
    };
    out(
        "data_block",
        "two-entries",
        &block(&[(b"apple", b"red"), (b"banana", b"yellow")]),
    )?;
    out("data_block", "one-entry", &block(&[(b"k", b"")]))?;

    let tmp = tempfile::tempdir()?;
    let kms = Arc::new(local_kms(&tmp.path().join("kms"))?);
    let db_dir = tmp.path().join("db");
    {
        let db = Db::open(&db_dir, {
            let mut o = Options::default();
            o.block_size = 128;
            o.env = Arc::new(StdEnv);
            o.kms = Some(kms.clone());
            o
        })?;
        let t = db.create_table("plain", TableOptions::plaintext())?;
        for i in 0..20 {
            t.put(format!("key{i:03}"), format!("value{i}"))?;
        }
        t.delete("key005")?;
        db.flush()?;
        for i in 0..5 {
            t.put(format!("wal{i:03}"), format!("logged{i}"))?;
        }
    }
    for e in std::fs::read_dir(&db_dir)? {
        let p = e?.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let data = std::fs::read(&p)?;
        if name.ends_with(".sst") {
            out("sstable", "plain-20-keys", &data)?;
        } else if name.ends_with(".log") && data.len() >= 24 {
            // `fuzz_wal` replays as segment 1: renumber the header and fix its CRC.
            let mut data = data;
            data[12..20].copy_from_slice(&1u64.to_le_bytes());
            let crc = crc32fast::hash(&data[..20]);
            data[20..24].copy_from_slice(&crc.to_le_bytes());
            out("wal_replay", "segment-as-1", &data)?;
        } else if name.starts_with("MANIFEST") {
            out("manifest_replay", "manifest", &data)?;
        }
    }

    let user = sealdb::kms::testing::engine_via(
        Principal::assumed_role("111122223333", "Admin", "user01"),
        &via_service_name("us-west-2"),
    );
    let mut ctx = EncryptionContext::new();
    ctx.insert("sealdb:tableName", "Services");
    let blob = kms.encrypt(&user, "alias/aws/sealdb", b"secret", &ctx)?;
    out("kms_blob", "encrypt-6-bytes", &blob)?;
    out("kms_blob", "empty", b"")?;

    out("wrapped_key", "unchanged", &[0; 60])?;
    out("wrapped_key", "one-bit", &[1])?;
    out(
        "wrapped_key",
        "random-60",
        &(0..60u8).map(|i| i.wrapping_mul(151)).collect::<Vec<_>>(),
    )?;

    out(
        "key_policy",
        "service-default",
        service_default_policy("111122223333", "us-west-2").as_bytes(),
    )?;
    out(
        "key_policy",
        "customer-default",
        customer_default_policy("111122223333").as_bytes(),
    )?;

    let audit_dir = tmp.path().join("kms").join("audit");
    for e in std::fs::read_dir(&audit_dir)? {
        let p = e?.path();
        let mut data = std::fs::read(&p)?;
        data.insert(0, 0x1f); // the first byte picks the query filter
        out("audit_query", "events", &data)?;
    }
    out(
        "audit_query",
        "torn-last-line",
        b"\x03{\"eventName\":\"Decrypt\"}\n{\"eventNa",
    )?;

    // Op sequences: [crash_at, (code, arg)*]. See src/fuzz/engine_model.rs.
    let puts: Vec<u8> = (0..60u8).flat_map(|i| [i % 3, i.wrapping_mul(7)]).collect();
    out(
        "engine_model",
        "puts-no-crash",
        &[&[255u8][..], &puts].concat(),
    )?;
    out(
        "engine_model",
        "puts-crash-at-40",
        &[&[40u8][..], &puts].concat(),
    )?;
    let mixed: Vec<u8> = (0..80u8)
        .flat_map(|i| [i % 10, i.wrapping_mul(13)])
        .collect();
    out(
        "engine_model",
        "every-op-crash-at-55",
        &[&[55u8][..], &mixed].concat(),
    )?;
    out(
        "engine_model",
        "every-op-no-crash",
        &[&[255u8][..], &mixed].concat(),
    )?;
    let twelve: Vec<u8> = (0..90u8)
        .flat_map(|i| [(i % 12) | ((i % 4) << 6), i.wrapping_mul(29)])
        .collect();
    out(
        "engine_model",
        "two-tables-batches-compactions-crash-at-70",
        &[&[70u8][..], &twelve].concat(),
    )?;
    write_new_target_seeds(&out, &tmp)?;
    Ok(())
}

/// Writes one seed file: (target, name, bytes).
type SeedWriter = dyn Fn(&str, &str, &[u8]) -> std::io::Result<()>;

/// Seeds for the sstable_roundtrip, sstable_tamper, keystore, current and wal_batch targets.
fn write_new_target_seeds(out: &SeedWriter, tmp: &tempfile::TempDir) -> TestResult {
    // Entries: (key length, key, kind, value length, value seed)*, after a flags byte.
    let mut entries = Vec::new();
    for i in 0..40u8 {
        let key = format!("key{i:03}");
        entries.push(key.len() as u8);
        entries.extend_from_slice(key.as_bytes());
        entries.extend_from_slice(&[i.wrapping_mul(3) | 1, i, i.wrapping_mul(7)]);
    }
    for flags in [0u8, 1, 2, 3, 4 | 1, 8 | 3] {
        out(
            "sstable_roundtrip",
            &format!("40-entries-flags-{flags}"),
            &[&[flags][..], &entries].concat(),
        )?;
    }
    out("sstable_tamper", "untouched", &[0])?;
    out("sstable_tamper", "untouched-lz4", &[1])?;
    out("sstable_tamper", "footer-byte", &[0, 0xf0, 0xff, 0x01])?;
    out("sstable_tamper", "first-block", &[3, 0x10, 0x00, 0x80])?;

    // A real keystore under the target's root key file, holding a customer managed key.
    let dir = tmp.path().join("ks");
    std::fs::create_dir_all(&dir)?;
    let key_file = dir.join("root.key");
    std::fs::write(&key_file, sealdb::fuzz::KEYSTORE_ROOT_KEY)?;
    {
        let mut o = sealdb::kms::LocalKmsOptions::new("111122223333", "us-west-2");
        o.root_key = sealdb::kms::RootKeySource::KeyFile(key_file);
        let kms = sealdb::kms::LocalKms::open(&dir.join("kms"), o)?;
        let admin = Caller::direct(Principal::root("111122223333"));
        sealdb::kms::Kms::create_key(&kms, &admin, Default::default())?;
    }
    let ks = std::fs::read(dir.join("kms").join(sealdb::kms::KEYSTORE_FILE))?;
    out("keystore", "one-customer-key", &ks)?;
    out("keystore", "empty", b"")?;

    out("current", "manifest-1", b"MANIFEST-000001\n")?;
    out(
        "current",
        "manifest-big",
        b"MANIFEST-18446744073709551615\n",
    )?;
    out("current", "no-newline", b"MANIFEST-000007")?;

    // Mode byte odd: operations (table, kind, key length, key, value length, value)*.
    let mut ops = vec![1u8];
    for i in 0..30u8 {
        ops.extend_from_slice(&[i, i % 3 + 1, 4]);
        ops.extend_from_slice(format!("k{i:03}").as_bytes());
        ops.extend_from_slice(&[5, b'v', b'a', b'l', b'u', i]);
    }
    out("wal_batch", "ops-round-trip", &ops)?;
    // Mode byte even: a raw section (count 2: a put and a delete).
    let mut section = vec![0u8];
    section.extend_from_slice(&2u32.to_le_bytes());
    section.extend_from_slice(&[0, 1, 1, b'a', 1, b'x', 1, 0, 1, b'b']);
    out("wal_batch", "raw-section", &section)?;
    Ok(())
}
