//! WAL behaviour: round trips, torn tails, damage, moved sections, golden bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::reader::ReplayOutcome;
use super::*;
use crate::crypto::{DataKey, TableKey, KEY_LEN};
use crate::error::{Error, Result};
use crate::storage::StdEnv;
use crate::types::{FileNumber, SeqNo, TableId};

const PLAIN: TableId = TableId(1);

/// Bytes of a whole `SyncPoint` record.
const SYNC_POINT_RECORD_LEN: u64 =
    (crate::framing::RECORD_HEADER_LEN + super::record::SYNC_POINT_LEN) as u64;

/// The error of a result that must have failed.
fn err_of<T>(r: Result<T>) -> Result<Error> {
    match r {
        Ok(_) => Err(Error::InvalidArgument("expected an error".into())),
        Err(e) => Ok(e),
    }
}

const SEALED: TableId = TableId(2);
const SEALED2: TableId = TableId(3);

fn table_key(table: TableId) -> TableKey {
    TableKey::from_bytes([table.0 as u8 + 0x40; KEY_LEN])
}

type Replayed = Vec<(SeqNo, TableId, Vec<u8>)>;

/// The engine's side of replay in these tests: table 1 plain, 2 and 3 encrypted, 9 dropped.
fn replay(path: &Path, segment: FileNumber, is_last: bool) -> Result<(Replayed, ReplayOutcome)> {
    let mut got = Vec::new();
    let mut resolve = |table: TableId, key: Option<&WalKeyRef<'_>>| -> Result<ReplayKey> {
        match (table, key) {
            (TableId(9), _) => Ok(ReplayKey::Skip),
            (PLAIN, None) => Ok(ReplayKey::Plain),
            (t, Some(k)) if t == SEALED || t == SEALED2 => {
                Ok(ReplayKey::Sealed(k.unwrap(&table_key(t))?))
            }
            (t, _) => Err(Error::InvalidArgument(format!("unexpected table {t}"))),
        }
    };
    let mut sink = |seq: SeqNo, table: TableId, payload: Bytes| -> Result<()> {
        got.push((seq, table, payload.to_vec()));
        Ok(())
    };
    let out = replay_segment(&StdEnv, path, segment, is_last, &mut resolve, &mut sink)?;
    Ok((got, out))
}

fn register_all(w: &mut WalWriter) -> Result<()> {
    let seg = w.segment();
    w.register_table(PLAIN, crate::crypto::Protection::Plain)?;
    for t in [SEALED, SEALED2] {
        w.register_table(
            t,
            crate::crypto::Protection::fresh_wal(&table_key(t), 1, t, seg),
        )?;
    }
    Ok(())
}

/// Writes `n` multi-table batches and closes the segment the way the engine does at a clean
/// close (synced, then a synced sync point vouching for all of it); returns the path, the
/// expected replay, and the end offset of every record before that sync point.
fn write_segment(dir: &Path, segment: FileNumber, n: u64) -> Result<(PathBuf, Replayed, Vec<u64>)> {
    let mut w = WalWriter::create(&StdEnv, dir, segment)?;
    register_all(&mut w)?;
    let mut ends = vec![w.len()];
    let mut expected = Vec::new();
    for i in 0..n {
        let seq = SeqNo(100 + i * 3);
        let a = format!("plain-{i}").into_bytes();
        let b = format!("MARKER-sealed-{i}").into_bytes();
        let c = vec![i as u8; i as usize];
        let sections: Vec<(TableId, &[u8])> = vec![(PLAIN, &a), (SEALED, &b), (SEALED2, &c)];
        ends.push(w.append_batch(seq, &sections)?);
        for (t, p) in sections {
            expected.push((seq, t, p.to_vec()));
        }
    }
    w.sync_and_vouch()?;
    Ok((w.path().to_path_buf(), expected, ends))
}

#[test]
fn round_trip_plain_and_sealed_multi_table() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, expected, ends) = write_segment(dir.path(), FileNumber(5), 20)?;
    for is_last in [true, false] {
        let (got, out) = replay(&path, FileNumber(5), is_last)?;
        assert_eq!(got, expected);
        assert!(!out.torn_tail);
        let vouched_end = *ends.last().unwrap_or(&0) + SYNC_POINT_RECORD_LEN;
        assert_eq!(out.valid_len, vouched_end);
        assert_eq!(out.last_batch_first_seq, Some(SeqNo(100 + 19 * 3)));
        assert_eq!(out.batches, 20);
    }
    // The wrong segment number for the file is refused.
    assert!(replay(&path, FileNumber(6), true).is_err());
    Ok(())
}

