//! The footer: a fixed-length plaintext trailer that locates everything else.
//!
//! ```text
//! footer (129 bytes) =
//!     index_offset : u64 LE  || index_size : u64 LE
//!  || filter_offset : u64 LE || filter_size : u64 LE
//!  || props_offset : u64 LE  || props_size : u64 LE
//!  || protection : u8                    0 = plain (CRC32 units), 1 = sealed (AES-256-GCM)
//!  || wrapped_dek : [u8; 60]             zeros when plain
//!  || key_version : u32 LE               0 when plain
//!  || format_version : u32 LE          1 = blocks as built; 2 = data blocks framed with a
//!                                        compression tag (compression.rs)
//!  || crc32(all of the above) : u32 LE
//!  || magic : [u8; 8] = "sealSST\x01"
//! ```
//!
//! The footer is plaintext even for a sealed table: it holds nothing secret (handles and a
//! wrapped key). Its CRC catches damage; tampering is caught downstream: every handle is
//! bound into its block's associated data (kind and offset), and the wrapped key is bound
//! to (table, file, key version), so an edited footer fails to unwrap or to open a block.

use crate::coding::Cursor;
use crate::crypto::WRAPPED_KEY_LEN;
use crate::error::{Error, Result};
use crate::sst::handle::BlockHandle;

/// The SSTable format version this code writes.
pub(crate) const TABLE_FORMAT_VERSION: u32 = 2;

/// The first format version: data blocks carry no compression tag. Still read.
pub(crate) const TABLE_FORMAT_V1: u32 = 1;

/// The last 8 bytes of every sealdb table.
pub(crate) const TABLE_MAGIC: [u8; 8] = *b"sealSST\x01";

const U64_LEN: usize = std::mem::size_of::<u64>();
const U32_LEN: usize = std::mem::size_of::<u32>();
const HANDLES_LEN: usize = 3 * 2 * U64_LEN;
const PROTECTION_AT: usize = HANDLES_LEN;
const WRAPPED_AT: usize = PROTECTION_AT + 1;
const KEY_VERSION_AT: usize = WRAPPED_AT + WRAPPED_KEY_LEN;
const FORMAT_AT: usize = KEY_VERSION_AT + U32_LEN;
const CRC_AT: usize = FORMAT_AT + U32_LEN;
const MAGIC_AT: usize = CRC_AT + U32_LEN;

/// Bytes of the footer.
pub(crate) const FOOTER_LEN: usize = MAGIC_AT + TABLE_MAGIC.len();

/// The footer's protection byte: whether the file was written under `crypto::Protection::Plain`
/// or `Sealed` (then the footer carries its wrapped data key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum ProtectionFlag {
    // on disk: never renumber
    Plain = 0,
    Sealed = 1,
}

impl TryFrom<u8> for ProtectionFlag {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            0 => Ok(ProtectionFlag::Plain),
            1 => Ok(ProtectionFlag::Sealed),
            other => Err(other),
        }
    }
}

/// What a sealed table's footer says about its data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FooterKey {
    /// The file's data key, wrapped under the table key (not secret).
    pub wrapped_dek: [u8; WRAPPED_KEY_LEN],
    /// Which generation of the table key wrapped it.
    pub key_version: u32,
}

/// A decoded footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub(crate) index: BlockHandle,
    pub(crate) filter: BlockHandle,
    pub(crate) properties: BlockHandle,
    /// `None` for a plaintext table.
    pub(crate) key: Option<FooterKey>,
    /// `TABLE_FORMAT_V1` or `TABLE_FORMAT_VERSION`.
    pub(crate) version: u32,
}

impl Footer {
    /// True when data blocks end with a compression tag (format version 2 and later).
    pub(crate) fn blocks_framed(&self) -> bool {
        self.version >= 2
    }
}

impl Footer {
    pub(crate) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut f = [0u8; FOOTER_LEN];
        let mut at = 0;
        for h in [self.index, self.filter, self.properties] {
            for v in [h.offset, h.size] {
                f[at..at + U64_LEN].copy_from_slice(&v.to_le_bytes());
                at += U64_LEN;
            }
        }
        if let Some(k) = &self.key {
            f[PROTECTION_AT] = ProtectionFlag::Sealed as u8;
            f[WRAPPED_AT..KEY_VERSION_AT].copy_from_slice(&k.wrapped_dek);
            f[KEY_VERSION_AT..FORMAT_AT].copy_from_slice(&k.key_version.to_le_bytes());
        } else {
            f[PROTECTION_AT] = ProtectionFlag::Plain as u8;
        }
        f[FORMAT_AT..CRC_AT].copy_from_slice(&self.version.to_le_bytes());
        let crc = crc32fast::hash(&f[..CRC_AT]);
        f[CRC_AT..MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
        f[MAGIC_AT..].copy_from_slice(&TABLE_MAGIC);
        f
    }

