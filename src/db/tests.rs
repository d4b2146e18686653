//! Engine tests that need the crate's insides: data-key and nonce uniqueness across a
//! large write.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Db, Options, TableOptions};
use crate::clock::ManualClock;
use crate::crypto::{unwrap_data_key, FileKind, UnitOpener, WrapContext};
use crate::error::Result;
use crate::filename;
use crate::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
use crate::sst;
use crate::wal;

fn encrypted_db(root: &std::path::Path) -> Result<Db> {
    let clock = Arc::new(ManualClock::default());
    let kms = LocalKms::open(
        &root.join("kms"),
        LocalKmsOptions {
            account: super::DEFAULT_ACCOUNT.into(),
            region: super::DEFAULT_REGION.into(),
            root_key: RootKeySource::Passphrase {
                passphrase: zeroize::Zeroizing::new("p".into()),
                kdf: KdfParams::insecure_fast_for_tests(),
            },
            clock: clock.clone(),
            audit_max_bytes: 0,
            env: crate::storage::default_env(),
        },
    )?;
    Db::open(
        root.join("db"),
        Options {
            kms: Some(Arc::new(kms)),
            clock,
            write_buffer_size: 64 << 10,
            ..Options::default()
        },
    )
}

/// Every SSTable and every WAL segment of an encrypted table has its own data key, and
/// within a file every sealed unit starts at a distinct offset (its nonce): no (key, nonce)
/// pair repeats anywhere in a large write.
#[test]
fn data_keys_and_nonces_never_repeat_across_a_large_write() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
    let db = encrypted_db(dir.path())?;
    let t = db.create_table("big", TableOptions::encrypted())?;
    for i in 0..40_000u32 {
        t.put(i.to_be_bytes(), [i as u8; 64])?;
    }
    let core = Arc::clone(db.core());
    let state = Arc::clone(&t.state);
    let table_key = core.maintenance_key(&state)?;
    let mut deks: HashSet<[u8; 32]> = HashSet::new();
    let mut units = 0usize;

    for f in state.super_version().version.files() {
        let file = core
            .env
            .open_read(&f.path)
            .map_err(|e| crate::Error::io("open", e))?;
        let mut seen = None;
        let label: Arc<str> = Arc::from(filename::sst(f.meta.number).as_str());
        let reader = sst::SstReader::open(
            file,
            Arc::clone(&label),
            f.meta.number.0,
            |fk: Option<&sst::FooterKey>| {
                let fk = fk.ok_or_else(|| crate::Error::corruption("t", 0, "plain footer"))?;
                let ctx = WrapContext {
                    table: state.id,
                    file_kind: FileKind::Sst,
                    file: f.meta.number,
                    key_version: fk.key_version,
                };
                let dek = unwrap_data_key(&table_key, &fk.wrapped_dek, &ctx)
                    .ok_or_else(|| crate::Error::corruption("t", 0, "unwrap"))?;
                seen = Some(*dek.expose_secret_bytes());
                Ok(UnitOpener::sealed(
                    crate::crypto::UnitContext {
                        table: state.id,
                        file: f.meta.number,
                        file_kind: FileKind::Sst,
                        label: Arc::clone(&label),
                    },
                    &dek,
                ))
            },
            None,
        )?;
        // verify() opens every block and checks that data blocks tile the file: distinct
        // offsets, hence distinct nonces, under this file's key.
        reader.verify()?;
        units += reader.properties().data_blocks as usize + 3;
        let dek = seen.ok_or_else(|| crate::Error::corruption("t", 0, "no key"))?;
        assert!(deks.insert(dek), "an SSTable reused a data key");
    }
    let files = deks.len();
    assert!(files >= 10, "expected many flushes, got {files}");

    for seg in wal::list_segments(&*core.env, &core.path)? {
        let path = core.path.join(filename::wal(seg));
        let mut resolve = |table, fk: Option<&wal::WalKeyRef<'_>>| -> Result<wal::ReplayKey> {
            assert_eq!(table, state.id);
            let fk = fk.ok_or_else(|| crate::Error::corruption("w", 0, "no key record"))?;
            let dek = fk.unwrap(&table_key)?;
            assert!(
                deks.insert(*dek.expose_secret_bytes()),
                "a WAL segment reused a data key"
            );
            Ok(wal::ReplayKey::Sealed(dek))
        };
        let mut offsets = HashSet::new();
        let mut sink = |seq: crate::SeqNo, _, _| {
            assert!(offsets.insert(seq), "two records at one position");
            units += 1;
            Ok(())
        };
        let current = core.write.lock().wal.segment();
        wal::replay_segment(
            &*core.env,
            &path,
            seg,
            seg == current,
            &mut resolve,
            &mut sink,
        )?;
    }
    assert!(deks.len() > files, "WAL segments have their own keys");
    assert!(units > 1000, "{units} units checked");
    Ok(())
}