/// Group commit: queued records reach the file only when a write-through covers them, all
/// in one append, at the offsets they were sealed for.
#[test]
fn queued_batches_are_written_through_together() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(5))?;
    register_all(&mut w)?;
    let on_disk = |w: &WalWriter| std::fs::metadata(w.path()).map(|m| m.len());
    let registered = w.len();
    assert_eq!(on_disk(&w).map_err(|e| Error::io("stat", e))?, registered);
    let mut expected = Vec::new();
    let mut ends = Vec::new();
    for i in 0..5u64 {
        let a = format!("plain-{i}").into_bytes();
        let b = format!("MARKER-sealed-{i}").into_bytes();
        let seq = SeqNo(10 + 2 * i);
        ends.push(w.buffer_batch(seq, &[(PLAIN, &a), (SEALED, &b)])?);
        expected.push((seq, PLAIN, a));
        expected.push((seq, SEALED, b));
    }
    // Nothing queued is in the file yet.
    assert_eq!(on_disk(&w).map_err(|e| Error::io("stat", e))?, registered);
    // The first writer's write-through carries every record queued so far ...
    let sink = w.sink();
    sink.write_through(ends[0])?;
    assert_eq!(on_disk(&w).map_err(|e| Error::io("stat", e))?, w.len());
    // ... so the others return without writing.
    for end in &ends {
        sink.write_through(*end)?;
    }
    // An appended batch follows the queued ones.
    let last = w.append_batch(SeqNo(30), &[(SEALED2, b"after")])?;
    expected.push((SeqNo(30), SEALED2, b"after".to_vec()));
    w.sync()?;
    let (got, out) = replay(w.path(), FileNumber(5), true)?;
    assert_eq!(got, expected);
    assert_eq!(out.valid_len, last);
    assert!(!out.torn_tail);
    Ok(())
}

#[test]
fn dropped_tables_are_skipped() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(1))?;
    w.register_table(PLAIN, crate::crypto::Protection::Plain)?;
    w.register_table(TableId(9), crate::crypto::Protection::Plain)?;
    w.append_batch(SeqNo(1), &[(TableId(9), b"gone"), (PLAIN, b"kept")])?;
    w.sync()?;
    let (got, _) = replay(w.path(), FileNumber(1), true)?;
    assert_eq!(got, vec![(SeqNo(1), PLAIN, b"kept".to_vec())]);
    Ok(())
}

#[test]
fn writer_refuses_misuse() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(1))?;
    w.register_table(PLAIN, crate::crypto::Protection::Plain)?;
    assert!(w.is_registered(PLAIN) && !w.is_registered(SEALED));
    assert!(w
        .register_table(PLAIN, crate::crypto::Protection::Plain)
        .is_err());
    assert!(w.append_batch(SeqNo(1), &[]).is_err());
    assert!(w.append_batch(SeqNo(1), &[(SEALED, b"x")]).is_err());
    assert!(w.append_batch(SeqNo(u64::MAX), &[(PLAIN, b"x")]).is_err());
    // Nothing was written by the refused calls.
    w.append_batch(SeqNo(1), &[(PLAIN, b"x")])?;
    w.sync()?;
    assert_eq!(replay(w.path(), FileNumber(1), false)?.0.len(), 1);
    Ok(())
}

