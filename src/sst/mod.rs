//! SSTables: immutable sorted files of internal keys, every block protected through the
//! crypto seam. Format: DESIGN.md section 6; layouts atop each encoder.

mod block;
mod block_builder;
mod block_cache;
mod bloom;
mod builder;
mod compression;
mod footer;
mod handle;
mod properties;
mod reader;
mod reader_iter;

#[cfg(test)]
mod tests;

pub(crate) use block::Block;
pub(crate) use block_cache::BlockCache;
pub(crate) use bloom::BloomFilter;
pub(crate) use builder::{SstBuildOptions, SstBuilder, SstSummary};
pub use compression::Compression;
pub(crate) use footer::FooterKey;
pub(crate) use reader::SstReader;
pub(crate) use reader_iter::SstIter;

/// A whole file held in memory: for tests and fuzzing.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) struct MemFile(pub(crate) bytes::Bytes);

#[cfg(any(test, feature = "fuzzing"))]
impl crate::storage::RandomAccessFile for MemFile {
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        let start = usize::try_from(offset).ok();
        match start.and_then(|s| Some((s, s.checked_add(len)?))) {
            Some((s, e)) if e <= self.0.len() => Ok(self.0.slice(s..e)),
            _ => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Decoders exposed to the cargo-fuzz targets (and run on random bytes by the tests).
/// They must never panic.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_api {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::{Block, MemFile, SstReader};
    use crate::crypto::UnitOpener;
    use crate::iter::InternalIterator;
    use crate::types::SeqNo;

    /// Decodes `data` as a block payload and walks it every way.
    pub fn fuzz_block(data: &[u8]) {
        let Ok(block) = Block::new(Bytes::copy_from_slice(data), Arc::from("fuzz"), 0) else {
            return;
        };
        let block = Arc::new(block);
        let mut it = block.iter();
        let mut keys = Vec::new();
        let mut ok = it.seek_to_first().is_ok();
        while ok && it.valid() && keys.len() < 10_000 {
            keys.push(it.key().to_vec());
            ok = it.next().is_ok();
        }
        let mut ok = it.seek_to_last().is_ok();
        let mut n = 0;
        while ok && it.valid() && n < 10_000 {
            n += 1;
            ok = it.prev().is_ok();
        }
        for k in keys.iter().take(16) {
            let _ = it.seek(k);
            let _ = it.seek_for_prev(k);
        }
    }

    /// Opens `data` as a plaintext table file, verifies it, and reads it every way.
    pub fn fuzz_table(data: &[u8]) {
        let file = Arc::new(MemFile(Bytes::copy_from_slice(data)));
        let Ok(table) = SstReader::open(
            file,
            Arc::from("fuzz.sst"),
            0,
            |_| Ok(UnitOpener::plain(Arc::from("fuzz.sst"))),
            None,
        ) else {
            return;
        };
        let _ = table.verify();
        let mut it = table.iter();
        let mut n = 0;
        let mut ok = it.seek_to_first().is_ok();
        while ok && it.valid() && n < 100_000 {
            let _ = table.get(crate::ikey::user_key(it.key()), SeqNo::MAX);
            n += 1;
            ok = it.next().is_ok();
        }
        let mut ok = it.seek_to_last().is_ok();
        while ok && it.valid() && n < 200_000 {
            n += 1;
            ok = it.prev().is_ok();
        }
    }
}

/// Components the criterion benches time directly (`bench-internals` feature only).
#[cfg(feature = "bench-internals")]
pub(crate) mod bench_hooks {
    pub(crate) use super::block_builder::BlockBuilder;
    pub(crate) use super::bloom::BloomBuilder;
    pub(crate) use super::bloom::BloomFilter;
}
