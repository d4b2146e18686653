//! The properties block: counts and key range of a table (sealed with the rest).
//!
//! ```text
//! properties = entries : u64 LE || deletions : u64 LE || min_seq : u64 LE || max_seq : u64 LE
//!              || raw_key_bytes : u64 LE || raw_value_bytes : u64 LE || data_blocks : u64 LE
//!              || smallest_len : u32 LE || smallest : [u8] || largest_len : u32 LE || largest : [u8]
//! ```
//!
//! Fixed-width fields: the block is read once per open, so simplicity beats size.

use crate::coding::Cursor;
use crate::error::Result;
use crate::types::SeqNo;

/// What a table holds, summed while it was built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SstProperties {
    pub(crate) entries: u64,
    pub(crate) deletions: u64,
    pub(crate) min_seq: SeqNo,
    pub(crate) max_seq: SeqNo,
    pub(crate) raw_key_bytes: u64,
    pub(crate) raw_value_bytes: u64,
    pub(crate) data_blocks: u64,
    /// Smallest internal key (empty for an empty table).
    pub(crate) smallest: Vec<u8>,
    /// Largest internal key (empty for an empty table).
    pub(crate) largest: Vec<u8>,
}

const U64_LEN: usize = std::mem::size_of::<u64>();
const U32_LEN: usize = std::mem::size_of::<u32>();

impl SstProperties {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            7 * U64_LEN + 2 * U32_LEN + self.smallest.len() + self.largest.len(),
        );
        for v in [
            self.entries,
            self.deletions,
            self.min_seq.0,
            self.max_seq.0,
            self.raw_key_bytes,
            self.raw_value_bytes,
            self.data_blocks,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for k in [&self.smallest, &self.largest] {
            // Internal keys are at most MAX_KEY_LEN + 8 bytes, far below u32::MAX.
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
        out
    }

    /// Decodes the block stored at `offset` of `file`; a corruption error naming the field
    /// when the block is malformed (wrong length, lengths past the end, more deletions than
    /// entries).
    pub(crate) fn decode(data: &[u8], file: &str, offset: u64) -> Result<SstProperties> {
        let mut c = Cursor::new(data, offset, file);
        let p = SstProperties {
            entries: c.u64("properties: entries")?,
            deletions: c.u64("properties: deletions")?,
            min_seq: SeqNo(c.u64("properties: min_seq")?),
            max_seq: SeqNo(c.u64("properties: max_seq")?),
            raw_key_bytes: c.u64("properties: raw_key_bytes")?,
            raw_value_bytes: c.u64("properties: raw_value_bytes")?,
            data_blocks: c.u64("properties: data_blocks")?,
            smallest: c.len_prefixed("properties: smallest")?.to_vec(),
            largest: c.len_prefixed("properties: largest")?.to_vec(),
        };
        if !c.is_empty() {
            return Err(c.error("properties: trailing bytes"));
        }
        if p.deletions > p.entries {
            return Err(c.error_at(offset, "properties: more deletions than entries"));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn golden_bytes_and_round_trip() -> Result<()> {
        let p = SstProperties {
            entries: 2,
            deletions: 1,
            min_seq: SeqNo(3),
            max_seq: SeqNo(4),
            raw_key_bytes: 5,
            raw_value_bytes: 6,
            data_blocks: 1,
            smallest: b"a".to_vec(),
            largest: b"bc".to_vec(),
        };
        let b = p.encode();
        let mut want = Vec::new();
        for v in [2u64, 1, 3, 4, 5, 6, 1] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[1, 0, 0, 0, b'a', 2, 0, 0, 0, b'b', b'c']);
        assert_eq!(b, want);
        assert_eq!(SstProperties::decode(&b, "t", 9)?, p);
        for cut in 0..b.len() {
            let err = SstProperties::decode(&b[..cut], "000007.sst", 9).map(|_| ());
            assert!(
                matches!(&err, Err(Error::Corruption { file, offset, .. })
                    if file == "000007.sst" && *offset >= 9),
                "cut {cut}: {err:?}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert!(SstProperties::decode(&long, "t", 9).is_err());
        let mut lying = p.clone();
        lying.deletions = 3;
        assert!(SstProperties::decode(&lying.encode(), "t", 9).is_err());
        Ok(())
    }
}