#[test]
fn truncation_at_every_byte_of_the_last_record_keeps_earlier_records() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, expected, ends) = write_segment(dir.path(), FileNumber(2), 4)?;
    let full = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let last_start = ends[ends.len() - 2] as usize;
    let batches_end = ends[ends.len() - 1] as usize;
    let cut_path = dir.path().join("000002.cut");
    for cut in last_start..full.len() {
        std::fs::write(&cut_path, &full[..cut]).map_err(|e| Error::io("write", e))?;
        let (got, out) = replay(&cut_path, FileNumber(2), true)?;
        // A cut inside the trailing sync point loses no batch.
        let (kept, valid, clean) = if cut < batches_end {
            (expected.len() - 3, last_start, last_start)
        } else {
            (expected.len(), batches_end, batches_end)
        };
        assert_eq!(got, expected[..kept], "cut at {cut}");
        assert_eq!(out.torn_tail, cut != clean, "cut at {cut}");
        assert_eq!(out.valid_len, valid as u64);
        // The same cut in a segment that is not the last is corruption.
        if cut != clean {
            assert!(err_of(replay(&cut_path, FileNumber(2), false))?.is_integrity_failure());
        }
    }
    // Header-only and cut headers of the last segment are fine; garbage is not.
    for cut in 0..=crate::framing::FILE_HEADER_LEN {
        std::fs::write(&cut_path, &full[..cut]).map_err(|e| Error::io("write", e))?;
        let (got, out) = replay(&cut_path, FileNumber(2), true)?;
        assert!(got.is_empty());
        assert_eq!(
            out.torn_tail,
            cut != 0 && cut != crate::framing::FILE_HEADER_LEN
        );
    }
    std::fs::write(&cut_path, b"SEALXXX").map_err(|e| Error::io("write", e))?;
    assert!(replay(&cut_path, FileNumber(2), true).is_err());
    Ok(())
}

#[test]
fn flipped_byte_before_the_last_record_is_an_error() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, expected, ends) = write_segment(dir.path(), FileNumber(3), 3)?;
    let full = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let batches_end = ends[ends.len() - 1] as usize;
    let bad_path = dir.path().join("000003.bad");
    for i in 0..full.len() {
        let mut bad = full.clone();
        bad[i] ^= 0x01;
        std::fs::write(&bad_path, &bad).map_err(|e| Error::io("write", e))?;
        for is_last in [true, false] {
            match replay(&bad_path, FileNumber(3), is_last) {
                Err(e) => assert!(e.is_integrity_failure(), "byte {i}: {e}"),
                Ok((got, out)) => {
                    // Every batch was vouched for by the closing sync point: only damage
                    // to that sync point itself, in the last segment, may read as torn,
                    // and then every batch is intact.
                    assert!(is_last && i >= batches_end, "byte {i} went unnoticed");
                    assert!(out.torn_tail);
                    assert_eq!(got, expected);
                }
            }
        }
    }
    Ok(())
}

/// Rewrites a record's table id (fixing the frame checksums), as an attacker could.
fn refix_frames(data: &mut [u8]) {
    let mut pos = crate::framing::FILE_HEADER_LEN;
    while pos + crate::framing::RECORD_HEADER_LEN <= data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap_or_default()) as usize;
        let rtype = data[pos + 8];
        let payload =
            pos + crate::framing::RECORD_HEADER_LEN..pos + crate::framing::RECORD_HEADER_LEN + len;
        let mut h = crc32fast::Hasher::new();
        h.update(&[rtype]);
        h.update(&data[payload.clone()]);
        data[pos + 4..pos + 8].copy_from_slice(&h.finalize().to_le_bytes());
        let hcrc = crc32fast::hash(&data[pos..pos + 9]);
        data[pos + 9..pos + 13].copy_from_slice(&hcrc.to_le_bytes());
        pos = payload.end;
    }
}

