//! A bounds-checked little-endian reader over bytes from disk. Every read either returns
//! the value or a `Corruption` error naming the file and the absolute offset; it never
//! panics, whatever the input.

use crate::error::{Error, Result};

/// Reads fixed-width little-endian fields from a slice that starts at file offset `base`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        Ok(())
    }
}
