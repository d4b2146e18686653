//! Replaying one WAL segment at recovery.
//!
//! Per table, the first thing the reader meets in a segment decides how its sections are
//! opened: a `TableKey` record (the engine unwraps the data key) or, for a plaintext table,
//! its first section. The engine answers through `resolve_key`, once per table per segment:
//!
//! - `resolve_key(table, Some(key))`: the segment holds a wrapped data key for `table`. The
//!   engine returns `Sealed(key.unwrap(&table_key)?)`, or `Skip` for a dropped table.
//! - `resolve_key(table, None)`: a section of `table` with no key record before it. The
//!   engine returns `Plain` for a plaintext table, `Skip` for a dropped one, and an error
//!   for an encrypted table (a plaintext section for it can only be forged).
//!
//! The reader itself refuses a sealed section for a table resolved `Plain`, a plaintext one
//! for a table resolved `Sealed`, a second key record for a table, and batches whose first
//! sequence numbers do not increase.
//!
//! In the last segment (format 2), damage is judged against the segment's sync points:
//! past every length a sync point vouches for it is a torn tail (replay stops there); at or
//! before one, even a sync point found beyond the damage, it is corruption.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::record::{
    decode_batch, decode_sync_point, TableKeyRecord, WalRecordType, SEALED_SEQ_LEN, SYNC_POINT_LEN,
    WAL_FORMAT_V1, WAL_FORMAT_VERSION, WAL_MAGIC,
};
use crate::crypto::{
    unwrap_data_key, DataKey, FileKind, TableKey, UnitContext, UnitKind, UnitOpener, WrapContext,
    WRAPPED_KEY_LEN,
};
use crate::error::{Error, Result};
use crate::filename;
use crate::framing::{
    check_file_header_versions, encode_file_header_version, whole_record_at, FrameScanner, Scan,
    FILE_HEADER_LEN,
};
use crate::storage::Env;
use crate::types::{FileNumber, SeqNo, TableId};

/// A table's wrapped data key found in a segment.
pub(crate) struct WalKeyRef<'a> {
    pub(crate) table: TableId,
    pub(crate) segment: FileNumber,
    /// Generation of the table key that wrapped it.
    pub(crate) key_version: u32,
    pub(crate) wrapped_dek: &'a [u8; WRAPPED_KEY_LEN],
    label: &'a str,
    offset: u64,
}

impl WalKeyRef<'_> {
    /// What the wrapped key is bound to.
    pub(crate) fn wrap_context(&self) -> WrapContext {
        WrapContext {
            table: self.table,
            file_kind: FileKind::Wal,
            file: self.segment,
            key_version: self.key_version,
        }
    }

    /// Unwraps the data key under the table key of generation `key_version`; an
    /// `Integrity` error naming the segment and the record's offset when it does not open.
    pub(crate) fn unwrap(&self, table_key: &TableKey) -> Result<DataKey> {
        unwrap_data_key(table_key, self.wrapped_dek, &self.wrap_context()).ok_or_else(|| {
            Error::Integrity {
                file: self.label.to_owned(),
                offset: self.offset,
            }
        })
    }
}

/// The engine's answer to `resolve_key`.
pub(crate) enum ReplayKey {
    /// The table was dropped: skip its sections unopened.
    Skip,
    /// A plaintext table: CRC32-checked sections.
    Plain,
    /// An encrypted table, with its data key for this segment.
    Sealed(DataKey),
}

/// What replaying a segment found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayOutcome {
    /// The first sequence number of the last batch replayed (the engine, which decodes the
    /// payloads, knows how many numbers that batch used).
    pub(crate) last_batch_first_seq: Option<SeqNo>,
    /// Batch records replayed.
    pub(crate) batches: u64,
    /// Length of the valid prefix: the header and every whole, valid record.
    pub(crate) valid_len: u64,
    /// The segment ended in a torn write (only ever in the last segment). The engine must
    /// not append after it, and must make this segment obsolete (flush what was recovered)
    /// before it stops being the last one: replayed as non-last, the torn tail is an error.
    pub(crate) torn_tail: bool,
    /// Past every sequence number the skipped sections could hold: a batch's entries are
    /// numbered consecutively from its first number, and each takes more than one byte of
    /// the record, so `first_seq + record length` bounds them without opening a section.
    pub(crate) skipped_seq_bound: u64,
}

enum TableState {
    Skip,
    Plain,
    Sealed(UnitOpener),
}