#[test]
fn sealed_section_moved_to_another_table_or_segment_fails() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let dek_bytes = [0x77u8; KEY_LEN];
    // Two segments with the SAME data key and identical layouts, so only the associated
    // data (segment, table) differs.
    let mut files = Vec::new();
    for seg in [FileNumber(10), FileNumber(11)] {
        let mut w = WalWriter::create(&StdEnv, dir.path(), seg)?;
        for t in [SEALED, SEALED2] {
            let dek = DataKey::from_bytes(dek_bytes);
            let ctx = crate::crypto::WrapContext {
                table: t,
                file_kind: crate::crypto::FileKind::Wal,
                file: seg,
                key_version: 1,
            };
            let p = crate::crypto::Protection::with_key(dek, &table_key(t), ctx);
            w.register_table(t, p)?;
        }
        let data = format!("segment {}", seg.0).into_bytes();
        w.append_batch(SeqNo(1), &[(SEALED, &data)])?;
        w.sync()?;
        replay(w.path(), seg, false)?;
        files.push((
            w.path().to_path_buf(),
            std::fs::read(w.path()).map_err(|e| Error::io("r", e))?,
        ));
    }
    let (p10, f10) = &files[0];
    let (p11, f11) = &files[1];
    assert_eq!(f10.len(), f11.len());
    // Segment 10's batch record spliced into segment 11 at the same offset.
    let batch_start =
        crate::framing::FILE_HEADER_LEN + 2 * (crate::framing::RECORD_HEADER_LEN + 68);
    let mut spliced = f11.clone();
    spliced[batch_start..].copy_from_slice(&f10[batch_start..]);
    std::fs::write(p11, &spliced).map_err(|e| Error::io("w", e))?;
    let err = err_of(replay(p11, FileNumber(11), false))?;
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // The section relabelled as the other encrypted table (same key bytes, other table).
    let mut moved = f10.clone();
    let section_table = batch_start + crate::framing::RECORD_HEADER_LEN + 8;
    moved[section_table..section_table + 4].copy_from_slice(&SEALED2.0.to_le_bytes());
    refix_frames(&mut moved);
    std::fs::write(p10, &moved).map_err(|e| Error::io("w", e))?;
    let err = err_of(replay(p10, FileNumber(10), false))?;
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // The first sequence number rewritten in the plaintext frame.
    let mut reseq = f10.clone();
    let seq_at = batch_start + crate::framing::RECORD_HEADER_LEN;
    reseq[seq_at] ^= 0x04;
    refix_frames(&mut reseq);
    std::fs::write(p10, &reseq).map_err(|e| Error::io("w", e))?;
    let err = err_of(replay(p10, FileNumber(10), false))?;
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // A whole segment renamed: its key record no longer unwraps.
    let renamed = dir.path().join("000012.log");
    let mut f = f10.clone();
    f[..crate::framing::FILE_HEADER_LEN].copy_from_slice(
        &crate::framing::encode_file_header_version(
            b"SEALWAL\0",
            FileNumber(12),
            super::record::WAL_FORMAT_VERSION,
        ),
    );
    std::fs::write(&renamed, &f).map_err(|e| Error::io("w", e))?;
    let err = err_of(replay(&renamed, FileNumber(12), false))?;
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    Ok(())
}

#[test]
fn sealed_section_stripped_to_plaintext_is_refused() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    // A forger writes a plaintext section for an encrypted table, with no key record.
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(4))?;
    w.register_table(SEALED, crate::crypto::Protection::Plain)?;
    w.append_batch(SeqNo(1), &[(SEALED, b"forged")])?;
    w.sync()?;
    assert!(replay(w.path(), FileNumber(4), true).is_err());
    Ok(())
}

#[test]
fn markers_never_appear_in_a_sealed_segment() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, _, _) = write_segment(dir.path(), FileNumber(7), 50)?;
    let data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let contains = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"MARKER"));
    assert!(!contains(b"sealed-"));
    // The scan works: the plaintext table's payloads are there.
    assert!(contains(b"plain-49"));
    Ok(())
}

#[test]
fn golden_bytes_of_a_tiny_plain_segment() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(1))?;
    w.register_table(TableId(7), crate::crypto::Protection::Plain)?;
    w.append_batch(SeqNo(5), &[(TableId(7), b"hi")])?;
    w.sync_and_vouch()?;
    let data = std::fs::read(w.path()).map_err(|e| Error::io("read", e))?;
    let expected = concat!(
        // header: magic, version 2, reserved, segment 1, hcrc
        "5345414c57414c00",
        "02",
        "000000",
        "0100000000000000",
        "HCRC",
        // record: len 23, crc, type 2 (Batch), hcrc
        "17000000",
        "RCRC",
        "02",
        "RHCR",
        // first_seq 5; section: table 7, flags 0, stored_len 6, "hi", crc32(5 || "hi")
        "0500000000000000",
        "07000000",
        "00",
        "06000000",
        "6869",
        "SCRC",
        // record: len 8, crc, type 3 (SyncPoint), hcrc; synced_len 60 (all before it)
        "08000000",
        "PCRC",
        "03",
        "PHCR",
        "3c00000000000000",
    );
    let hex_data = hex::encode(&data);
    let hcrc = hex::encode(crc32fast::hash(&data[..20]).to_le_bytes());
    let rec = &data[24..60];
    let sp = &data[60..];
    let pcrc = {
        let mut h = crc32fast::Hasher::new();
        h.update(&[3]);
        h.update(&sp[13..]);
        hex::encode(h.finalize().to_le_bytes())
    };
    let phcr = hex::encode(crc32fast::hash(&sp[..9]).to_le_bytes());
    let rcrc = {
        let mut h = crc32fast::Hasher::new();
        h.update(&[2]);
        h.update(&rec[13..]);
        hex::encode(h.finalize().to_le_bytes())
    };
    let rhcr = hex::encode(crc32fast::hash(&rec[..9]).to_le_bytes());
    let scrc = hex::encode(crc32fast::hash(&[5, b'h', b'i']).to_le_bytes());
    let expected = expected
        .replace("HCRC", &hcrc)
        .replace("RCRC", &rcrc)
        .replace("RHCR", &rhcr)
        .replace("SCRC", &scrc)
        .replace("PCRC", &pcrc)
        .replace("PHCR", &phcr);
    assert_eq!(hex_data, expected);
    // Pin the checksums too, so a change of CRC variant is caught.
    assert_eq!(
        hex_data,
        "5345414c57414c000200000001000000000000009b1f3c9617000000f01dda990290047c0a05000000000000000700000000060000006869aa23c06008000000596ee60d03d918e3323c00000000000000"
    );
    Ok(())
}

