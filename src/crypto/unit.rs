//! The one place where persisted units (SSTable blocks, WAL records) are protected.
//!
//! A unit as stored on disk:
//!
//! ```text
//! plaintext table:  payload || crc32(unit_kind || payload) : u32 LE        (overhead 4)
//! encrypted table:  AES-256-GCM(payload) || tag : [u8; 16]                 (overhead 16)
//!                   nonce = 0u32 LE || offset : u64 LE
//!                   aad   = FORMAT_VERSION : u8 || table : u32 LE || file : u64 LE
//!                           || file_kind : u8 || unit_kind : u8 || offset : u64 LE
//! ```
//!
//! Nonce uniqueness: every file has its own fresh data key, and within a file the sealer
//! refuses any offset not strictly greater than the last one it sealed at. Units never
//! overlap, so no (key, nonce) pair is used twice. Files are never appended to after a
//! reopen (a new WAL segment is started instead), so the sealer's state is complete.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::aead::{AeadKey, BACKEND};
use super::{DataKey, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::types::{FileNumber, TableId};

/// The version of every encrypted format; part of every unit's associated data.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Decrypt buffers are allocated in multiples of this many bytes, so that a recycled one
/// fits most later units of about the same size (data blocks run a little past their
/// target size, by at most one entry).
pub(crate) const BUFFER_GRANULE: usize = 256;

/// The capacity to allocate for a decrypt buffer of a `len`-byte unit: `len` rounded up to
/// [`BUFFER_GRANULE`], so at most `BUFFER_GRANULE - 1` bytes more than the unit needs.
pub(crate) fn buffer_capacity(len: usize) -> usize {
    len.div_ceil(BUFFER_GRANULE).saturating_mul(BUFFER_GRANULE)
}

/// Which kind of file a unit lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FileKind {
    // on disk: never renumber
    Wal = 1,
    Sst = 2,
    Manifest = 3,
}

impl TryFrom<u8> for FileKind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(FileKind::Wal),
            2 => Ok(FileKind::Sst),
            3 => Ok(FileKind::Manifest),
            other => Err(other),
        }
    }
}

/// What a unit holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum UnitKind {
    // on disk: never renumber
    Data = 1,
    Index = 2,
    Filter = 3,
    Properties = 4,
    WalRecord = 5,
    Boundary = 6,
}

impl TryFrom<u8> for UnitKind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(UnitKind::Data),
            2 => Ok(UnitKind::Index),
            3 => Ok(UnitKind::Filter),
            4 => Ok(UnitKind::Properties),
            5 => Ok(UnitKind::WalRecord),
            6 => Ok(UnitKind::Boundary),
            other => Err(other),
        }
    }
}

/// Where units are: bound into every unit's associated data.
#[derive(Clone, Debug)]
pub(crate) struct UnitContext {
    pub(crate) table: TableId,
    pub(crate) file: FileNumber,
    pub(crate) file_kind: FileKind,
    /// The file's name, for error messages.
    pub(crate) label: Arc<str>,
}

const AAD_LEN: usize = 1 + 4 + 8 + 1 + 1 + 8;

impl UnitContext {
    fn aad(&self, kind: UnitKind, offset: u64) -> [u8; AAD_LEN] {
        let mut a = [0u8; AAD_LEN];
        a[0] = FORMAT_VERSION;
        a[1..5].copy_from_slice(&self.table.0.to_le_bytes());
        a[5..13].copy_from_slice(&self.file.0.to_le_bytes());
        a[13] = self.file_kind as u8;
        a[14] = kind as u8;
        a[15..23].copy_from_slice(&offset.to_le_bytes());
        a
    }
}

fn nonce_for(offset: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&offset.to_le_bytes());
    n
}

fn crc_of(kind: UnitKind, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind as u8]);
    h.update(payload);
    h.finalize()
}

/// Seals the units of one file being written. Consumed with the file's writer.
pub(crate) enum UnitSealer {
    Plain,
    Sealed {
        ctx: UnitContext,
        cipher: AeadKey,
        /// The smallest offset the next unit may be sealed at.
        next_offset: u64,
    },
}

impl fmt::Debug for UnitSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitSealer::Plain => f.write_str("UnitSealer::Plain"),
            UnitSealer::Sealed { ctx, .. } => {
                write!(
                    f,
                    "UnitSealer::Sealed(AES-256-GCM, {BACKEND}, {})",
                    ctx.label
                )
            }
        }
    }
}