/// `max_open_files` bounds the open readers; evicted files reopen on demand, and a cursor
/// keeps its file readable while the cache closes it.
#[test]
fn table_cache_keeps_at_most_max_open_files() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
    let db = Db::open(
        dir.path(),
        Options {
            max_open_files: 2,
            disable_auto_compactions: true,
            ..Options::default()
        },
    )?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    for f in 0..6u32 {
        for i in 0..100u32 {
            t.put(format!("f{f}-{i:03}"), format!("{f}-{i}"))?;
        }
        db.flush()?;
    }
    let iter = t.iter()?;
    for f in 0..6u32 {
        for i in (0..100u32).step_by(9) {
            let got = t.get(format!("f{f}-{i:03}"))?;
            assert_eq!(got.as_deref(), Some(format!("{f}-{i}").as_bytes()));
        }
        assert!(db.core().sst_cache.len() <= 2);
    }
    assert_eq!(iter.count(), 600);
    Ok(())
}

/// The numbers and WAL segments in `dir`: (every WAL segment, every SSTable), ascending.
fn files_in(dir: &std::path::Path) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut wals = Vec::new();
    let mut ssts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| crate::Error::io("listing", e))? {
        let name = entry
            .map_err(|e| crate::Error::io("listing", e))?
            .file_name();
        let name = name.to_string_lossy();
        if let Some(n) = filename::wal_number(&name) {
            wals.push(n.0);
        }
        if let Some(n) = filename::sst_number(&name) {
            ssts.push(n.0);
        }
    }
    wals.sort_unstable();
    ssts.sort_unstable();
    Ok((wals, ssts))
}

/// `Db::flush` of several tables takes every new WAL segment's number before the worker
/// takes any of its SSTables' numbers, and returns only after the segments the flush made
/// obsolete are deleted: a deterministic workload numbers and removes its files the same
/// way every run (the fault-injection harness counts on it). Before, the worker could flush
/// the first table while the caller was still switching the next, and delete the old
/// segments after `flush` returned.
#[test]
fn a_flush_numbers_its_segments_before_its_tables_and_returns_after_their_deletion() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
    let db = Db::open(
        dir.path(),
        Options {
            disable_auto_compactions: true,
            ..Options::default()
        },
    )?;
    let tables = (0..4)
        .map(|i| db.create_table(&format!("t{i}"), TableOptions::plaintext()))
        .collect::<Result<Vec<_>>>()?;
    for round in 0..30u32 {
        let (_, ssts_before) = files_in(dir.path())?;
        for t in &tables {
            t.put(format!("k{round}"), "v")?;
        }
        db.flush()?;
        let (wals, ssts) = files_in(dir.path())?;
        let new_ssts: Vec<u64> = ssts
            .iter()
            .copied()
            .filter(|n| !ssts_before.contains(n))
            .collect();
        assert_eq!(new_ssts.len(), tables.len(), "round {round}: {ssts:?}");
        // Only the live segment is left, and it was numbered before every new SSTable.
        assert_eq!(wals.len(), 1, "round {round}: segments left {wals:?}");
        let live = wals.first().copied().unwrap_or(u64::MAX);
        assert!(
            new_ssts.iter().all(|&n| n > live),
            "round {round}: segment {live}, new tables {new_ssts:?}"
        );
    }
    Ok(())
}

/// A point read keeps each file's filter with the file: a later read of a key the filter
/// rejects opens no reader, even after the table cache closed the file; a key the filter
/// may hold still reads the file and finds its value.
#[test]
fn a_kept_filter_answers_for_a_closed_file_and_a_present_key_still_reads_it() -> Result<()> {
    use crate::storage::fault::{FaultEnv, FaultOp};
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
    let env = FaultEnv::new();
    let db = Db::open(
        dir.path(),
        Options {
            max_open_files: 1,
            disable_auto_compactions: true,
            env: Arc::new(env.clone()),
            ..Options::default()
        },
    )?;
    let t = db.create_table("t", TableOptions::plaintext())?;
    // Two level-0 files, both covering every key from "k000" to "k998".
    for parity in 0..2u32 {
        for i in (parity..1000).step_by(2) {
            t.put(format!("k{i:03}"), format!("v{i}"))?;
        }
        db.flush()?;
    }
    // One read in each file keeps both filters; the cache (one file) closed the first.
    assert_eq!(t.get("k000")?.as_deref(), Some(&b"v0"[..]));
    assert_eq!(t.get("k001")?.as_deref(), Some(&b"v1"[..]));
    let opens = env.calls(FaultOp::OpenRead);
    let mut absent_found = 0;
    for i in 0..200u32 {
        // Inside both files' ranges, in neither.
        if t.get(format!("k{i:03}x"))?.is_some() {
            absent_found += 1;
        }
    }
    assert_eq!(absent_found, 0);
    let reopened = env.calls(FaultOp::OpenRead) - opens;
    // A false positive (about 1 in 100 at 10 bits a key) may open a file; 200 keys
    // through both filters with no kept filter would open one at nearly every read.
    assert!(
        reopened <= 12,
        "{reopened} files opened for 200 absent keys"
    );
    // Present keys of both files still read (the files reopen).
    for i in [0u32, 1, 500, 501, 998, 999] {
        let want = format!("v{i}");
        assert_eq!(t.get(format!("k{i:03}"))?.as_deref(), Some(want.as_bytes()));
    }
    Ok(())
}
