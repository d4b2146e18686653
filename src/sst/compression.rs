//! Per-block compression of data blocks, applied before sealing.
//!
//! ```text
//! framed data block (the payload handed to UnitSealer::seal), table format version >= 2:
//!   tag 0 (None) = block : [u8]                                        || 0x00 : u8
//!   tag 1 (Lz4)  = raw_len : u32 LE || lz4_block(block) : [u8]        || 0x01 : u8
//! block   = the data block format of block.rs
//! raw_len = bytes of `block` before compression (at most MAX_BLOCK_LEN)
//! ```
//!
//! The tag is at the end so that an uncompressed block is read zero-copy: a slice of the
//! opened unit without its last byte. The tag is per block, not per file, because a block
//! that does not shrink by at least 1/8 is stored as is: the reader never assumes.
//! Version 1 tables have no tag at all (every block plain); see `footer.rs`.

use bytes::Bytes;

use crate::error::{Error, Result};

/// Largest decoded block the reader accepts (and the writer compresses): the bound on
/// memory allocated from a length read off disk.
pub(crate) const MAX_BLOCK_LEN: usize = 64 << 20;

const RAW_LEN_LEN: usize = std::mem::size_of::<u32>();

/// How a table's data blocks are compressed before they are sealed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    // on disk: never renumber
    /// Blocks are stored as built.
    #[default]
    None = 0,
    /// LZ4 block format (`lz4_flex`), when it saves at least 1/8 of a block.
    Lz4 = 1,
}

impl TryFrom<u8> for Compression {
    type Error = u8;
    fn try_from(v: u8) -> std::result::Result<Self, u8> {
        match v {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            other => Err(other),
        }
    }
}

/// Frames `block` for storage into `out` (cleared first), compressed with `compression`
/// when that saves at least 1/8; `scratch` is reused between calls.
pub(crate) fn frame_block(
    block: &[u8],
    compression: Compression,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    out.clear();
    if compression == Compression::Lz4 && block.len() <= MAX_BLOCK_LEN {
        scratch.clear();
        scratch.resize(lz4_flex::block::get_maximum_output_size(block.len()), 0);
        if let Ok(n) = lz4_flex::block::compress_into(block, scratch) {
            let framed = RAW_LEN_LEN + n + 1;
            if framed <= block.len() - block.len() / 8 {
                // MAX_BLOCK_LEN < u32::MAX: the length always fits.
                out.extend_from_slice(&(block.len() as u32).to_le_bytes());
                out.extend_from_slice(&scratch[..n]);
                out.push(Compression::Lz4 as u8);
                return;
            }
        }
    }
    out.extend_from_slice(block);
    out.push(Compression::None as u8);
}

