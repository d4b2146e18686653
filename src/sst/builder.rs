//! Writes one SSTable from internal keys given in increasing order.
//!
//! ```text
//! table = data_block* || filter_block || properties_block || index_block || footer
//! data_block payload = frame_block(block, compression)   (compression.rs: block || tag)
//! every block is stored as a unit: UnitSealer::seal(kind, offset_of_its_first_byte, payload)
//! index entry = last internal key of a data block -> BlockHandle of its stored form
//! ```
//!
//! See `footer.rs` for the footer and DESIGN.md section 6 for the reasons.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::crypto::{FileKind, Protection, UnitKind, UnitSealer};
use crate::error::{Error, Result};
use crate::filename;
use crate::ikey;
use crate::sst::block_builder::BlockBuilder;
use crate::sst::bloom::BloomBuilder;
use crate::sst::compression::{frame_block, Compression};
use crate::sst::footer::{Footer, FooterKey, TABLE_FORMAT_V1, TABLE_FORMAT_VERSION};
use crate::sst::handle::BlockHandle;
use crate::sst::properties::SstProperties;
use crate::storage::WritableFile;
use crate::types::{SeqNo, ValueKind};

/// Shape of the tables a builder writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SstBuildOptions {
    /// A data block is cut once its payload reaches this many bytes.
    pub block_size: usize,
    /// Entries between restart points in data blocks.
    pub restart_interval: usize,
    /// Bloom filter bits per user key.
    pub bloom_bits_per_key: usize,
    /// How data blocks are compressed before sealing.
    pub compression: Compression,
}

impl Default for SstBuildOptions {
    fn default() -> Self {
        SstBuildOptions {
            block_size: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            compression: Compression::None,
        }
    }
}

/// What a finished table holds: what the manifest records for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SstSummary {
    pub size: u64,
    pub entries: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub min_seq: SeqNo,
    pub max_seq: SeqNo,
}

/// Appends sealed units to the file, tracking the offset each one starts at.
struct UnitWriter {
    file: Box<dyn WritableFile>,
    sealer: UnitSealer,
    /// File offset where the next unit starts.
    offset: u64,
    /// Reused buffer for a unit's stored form.
    stored: Vec<u8>,
    /// Set once a write failed: the file is unusable.
    failed: bool,
}

impl UnitWriter {
    /// Seals `payload` at the current offset and appends it; returns its handle.
    fn write(&mut self, kind: UnitKind, payload: &[u8]) -> Result<BlockHandle> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "table builder used after a failed write".into(),
            ));
        }
        self.stored.clear();
        self.sealer
            .seal(kind, self.offset, payload, &mut self.stored)?;
        if let Err(e) = self.file.append(&self.stored) {
            self.failed = true;
            return Err(Error::io("appending a table block", e));
        }
        let handle = BlockHandle {
            offset: self.offset,
            size: self.stored.len() as u64,
        };
        self.offset += handle.size;
        Ok(handle)
    }
}

pub(crate) struct SstBuilder {
    out: UnitWriter,
    footer_key: Option<FooterKey>,
    opts: SstBuildOptions,
    data: BlockBuilder,
    index: BlockBuilder,
    filter: BloomBuilder,
    props: SstProperties,
    last_key: Vec<u8>,
    /// Footer format version; only tests write the old one.
    format_version: u32,
    /// Reused buffers: a data block's framed payload, and the compressor's output.
    framed: Vec<u8>,
    scratch: Vec<u8>,
}

