//! WAL record payloads: the per-table key record, the batch record and the sync point.
//!
//! ```text
//! TableKey payload (68 bytes):
//!   table        : u32 LE
//!   key_version  : u32 LE    generation of the table key that wrapped the DEK
//!   wrapped_dek  : [u8; 60]  wrap_data_key(table_key, dek, (table, Wal, segment, key_version))
//!
//! Batch payload:
//!   first_seq    : u64 LE    sequence number of the batch's first entry
//!   section*     : until the end of the payload, at least one:
//!     table      : u32 LE
//!     flags      : u8        bit 0 = sealed; other bits must be zero
//!     stored_len : u32 LE
//!     stored     : [u8; stored_len]   a unit (crypto::unit) of kind WalRecord sealed at
//!                                     the absolute file offset of its first byte:
//!                  plain:  payload || crc32 : u32 LE
//!                  sealed: AES-256-GCM(first_seq : u64 LE || payload) || tag : [u8; 16]
//!
//! SyncPoint payload (8 bytes, segment format 2):
//!   synced_len   : u64 LE    bytes of this segment (header included) that an fsync had
//!                            made durable before this record was encoded
//! ```
//!
//! A sealed section repeats `first_seq` inside its ciphertext so that the plaintext frame's
//! sequence number cannot be changed without failing authentication.
//!
//! A sync point lets recovery tell a page torn after the last sync (forgiven: nothing there
//! was acknowledged as durable) from damage to bytes an fsync had made durable (refused).

use bytes::Bytes;

use crate::coding::Cursor;
use crate::crypto::WRAPPED_KEY_LEN;
use crate::error::Result;
use crate::types::{SeqNo, TableId};

/// Magic at the start of every WAL segment.
pub(crate) const WAL_MAGIC: &[u8; 8] = b"SEALWAL\0";

/// Segment format 1: no sync points; any damaged complete record is corruption.
pub(crate) const WAL_FORMAT_V1: u8 = 1;
/// The segment format written: format 1 plus `SyncPoint` records.
pub(crate) const WAL_FORMAT_VERSION: u8 = 2;

/// Bytes of a `SyncPoint` payload.
pub(crate) const SYNC_POINT_LEN: usize = std::mem::size_of::<u64>();

/// The kinds of WAL record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum WalRecordType {
    // on disk: never renumber
    TableKey = 1,
    Batch = 2,
    /// Segment format 2 only.
    SyncPoint = 3,
}

impl TryFrom<u8> for WalRecordType {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(WalRecordType::TableKey),
            2 => Ok(WalRecordType::Batch),
            3 => Ok(WalRecordType::SyncPoint),
            other => Err(other),
        }
    }
}

/// Section flag: the stored bytes are AES-256-GCM sealed (else CRC32-protected plaintext).
pub(crate) const SECTION_SEALED: u8 = 0x01;
/// Bytes of the sequence number repeated inside a sealed section.
pub(crate) const SEALED_SEQ_LEN: usize = std::mem::size_of::<u64>();

/// A table's data key for one segment, wrapped under its table key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct TableKeyRecord {
    pub(crate) table: TableId,
    pub(crate) key_version: u32,
    pub(crate) wrapped_dek: [u8; WRAPPED_KEY_LEN],
}

impl TableKeyRecord {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.table.0.to_le_bytes());
        out.extend_from_slice(&self.key_version.to_le_bytes());
        out.extend_from_slice(&self.wrapped_dek);
    }

    pub(crate) fn decode(payload: &[u8], offset: u64, label: &str) -> Result<TableKeyRecord> {
        let mut c = Cursor::new(payload, offset, label);
        let table = TableId(c.u32("table id")?);
        let key_version = c.u32("key version")?;
        let wrapped_dek = c.array("wrapped data key")?;
        if !c.is_empty() {
            return Err(c.error("trailing bytes after a table key record"));
        }
        Ok(TableKeyRecord {
            table,
            key_version,
            wrapped_dek,
        })
    }
}

/// Decodes a `SyncPoint` payload: the segment length an fsync had made durable.
pub(crate) fn decode_sync_point(payload: &[u8], offset: u64, label: &str) -> Result<u64> {
    let mut c = Cursor::new(payload, offset, label);
    let synced_len = c.u64("synced length")?;
    if !c.is_empty() {
        return Err(c.error("trailing bytes after a sync point"));
    }
    Ok(synced_len)
}

