//! Block handles: where a block's stored bytes are in an SSTable.
//!
//! ```text
//! block handle = offset : varint64 || size : varint64      (size = stored bytes, overhead included)
//! ```

use crate::coding::{get_varint64, put_varint64};

/// Where a block's stored form is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct BlockHandle {
    /// File offset of the first stored byte; also the unit's sealing offset.
    pub(crate) offset: u64,
    /// Stored bytes: payload plus the protection overhead (CRC or GCM tag).
    pub(crate) size: u64,
}

impl BlockHandle {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        put_varint64(out, self.offset);
        put_varint64(out, self.size);
    }

    /// Decodes a handle that must fill `buf` exactly.
    pub(crate) fn decode_exact(buf: &[u8]) -> Option<BlockHandle> {
        let (offset, n) = get_varint64(buf)?;
        let (size, m) = get_varint64(buf.get(n..)?)?;
        if n + m != buf.len() {
            return None;
        }
        Some(BlockHandle { offset, size })
    }

    /// The offset one past the stored block, if it does not overflow.
    pub(crate) fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_decodes_exactly() {
        let h = BlockHandle {
            offset: 4096,
            size: 77,
        };
        let mut b = Vec::new();
        h.encode_into(&mut b);
        assert_eq!(BlockHandle::decode_exact(&b), Some(h));
        b.push(0);
        assert_eq!(BlockHandle::decode_exact(&b), None);
    }
}
