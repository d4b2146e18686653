//! Varints and block handles: the two small encodings every SSTable block uses.
//!
//! ```text
//! varint      = LEB128: 7 bits per byte, low groups first, high bit = "more follows"
//! block handle = offset : varint64 || size : varint64      (size = stored bytes, overhead included)
//! ```
//!
//! Decoders never panic: they return `None` on truncation or overlong input, and callers
//! turn that into `Error::Corruption` naming the file and offset.

/// The longest varint64 encoding.
pub(crate) const MAX_VARINT64_LEN: usize = 10;
/// The longest varint32 encoding.
pub(crate) const MAX_VARINT32_LEN: usize = 5;

/// Appends `v` as a varint.
pub(crate) fn put_varint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint32(out: &mut Vec<u8>, v: u32) {
    put_varint64(out, u64::from(v));
}

/// Decodes a varint64 at the start of `buf`; returns it and the bytes it used.
#[inline]
pub(crate) fn get_varint64(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(MAX_VARINT64_LEN).enumerate() {
        let shift = 7 * i as u32;
        let bits = u64::from(b & 0x7f);
        // The 10th byte may only carry the top bit of a u64.
        if i == MAX_VARINT64_LEN - 1 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes a varint32 at the start of `buf`; refuses values above `u32::MAX`.
#[inline]
pub(crate) fn get_varint32(buf: &[u8]) -> Option<(u32, usize)> {
    // Fast path: one byte (lengths below 128, the common case).
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Some((u32::from(b), 1));
        }
    }
    let (v, n) = get_varint64(buf.get(..buf.len().min(MAX_VARINT32_LEN))?)?;
    Some((u32::try_from(v).ok()?, n))
}

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
    fn varint_round_trips_and_rejects_garbage() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint64(&mut b, v);
            assert_eq!(get_varint64(&b), Some((v, b.len())));
            assert!(get_varint64(&b[..b.len() - 1]).is_none());
        }
        let mut b = Vec::new();
        put_varint64(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        assert!(get_varint64(&[0xff; 11]).is_none());
        assert!(
            get_varint64(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_none()
        );
        assert!(get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_none());
        assert_eq!(
            get_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((u32::MAX, 5))
        );
    }

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
