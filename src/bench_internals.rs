//! Minimal handles on internal components for the criterion benches (`bench-internals`
//! feature only; not part of the API). Each handle owns its fixture; the benches time one
//! method call.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::{
    DataKey, FileKind, Protection, TableKey, UnitContext, UnitKind, UnitOpener, UnitSealer,
    WrapContext,
};
use crate::error::{Error, Result};
use crate::ikey;
use crate::iter::InternalIterator;
use crate::memtable::MemTable;
use crate::sst::bench_hooks::{BlockBuilder, BloomBuilder, BloomFilter};
use crate::sst::BlockCache;
use crate::sst::{Block, SstBuildOptions, SstBuilder, SstReader};
use crate::storage::{FileSyncer, RandomAccessFile, WritableFile};
use crate::types::{FileNumber, SeqNo, TableId, ValueKind};

/// An internal key for user key `k` at `seq`, as stored in blocks and tables.
pub fn internal_key(k: &[u8], seq: u64) -> Vec<u8> {
    ikey::encode(k, SeqNo(seq), ValueKind::Put)
}

/// Encodes data blocks and decodes them again.
pub struct BlockCodec {
    builder: BlockBuilder,
}

impl BlockCodec {
    pub fn new(restart_interval: usize) -> BlockCodec {
        BlockCodec {
            builder: BlockBuilder::new(restart_interval),
        }
    }

    /// Encodes `entries` (internal keys in order) as one block payload.
    pub fn encode(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Bytes> {
        self.builder.reset();
        for (k, v) in entries {
            self.builder.add(k, v)?;
        }
        Ok(Bytes::copy_from_slice(self.builder.finish()?))
    }

    /// Decodes a block payload and walks every entry; returns how many.
    pub fn decode_all(payload: Bytes) -> Result<usize> {
        walk(payload, false)
    }

    /// Decodes a block payload and walks every entry from the last to the first; returns
    /// how many.
    pub fn decode_all_reverse(payload: Bytes) -> Result<usize> {
        walk(payload, true)
    }

    /// Decodes a block payload and seeks to `ikey`; returns whether it landed on an entry.
    pub fn decode_seek(payload: Bytes, ikey: &[u8]) -> Result<bool> {
        let block = Arc::new(Block::new(payload, Arc::from("bench"), 0)?);
        let mut it = block.iter();
        it.seek(ikey)?;
        Ok(it.valid())
    }
}

/// Walks every entry of a block payload, forward or backward; returns how many.
fn walk(payload: Bytes, backward: bool) -> Result<usize> {
    let block = Arc::new(Block::new(payload, Arc::from("bench"), 0)?);
    let mut it = block.iter();
    if backward {
        it.seek_to_last()?;
    } else {
        it.seek_to_first()?;
    }
    let mut n = 0;
    while it.valid() {
        n += 1;
        if backward {
            it.prev()?;
        } else {
            it.next()?;
        }
    }
    Ok(n)
}

fn unit_ctx() -> UnitContext {
    UnitContext {
        table: TableId(1),
        file: FileNumber(1),
        file_kind: FileKind::Sst,
        label: Arc::from("bench.sst"),
    }
}

/// Seals and opens units the way tables do: CRC32 (plain) or AES-256-GCM (sealed).
pub struct UnitCodec {
    sealer: UnitSealer,
    opener: UnitOpener,
    offset: u64,
    out: Vec<u8>,
}

impl UnitCodec {
    pub fn new(sealed: bool) -> UnitCodec {
        let (sealer, opener) = if sealed {
            let dek = DataKey::generate();
            (
                UnitSealer::sealed(unit_ctx(), &dek),
                UnitOpener::sealed(unit_ctx(), &dek),
            )
        } else {
            (
                UnitSealer::plain(),
                UnitOpener::plain(Arc::from("bench.sst")),
            )
        };
        UnitCodec {
            sealer,
            opener,
            offset: 0,
            out: Vec::new(),
        }
    }

    /// Seals `payload` at the next offset; returns (offset, stored form).
    pub fn seal(&mut self, payload: &[u8]) -> Result<(u64, usize)> {
        self.out.clear();
        let at = self.offset;
        self.sealer
            .seal(UnitKind::Data, at, payload, &mut self.out)?;
        self.offset += self.out.len() as u64;
        Ok((at, self.out.len()))
    }

    /// The stored form of the last sealed unit.
    pub fn last_sealed(&self) -> Bytes {
        Bytes::copy_from_slice(&self.out)
    }

