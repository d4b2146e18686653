//! The properties block: counts and key range of a table (sealed with the rest).
//!
//! ```text
//! properties = entries : u64 LE || deletions : u64 LE || min_seq : u64 LE || max_seq : u64 LE
//!              || raw_key_bytes : u64 LE || raw_value_bytes : u64 LE || data_blocks : u64 LE
//!              || smallest_len : u32 LE || smallest : [u8] || largest_len : u32 LE || largest : [u8]
//! ```
//!
//! Fixed-width fields: the block is read once per open, so simplicity beats size.

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

    /// `None` when the block is malformed (wrong length, lengths past the end).
    pub(crate) fn decode(data: &[u8]) -> Option<SstProperties> {
        let mut r = Reader(data);
        let p = SstProperties {
            entries: r.u64()?,
            deletions: r.u64()?,
            min_seq: SeqNo(r.u64()?),
            max_seq: SeqNo(r.u64()?),
            raw_key_bytes: r.u64()?,
            raw_value_bytes: r.u64()?,
            data_blocks: r.u64()?,
            smallest: r.bytes()?,
            largest: r.bytes()?,
        };
        if !r.0.is_empty() || p.deletions > p.entries {
            return None;
        }
        Some(p)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(U64_LEN)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(self.take(U32_LEN)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_and_round_trip() -> Result<(), String> {
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
        assert_eq!(SstProperties::decode(&b).ok_or("decode")?, p);
        for cut in 0..b.len() {
            assert!(SstProperties::decode(&b[..cut]).is_none());
        }
        let mut long = b.clone();
        long.push(0);
        assert!(SstProperties::decode(&long).is_none());
        Ok(())
    }
}