#[test]
fn key_records_bind_to_the_table_key() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, _, _) = write_segment(dir.path(), FileNumber(8), 1)?;
    let mut wrong = |table: TableId, key: Option<&WalKeyRef<'_>>| -> Result<ReplayKey> {
        match key {
            None => Ok(ReplayKey::Plain),
            Some(k) => Ok(ReplayKey::Sealed(
                k.unwrap(&table_key(TableId(table.0 + 1)))?,
            )),
        }
    };
    let mut seen: HashMap<TableId, usize> = HashMap::new();
    let mut sink = |_: SeqNo, t: TableId, _: Bytes| -> Result<()> {
        *seen.entry(t).or_default() += 1;
        Ok(())
    };
    let err = err_of(replay_segment(
        &StdEnv,
        &path,
        FileNumber(8),
        true,
        &mut wrong,
        &mut sink,
    ))?;
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    Ok(())
}

/// A segment of two synced batches, then (after the sync) three unsynced ones written
/// through to the OS: the path and the end offset of every batch record (the first
/// unsynced batch is preceded by the sync point for the first two).
fn synced_then_unsynced(dir: &Path, segment: FileNumber) -> Result<(PathBuf, Replayed, Vec<u64>)> {
    let mut w = WalWriter::create(&StdEnv, dir, segment)?;
    register_all(&mut w)?;
    let mut ends = vec![w.len()];
    let mut expected = Vec::new();
    for i in 0..5u64 {
        if i == 2 {
            w.sync()?;
        }
        let seq = SeqNo(10 + i);
        let (a, b) = (format!("plain-{i}").into_bytes(), vec![i as u8; 40]);
        ends.push(w.append_batch(seq, &[(PLAIN, &a), (SEALED, &b)])?);
        expected.push((seq, PLAIN, a));
        expected.push((seq, SEALED, b));
    }
    Ok((w.path().to_path_buf(), expected, ends))
}

/// The sync point a record at `at` carries, if it is one.
fn sync_point_at(data: &[u8], at: u64) -> Option<u64> {
    let (rtype, payload) = crate::framing::whole_record_at(data, at as usize)?;
    (rtype == super::record::WalRecordType::SyncPoint as u8)
        .then(|| super::record::decode_sync_point(payload, 0, "f").ok())
        .flatten()
}

#[test]
fn a_sync_point_follows_each_sync_with_the_length_it_covered() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, expected, ends) = synced_then_unsynced(dir.path(), FileNumber(4))?;
    let data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    // Right after the second batch: a sync point saying those bytes were synced.
    assert_eq!(sync_point_at(&data, ends[2]), Some(ends[2]));
    // Only one: the unsynced batches follow each other directly.
    assert_eq!(ends[4] - ends[3], ends[5] - ends[4]);
    let (got, out) = replay(&path, FileNumber(4), true)?;
    assert_eq!(got, expected);
    assert!(!out.torn_tail);
    Ok(())
}