impl UnitSealer {
    /// A plaintext table's file: CRC32 on every unit.
    pub(crate) fn plain() -> UnitSealer {
        UnitSealer::Plain
    }

    /// An encrypted table's file, under that file's own fresh data key.
    pub(crate) fn sealed(ctx: UnitContext, dek: &DataKey) -> UnitSealer {
        UnitSealer::Sealed {
            ctx,
            cipher: dek.cipher(),
            next_offset: 0,
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, UnitSealer::Sealed { .. })
    }

    /// Bytes a stored unit has beyond its payload.
    pub(crate) fn overhead(&self) -> usize {
        match self {
            UnitSealer::Plain => std::mem::size_of::<u32>(),
            UnitSealer::Sealed { .. } => TAG_LEN,
        }
    }

    /// Appends the stored form of `payload`, to be written at file offset `offset`, to `out`.
    pub(crate) fn seal(
        &mut self,
        kind: UnitKind,
        offset: u64,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match self {
            UnitSealer::Plain => {
                out.extend_from_slice(payload);
                out.extend_from_slice(&crc_of(kind, payload).to_le_bytes());
                Ok(())
            }
            UnitSealer::Sealed {
                ctx,
                cipher,
                next_offset,
            } => {
                if offset < *next_offset {
                    // A repeated offset would repeat a nonce under this key: refuse.
                    return Err(Error::Internal(format!(
                        "unit sealed at offset {offset} of {} below {}",
                        ctx.label, next_offset
                    )));
                }
                let start = out.len();
                out.extend_from_slice(payload);
                let tag = cipher
                    .seal_in_place(
                        &nonce_for(offset),
                        &ctx.aad(kind, offset),
                        &mut out[start..],
                    )
                    .map_err(|_| Error::InvalidArgument("unit too large to seal".into()))?;
                out.extend_from_slice(&tag);
                *next_offset = offset
                    .checked_add(payload.len() as u64 + TAG_LEN as u64)
                    .ok_or_else(|| Error::InvalidArgument("file offset overflow".into()))?;
                Ok(())
            }
        }
    }
}

/// Opens the units of one file being read.
pub(crate) enum UnitOpener {
    Plain { label: Arc<str> },
    Sealed { ctx: UnitContext, cipher: AeadKey },
}

impl fmt::Debug for UnitOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitOpener::Plain { label } => write!(f, "UnitOpener::Plain({label})"),
            UnitOpener::Sealed { ctx, .. } => {
                write!(
                    f,
                    "UnitOpener::Sealed(AES-256-GCM, {BACKEND}, {})",
                    ctx.label
                )
            }
        }
    }
}

impl UnitOpener {
    pub(crate) fn plain(label: Arc<str>) -> UnitOpener {
        UnitOpener::Plain { label }
    }

    pub(crate) fn sealed(ctx: UnitContext, dek: &DataKey) -> UnitOpener {
        UnitOpener::Sealed {
            ctx,
            cipher: dek.cipher(),
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self, UnitOpener::Sealed { .. })
    }

    pub(crate) fn overhead(&self) -> usize {
        match self {
            UnitOpener::Plain { .. } => std::mem::size_of::<u32>(),
            UnitOpener::Sealed { .. } => TAG_LEN,
        }
    }

    /// The file's name, for error messages.
    pub(crate) fn label(&self) -> &str {
        match self {
            UnitOpener::Plain { label } => label,
            UnitOpener::Sealed { ctx, .. } => &ctx.label,
        }
    }

    /// Checks and opens a unit stored at `offset`; returns its payload.
    pub(crate) fn open(&self, kind: UnitKind, offset: u64, stored: Bytes) -> Result<Bytes> {
        self.open_with(kind, offset, stored, BytesMut::new)
    }

