//! Manifest behaviour: round trip, torn tail, damage, the MAC chain, the CURRENT switch.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::record::{decode_payload, encode_db_mac, encode_payload, MANIFEST_VERSION};
use super::*;
use crate::crypto::{TableKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::filename::CURRENT;
use crate::framing::{begin_record, finish_record, FrameScanner, Scan, FILE_HEADER_LEN};
use crate::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};
use crate::storage::StdEnv;
use crate::types::{FileNumber, Level, SeqNo, TableId};

const ENC: TableId = TableId(1);
const PLAIN: TableId = TableId(2);

/// The error of a result that must have failed.
fn err_of<T>(r: Result<T>) -> Result<Error> {
    match r {
        Ok(_) => Err(Error::InvalidArgument("expected an error".into())),
        Err(e) => Ok(e),
    }
}

fn key_of(t: TableId) -> Arc<TableKey> {
    Arc::new(TableKey::from_bytes([t.0 as u8 + 0x10; KEY_LEN]))
}

fn keys(t: TableId) -> Option<Arc<TableKey>> {
    (t == ENC).then(|| key_of(t))
}

/// The database key every test manifest is authenticated under.
fn db_key() -> TableKey {
    TableKey::from_bytes([0x42; KEY_LEN])
}

fn db_key_edit() -> Edit {
    Edit::SetDatabaseKey(DatabaseKeyMeta {
        db_id: "db-1".into(),
        key_arn: "arn:aws:kms:r:1:key/k".into(),
        wrapped_key: vec![7; 40],
        grant_id: "g".into(),
    })
}

/// Writes manifest `number` holding `snapshot` under the test database key.
fn create(
    env: &dyn crate::storage::Env,
    dir: &Path,
    number: u64,
    snap: &[VersionEdit],
) -> Result<ManifestWriter> {
    ManifestWriter::create(env, dir, FileNumber(number), snap, &keys, Some(&db_key()))
}

/// What reading back a manifest created from `snap` gives: `snap`, then its end.
fn with_end(snap: &[VersionEdit]) -> Vec<VersionEdit> {
    let mut v = snap.to_vec();
    v.push(VersionEdit::new(vec![Edit::SnapshotEnd {
        records: snap.len() as u32 + 1,
    }]));
    v
}

fn meta(encrypted: bool) -> TableMeta {
    TableMeta {
        encrypted,
        sealed_boundaries: false,
        key_arn: if encrypted {
            "arn:aws:kms:r:1:key/k".into()
        } else {
            String::new()
        },
        wrapped_table_key: if encrypted { vec![9; 40] } else { Vec::new() },
        grant_id: String::new(),
        key_version: u32::from(encrypted),
        block_size: 4096,
        bloom_bits_per_key: 10,
        compression: crate::sst::Compression::None,
    }
}

fn add_file(table: TableId, file: u64) -> Edit {
    Edit::AddFile {
        table,
        file: FileMeta {
            number: FileNumber(file),
            level: Level(0),
            size: 1000 + file,
            entries: 10,
            min_seq: SeqNo(1),
            max_seq: SeqNo(file),
            smallest: Boundary::Plain(b"a".to_vec()),
            largest: Boundary::Plain(b"z".to_vec()),
        },
    }
}

fn snapshot() -> Vec<VersionEdit> {
    vec![
        VersionEdit::new(vec![
            db_key_edit(),
            Edit::SetNextFileNumber(FileNumber(100)),
            Edit::SetLastSeq(SeqNo(50)),
            Edit::SetNextTableId(TableId(3)),
        ]),
        VersionEdit::new(vec![Edit::CreateTable {
            id: ENC,
            name: "secret".into(),
            meta: meta(true),
        }]),
        VersionEdit::new(vec![Edit::CreateTable {
            id: PLAIN,
            name: "open".into(),
            meta: meta(false),
        }]),
    ]
}