/// A power loss tears a page of the unsynced tail: replay keeps every batch before the
/// damage and reports a torn tail, in the last segment; any other segment refuses it.
#[test]
fn damage_past_the_last_sync_point_is_a_torn_tail() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, expected, ends) = synced_then_unsynced(dir.path(), FileNumber(4))?;
    let data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let bad_path = dir.path().join("000004.bad");
    // Batch 3 (the first unsynced one) starts with the sync point; judge from batch 4 on.
    for i in ends[3] as usize..data.len() {
        for garble in [0x01u8, 0xFF] {
            let mut bad = data.clone();
            bad[i] ^= garble;
            std::fs::write(&bad_path, &bad).map_err(|e| Error::io("write", e))?;
            let (got, out) = replay(&bad_path, FileNumber(4), true)?;
            let damaged = ends.iter().rposition(|&e| e as usize <= i).unwrap_or(0);
            assert_eq!(got, expected[..damaged * 2], "byte {i}");
            assert!(out.torn_tail, "byte {i}");
            assert_eq!(out.valid_len, ends[damaged], "byte {i}");
            assert!(replay(&bad_path, FileNumber(4), false).is_err(), "byte {i}");
        }
    }
    // A zeroed page in the middle of the unsynced tail, records intact after it.
    let mut zeroed = data.clone();
    zeroed[ends[3] as usize + 3..ends[4] as usize + 5].fill(0);
    std::fs::write(&bad_path, &zeroed).map_err(|e| Error::io("write", e))?;
    let (got, out) = replay(&bad_path, FileNumber(4), true)?;
    assert_eq!((got, out.torn_tail), (expected[..6].to_vec(), true));
    Ok(())
}

/// The sync point vouching for the synced batches lies after them: damage to them is found
/// by searching past it, and refused, never read as a torn tail.
#[test]
fn damage_before_a_sync_point_found_past_it_is_refused() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, _, ends) = synced_then_unsynced(dir.path(), FileNumber(4))?;
    let data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let bad_path = dir.path().join("000004.bad");
    for i in crate::framing::FILE_HEADER_LEN..ends[2] as usize {
        let mut bad = data.clone();
        bad[i] ^= 0x01;
        std::fs::write(&bad_path, &bad).map_err(|e| Error::io("write", e))?;
        let err = err_of(replay(&bad_path, FileNumber(4), true))?;
        assert!(err.is_integrity_failure(), "byte {i}: {err}");
    }
    Ok(())
}

/// An attacker who rewrites sync points (and fixes the checksums) can make the open fail,
/// never make it accept damaged synced bytes or read past a sync point's own offset.
#[test]
fn forged_sync_points_are_refused() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let (path, _, ends) = synced_then_unsynced(dir.path(), FileNumber(4))?;
    let data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    let bad_path = dir.path().join("000004.bad");
    let at = ends[2] as usize + crate::framing::RECORD_HEADER_LEN;
    // Claiming more than precedes it, claiming nothing new (the header), or zero.
    for claim in [ends[2] + 1, ends[4], 24, 0] {
        let mut bad = data.clone();
        bad[at..at + 8].copy_from_slice(&claim.to_le_bytes());
        refix_frames(&mut bad);
        std::fs::write(&bad_path, &bad).map_err(|e| Error::io("write", e))?;
        let err = err_of(replay(&bad_path, FileNumber(4), true))?;
        assert!(err.is_integrity_failure(), "claim {claim}: {err}");
    }
    // The same segment relabelled format 1, which has no sync points.
    let mut v1 = data.clone();
    v1[8] = super::record::WAL_FORMAT_V1;
    let hcrc = crc32fast::hash(&v1[..20]);
    v1[20..24].copy_from_slice(&hcrc.to_le_bytes());
    std::fs::write(&bad_path, &v1).map_err(|e| Error::io("write", e))?;
    let err = err_of(replay(&bad_path, FileNumber(4), true))?;
    assert!(err.is_integrity_failure(), "{err}");
    Ok(())
}