    /// Like [`UnitOpener::open`], with the buffer a sealed unit is decrypted into coming
    /// from `buffer()`: a recycled one (a block cache's spare: its old bytes are
    /// overwritten, never read), or an empty one. The ciphertext is decrypted straight from
    /// `stored` (the memory map) into it: no other copy. This is the one place decrypt
    /// buffers are sized: one too short for the unit (an empty one included) is replaced by
    /// a new one of [`buffer_capacity`]. A plaintext unit is a zero-copy slice of `stored`
    /// and asks for no buffer.
    pub(crate) fn open_with(
        &self,
        kind: UnitKind,
        offset: u64,
        stored: Bytes,
        buffer: impl FnOnce() -> BytesMut,
    ) -> Result<Bytes> {
        match self {
            UnitOpener::Plain { label } => {
                let body_len = stored
                    .len()
                    .checked_sub(std::mem::size_of::<u32>())
                    .ok_or_else(|| {
                        Error::corruption(
                            &**label,
                            offset,
                            format!("{kind:?} unit shorter than its checksum"),
                        )
                    })?;
                let (body, crc) = stored.split_at(body_len);
                let expected = u32::from_le_bytes(
                    crc.try_into()
                        .map_err(|_| Error::corruption(&**label, offset, "checksum field"))?,
                );
                if crc_of(kind, body) != expected {
                    return Err(Error::corruption(
                        &**label,
                        offset,
                        format!("{kind:?} unit checksum mismatch"),
                    ));
                }
                Ok(stored.slice(..body_len))
            }
            UnitOpener::Sealed { ctx, cipher } => {
                let integrity = || Error::Integrity {
                    file: ctx.label.to_string(),
                    offset,
                };
                let body_len = stored.len().checked_sub(TAG_LEN).ok_or_else(integrity)?;
                let (body, tag) = stored.split_at(body_len);
                let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| integrity())?;
                let mut buf = buffer();
                if buf.capacity() < body_len {
                    // No spare, or one too short for this unit. Growing a short one would
                    // double its capacity (amortized growth), and a block cache whose
                    // buffers had all grown so would hold about twice what it charges.
                    buf = BytesMut::with_capacity(buffer_capacity(body_len));
                }
                // Shrinks without touching the bytes, or zero-fills up to the unit's length
                // within the capacity: no reallocation.
                buf.resize(body_len, 0);
                cipher
                    .open_into(
                        &nonce_for(offset),
                        &ctx.aad(kind, offset),
                        body,
                        tag,
                        &mut buf,
                    )
                    .map_err(|_| integrity())?;
                Ok(buf.freeze())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(table: u32, file: u64) -> UnitContext {
        UnitContext {
            table: TableId(table),
            file: FileNumber(file),
            file_kind: FileKind::Sst,
            label: Arc::from("000001.sst"),
        }
    }

    #[test]
    fn sealed_round_trip_and_binding() -> Result<()> {
        let dek = DataKey::generate();
        let mut s = UnitSealer::sealed(ctx(1, 7), &dek);
        let mut out = Vec::new();
        s.seal(UnitKind::Data, 0, b"block one", &mut out)?;
        let first_len = out.len();
        s.seal(UnitKind::Data, first_len as u64, b"block two", &mut out)?;
        let o = UnitOpener::sealed(ctx(1, 7), &dek);
        let all = Bytes::from(out);
        assert_eq!(
            &o.open(UnitKind::Data, 0, all.slice(..first_len))?[..],
            b"block one"
        );
        assert_eq!(
            &o.open(UnitKind::Data, first_len as u64, all.slice(first_len..))?[..],
            b"block two"
        );
        // Moved, re-kinded, or from another file / table: all fail.
        assert!(o.open(UnitKind::Data, 1, all.slice(..first_len)).is_err());
        assert!(o.open(UnitKind::Index, 0, all.slice(..first_len)).is_err());
        assert!(UnitOpener::sealed(ctx(1, 8), &dek)
            .open(UnitKind::Data, 0, all.slice(..first_len))
            .is_err());
        assert!(UnitOpener::sealed(ctx(2, 7), &dek)
            .open(UnitKind::Data, 0, all.slice(..first_len))
            .is_err());
        assert!(o.open(UnitKind::Data, 0, all.slice(..3)).is_err());
        Ok(())
    }

    /// A recycled buffer shorter than the unit is replaced by one of the unit's rounded
    /// size, not grown: growth would double it, and a block cache of such buffers would
    /// hold twice what it charges. One long enough is used as it is.
    #[test]
    fn a_short_recycled_buffer_is_replaced_not_doubled() -> Result<()> {
        let dek = DataKey::generate();
        let payload = vec![7u8; 4200];
        let mut out = Vec::new();
        UnitSealer::sealed(ctx(1, 3), &dek).seal(UnitKind::Data, 0, &payload, &mut out)?;
        let o = UnitOpener::sealed(ctx(1, 3), &dek);
        let stored = Bytes::from(out);
        let opened = o.open_with(UnitKind::Data, 0, stored.clone(), || {
            BytesMut::with_capacity(4100)
        })?;
        assert_eq!(&opened[..], &payload[..]);
        let capacity = |b: Bytes| b.try_into_mut().map(|m| m.capacity()).ok();
        assert_eq!(capacity(opened), Some(buffer_capacity(4200)));
        assert_eq!(buffer_capacity(4200), 4352);
        let opened = o.open_with(UnitKind::Data, 0, stored, || BytesMut::with_capacity(8000))?;
        assert_eq!(&opened[..], &payload[..]);
        assert_eq!(capacity(opened), Some(8000));
        assert_eq!(
            (
                buffer_capacity(0),
                buffer_capacity(256),
                buffer_capacity(257)
            ),
            (0, 256, 512)
        );
        Ok(())
    }

    #[test]
    fn sealer_refuses_to_reuse_an_offset() -> Result<()> {
        let dek = DataKey::generate();
        let mut s = UnitSealer::sealed(ctx(1, 1), &dek);
        let mut out = Vec::new();
        s.seal(UnitKind::Data, 100, b"x", &mut out)?;
        assert!(s.seal(UnitKind::Data, 100, b"y", &mut out).is_err());
        assert!(s.seal(UnitKind::Data, 117, b"y", &mut out).is_ok());
        Ok(())
    }

    #[test]
    fn plain_detects_every_flipped_bit() -> Result<()> {
        let mut out = Vec::new();
        UnitSealer::plain().seal(UnitKind::Index, 0, b"some index bytes", &mut out)?;
        let o = UnitOpener::plain(Arc::from("f"));
        assert_eq!(
            &o.open(UnitKind::Index, 0, Bytes::from(out.clone()))?[..],
            b"some index bytes"
        );
        for i in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(o
                .open(UnitKind::Index, 0, Bytes::from(bad))
                .unwrap_err()
                .is_integrity_failure());
        }
        Ok(())
    }

    /// Pinned with the RustCrypto `aes-gcm` backend (commit d29aef8): every backend must
    /// produce these bytes, so files written by one open with any other.
    const KAT_SEALED_UNIT: &str =
        "783d36bf8413beb61a24f65e5355977d5a884df0c633a4a2f047dec2e4c8b33026b6d77b";

    #[test]
    fn sealed_unit_known_answer() -> Result<()> {
        let dek = DataKey::from_bytes([0x11; 32]);
        let mut s = UnitSealer::sealed(ctx(3, 7), &dek);
        let mut out = Vec::new();
        s.seal(UnitKind::Data, 4096, b"known answer payload", &mut out)?;
        assert_eq!(hex::encode(&out), KAT_SEALED_UNIT);
        let o = UnitOpener::sealed(ctx(3, 7), &dek);
        assert_eq!(
            &o.open(UnitKind::Data, 4096, Bytes::from(out))?[..],
            b"known answer payload"
        );
        Ok(())
    }

    #[test]
    fn open_with_overwrites_a_recycled_buffer_of_any_length() -> Result<()> {
        let dek = DataKey::generate();
        let mut s = UnitSealer::sealed(ctx(1, 7), &dek);
        let mut out = Vec::new();
        s.seal(UnitKind::Data, 0, b"the payload", &mut out)?;
        let stored = Bytes::from(out);
        let o = UnitOpener::sealed(ctx(1, 7), &dek);
        for stale in [0usize, 3, 11, 4096] {
            let opened = o.open_with(UnitKind::Data, 0, stored.clone(), || {
                BytesMut::from(&vec![0xEE; stale][..])
            })?;
            assert_eq!(&opened[..], b"the payload", "stale buffer of {stale} bytes");
        }
        // A plaintext unit asks for no buffer.
        let mut plain = Vec::new();
        UnitSealer::plain().seal(UnitKind::Data, 0, b"p", &mut plain)?;
        let opened = UnitOpener::plain(Arc::from("f")).open_with(
            UnitKind::Data,
            0,
            Bytes::from(plain),
            || unreachable!("plaintext units are slices of what was read"),
        )?;
        assert_eq!(&opened[..], b"p");
        Ok(())
    }

    #[test]
    fn sealed_ciphertext_hides_payload() -> Result<()> {
        let dek = DataKey::generate();
        let mut s = UnitSealer::sealed(ctx(1, 1), &dek);
        let mut out = Vec::new();
        s.seal(UnitKind::Data, 0, b"MARKER-1234567890", &mut out)?;
        assert!(!out.windows(6).any(|w| w == b"MARKER"));
        Ok(())
    }
}