/// Decodes a framed data block read at `offset` of `file`: zero-copy when it was stored
/// uncompressed. Never allocates more than `MAX_BLOCK_LEN` from the declared length.
pub(crate) fn unframe_block(framed: Bytes, file: &str, offset: u64) -> Result<Bytes> {
    let bad = |what: String| Error::corruption(file, offset, format!("data block: {what}"));
    let Some((&tag, body)) = framed.split_last() else {
        return Err(bad("empty, no compression tag".into()));
    };
    let tag = Compression::try_from(tag).map_err(|t| bad(format!("unknown compression {t}")))?;
    match tag {
        Compression::None => Ok(framed.slice(..body.len())),
        Compression::Lz4 => {
            let (len, compressed) = body
                .split_first_chunk::<RAW_LEN_LEN>()
                .ok_or_else(|| bad("lz4 block shorter than its length".into()))?;
            let raw_len = u32::from_le_bytes(*len) as usize;
            if raw_len > MAX_BLOCK_LEN {
                return Err(bad(format!("lz4 block declares {raw_len} bytes")));
            }
            // LZ4 expands at most ~255x: a short input cannot declare a huge output.
            if raw_len / 255 > compressed.len() + 16 {
                return Err(bad("lz4 length out of proportion".into()));
            }
            let mut raw = vec![0u8; raw_len];
            match lz4_flex::block::decompress_into(compressed, &mut raw) {
                Ok(n) if n == raw_len => Ok(Bytes::from(raw)),
                Ok(n) => Err(bad(format!("lz4 block is {n} bytes, declared {raw_len}"))),
                Err(e) => Err(bad(format!("lz4: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(block: &[u8], c: Compression) -> Vec<u8> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        frame_block(block, c, &mut scratch, &mut out);
        out
    }

    #[test]
    fn tags_are_frozen() {
        for t in 0..=1u8 {
            assert_eq!(Compression::try_from(t).map(|c| c as u8), Ok(t));
        }
        assert_eq!(Compression::try_from(2), Err(2));
        assert_eq!(Compression::default(), Compression::None);
    }

    #[test]
    fn golden_compressed_block() -> Result<()> {
        let block = [b'a'; 32];
        let framed = frame(&block, Compression::Lz4);
        // raw_len 32 || lz4 sequence: token 0x1f (1 literal, match length 4 + 15 + ext),
        // literal 'a', offset 1 LE, ext 6 (25 bytes copied) || last sequence: token 0x60
        // (6 literals, no match), "aaaaaa" || tag 1 (Lz4)
        let want = "20000000 1f 61 0100 06 60 616161616161 01";
        let want: String = want.split_whitespace().collect();
        assert_eq!(hex::encode(&framed), want);
        assert_eq!(unframe_block(Bytes::from(framed), "t", 0)?, &block[..]);
        Ok(())
    }

    #[test]
    fn golden_uncompressed_block_and_zero_copy() -> Result<()> {
        let framed = Bytes::from(frame(b"abc", Compression::Lz4));
        assert_eq!(&framed[..], b"abc\x00");
        let raw = unframe_block(framed.clone(), "t", 0)?;
        assert_eq!(&raw[..], b"abc");
        assert_eq!(raw.as_ptr(), framed.as_ptr());
        assert_eq!(
            frame(&[b'a'; 64], Compression::None),
            [&[b'a'; 64][..], &[0]].concat()
        );
        Ok(())
    }

    #[test]
    fn compresses_only_when_it_saves_an_eighth() -> Result<()> {
        // Random bytes do not compress: stored plain.
        use rand::{RngCore, SeedableRng};
        let mut noise = vec![0u8; 4096];
        rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut noise);
        let f = frame(&noise, Compression::Lz4);
        assert_eq!(f.last(), Some(&0));
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(100);
        let f = frame(&text, Compression::Lz4);
        assert_eq!(f.last(), Some(&1));
        assert!(f.len() <= text.len() - text.len() / 8);
        assert_eq!(unframe_block(Bytes::from(f), "t", 0)?, &text[..]);
        Ok(())
    }

    #[test]
    fn the_most_compressible_blocks_pass_the_ratio_bound() -> Result<()> {
        for len in [64usize, 300, 4096, 1 << 20] {
            let zeros = vec![0u8; len];
            let f = frame(&zeros, Compression::Lz4);
            assert_eq!(f.last(), Some(&1), "{len}");
            assert_eq!(unframe_block(Bytes::from(f), "t", 0)?, &zeros[..]);
        }
        Ok(())
    }

    #[test]
    fn bad_frames_are_corruption_not_panics() {
        let good = frame(&b"0123456789".repeat(50), Compression::Lz4);
        assert_eq!(good.last(), Some(&1));
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1],
            vec![0, 0, 1],
            vec![2],
            good[..good.len() - 2].iter().chain(&[1]).copied().collect(),
        ];
        // Declared lengths: above the cap, above the real size, below it.
        for len in [u32::MAX, (MAX_BLOCK_LEN + 1) as u32, 501, 499] {
            let mut b = good.clone();
            b[..4].copy_from_slice(&len.to_le_bytes());
            cases.push(b);
        }
        // A tiny input declaring 64 MiB is refused before allocating.
        let mut huge = (MAX_BLOCK_LEN as u32).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0xff, 0, 1]);
        cases.push(huge);
        for (i, c) in cases.into_iter().enumerate() {
            match unframe_block(Bytes::from(c), "f.sst", 7) {
                Err(Error::Corruption { file, offset, .. }) => {
                    assert_eq!((file.as_str(), offset), ("f.sst", 7), "case {i}")
                }
                other => panic!("case {i}: expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn random_frames_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = frame(&b"hello hello hello hello ".repeat(40), Compression::Lz4);
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= rng.gen_range(1..=255u8);
            }
            let _ = unframe_block(Bytes::from(b), "t", 0);
        }
    }
}