/// Format-1 segments (no sync points) still replay, under their own rule: a complete record
/// that fails its checksum is corruption even in the last segment's tail.
#[test]
fn format_1_segments_replay_under_the_strict_rule() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let mut w = WalWriter::create(&StdEnv, dir.path(), FileNumber(6))?;
    register_all(&mut w)?;
    let first = w.append_batch(SeqNo(1), &[(PLAIN, b"one"), (SEALED, b"two")])?;
    w.append_batch(SeqNo(3), &[(PLAIN, b"three")])?;
    w.sync()?;
    let path = w.path().to_path_buf();
    drop(w);
    let mut data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
    data[8] = super::record::WAL_FORMAT_V1;
    let hcrc = crc32fast::hash(&data[..20]);
    data[20..24].copy_from_slice(&hcrc.to_le_bytes());
    std::fs::write(&path, &data).map_err(|e| Error::io("write", e))?;
    let (got, out) = replay(&path, FileNumber(6), true)?;
    assert_eq!(got.len(), 3);
    assert!(!out.torn_tail);
    // Damage to the last record's payload: refused, as format 1 always did.
    let mut bad = data.clone();
    let last = bad.len() - 2;
    bad[last] ^= 1;
    std::fs::write(&path, &bad).map_err(|e| Error::io("write", e))?;
    assert!(err_of(replay(&path, FileNumber(6), true))?.is_integrity_failure());
    // A cut inside it: still a torn tail.
    std::fs::write(&path, &data[..data.len() - 1]).map_err(|e| Error::io("write", e))?;
    let (got, out) = replay(&path, FileNumber(6), true)?;
    assert_eq!((got.len(), out.torn_tail, out.valid_len), (2, true, first));
    Ok(())
}

mod model {
    use super::*;
    use proptest::prelude::*;

    type Batch = Vec<(u8, Vec<u8>)>;

    fn batches() -> impl Strategy<Value = Vec<Batch>> {
        let section = (0u8..3, proptest::collection::vec(any::<u8>(), 0..40));
        proptest::collection::vec(proptest::collection::vec(section, 1..4), 1..8)
    }

    fn table(i: u8) -> TableId {
        [PLAIN, SEALED, SEALED2][usize::from(i % 3)]
    }

    fn write(dir: &Path, batches: &[Batch]) -> Result<(PathBuf, Replayed)> {
        let mut w = WalWriter::create(&StdEnv, dir, FileNumber(1))?;
        let mut expected = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            for (t, _) in b {
                if !w.is_registered(table(*t)) {
                    let p = if table(*t) == PLAIN {
                        crate::crypto::Protection::Plain
                    } else {
                        crate::crypto::Protection::fresh_wal(
                            &table_key(table(*t)),
                            1,
                            table(*t),
                            FileNumber(1),
                        )
                    };
                    w.register_table(table(*t), p)?;
                }
            }
            let seq = SeqNo(1 + 10 * i as u64);
            let sections: Vec<(TableId, &[u8])> =
                b.iter().map(|(t, p)| (table(*t), p.as_slice())).collect();
            w.append_batch(seq, &sections)?;
            expected.extend(sections.iter().map(|(t, p)| (seq, *t, p.to_vec())));
        }
        w.sync()?;
        Ok((w.path().to_path_buf(), expected))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn random_batches_round_trip(batches in batches()) {
            let dir = tmp()?;
            let (path, expected) = write(dir.path(), &batches)?;
            let (got, out) = replay(&path, FileNumber(1), true)?;
            prop_assert_eq!(got, expected);
            prop_assert!(!out.torn_tail);
        }

        /// Up to three flipped bits anywhere: an error, or a replay that is a prefix of what
        /// was written (a damaged last record reads as torn). Never different data.
        #[test]
        fn damage_is_never_returned_as_data(
            batches in batches(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        ) {
            let dir = tmp()?;
            let (path, expected) = write(dir.path(), &batches)?;
            let mut data = std::fs::read(&path).map_err(|e| Error::io("read", e))?;
            for (i, bit) in flips {
                let i = i.index(data.len());
                data[i] ^= 1 << bit;
            }
            std::fs::write(&path, &data).map_err(|e| Error::io("write", e))?;
            if let Ok((got, _)) = replay(&path, FileNumber(1), true) {
                prop_assert!(expected.starts_with(&got));
            }
        }
    }

    fn tmp() -> Result<tempfile::TempDir> {
        tempfile::tempdir().map_err(|e| Error::io("tempdir", e))
    }
}

