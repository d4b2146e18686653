//! Varints (LEB128: 7 bits a byte, low groups first, high bit = "more follows"), fixed-width
//! little-endian fields, and `Cursor`, the one bounds-checked reader every decoder of bytes
//! from disk goes through. Nothing here panics on any input: the raw varint getters return
//! `None` on truncation or overlong input, and every `Cursor` read returns the value or an
//! `Error::Corruption` naming the file, the absolute offset and what failed.

use crate::error::{Error, Result};

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

/// Appends `v` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: u64) {
    put_varint64(out, v);
}

/// The one bounds-checked reader of bytes from disk: fixed-width little-endian fields and
/// varints from a slice that starts at file offset `base` of the file named `label`.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    label: &'a str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64, label: &'a str) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            base,
            label,
        }
    }

    /// Absolute file offset of the next byte to read.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Position inside the slice.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A corruption error at file offset `offset` of this cursor's file.
    pub(crate) fn error_at(&self, offset: u64, what: impl Into<String>) -> Error {
        Error::corruption(self.label, offset, what)
    }

    /// A corruption error at the current position.
    pub(crate) fn error(&self, what: impl Into<String>) -> Error {
        Error::corruption(self.label, self.offset(), what)
    }

    pub(crate) fn bytes(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error(format!("{what}: {len} bytes past the end")))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(what))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.bytes(N, what)?;
        s.try_into().map_err(|_| self.error(what))
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A varint64.
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (v, n) = get_varint64(rest).ok_or_else(|| self.error(format!("{what}: bad varint")))?;
        self.pos += n;
        Ok(v)
    }

    /// A varint that must fit a `usize` (a length).
    pub(crate) fn varint_usize(&mut self, what: &str) -> Result<usize> {
        let v = self.varint(what)?;
        usize::try_from(v).map_err(|_| self.error(format!("{what}: {v} too large")))
    }

    /// A varint length followed by that many bytes.
    pub(crate) fn varint_prefixed(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.varint_usize(what)?;
        self.bytes(len, what)
    }

    /// A `u32 LE` length followed by that many bytes.
    pub(crate) fn len_prefixed(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| self.error(what))?;
        self.bytes(len, what)
    }
}

/// Appends a `u32 LE` length and the bytes; refuses more than `u32::MAX` bytes.
pub(crate) fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| Error::InvalidArgument(format!("field of {} bytes", bytes.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends a varint length and the bytes (read back by `Cursor::varint_prefixed`).
pub(crate) fn put_varint_prefixed(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v: u64) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut c = Cursor::new(&out, 0, "f");
            prop_assert_eq!(c.varint("v").ok(), Some(v));
            prop_assert!(c.is_empty());
        }

        #[test]
        fn cursor_never_panics(data: Vec<u8>) {
            let mut c = Cursor::new(&data, 0, "f");
            while c.varint("a").is_ok() && c.varint_prefixed("b").is_ok() {}
            let _ = c.u32("c");
            let _ = c.len_prefixed("d");
        }
    }

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
    fn overlong_varint_is_corruption_at_its_offset() {
        for bad in [&[0xff; 11][..], &[0x80]] {
            let err = Cursor::new(bad, 7, "f").varint("v").map(|_| ());
            assert!(
                matches!(err, Err(Error::Corruption { offset: 7, .. })),
                "{err:?}"
            );
        }
    }

    #[test]
    fn reads_fields_and_refuses_overruns() -> Result<()> {
        let data = [1u8, 2, 0, 0, 0, 9, 9, 3, 0, 0, 0, 7, 7];
        let mut c = Cursor::new(&data, 100, "f");
        assert_eq!(c.u8("a")?, 1);
        assert_eq!(c.u32("b")?, 2);
        assert_eq!(c.offset(), 105);
        assert_eq!(c.bytes(2, "c")?, &[9, 9]);
        // Length 3 but only 2 bytes left.
        let err = c.len_prefixed("d").map(|_| ());
        assert!(
            matches!(err, Err(Error::Corruption { offset: 111, .. })),
            "{err:?}"
        );
        assert!(Cursor::new(&data, 0, "f").bytes(usize::MAX, "e").is_err());
        // A varint length of 5 with 1 byte after it.
        let err = Cursor::new(&[5, 1], 40, "f")
            .varint_prefixed("g")
            .map(|_| ());
        assert!(
            matches!(err, Err(Error::Corruption { offset: 41, .. })),
            "{err:?}"
        );
        Ok(())
    }
}
