//! Reads one SSTable: footer, then index, filter and properties eagerly; data blocks on
//! demand through the block cache.

use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::{UnitKind, UnitOpener};
use crate::error::{Error, Result};
use crate::ikey;
use crate::iter::InternalIterator;
use crate::sst::block::{Block, BlockIter};
use crate::sst::block_cache::BlockCache;
use crate::sst::bloom::BloomFilter;
use crate::sst::compression::unframe_block;
use crate::sst::footer::{Footer, FooterKey, FOOTER_LEN};
use crate::sst::handle::BlockHandle;
use crate::sst::properties::SstProperties;
use crate::sst::reader_iter::SstIter;
use crate::storage::RandomAccessFile;
use crate::types::{SeqNo, ValueKind};

thread_local! {
    /// A key buffer recycled by point reads on this thread.
    static KEY_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// An open table. Shared by readers as `Arc<SstReader>`.
pub(crate) struct SstReader {
    file: Arc<dyn RandomAccessFile>,
    label: Arc<str>,
    /// The block cache key of this file: unique per opened file in the process.
    id: u64,
    opener: UnitOpener,
    cache: Option<Arc<BlockCache>>,
    pub(crate) index: Arc<Block>,
    filter: BloomFilter,
    props: SstProperties,
    footer: Footer,
}

impl std::fmt::Debug for SstReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SstReader({}, {:?})", self.label, self.opener)
    }
}

impl SstReader {
    /// Opens a table. `opener_for` receives the footer's wrapped key (`None`: the file
    /// says it is plaintext) and returns the opener for the file; it must refuse a
    /// plaintext footer for an encrypted table and vice versa.
    pub(crate) fn open(
        file: Arc<dyn RandomAccessFile>,
        label: Arc<str>,
        id: u64,
        opener_for: impl FnOnce(Option<&FooterKey>) -> Result<UnitOpener>,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<SstReader>> {
        let len = file.len();
        let footer_at = len
            .checked_sub(FOOTER_LEN as u64)
            .ok_or_else(|| Error::corruption(&*label, 0, "file shorter than a table footer"))?;
        let raw = file
            .read_at(footer_at, FOOTER_LEN)
            .map_err(|e| Error::io(format!("reading the footer of {label}"), e))?;
        let footer = Footer::decode(&raw, &label, footer_at)?;
        // The blocks after the data must tile the file exactly up to the footer.
        let tiled = footer.filter.end() == Some(footer.properties.offset)
            && footer.properties.end() == Some(footer.index.offset)
            && footer.index.end() == Some(footer_at);
        if !tiled {
            return Err(Error::corruption(
                &*label,
                footer_at,
                "footer: block handles do not tile the file",
            ));
        }
        let opener = opener_for(footer.key.as_ref())?;
        if opener.is_sealed() != footer.key.is_some() {
            return Err(Error::corruption(
                &*label,
                footer_at,
                "footer: protection does not match the table's",
            ));
        }
        let index_payload = read_unit(&*file, &opener, UnitKind::Index, footer.index)?;
        let index = Arc::new(Block::new(
            index_payload,
            Arc::clone(&label),
            footer.index.offset,
        )?);
        let filter_payload = read_unit(&*file, &opener, UnitKind::Filter, footer.filter)?;
        let filter = BloomFilter::decode(filter_payload).ok_or_else(|| {
            Error::corruption(&*label, footer.filter.offset, "malformed filter block")
        })?;
        let props_payload = read_unit(&*file, &opener, UnitKind::Properties, footer.properties)?;
        let props = SstProperties::decode(&props_payload, &label, footer.properties.offset)?;
        Ok(Arc::new(SstReader {
            file,
            label,
            id,
            opener,
            cache,
            index,
            filter,
            props,
            footer,
        }))
    }

    /// The file's bloom filter over user keys.
    pub(crate) fn filter(&self) -> &BloomFilter {
        &self.filter
    }

    pub(crate) fn properties(&self) -> &SstProperties {
        &self.props
    }

    /// The wrapped data key in the footer (`None`: a plaintext file).
    #[cfg(test)]
    pub(crate) fn footer_key(&self) -> Option<&FooterKey> {
        self.footer.key.as_ref()
    }

    /// True when this file was sealed (encrypted).
    #[cfg(test)]
    pub(crate) fn is_sealed(&self) -> bool {
        self.opener.is_sealed()
    }

    /// Decodes an index entry's value into a data block handle.
    pub(crate) fn data_handle(&self, index_value: &[u8]) -> Result<BlockHandle> {
        let bad = |what: &str| {
            Error::corruption(
                &*self.label,
                self.footer.index.offset,
                format!("index: {what}"),
            )
        };
        let h = BlockHandle::decode_exact(index_value).ok_or_else(|| bad("malformed handle"))?;
        // Data blocks lie before the filter block.
        match h.end() {
            Some(end) if end <= self.footer.filter.offset => Ok(h),
            _ => Err(bad("data block handle out of range")),
        }
    }

    /// The data block at `handle`, from the cache or the file.
    pub(crate) fn data_block(&self, handle: BlockHandle) -> Result<Arc<Block>> {
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(self.id, handle.offset) {
                return Ok(b);
            }
        }
        let block = self.read_data_block(handle)?;
        if let Some(c) = &self.cache {
            c.insert(self.id, handle.offset, Arc::clone(&block));
        }
        Ok(block)
    }