mod faults {
    use super::*;
    use crate::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};

    /// Appends (half-written) and syncs fail from now until `disarm_all`.
    fn fail_writes(env: &FaultEnv) {
        env.arm(FaultOp::Append, Trigger::Always, FaultKind::Eio);
        env.arm(FaultOp::Sync, Trigger::Always, FaultKind::Eio);
    }

    #[test]
    fn a_failed_append_poisons_and_leaves_a_torn_tail() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let env = FaultEnv::default();
        let mut w = WalWriter::create(&env, dir.path(), FileNumber(1))?;
        register_all(&mut w)?;
        w.append_batch(SeqNo(1), &[(PLAIN, b"one"), (SEALED, b"two")])?;
        w.sync()?;
        fail_writes(&env);
        assert!(w.append_batch(SeqNo(2), &[(SEALED, b"three")]).is_err());
        env.disarm_all();
        // Poisoned: nothing more is appended or acknowledged.
        assert!(matches!(
            w.append_batch(SeqNo(3), &[(PLAIN, b"x")]),
            Err(Error::Poisoned(_))
        ));
        assert!(matches!(w.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(w.sink().sync(w.len()), Err(Error::Poisoned(_))));
        // Recovery keeps the synced batch and reports the half-written one as torn.
        let (got, out) = replay(w.path(), FileNumber(1), true)?;
        assert_eq!(got.len(), 2);
        assert!(out.torn_tail);
        Ok(())
    }

    #[test]
    fn a_failed_write_through_fails_every_record_it_carried() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let env = FaultEnv::default();
        let mut w = WalWriter::create(&env, dir.path(), FileNumber(1))?;
        register_all(&mut w)?;
        let first = w.buffer_batch(SeqNo(1), &[(PLAIN, b"one")])?;
        w.sink().write_through(first)?;
        let second = w.buffer_batch(SeqNo(2), &[(SEALED, b"two")])?;
        let third = w.buffer_batch(SeqNo(3), &[(PLAIN, b"three")])?;
        fail_writes(&env);
        let sink = w.sink();
        assert!(matches!(sink.write_through(second), Err(Error::Io { .. })));
        env.disarm_all();
        // The writer of the third record, queued in the failed write, is not acknowledged.
        assert!(matches!(sink.write_through(third), Err(Error::Poisoned(_))));
        assert!(matches!(
            w.buffer_batch(SeqNo(4), &[(PLAIN, b"x")]),
            Err(Error::Poisoned(_))
        ));
        // What was written before the failure still replays.
        let (got, _) = replay(w.path(), FileNumber(1), true)?;
        assert_eq!(got, vec![(SeqNo(1), PLAIN, b"one".to_vec())]);
        Ok(())
    }

    #[test]
    fn a_failed_sync_poisons() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let env = FaultEnv::default();
        let mut w = WalWriter::create(&env, dir.path(), FileNumber(1))?;
        w.register_table(PLAIN, crate::crypto::Protection::Plain)?;
        w.append_batch(SeqNo(1), &[(PLAIN, b"one")])?;
        fail_writes(&env);
        assert!(matches!(w.sync(), Err(Error::Io { .. })));
        env.disarm_all();
        assert!(matches!(w.sync(), Err(Error::Poisoned(_))));
        // Creating a segment whose header cannot be synced fails outright.
        fail_writes(&env);
        assert!(WalWriter::create(&env, dir.path(), FileNumber(2)).is_err());
        Ok(())
    }

    #[test]
    fn a_follower_whose_bytes_were_written_still_sees_a_failed_fsync() -> Result<()> {
        // Group commit: the leader's append wrote a follower's record too; the leader's
        // fsync fails. The follower's own sync must refuse, not fsync again and succeed
        // (a second fsync after a writeback error may report success for dropped pages).
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let env = FaultEnv::default();
        let mut w = WalWriter::create(&env, dir.path(), FileNumber(1))?;
        w.register_table(PLAIN, crate::crypto::Protection::Plain)?;
        w.append_batch(SeqNo(1), &[(PLAIN, b"one")])?;
        let sink = w.sink();
        let end = w.len();
        fail_writes(&env);
        assert!(matches!(w.sync(), Err(Error::Io { .. })));
        env.disarm_all();
        assert!(matches!(sink.sync(end), Err(Error::Poisoned(_))));
        Ok(())
    }

    #[test]
    fn segments_are_listed_in_order() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        for n in [12, 3, 100] {
            WalWriter::create(&StdEnv, dir.path(), FileNumber(n))?;
        }
        std::fs::write(dir.path().join("MANIFEST-000001"), b"").map_err(|e| Error::io("w", e))?;
        assert_eq!(
            list_segments(&StdEnv, dir.path())?,
            vec![FileNumber(3), FileNumber(12), FileNumber(100)]
        );
        Ok(())
    }
}