/// Writes manifest 1: the snapshot (records 0 database key and counters, 1 create ENC,
/// 2 create PLAIN, 3 snapshot end), then four groups touching ENC (and one PLAIN).
fn write_manifest(dir: &Path) -> Result<Vec<VersionEdit>> {
    let mut all = with_end(&snapshot());
    let mut w = create(&StdEnv, dir, 1, &snapshot())?;
    let appended = vec![
        VersionEdit::new(vec![
            add_file(ENC, 10),
            Edit::SetLogNumber {
                table: ENC,
                log: FileNumber(9),
            },
        ]),
        VersionEdit::new(vec![add_file(ENC, 11), add_file(PLAIN, 12)]),
        VersionEdit::new(vec![add_file(ENC, 13)]),
        VersionEdit::new(vec![Edit::RemoveFile {
            table: ENC,
            level: Level(0),
            file: FileNumber(10),
        }]),
    ];
    for e in &appended {
        w.append(e, &keys)?;
    }
    assert_eq!(w.number(), FileNumber(1));
    assert_eq!(
        w.len(),
        std::fs::metadata(dir.join("MANIFEST-000001"))
            .map_err(|e| Error::io("stat", e))?
            .len()
    );
    all.extend(appended);
    Ok(all)
}

fn tmp() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::io("tempdir", e))
}

/// The records of a manifest file as (type, payload).
fn records(data: &[u8]) -> Result<Vec<(u8, Vec<u8>)>> {
    let mut s = FrameScanner::new(Bytes::copy_from_slice(data), false, "m");
    let mut out = Vec::new();
    while let Scan::Record(f) = s.next_frame()? {
        out.push((f.rtype, f.payload.to_vec()));
    }
    Ok(out)
}