    /// The data block at `handle` for a cursor stepping through the table: from the cache
    /// if it is there, otherwise opened without being cached, into `recycled` (the cursor's
    /// previous block of this kind) when nobody else holds that block's bytes. A long scan
    /// then neither evicts the point reads' working set nor pays the cache's insertion and
    /// eviction per block, and decrypts every block into the same (CPU-cache-hot) buffer.
    pub(crate) fn data_block_uncached(
        &self,
        handle: BlockHandle,
        recycled: Option<Arc<Block>>,
    ) -> Result<Arc<Block>> {
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(self.id, handle.offset) {
                return Ok(b);
            }
        }
        let spare = recycled
            .and_then(Arc::into_inner)
            .and_then(|b| b.into_data().try_into_mut().ok());
        self.open_data_block(handle, move || spare.unwrap_or_default())
    }

    fn read_data_block(&self, handle: BlockHandle) -> Result<Arc<Block>> {
        // A sealed block is decrypted from the map straight into a cache-owned buffer.
        self.open_data_block(handle, || match &self.cache {
            Some(c) => c.buffer(self.id, handle.offset),
            None => bytes::BytesMut::new(),
        })
    }

    /// Reads, opens (CRC check or decryption into `buffer()`) and decodes a data block.
    fn open_data_block(
        &self,
        handle: BlockHandle,
        buffer: impl FnOnce() -> bytes::BytesMut,
    ) -> Result<Arc<Block>> {
        let stored = read_stored(&*self.file, &self.opener, UnitKind::Data, handle)?;
        let mut payload = self
            .opener
            .open_with(UnitKind::Data, handle.offset, stored, buffer)?;
        if self.footer.blocks_framed() {
            // Opened (authenticated) first, then decompressed: the decompressor only
            // ever sees bytes the writer produced, or a plaintext table's CRC-checked ones.
            payload = unframe_block(payload, &self.label, handle.offset)?;
        }
        Ok(Arc::new(Block::new(
            payload,
            Arc::clone(&self.label),
            handle.offset,
        )?))
    }

    /// The newest entry for `user_key` with a sequence number at or below `seq`.
    pub(crate) fn get(&self, user_key: &[u8], seq: SeqNo) -> Result<Option<(ValueKind, Bytes)>> {
        if !self.filter.may_contain(user_key) {
            return Ok(None);
        }
        // The seek key lives on the stack for the usual short keys: no allocation.
        let trailer = ikey::pack_trailer(seq.min(SeqNo::MAX), ValueKind::Put).to_le_bytes();
        let mut stack = [0u8; 128];
        let heap: Vec<u8>;
        let target: &[u8] = match stack.get_mut(..user_key.len() + trailer.len()) {
            Some(buf) => {
                let (u, t) = buf.split_at_mut(user_key.len());
                u.copy_from_slice(user_key);
                t.copy_from_slice(&trailer);
                buf
            }
            None => {
                heap = ikey::seek_key(user_key, seq.min(SeqNo::MAX));
                &heap
            }
        };
        // Index entries are stored whole: seeking the index allocates nothing.
        let mut idx = self.index.iter();
        idx.seek(target)?;
        if !idx.valid() {
            return Ok(None);
        }
        let block = self.data_block(self.data_handle(idx.value())?)?;
        let mut it = block.iter_with_buffer(KEY_SCRATCH.take());
        let found = self.found_in(&mut it, user_key, target);
        KEY_SCRATCH.set(it.into_buffer());
        found
    }

    /// The entry `it` lands on when seeking `target`, if it is a version of `user_key`.
    fn found_in(
        &self,
        it: &mut BlockIter,
        user_key: &[u8],
        target: &[u8],
    ) -> Result<Option<(ValueKind, Bytes)>> {
        let block_offset = it.block_offset();
        it.seek(target)?;
        if !it.valid() {
            return Err(Error::corruption(
                &*self.label,
                block_offset,
                "index separator above the block's last key",
            ));
        }
        let p = ikey::parse(it.key()).ok_or_else(|| {
            Error::corruption(&*self.label, block_offset, "malformed internal key")
        })?;
        if p.user_key != user_key {
            return Ok(None);
        }
        Ok(Some((p.kind, it.value_bytes())))
    }

    /// A cursor over every entry; blocks are loaded as it reaches them.
    pub(crate) fn iter(self: &Arc<Self>) -> SstIter {
        SstIter::new(Arc::clone(self))
    }

    /// Opens every block (bypassing the cache) and checks keys are well formed, strictly
    /// increasing, bounded by their index separators, and agree with the properties.
    pub(crate) fn verify(&self) -> Result<()> {
        let bad = |offset: u64, what: &str| Error::corruption(&*self.label, offset, what);
        let mut idx = self.index.iter();
        idx.seek_to_first()?;
        let mut last: Vec<u8> = Vec::new();
        let mut entries = 0u64;
        let mut blocks = 0u64;
        let mut expected_offset = 0u64;
        let mut first: Option<Vec<u8>> = None;
        while idx.valid() {
            let handle = self.data_handle(idx.value())?;
            if handle.offset != expected_offset {
                return Err(bad(handle.offset, "data blocks do not tile the file"));
            }
            expected_offset = handle.end().unwrap_or(u64::MAX);
            let block = self.read_data_block(handle)?;
            let mut it = block.iter();
            it.seek_to_first()?;
            if !it.valid() {
                return Err(bad(handle.offset, "empty data block"));
            }
            while it.valid() {
                if ikey::parse(it.key()).is_none() {
                    return Err(bad(handle.offset, "malformed internal key"));
                }
                if entries > 0 && ikey::compare(&last, it.key()) != Ordering::Less {
                    return Err(bad(handle.offset, "keys out of order"));
                }
                if first.is_none() {
                    first = Some(it.key().to_vec());
                }
                last.clear();
                last.extend_from_slice(it.key());
                entries += 1;
                it.next()?;
            }
            if last != idx.key() {
                return Err(bad(handle.offset, "index separator differs from last key"));
            }
            blocks += 1;
            idx.next()?;
        }
        if expected_offset != self.footer.filter.offset {
            return Err(bad(expected_offset, "data blocks do not reach the filter"));
        }
        let p = &self.props;
        if entries != p.entries || blocks != p.data_blocks || last != p.largest {
            return Err(bad(
                self.footer.properties.offset,
                "properties disagree with the data",
            ));
        }
        if first.unwrap_or_default() != p.smallest {
            return Err(bad(
                self.footer.properties.offset,
                "smallest key disagrees with the data",
            ));
        }
        Ok(())
    }
}

/// Reads the stored form of a unit and opens it (CRC check or decryption).
fn read_unit(
    file: &dyn RandomAccessFile,
    opener: &UnitOpener,
    kind: UnitKind,
    h: BlockHandle,
) -> Result<Bytes> {
    let stored = read_stored(file, opener, kind, h)?;
    opener.open(kind, h.offset, stored)
}

/// Reads the stored form of a unit (a slice of the memory map), length-checked.
fn read_stored(
    file: &dyn RandomAccessFile,
    opener: &UnitOpener,
    kind: UnitKind,
    h: BlockHandle,
) -> Result<Bytes> {
    let len = usize::try_from(h.size)
        .map_err(|_| Error::corruption(opener.label(), h.offset, "block size"))?;
    if len < opener.overhead() {
        return Err(Error::corruption(
            opener.label(),
            h.offset,
            format!("{kind:?} block smaller than its protection"),
        ));
    }
    file.read_whole_at(h.offset, len)
        .map_err(|e| Error::io(format!("reading a block of {}", opener.label()), e))
}
