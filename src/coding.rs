//! Varints (LEB128: 7 bits a byte, low groups first, high bit = "more follows") and a
//! bounds-checked reader. Decoders never panic: they return `None` on truncation or
//! overlong input, and callers turn that into `Error::Corruption` naming file and offset.

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

/// A cursor over bytes that never reads past the end: every getter returns `None` instead.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
        let (v, n) = get_varint64(self.buf.get(self.pos..)?)?;
        self.pos += n;
        Some(v)
    }

    pub(crate) fn varint_usize(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    /// A varint length followed by that many bytes.
    pub(crate) fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.varint_usize()?;
        self.bytes(n)
    }
}

/// Appends a varint length and the bytes.
pub(crate) fn put_length_prefixed(out: &mut Vec<u8>, b: &[u8]) {
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
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.varint(), Some(v));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn reader_never_panics(data: Vec<u8>) {
            let mut r = Reader::new(&data);
            while r.varint().is_some() && r.length_prefixed().is_some() {}
            let _ = r.u32();
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
        assert_eq!(Reader::new(&[0x80]).varint(), None);
    }
}