/// Replays segment `segment` at `path`: calls `sink(first_seq, table, payload)` for every
/// section of every batch, in file order. `is_last` tolerates a torn tail.
pub(crate) fn replay_segment(
    env: &dyn Env,
    path: &Path,
    segment: FileNumber,
    is_last: bool,
    resolve_key: &mut dyn FnMut(TableId, Option<&WalKeyRef<'_>>) -> Result<ReplayKey>,
    sink: &mut dyn FnMut(SeqNo, TableId, Bytes) -> Result<()>,
) -> Result<ReplayOutcome> {
    let ctx = || format!("reading WAL segment {}", path.display());
    let file = env.open_read(path).map_err(|e| Error::io(ctx(), e))?;
    let len = usize::try_from(file.len()).map_err(|_| {
        Error::corruption(path.display().to_string(), 0, "segment too large to map")
    })?;
    let data = file.read_at(0, len).map_err(|e| Error::io(ctx(), e))?;
    let label = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("WAL segment")
        .to_owned();
    replay_bytes(data, &label, segment, is_last, resolve_key, sink)
}

/// The WAL segments in `dir`, ascending.
pub(crate) fn list_segments(env: &dyn Env, dir: &Path) -> Result<Vec<FileNumber>> {
    let names = env
        .list_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut segments: Vec<FileNumber> = names
        .iter()
        .filter_map(|n| filename::wal_number(n))
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// `replay_segment` over a segment's bytes.
pub(crate) fn replay_bytes(
    data: Bytes,
    label: &str,
    segment: FileNumber,
    is_last: bool,
    resolve_key: &mut dyn FnMut(TableId, Option<&WalKeyRef<'_>>) -> Result<ReplayKey>,
    sink: &mut dyn FnMut(SeqNo, TableId, Bytes) -> Result<()>,
) -> Result<ReplayOutcome> {
    let mut outcome = ReplayOutcome::default();
    if data.is_empty() {
        // Created, then a crash before the header reached the disk: nothing was ever
        // acknowledged in it.
        return Ok(outcome);
    }
    if data.len() < FILE_HEADER_LEN {
        // A header cut short by a crash is a prefix of the header we would have written.
        let prefix_of =
            |version| encode_file_header_version(WAL_MAGIC, segment, version).starts_with(&data);
        if is_last && (prefix_of(WAL_FORMAT_VERSION) || prefix_of(WAL_FORMAT_V1)) {
            outcome.torn_tail = true;
            return Ok(outcome);
        }
        return Err(Error::corruption(label, 0, "segment header cut short"));
    }
    let version = check_file_header_versions(
        &data,
        WAL_MAGIC,
        segment,
        label,
        &[WAL_FORMAT_V1, WAL_FORMAT_VERSION],
    )?;
    let has_sync_points = version >= WAL_FORMAT_VERSION;
    // The header was synced before any record was written.
    let mut synced_len = FILE_HEADER_LEN as u64;
    let label_arc: Arc<str> = Arc::from(label);
    let plain = UnitOpener::plain(label_arc.clone());
    let mut tables: HashMap<TableId, TableState> = HashMap::new();
    let mut scanner = FrameScanner::new(data.clone(), is_last, label);
    scanner.set_report_damage(is_last && has_sync_points);
    loop {
        let frame = match scanner.next_frame()? {
            Scan::Record(frame) => frame,
            Scan::End => break,
            Scan::Torn => {
                outcome.torn_tail = true;
                break;
            }
            Scan::Damaged(what) => {
                check_unsynced(&data, scanner.position(), synced_len, what, label)?;
                outcome.torn_tail = true;
                break;
            }
        };
        let rtype = WalRecordType::try_from(frame.rtype).map_err(|t| {
            Error::corruption(label, frame.offset, format!("unknown WAL record type {t}"))
        })?;
        match rtype {
            WalRecordType::SyncPoint => {
                if !has_sync_points {
                    return Err(Error::corruption(
                        label,
                        frame.offset,
                        "sync point in a format-1 segment",
                    ));
                }
                let len = decode_sync_point(&frame.payload, frame.payload_offset, label)?;
                // Written only when an fsync covered more, of bytes before the record.
                if len <= synced_len || len > frame.offset {
                    return Err(Error::corruption(
                        label,
                        frame.offset,
                        format!("sync point of {len} bytes after one of {synced_len}"),
                    ));
                }
                synced_len = len;
            }
            WalRecordType::TableKey => {
                let rec = TableKeyRecord::decode(&frame.payload, frame.payload_offset, label)?;
                if tables.contains_key(&rec.table) {
                    return Err(Error::corruption(
                        label,
                        frame.offset,
                        format!("second key record for table {}", rec.table),
                    ));
                }
                let key_ref = WalKeyRef {
                    table: rec.table,
                    segment,
                    key_version: rec.key_version,
                    wrapped_dek: &rec.wrapped_dek,
                    label,
                    offset: frame.offset,
                };
                let state = match resolve_key(rec.table, Some(&key_ref))? {
                    ReplayKey::Skip => TableState::Skip,
                    ReplayKey::Plain => {
                        return Err(Error::corruption(
                            label,
                            frame.offset,
                            format!("key record for plaintext table {}", rec.table),
                        ))
                    }
                    ReplayKey::Sealed(dek) => {
                        let ctx = UnitContext {
                            table: rec.table,
                            file: segment,
                            file_kind: FileKind::Wal,
                            label: label_arc.clone(),
                        };
                        TableState::Sealed(UnitOpener::sealed(ctx, &dek))
                    }
                };
                tables.insert(rec.table, state);
            }
            WalRecordType::Batch => {
                let (seq, sections) = decode_batch(&frame.payload, frame.payload_offset, label)?;
                if outcome.last_batch_first_seq.is_some_and(|prev| seq <= prev) {
                    return Err(Error::corruption(
                        label,
                        frame.offset,
                        "batch sequence numbers do not increase",
                    ));
                }
                for s in sections {
                    let state = match tables.entry(s.table) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let state = match resolve_key(s.table, None)? {
                                ReplayKey::Skip => TableState::Skip,
                                ReplayKey::Plain => TableState::Plain,
                                ReplayKey::Sealed(_) => {
                                    return Err(Error::Integrity {
                                        file: label.to_owned(),
                                        offset: s.stored_offset,
                                    })
                                }
                            };
                            e.insert(state)
                        }
                    };
                    let payload = match state {
                        TableState::Skip => {
                            outcome.skipped_seq_bound = outcome
                                .skipped_seq_bound
                                .max(seq.0.saturating_add(frame.payload.len() as u64));
                            continue;
                        }
                        TableState::Plain => {
                            if s.sealed {
                                return Err(Error::corruption(
                                    label,
                                    s.stored_offset,
                                    format!("sealed section for plaintext table {}", s.table),
                                ));
                            }
                            plain.open(UnitKind::WalRecord, s.stored_offset, s.stored)?
                        }
                        TableState::Sealed(opener) => {
                            let integrity = || Error::Integrity {
                                file: label.to_owned(),
                                offset: s.stored_offset,
                            };
                            if !s.sealed {
                                return Err(integrity());
                            }
                            let inner =
                                opener.open(UnitKind::WalRecord, s.stored_offset, s.stored)?;
                            let inner_seq = inner
                                .get(..SEALED_SEQ_LEN)
                                .and_then(|b| <[u8; SEALED_SEQ_LEN]>::try_from(b).ok())
                                .map(u64::from_le_bytes)
                                .ok_or_else(integrity)?;
                            if inner_seq != seq.0 {
                                return Err(integrity());
                            }
                            inner.slice(SEALED_SEQ_LEN..)
                        }
                    };
                    sink(seq, s.table, payload)?;
                }
                outcome.last_batch_first_seq = Some(seq);
                outcome.batches += 1;
            }
        }
    }
    outcome.valid_len = scanner.valid_len();
    Ok(outcome)
}

/// Judges damage found at offset `at` of the last segment: a torn tail (`Ok`) only if no
/// sync point vouches for a length past `at`, neither one read before it (`synced_len`) nor
/// a whole one anywhere after it (a sync point is written after the fsync it reports, so the
/// one covering the damaged bytes always lies beyond them). Otherwise bytes an fsync made
/// durable changed: corruption, never a silent cut.
fn check_unsynced(data: &[u8], at: u64, synced_len: u64, what: &str, label: &str) -> Result<()> {
    if at < synced_len {
        return Err(Error::corruption(
            label,
            at,
            format!("{what}, inside the first {synced_len} bytes, which were synced"),
        ));
    }
    let start = usize::try_from(at).unwrap_or(usize::MAX).saturating_add(1);
    let len_field = (SYNC_POINT_LEN as u32).to_le_bytes();
    for q in start..data.len() {
        // Cheap filter first: a sync point's length field and type byte.
        if data.get(q..q + 4) != Some(&len_field[..])
            || data.get(q + 8) != Some(&(WalRecordType::SyncPoint as u8))
        {
            continue;
        }
        let Some((_, payload)) = whole_record_at(data, q) else {
            continue;
        };
        let Ok(vouched) = decode_sync_point(payload, 0, label) else {
            continue;
        };
        if vouched > at && vouched <= q as u64 {
            return Err(Error::corruption(
                label,
                at,
                format!("{what}, before a sync point at {q} saying {vouched} bytes were synced"),
            ));
        }
    }
    Ok(())
}