/// One section of a batch record, as found on disk.
#[derive(Debug)]
pub(crate) struct SectionRef {
    pub(crate) table: TableId,
    pub(crate) sealed: bool,
    /// File offset of the first stored byte: the unit's offset for sealing.
    pub(crate) stored_offset: u64,
    pub(crate) stored: Bytes,
}

/// Decodes a batch payload found at file offset `offset`.
pub(crate) fn decode_batch(
    payload: &Bytes,
    offset: u64,
    label: &str,
) -> Result<(SeqNo, Vec<SectionRef>)> {
    let mut c = Cursor::new(payload, offset, label);
    let first_seq = SeqNo(c.u64("batch sequence number")?);
    if first_seq > SeqNo::MAX {
        return Err(c.error("batch sequence number out of range"));
    }
    let mut sections = Vec::new();
    while !c.is_empty() {
        let table = TableId(c.u32("section table id")?);
        let flags = c.u8("section flags")?;
        if flags & !SECTION_SEALED != 0 {
            return Err(c.error(format!("unknown section flags {flags:#04x}")));
        }
        let stored_offset = c.offset() + std::mem::size_of::<u32>() as u64;
        let stored = c.len_prefixed("section bytes")?;
        let start = c.position() - stored.len();
        sections.push(SectionRef {
            table,
            sealed: flags & SECTION_SEALED != 0,
            stored_offset,
            stored: payload.slice(start..start + stored.len()),
        });
    }
    if sections.is_empty() {
        return Err(c.error("batch record without sections"));
    }
    Ok((first_seq, sections))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of a TableKey payload.
    const TABLE_KEY_PAYLOAD_LEN: usize = 4 + 4 + WRAPPED_KEY_LEN;

    #[test]
    fn record_types_are_frozen() {
        assert_eq!(WalRecordType::TableKey as u8, 1);
        assert_eq!(WalRecordType::Batch as u8, 2);
        assert_eq!(WalRecordType::SyncPoint as u8, 3);
        assert_eq!(WalRecordType::try_from(2), Ok(WalRecordType::Batch));
        assert_eq!(WalRecordType::try_from(3), Ok(WalRecordType::SyncPoint));
        assert_eq!(WalRecordType::try_from(4), Err(4));
    }

    #[test]
    fn table_key_record_round_trip() -> Result<()> {
        let r = TableKeyRecord {
            table: TableId(7),
            key_version: 2,
            wrapped_dek: [0xEE; WRAPPED_KEY_LEN],
        };
        let mut out = Vec::new();
        r.encode(&mut out);
        assert_eq!(out.len(), TABLE_KEY_PAYLOAD_LEN);
        assert_eq!(TableKeyRecord::decode(&out, 0, "f")?, r);
        assert!(TableKeyRecord::decode(&out[..out.len() - 1], 0, "f").is_err());
        out.push(0);
        assert!(TableKeyRecord::decode(&out, 0, "f").is_err());
        Ok(())
    }

    #[test]
    fn sync_point_is_exactly_one_length() -> Result<()> {
        assert_eq!(decode_sync_point(&4096u64.to_le_bytes(), 0, "f")?, 4096);
        assert!(decode_sync_point(&[0; SYNC_POINT_LEN - 1], 0, "f").is_err());
        assert!(decode_sync_point(&[0; SYNC_POINT_LEN + 1], 0, "f").is_err());
        Ok(())
    }

    #[test]
    fn batch_decoder_refuses_bad_input() {
        let label = "f";
        // No sections.
        let p = Bytes::from(5u64.to_le_bytes().to_vec());
        assert!(decode_batch(&p, 0, label).is_err());
        // Unknown flag bit.
        let mut v = 5u64.to_le_bytes().to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.push(0x02);
        v.extend_from_slice(&0u32.to_le_bytes());
        assert!(decode_batch(&Bytes::from(v), 0, label).is_err());
        // Section length past the end.
        let mut v = 5u64.to_le_bytes().to_vec();
        v.extend_from_slice(&1u32.to_le_bytes());
        v.push(0);
        v.extend_from_slice(&10u32.to_le_bytes());
        v.extend_from_slice(b"abc");
        assert!(decode_batch(&Bytes::from(v), 0, label).is_err());
    }
}