    /// Decodes the footer found at `offset` of `file`; checks magic, checksum, version,
    /// protection flag, and that every handle lies before the footer.
    pub(crate) fn decode(data: &[u8], file: &str, offset: u64) -> Result<Footer> {
        // Every refusal names the footer's own offset: the footer is checked as a whole.
        let bad = |what: &str| Error::corruption(file, offset, format!("footer: {what}"));
        if data.len() != FOOTER_LEN {
            return Err(bad("wrong length"));
        }
        let mut c = Cursor::new(data, offset, file);
        let covered = c.bytes(CRC_AT, "footer")?;
        let crc = c.u32("footer: checksum")?;
        if c.array::<{ TABLE_MAGIC.len() }>("footer: magic")? != TABLE_MAGIC {
            return Err(bad("bad magic (not a sealdb table)"));
        }
        if crc32fast::hash(covered) != crc {
            return Err(bad("checksum mismatch"));
        }
        let mut c = Cursor::new(covered, offset, file);
        let mut handles = [BlockHandle::default(); 3];
        for h in &mut handles {
            *h = BlockHandle {
                offset: c.u64("footer: handle offset")?,
                size: c.u64("footer: handle size")?,
            };
            if h.end().is_none_or(|end| end > offset) {
                return Err(bad("block handle past the footer"));
            }
        }
        let flag = c.u8("footer: protection")?;
        let wrapped_dek = c.array::<WRAPPED_KEY_LEN>("footer: wrapped key")?;
        let key_version = c.u32("footer: key version")?;
        let version = c.u32("footer: format version")?;
        if version != TABLE_FORMAT_VERSION && version != TABLE_FORMAT_V1 {
            return Err(bad(&format!("unknown format version {version}")));
        }
        let protection = ProtectionFlag::try_from(flag)
            .map_err(|p| bad(&format!("unknown protection flag {p}")))?;
        let key = match protection {
            ProtectionFlag::Plain => {
                if wrapped_dek.iter().any(|&b| b != 0) || key_version != 0 {
                    return Err(bad("key fields set in a plaintext footer"));
                }
                None
            }
            ProtectionFlag::Sealed => Some(FooterKey {
                wrapped_dek,
                key_version,
            }),
        };
        let [index, filter, properties] = handles;
        Ok(Footer {
            index,
            filter,
            properties,
            key,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: Option<FooterKey>) -> Footer {
        Footer {
            index: BlockHandle {
                offset: 10,
                size: 5,
            },
            filter: BlockHandle { offset: 0, size: 6 },
            properties: BlockHandle { offset: 6, size: 4 },
            key,
            version: TABLE_FORMAT_VERSION,
        }
    }

    #[test]
    fn golden_plain_footer() -> Result<()> {
        let f = sample(None).encode();
        assert_eq!(FOOTER_LEN, 129);
        let mut want = Vec::new();
        for v in [10u64, 5, 0, 6, 6, 4] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.push(0);
        want.extend_from_slice(&[0u8; WRAPPED_KEY_LEN]);
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        want.extend_from_slice(b"sealSST\x01");
        assert_eq!(&f[..], &want[..]);
        assert_eq!(Footer::decode(&f, "t", 15)?, sample(None));
        Ok(())
    }

    #[test]
    fn version_1_footers_are_still_read() -> Result<()> {
        let old = Footer {
            version: TABLE_FORMAT_V1,
            ..sample(None)
        };
        let f = old.encode();
        assert_eq!(&f[FORMAT_AT..CRC_AT], &1u32.to_le_bytes());
        let got = Footer::decode(&f, "t", 15)?;
        assert_eq!(got, old);
        assert!(!got.blocks_framed());
        assert!(sample(None).blocks_framed());
        Ok(())
    }

    /// Rewrites one byte and fixes the CRC, as a newer writer (or a careful forger) would.
    fn with_valid_crc(mut f: [u8; FOOTER_LEN], at: usize, v: u8) -> [u8; FOOTER_LEN] {
        f[at] = v;
        let crc = crc32fast::hash(&f[..CRC_AT]);
        f[CRC_AT..MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn unknown_version_and_flag_are_corruption_naming_file_and_offset() {
        let f = sample(None).encode();
        for (at, v, what) in [
            (FORMAT_AT, 3, "unknown format version 3"),
            (FORMAT_AT, 0, "unknown format version 0"),
            (PROTECTION_AT, 2, "unknown protection flag 2"),
            (WRAPPED_AT + 3, 1, "key fields set in a plaintext footer"),
        ] {
            match Footer::decode(&with_valid_crc(f, at, v), "000012.sst", 15) {
                Err(Error::Corruption {
                    file,
                    offset,
                    what: w,
                }) => {
                    assert_eq!((file.as_str(), offset), ("000012.sst", 15));
                    assert!(w.contains(what), "{w}");
                }
                other => panic!("expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn sealed_round_trip_and_refusals() -> Result<()> {
        let k = FooterKey {
            wrapped_dek: [7; WRAPPED_KEY_LEN],
            key_version: 3,
        };
        let f = sample(Some(k.clone())).encode();
        assert_eq!(f[PROTECTION_AT], 1);
        assert_eq!(Footer::decode(&f, "t", 15)?.key, Some(k));
        // Handles must end before the footer.
        assert!(Footer::decode(&f, "t", 14).is_err());
        for i in 0..FOOTER_LEN {
            let mut bad = f;
            bad[i] ^= 0x20;
            assert!(Footer::decode(&bad, "t", 15).is_err(), "byte {i}");
        }
        assert!(Footer::decode(&f[1..], "t", 15).is_err());
        Ok(())
    }
}