/// Rebuilds a manifest file from its header and records, with valid framing.
fn rebuild(header: &[u8], recs: &[(u8, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut out = header.to_vec();
    for (t, p) in recs {
        let start = begin_record(&mut out);
        out.extend_from_slice(p);
        finish_record(&mut out, start, *t)?;
    }
    Ok(out)
}

#[test]
fn round_trip_through_current() -> Result<()> {
    let dir = tmp()?;
    assert!(read_current(&StdEnv, dir.path())?.is_none());
    let written = write_manifest(dir.path())?;
    let m =
        read_current(&StdEnv, dir.path())?.ok_or_else(|| Error::InvalidArgument("none".into()))?;
    assert_eq!(m.number, FileNumber(1));
    assert_eq!(m.edits, written);
    assert!(!m.torn_tail);
    assert_eq!(m.version, MANIFEST_VERSION);
    assert!(m.is_authenticated());
    m.verify_table_chain(ENC, &key_of(ENC))?;
    m.verify_database_chain(&db_key())?;
    // The wrong keys fail.
    assert!(matches!(
        m.verify_table_chain(ENC, &key_of(TableId(7))),
        Err(Error::Integrity { .. })
    ));
    assert!(matches!(
        m.verify_database_chain(&key_of(TableId(7))),
        Err(Error::Integrity { .. })
    ));
    // A fresh manifest from a snapshot of the state replaces it.
    let snap = vec![
        VersionEdit::new(vec![db_key_edit()]),
        written[1].clone(),
        VersionEdit::new(vec![add_file(ENC, 11), add_file(ENC, 13)]),
    ];
    create(&StdEnv, dir.path(), 2, &snap)?;
    let m2 =
        read_current(&StdEnv, dir.path())?.ok_or_else(|| Error::InvalidArgument("none".into()))?;
    assert_eq!(
        (m2.number, m2.edits.clone()),
        (FileNumber(2), with_end(&snap))
    );
    m2.verify_table_chain(ENC, &key_of(ENC))?;
    m2.verify_database_chain(&db_key())?;
    Ok(())
}

#[test]
fn writer_refuses_inconsistent_edits() -> Result<()> {
    let dir = tmp()?;
    let mut w = create(&StdEnv, dir.path(), 1, &snapshot())?;
    let no_keys = |_: TableId| None;
    // An encrypted table's edit needs its key.
    assert!(w
        .append(&VersionEdit::new(vec![add_file(ENC, 5)]), &no_keys)
        .is_err());
    // Unknown table, table created twice, encryption switched off, empty group.
    assert!(w
        .append(&VersionEdit::new(vec![add_file(TableId(9), 5)]), &keys)
        .is_err());
    let again = Edit::CreateTable {
        id: ENC,
        name: "x".into(),
        meta: meta(true),
    };
    assert!(w.append(&VersionEdit::new(vec![again]), &keys).is_err());
    let off = Edit::SetTableKey {
        table: ENC,
        meta: meta(false),
    };
    assert!(w.append(&VersionEdit::new(vec![off]), &keys).is_err());
    assert!(w.append(&VersionEdit::default(), &keys).is_err());
    // None of those reached the file; the manifest still verifies.
    let m = read_manifest(&StdEnv, dir.path(), FileNumber(1))?;
    assert_eq!(m.edits, with_end(&snapshot()));
    m.verify_table_chain(ENC, &key_of(ENC))?;
    m.verify_database_chain(&db_key())?;
    // A database key must open the snapshot, and only with a key to authenticate it.
    let dir2 = tmp()?;
    let no_key_edit = vec![snapshot()[1].clone()];
    assert!(create(&StdEnv, dir2.path(), 1, &no_key_edit).is_err());
    assert!(ManifestWriter::create(
        &StdEnv,
        dir2.path(),
        FileNumber(1),
        &snapshot(),
        &keys,
        None
    )
    .is_err());
    Ok(())
}

#[test]
fn drop_without_the_key_still_verifies() -> Result<()> {
    let dir = tmp()?;
    let mut w = create(&StdEnv, dir.path(), 1, &snapshot())?;
    w.append(&VersionEdit::new(vec![add_file(ENC, 5)]), &keys)?;
    w.append(
        &VersionEdit::new(vec![Edit::DropTable { id: ENC }]),
        &|_| None,
    )?;
    assert!(w
        .append(&VersionEdit::new(vec![add_file(ENC, 6)]), &keys)
        .is_err());
    let m = read_manifest(&StdEnv, dir.path(), FileNumber(1))?;
    m.verify_table_chain(ENC, &key_of(ENC))?;
    m.verify_database_chain(&db_key())?;
    Ok(())
}

#[test]
fn torn_tail_drops_only_the_last_record() -> Result<()> {
    let dir = tmp()?;
    let written = write_manifest(dir.path())?;
    let path = dir.path().join("MANIFEST-000001");
    let full = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let recs = records(&full)?;
    let last_len = 13 + recs.last().map_or(0, |r| r.1.len());
    let last_start = full.len() - last_len;
    for cut in last_start..full.len() {
        let m = parse_manifest(Bytes::copy_from_slice(&full[..cut]), FileNumber(1), "m")?;
        assert_eq!(m.edits, written[..written.len() - 1], "cut at {cut}");
        assert_eq!(m.torn_tail, cut != last_start);
        assert_eq!(m.valid_len, last_start as u64);
        m.verify_table_chain(ENC, &key_of(ENC))?;
        m.verify_database_chain(&db_key())?;
    }
    // A cut anywhere in the header or the snapshot is damage: the snapshot was synced
    // whole before CURRENT named it.
    let snapshot_len: usize =
        FILE_HEADER_LEN + recs[..4].iter().map(|r| 13 + r.1.len()).sum::<usize>();
    for cut in 0..snapshot_len {
        assert!(
            parse_manifest(Bytes::copy_from_slice(&full[..cut]), FileNumber(1), "m").is_err(),
            "cut at {cut}"
        );
    }
    Ok(())
}

#[test]
fn every_flipped_byte_is_an_error_but_in_the_last_append() -> Result<()> {
    // Each appended record is synced before the next is written, so a flip in any record
    // with a whole record after it hit synced bytes: damage. A flip in the last record, the
    // one a power loss can tear while its sync is in flight (a disk writing pages out of
    // order), reads as that record torn: it is dropped, exactly as a cut at its start.
    let dir = tmp()?;
    let written = write_manifest(dir.path())?;
    let full =
        std::fs::read(dir.path().join("MANIFEST-000001")).map_err(|e| Error::io("read", e))?;
    let recs = records(&full)?;
    let last_start = full.len() - (13 + recs.last().map_or(0, |r| r.1.len()));
    for i in 0..full.len() {
        for bit in [0x20u8, 0xFF] {
            let mut bad = full.clone();
            bad[i] ^= bit;
            match parse_manifest(Bytes::from(bad), FileNumber(1), "m") {
                Err(e) => {
                    assert!(e.is_integrity_failure(), "byte {i}: {e}");
                    assert!(i < last_start, "byte {i}: the last append refused: {e}");
                }
                Ok(m) => {
                    assert!(i >= last_start, "byte {i} ^ {bit:#x} went unnoticed");
                    assert!(m.torn_tail);
                    assert_eq!(m.edits, written[..written.len() - 1], "byte {i}");
                    assert_eq!(m.valid_len, last_start as u64);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn database_chain_detects_what_table_chains_cannot() -> Result<()> {
    let dir = tmp()?;
    write_manifest(dir.path())?;
    let full =
        std::fs::read(dir.path().join("MANIFEST-000001")).map_err(|e| Error::io("read", e))?;
    let header = &full[..FILE_HEADER_LEN];
    let recs = records(&full)?;
    let reencode = |rec: &(u8, Vec<u8>), f: &dyn Fn(&mut VersionEdit)| -> Result<(u8, Vec<u8>)> {
        let d = decode_payload(&rec.1, 0, "m", MANIFEST_VERSION)?;
        let mut ve = d.edit.clone();
        f(&mut ve);
        let mut edits = Vec::new();
        ve.encode(&mut edits)?;
        let mut payload = Vec::new();
        encode_payload(&edits, &d.macs, &mut payload)?;
        encode_db_mac(d.db_mac.as_ref(), &mut payload);
        Ok((rec.0, payload))
    };
    let db_verdict = |recs: &[(u8, Vec<u8>)]| -> Result<Result<()>> {
        let data = rebuild(header, recs)?;
        Ok(parse_manifest(Bytes::from(data), FileNumber(1), "m")
            .and_then(|m| m.verify_database_chain(&db_key())))
    };
    assert!(db_verdict(&recs)?.is_ok());
    // The plaintext table's CreateTable turned encrypted-looking and the counters lowered:
    // no table key covers either, the database MAC does.
    let mut counters = recs.clone();
    counters[0] = reencode(&recs[0], &|ve| {
        for e in &mut ve.edits {
            if let Edit::SetLastSeq(s) = e {
                *s = SeqNo(1);
            }
        }
    })?;
    assert!(db_verdict(&counters)?.is_err());
    let mut renamed = recs.clone();
    renamed[2] = reencode(&recs[2], &|ve| {
        if let Some(Edit::CreateTable { name, .. }) = ve.edits.get_mut(0) {
            name.push('x');
        }
    })?;
    assert!(db_verdict(&renamed)?.is_err());
    // A record with its database MAC stripped: refused while parsing.
    let mut stripped = recs.clone();
    let d = decode_payload(&recs[5].1, 0, "m", MANIFEST_VERSION)?;
    let mut payload = Vec::new();
    encode_payload(d.edits_bytes, &d.macs, &mut payload)?;
    encode_db_mac(None, &mut payload);
    stripped[5].1 = payload;
    assert!(db_verdict(&stripped)?.is_err());
    // A record appended from elsewhere with a MAC-less drop.
    let mut dropped = recs.clone();
    let mut edits = Vec::new();
    VersionEdit::new(vec![Edit::DropTable { id: ENC }]).encode(&mut edits)?;
    let mut payload = Vec::new();
    encode_payload(&edits, &[], &mut payload)?;
    encode_db_mac(Some(&[0u8; 32]), &mut payload);
    dropped.push((1, payload));
    assert!(db_verdict(&dropped)?.is_err());
    // The database key's edit removed from the snapshot: an encrypted table without it.
    let mut keyless = recs.clone();
    keyless[0] = reencode(&recs[0], &|ve| {
        ve.edits.retain(|e| !matches!(e, Edit::SetDatabaseKey(_)))
    })?;
    assert!(db_verdict(&keyless)?.is_err());
    Ok(())
}

/// Reads `recs` back as a manifest and verifies ENC's chain.
fn verify_rebuilt(header: &[u8], recs: &[(u8, Vec<u8>)]) -> Result<()> {
    let data = rebuild(header, recs)?;
    let m = parse_manifest(Bytes::from(data), FileNumber(1), "MANIFEST-000001")?;
    m.verify_table_chain(ENC, &key_of(ENC))?;
    m.verify_database_chain(&db_key())
}

#[test]
fn mac_chain_detects_edited_reordered_and_removed_records() -> Result<()> {
    let dir = tmp()?;
    write_manifest(dir.path())?;
    let full =
        std::fs::read(dir.path().join("MANIFEST-000001")).map_err(|e| Error::io("read", e))?;
    let header = &full[..FILE_HEADER_LEN];
    let recs = records(&full)?;
    // Records: 0 counters, 1 create ENC, 2 create PLAIN, 3 snapshot end, 4..=7 touch ENC.
    verify_rebuilt(header, &recs)?;
    let is_integrity = |r: Result<()>| r.is_err_and(|e| e.is_integrity_failure());

    // Edited: the file size of an AddFile changed, framing fixed.
    let mut edited = recs.clone();
    let rec = decode_payload(&edited[5].1, 0, "m", MANIFEST_VERSION)?;
    let mut ve = rec.edit.clone();
    if let Some(Edit::AddFile { file, .. }) = ve.edits.get_mut(0) {
        file.size += 1;
    }
    let mut edits = Vec::new();
    ve.encode(&mut edits)?;
    let mut payload = Vec::new();
    encode_payload(&edits, &rec.macs, &mut payload)?;
    encode_db_mac(rec.db_mac.as_ref(), &mut payload);
    edited[5].1 = payload;
    assert!(is_integrity(verify_rebuilt(header, &edited)));

    // Reordered.
    let mut swapped = recs.clone();
    swapped.swap(5, 6);
    assert!(is_integrity(verify_rebuilt(header, &swapped)));

    // Removed from the middle.
    let mut removed = recs.clone();
    removed.remove(5);
    assert!(is_integrity(verify_rebuilt(header, &removed)));

    // The table MAC stripped from a record.
    let mut stripped = recs.clone();
    let rec = decode_payload(&stripped[6].1, 0, "m", MANIFEST_VERSION)?;
    let mut payload = Vec::new();
    encode_payload(rec.edits_bytes, &[], &mut payload)?;
    encode_db_mac(rec.db_mac.as_ref(), &mut payload);
    stripped[6].1 = payload;
    assert!(is_integrity(verify_rebuilt(header, &stripped)));

    // A record for ENC that is not its CreateTable put first.
    let mut headless = recs.clone();
    headless.remove(1);
    assert!(is_integrity(verify_rebuilt(header, &headless)));

    // Removed from the end: a truncation the chains cannot see (documented; recovery
    // checks the files against it).
    let mut truncated = recs.clone();
    truncated.pop();
    verify_rebuilt(header, &truncated)?;

    // The whole manifest copied under another number: the number is in every MAC.
    let mut moved = rebuild(
        &crate::framing::encode_file_header_version(b"SEALMAN\0", FileNumber(2), MANIFEST_VERSION),
        &recs,
    )?;
    let m = parse_manifest(Bytes::from(std::mem::take(&mut moved)), FileNumber(2), "m")?;
    assert!(is_integrity(m.verify_table_chain(ENC, &key_of(ENC))));
    assert!(is_integrity(m.verify_database_chain(&db_key())));
    Ok(())
}

#[test]
fn current_switch_leaves_the_old_or_the_new_manifest() -> Result<()> {
    let dir = tmp()?;
    let env = FaultEnv::default();
    let old = snapshot();
    create(&env, dir.path(), 1, &old)?;
    let new = vec![old[0].clone(), old[1].clone()];
    env.arm(FaultOp::Rename, Trigger::Always, FaultKind::Eio);
    assert!(create(&env, dir.path(), 2, &new).is_err());
    // CURRENT still names the old manifest, and the new one, named by nothing, is gone.
    assert!(!dir.path().join("MANIFEST-000002").exists());
    let m = read_current(&env, dir.path())?.ok_or_else(|| Error::InvalidArgument("none".into()))?;
    assert_eq!((m.number, m.edits), (FileNumber(1), with_end(&old)));
    env.disarm_all();
    create(&env, dir.path(), 2, &new)?;
    let m = read_current(&env, dir.path())?.ok_or_else(|| Error::InvalidArgument("none".into()))?;
    assert_eq!((m.number, m.edits), (FileNumber(2), with_end(&new)));
    // CURRENT naming a missing manifest is corruption, not "new database".
    std::fs::remove_file(dir.path().join("MANIFEST-000002")).map_err(|e| Error::io("rm", e))?;
    assert!(err_of(read_current(&env, dir.path()))?.is_integrity_failure());
    Ok(())
}

#[test]
fn golden_bytes_of_a_tiny_manifest() -> Result<()> {
    let dir = tmp()?;
    let snap = vec![VersionEdit::new(vec![Edit::SetLastSeq(SeqNo(7))])];
    ManifestWriter::create(&StdEnv, dir.path(), FileNumber(3), &snap, &keys, None)?;
    let data =
        std::fs::read(dir.path().join("MANIFEST-000003")).map_err(|e| Error::io("read", e))?;
    let h = hex::encode(&data);
    // header: "SEALMAN\0", version 6, reserved, number 3, hcrc
    assert_eq!(&h[..40], "5345414c4d414e00060000000300000000000000");
    // record header: len 18, crc, type 1 (Edit), hcrc; payload: edits_len 9,
    // SetLastSeq(7), mac_count 0, db_mac_len 0.
    assert_eq!(&h[48..56], "12000000");
    assert_eq!(&h[64..66], "01");
    assert_eq!(&h[74..110], "090000000707000000000000000000000000");
    // Then the snapshot end: len 14; edits_len 5, SnapshotEnd(2), mac_count 0, db_mac_len 0.
    assert_eq!(&h[110..118], "0e000000");
    assert_eq!(&h[136..], "050000000b020000000000000000");
    // The CRCs here were computed independently (Python's zlib.crc32).
    assert_eq!(
        h,
        "5345414c4d414e000600000003000000000000008663e5241200000042fd57ed01083e24c70900000007070000000000000000000000000e00000013659d3c0195474cf4050000000b020000000000000000"
    );
    let current = std::fs::read(dir.path().join(CURRENT)).map_err(|e| Error::io("read", e))?;
    assert_eq!(current, b"MANIFEST-000003\n");
    Ok(())
}

#[test]
fn a_failed_append_poisons_and_is_dropped_as_torn() -> Result<()> {
    let dir = tmp()?;
    let env = FaultEnv::default();
    let mut w = create(&env, dir.path(), 1, &snapshot())?;
    w.append(&VersionEdit::new(vec![add_file(ENC, 5)]), &keys)?;
    env.arm(FaultOp::Append, Trigger::Always, FaultKind::Eio);
    env.arm(FaultOp::Sync, Trigger::Always, FaultKind::Eio);
    assert!(w
        .append(&VersionEdit::new(vec![add_file(ENC, 6)]), &keys)
        .is_err());
    env.disarm_all();
    let next = VersionEdit::new(vec![add_file(ENC, 7)]);
    assert!(matches!(w.append(&next, &keys), Err(Error::Poisoned(_))));
    let m = read_current(&env, dir.path())?.ok_or_else(|| Error::InvalidArgument("none".into()))?;
    assert!(m.torn_tail);
    assert!(w.may_hold_failed_record());
    let mut expected = with_end(&snapshot());
    expected.push(VersionEdit::new(vec![add_file(ENC, 5)]));
    assert_eq!(m.edits, expected);
    m.verify_table_chain(ENC, &key_of(ENC))?;
    m.verify_database_chain(&db_key())?;
    Ok(())
}