impl SstBuilder {
    /// `file` must be new and empty: block offsets (and so nonces and associated data)
    /// start at 0 and `SstReader::verify` expects the first data block there. A sealed
    /// `protection` must hold a data key wrapped for an SSTable (as the WAL writer checks
    /// its own): a key wrapped for a WAL segment would not unwrap when the table is read.
    pub(crate) fn new(
        file: Box<dyn WritableFile>,
        protection: Protection,
        opts: SstBuildOptions,
    ) -> Result<SstBuilder> {
        if let Some(w) = protection.wrapped() {
            if w.ctx.file_kind != FileKind::Sst {
                return Err(Error::Internal(format!(
                    "the data key for SSTable {} was wrapped for {:?} {} of table {}",
                    filename::sst(w.ctx.file),
                    w.ctx.file_kind,
                    w.ctx.file,
                    w.ctx.table
                )));
            }
        }
        let footer_key = protection.wrapped().map(|w| FooterKey {
            wrapped_dek: w.wrapped_dek,
            key_version: w.ctx.key_version,
        });
        let label = protection
            .wrapped()
            .map(|w| Arc::<str>::from(filename::sst(w.ctx.file)));
        let sealer = match label {
            Some(label) => protection.into_sealer(label),
            None => UnitSealer::plain(),
        };
        let offset = file.len();
        Ok(SstBuilder {
            out: UnitWriter {
                file,
                sealer,
                offset,
                stored: Vec::new(),
                failed: false,
            },
            footer_key,
            opts,
            data: BlockBuilder::new(opts.restart_interval),
            // Restart at every index entry: lookups binary-search whole keys in place.
            index: BlockBuilder::new(1),
            filter: BloomBuilder::new(opts.bloom_bits_per_key),
            props: SstProperties::default(),
            last_key: Vec::new(),
            format_version: TABLE_FORMAT_VERSION,
            framed: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Writes format version 1 (no compression tags), as releases before compression
    /// did: for tests of reading old files.
    #[cfg(test)]
    pub(crate) fn write_format_v1(mut self) -> SstBuilder {
        self.format_version = TABLE_FORMAT_V1;
        self
    }

    /// Adds an entry; `ikey` must be a valid internal key greater than the previous one.
    pub(crate) fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        if self.out.failed {
            return Err(Error::InvalidArgument(
                "table builder used after a failed write".into(),
            ));
        }
        let parsed = ikey::parse(ikey)
            .ok_or_else(|| Error::InvalidArgument("malformed internal key".into()))?;
        let first = self.props.entries == 0;
        if !first && ikey::compare(&self.last_key, ikey) != Ordering::Less {
            return Err(Error::InvalidArgument(
                "table entries must be added in strictly increasing key order".into(),
            ));
        }
        if first || ikey::user_key(&self.last_key) != parsed.user_key {
            self.filter.add_key(parsed.user_key);
        }
        let p = &mut self.props;
        if first {
            p.smallest = ikey.to_vec();
            p.min_seq = parsed.seq;
            p.max_seq = parsed.seq;
        }
        p.entries += 1;
        if parsed.kind == ValueKind::Delete {
            p.deletions += 1;
        }
        p.min_seq = p.min_seq.min(parsed.seq);
        p.max_seq = p.max_seq.max(parsed.seq);
        p.raw_key_bytes += ikey.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);

        self.data.add(ikey, value)?;
        if self.data.estimated_size() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Bytes the file would have if finished now (roughly).
    pub(crate) fn estimated_size(&self) -> u64 {
        self.out.offset + self.data.estimated_size() as u64 + self.index.estimated_size() as u64
    }

    /// Entries added so far.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        self.props.entries
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data.is_empty() {
            return Ok(());
        }
        let handle = match self.data.finish() {
            Ok(block) if self.format_version == TABLE_FORMAT_V1 => {
                self.out.write(UnitKind::Data, block)
            }
            Ok(block) => {
                frame_block(
                    block,
                    self.opts.compression,
                    &mut self.scratch,
                    &mut self.framed,
                );
                self.out.write(UnitKind::Data, &self.framed)
            }
            Err(e) => Err(e),
        };
        self.data.reset();
        let handle = handle?;
        self.props.data_blocks += 1;
        let mut h = Vec::with_capacity(2 * crate::coding::MAX_VARINT64_LEN);
        handle.encode_into(&mut h);
        // The separator is the block's last key: every key in the block is <= it and
        // every key in the next block is > it.
        self.index.add(&self.last_key, &h)
    }

    /// Writes the filter, properties, index and footer, and syncs the file.
    pub(crate) fn finish(mut self) -> Result<SstSummary> {
        self.flush_data_block()?;
        self.props.largest = self.last_key.clone();
        let filter_payload = self.filter.finish();
        let filter = self.out.write(UnitKind::Filter, &filter_payload)?;
        let props_payload = self.props.encode();
        let properties = self.out.write(UnitKind::Properties, &props_payload)?;
        let index = self.out.write(UnitKind::Index, self.index.finish()?)?;
        let footer = Footer {
            index,
            filter,
            properties,
            key: self.footer_key.take(),
            version: self.format_version,
        }
        .encode();
        self.out
            .file
            .append(&footer)
            .map_err(|e| Error::io("appending a table footer", e))?;
        self.out.offset += footer.len() as u64;
        // IMPORTANT: the table must be durable before the manifest names it; the caller
        // then records it in the manifest (and syncs the directory after any rename).
        self.out
            .file
            .sync()
            .map_err(|e| Error::io("syncing a new table", e))?;
        Ok(SstSummary {
            size: self.out.offset,
            entries: self.props.entries,
            smallest: std::mem::take(&mut self.props.smallest),
            largest: std::mem::take(&mut self.props.largest),
            min_seq: self.props.min_seq,
            max_seq: self.props.max_seq,
        })
    }
}