    /// Opens a stored unit sealed at `offset`; returns its payload length.
    pub fn open(&self, offset: u64, stored: Bytes) -> Result<usize> {
        Ok(self.opener.open(UnitKind::Data, offset, stored)?.len())
    }
}

/// Builds bloom filters and probes them.
pub struct Bloom {
    filter: BloomFilter,
}

impl Bloom {
    /// Builds a filter over `keys`; returns it and its encoded size.
    pub fn build(keys: &[Vec<u8>], bits_per_key: usize) -> Result<(Bloom, usize)> {
        let mut b = BloomBuilder::new(bits_per_key);
        for k in keys {
            b.add_key(k);
        }
        let data = b.finish();
        let len = data.len();
        let filter = BloomFilter::decode(Bytes::from(data))
            .ok_or_else(|| Error::InvalidArgument("bench: bloom filter did not decode".into()))?;
        Ok((Bloom { filter }, len))
    }

    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.filter.may_contain(key)
    }
}

/// A memtable.
pub struct Memtable {
    mem: Arc<MemTable>,
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable {
            mem: Arc::new(MemTable::new()),
        }
    }
}

impl Memtable {
    pub fn insert(&self, key: &[u8], seq: u64, value: &[u8]) {
        self.mem.insert(key, SeqNo(seq), ValueKind::Put, value);
    }

    /// The newest value of `key`'s length, if present.
    pub fn get(&self, key: &[u8]) -> Option<usize> {
        self.mem.get(key, SeqNo::MAX).map(|(_, v)| v.len())
    }

    /// Walks every entry (forward, or backward) through the memtable's cursor; returns the
    /// bytes of keys and values seen.
    pub fn scan(&self, reverse: bool) -> usize {
        use crate::iter::InternalIterator;
        let mut it = crate::memtable::MemTableIter::new(Arc::clone(&self.mem));
        let mut bytes = 0;
        let moved = if reverse {
            it.seek_to_last()
        } else {
            it.seek_to_first()
        };
        if moved.is_err() {
            return 0;
        }
        while it.valid() {
            bytes += it.key().len() + it.value().len();
            let moved = if reverse { it.prev() } else { it.next() };
            if moved.is_err() {
                break;
            }
        }
        bytes
    }

    pub fn len(&self) -> usize {
        self.mem.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mem.is_empty()
    }
}

#[derive(Clone, Default)]
struct MemWritable(Arc<parking_lot::Mutex<Vec<u8>>>);

struct NoopSyncer;

impl FileSyncer for NoopSyncer {
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl WritableFile for MemWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.lock().len() as u64
    }
    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(NoopSyncer))
    }
}

struct MemReadable(Bytes);

impl RandomAccessFile for MemReadable {
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let s = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let e = s.checked_add(len).ok_or(io::ErrorKind::UnexpectedEof)?;
        if e > self.0.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.0.slice(s..e))
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// One SSTable held in memory, opened as the engine opens it, with or without a block cache.
pub struct SstFixture {
    table: Arc<SstReader>,
    size: usize,
}

impl SstFixture {
    /// Builds a table of `entries` (user key, value; in key order), sealed or plain.
    pub fn build(
        entries: &[(Vec<u8>, Vec<u8>)],
        sealed: bool,
        cache_bytes: Option<usize>,
    ) -> Result<SstFixture> {
        let w = MemWritable::default();
        let table_key = TableKey::from_bytes([7; 32]);
        let wrap_ctx = WrapContext {
            table: TableId(1),
            file_kind: FileKind::Sst,
            file: FileNumber(1),
            key_version: 1,
        };
        let mut dek_copy = None;
        let protection = if sealed {
            let dek = DataKey::generate();
            dek_copy = Some(DataKey::from_bytes(*dek.expose_secret_bytes()));
            Protection::with_key(dek, &table_key, wrap_ctx)
        } else {
            Protection::Plain
        };
        let mut b = SstBuilder::new(Box::new(w.clone()), protection, SstBuildOptions::default())?;
        for (i, (k, v)) in entries.iter().enumerate() {
            b.add(&internal_key(k, i as u64 + 1), v)?;
        }
        b.finish()?;
        let bytes = Bytes::from(std::mem::take(&mut *w.0.lock()));
        let size = bytes.len();
        let cache = cache_bytes.map(|c| Arc::new(BlockCache::new(c)));
        let table = SstReader::open(
            Arc::new(MemReadable(bytes)),
            Arc::from("bench.sst"),
            1,
            move |_| {
                Ok(match dek_copy {
                    Some(dek) => UnitOpener::sealed(unit_ctx(), &dek),
                    None => UnitOpener::plain(Arc::from("bench.sst")),
                })
            },
            cache,
        )?;
        Ok(SstFixture { table, size })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A point read; returns the value's length when found.
    pub fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self
            .table
            .get(key, SeqNo::MAX)?
            .filter(|(kind, _)| *kind == ValueKind::Put)
            .map(|(_, v)| v.len()))
    }
}
