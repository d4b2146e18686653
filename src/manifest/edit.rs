//! Version edits: what one manifest record changes, and its byte encoding.
//!
//! ```text
//! edits   = edit+                       (a record's edits, back to back)
//! edit    = tag : u8, then by tag:
//!   1 CreateTable       id : u32 | name : str | meta
//!   2 DropTable         id : u32
//!   3 AddFile           table : u32 | level : u8 | file : u64 | size : u64 | entries : u64
//!                       | min_seq : u64 | max_seq : u64 | smallest : boundary | largest : boundary
//!   4 RemoveFile        table : u32 | level : u8 | file : u64
//!   5 SetLogNumber      table : u32 | log : u64
//!   6 SetNextFileNumber file : u64
//!   7 SetLastSeq        seq : u64
//!   8 SetNextTableId    id : u32
//!   9 SetTableKey       table : u32 | meta
//!  10 SetDatabaseKey    db_id : str | key_arn : str | wrapped_key : bytes | grant_id : str
//!                       (manifest format 2; first record only)
//!  11 SnapshotEnd       records : u32   (format 2: the snapshot's record count, this one's
//!                       included; nothing before it may be a torn tail)
//!  12 AddWalSegment     segment : u64   (format 2: a WAL segment the engine created)
//!  20 DeclareIndex      index : u32 | table : u32 | name : str | flags : u8 (bit 0 unique)
//!                       | extractor_kind : u8 (1 JSON pointer, 2 named) | extractor : str
//!                       (format 4; in the record of the index's own CreateTable)
//!  21 IndexReady        index : u32   (format 4: the index's backfill committed)
//!  22 DeclareLocalIndex table : u32 | slot : u8 | name : str | flags : u8 (bit 0 unique)
//!                       | extractor_kind : u8 | extractor : str
//!                       (format 5; only in the record of its table's CreateTable)
//!                       23..=29 reserved for indexes
//!  30 TableKeyVersion   table : u32 | version : u32 | first_file : u64 | first_segment : u64
//!                       | wrapped_table_key : bytes
//!                       (format 6: an older table-key version some file may still use;
//!                       see db::table_key_rotation)
//!  31 RetireTableKey    table : u32 | version : u32   (format 6: that version is gone)
//! meta    = flags : u8 (bit 0 encrypted, bit 1 sealed_boundaries,
//!                       bits 2-3 compression: 0 none, 1 lz4) | key_arn : str
//!           | wrapped_table_key : bytes | grant_id : str | key_version : u32
//!           | block_size : u32 | bloom_bits_per_key : u32
//! boundary = kind : u8 (1 plain, 2 sealed) | bytes
//! str, bytes = len : u32 LE | [u8; len]      (str is UTF-8)
//! integers little-endian
//! ```

use crate::coding::{put_len_prefixed, Cursor};
use crate::error::{Error, Result};
use crate::sst::Compression;
use crate::types::{FileNumber, Level, SeqNo, TableId};

/// Edit tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum EditTag {
    // on disk: never renumber
    CreateTable = 1,
    DropTable = 2,
    AddFile = 3,
    RemoveFile = 4,
    SetLogNumber = 5,
    SetNextFileNumber = 6,
    SetLastSeq = 7,
    SetNextTableId = 8,
    SetTableKey = 9,
    SetDatabaseKey = 10,
    SnapshotEnd = 11,
    AddWalSegment = 12,
    // 13..=19 are reserved for another catalogue extension; indexes use 20..=29.
    DeclareIndex = 20,
    IndexReady = 21,
    DeclareLocalIndex = 22,
    // 22..=29 are the index catalogue's; table-key rotation uses 30..=39.
    TableKeyVersion = 30,
    RetireTableKey = 31,
}

impl TryFrom<u8> for EditTag {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        Ok(match v {
            1 => EditTag::CreateTable,
            2 => EditTag::DropTable,
            3 => EditTag::AddFile,
            4 => EditTag::RemoveFile,
            5 => EditTag::SetLogNumber,
            6 => EditTag::SetNextFileNumber,
            7 => EditTag::SetLastSeq,
            8 => EditTag::SetNextTableId,
            9 => EditTag::SetTableKey,
            10 => EditTag::SetDatabaseKey,
            11 => EditTag::SnapshotEnd,
            12 => EditTag::AddWalSegment,
            20 => EditTag::DeclareIndex,
            21 => EditTag::IndexReady,
            22 => EditTag::DeclareLocalIndex,
            30 => EditTag::TableKeyVersion,
            31 => EditTag::RetireTableKey,
            other => return Err(other),
        })
    }
}

/// Boundary kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum BoundaryTag {
    // on disk: never renumber
    Plain = 1,
    Sealed = 2,
}

/// `DeclareIndex` flag bits.
const INDEX_UNIQUE: u8 = 0x01;

/// How an index computes its keys from a value (`DeclareIndex`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ExtractorKind {
    // on disk: never renumber
    /// `extractor` is an RFC 6901 JSON pointer into values that are JSON documents.
    JsonPointer = 1,
    /// `extractor` names a Rust extractor the application registers at every open.
    Named = 2,
}

impl TryFrom<u8> for ExtractorKind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(ExtractorKind::JsonPointer),
            2 => Ok(ExtractorKind::Named),
            other => Err(other),
        }
    }
}

/// A secondary index as the catalogue records it. The index's own LSM is an internal
/// table (`index`) created in the same record, under the parent table's key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexDecl {
    pub(crate) index: TableId,
    pub(crate) table: TableId,
    pub(crate) name: String,
    pub(crate) unique: bool,
    pub(crate) kind: ExtractorKind,
    pub(crate) extractor: String,
}

/// A local index as the catalogue records it: it lives inside table `table`'s own LSM,
/// its entries under key-space slot `slot` (`crate::index::local`), and is declared in the
/// table's `CreateTable` record, never later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalIndexDecl {
    pub(crate) table: TableId,
    pub(crate) slot: u8,
    pub(crate) name: String,
    pub(crate) unique: bool,
    pub(crate) kind: ExtractorKind,
    pub(crate) extractor: String,
}

const META_ENCRYPTED: u8 = 0x01;
const META_SEALED_BOUNDARIES: u8 = 0x02;
/// Bits 2-3: the table's `Compression` tag. Records written before compression existed
/// have them clear, which reads as `Compression::None`: no manifest version bump.
const META_COMPRESSION_SHIFT: u32 = 2;
const META_COMPRESSION_MASK: u8 = 0x0C;

/// A table's persistent settings and key material (all of it non-secret: the table key is
/// held only as the KMS ciphertext blob). Empty strings and blob for plaintext tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TableMeta {
    pub(crate) encrypted: bool,
    pub(crate) sealed_boundaries: bool,
    pub(crate) key_arn: String,
    pub(crate) wrapped_table_key: Vec<u8>,
    pub(crate) grant_id: String,
    pub(crate) key_version: u32,
    pub(crate) block_size: u32,
    pub(crate) bloom_bits_per_key: u32,
    /// How new files of the table compress their data blocks.
    pub(crate) compression: Compression,
}

/// An older version of a table's key that files may still use (`TableKeyVersion`, format
/// 6). Non-secret like `TableMeta`: the key is held only as its KMS ciphertext blob, bound
/// to the table's context exactly like the current one.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OldTableKey {
    pub(crate) table: TableId,
    /// The version files name in their key records (SSTable footer, WAL key record).
    pub(crate) version: u32,
    /// The first file number allocated after the next version became current: every
    /// SSTable numbered at or past it was written under a later version.
    pub(crate) first_file: u64,
    /// The first WAL segment started after the next version became current: the table's
    /// records in it and in later segments are under a later version.
    pub(crate) first_segment: u64,
    /// The bound wrapped key (`db::table_context`), as `TableMeta::wrapped_table_key`.
    pub(crate) wrapped_table_key: Vec<u8>,
}

impl std::fmt::Debug for OldTableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The blob is ciphertext, but its bytes are what a retirement must make vanish:
        // keep them out of logs and panics too.
        f.debug_struct("OldTableKey")
            .field("table", &self.table)
            .field("version", &self.version)
            .field("first_file", &self.first_file)
            .field("first_segment", &self.first_segment)
            .field("wrapped_table_key_len", &self.wrapped_table_key.len())
            .finish()
    }
}

/// The database key: authenticates every record of the manifest (format 2). Non-secret:
/// the key itself is held only as the KMS ciphertext blob.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DatabaseKeyMeta {
    /// A random id naming the database in the key's encryption context.
    pub(crate) db_id: String,
    pub(crate) key_arn: String,
    pub(crate) wrapped_key: Vec<u8>,
    /// The engine's grant on the KMS key, constrained to the database's context.
    pub(crate) grant_id: String,
}

/// The smallest or largest internal key of a file: readable, or sealed under the table key
/// (`boundary::seal_boundary`) for tables with `sealed_boundaries`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Boundary {
    Plain(Vec<u8>),
    Sealed(Vec<u8>),
}

/// One SSTable as the manifest records it (the payload of `AddFile`): the one home of a
/// file's metadata, kept whole by recovery and by each in-memory `FileHandle`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileMeta {
    pub(crate) number: FileNumber,
    pub(crate) level: Level,
    pub(crate) size: u64,
    pub(crate) entries: u64,
    pub(crate) min_seq: SeqNo,
    pub(crate) max_seq: SeqNo,
    /// Smallest and largest internal keys, as stored (sealed if the table seals them).
    pub(crate) smallest: Boundary,
    pub(crate) largest: Boundary,
}

/// One change to the database's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    CreateTable {
        id: TableId,
        name: String,
        meta: TableMeta,
    },
    DropTable {
        id: TableId,
    },
    AddFile {
        table: TableId,
        file: FileMeta,
    },
    RemoveFile {
        table: TableId,
        level: Level,
        file: FileNumber,
    },
    /// WAL segments below `log` hold nothing of `table` that is not in its files.
    SetLogNumber {
        table: TableId,
        log: FileNumber,
    },
    SetNextFileNumber(FileNumber),
    SetLastSeq(SeqNo),
    SetNextTableId(TableId),
    /// New key material for a table (grant or key rotation); `encrypted` may not change.
    SetTableKey {
        table: TableId,
        meta: TableMeta,
    },
    /// The database key (format 2): in the first record of a manifest that has one.
    SetDatabaseKey(DatabaseKeyMeta),
    /// Ends the snapshot that opens a manifest (format 2): `records` records, this one's
    /// included.
    SnapshotEnd {
        records: u32,
    },
    /// A WAL segment the engine created (format 2); the snapshot lists the live ones.
    AddWalSegment(FileNumber),
    /// Internal table `decl.index` is secondary index `decl.name` of `decl.table`
    /// (format 4). Not readable until an `IndexReady` for it.
    DeclareIndex(IndexDecl),
    /// The index's backfill from its table completed (format 4): it may be read.
    IndexReady {
        index: TableId,
    },
    /// Local index `decl.name` of `decl.table` (format 5), ready from the start (the
    /// table is created with it).
    DeclareLocalIndex(LocalIndexDecl),
    /// An older table-key version still in use (format 6).
    TableKeyVersion(OldTableKey),
    /// No file uses `version` of `table`'s key any more; its wrapped copy is dropped from
    /// the catalogue (format 6).
    RetireTableKey {
        table: TableId,
        version: u32,
    },
}

/// An atomic group of edits: one manifest record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct VersionEdit {
    pub(crate) edits: Vec<Edit>,
}

impl VersionEdit {
    pub(crate) fn new(edits: Vec<Edit>) -> VersionEdit {
        VersionEdit { edits }
    }

    /// The tables this group touches, ascending, each once.
    pub(crate) fn tables(&self) -> Vec<TableId> {
        let mut t: Vec<TableId> = self.edits.iter().filter_map(Edit::table).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// Encodes the edits (see the layout atop this file).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.edits.is_empty() {
            return Err(Error::Internal("empty version edit".to_owned()));
        }
        for e in &self.edits {
            e.encode(out)?;
        }
        Ok(())
    }

    /// Decodes a whole edits field; `offset` is its file offset, for errors.
    pub(crate) fn decode(bytes: &[u8], offset: u64, label: &str) -> Result<VersionEdit> {
        let mut c = Cursor::new(bytes, offset, label);
        let mut edits = Vec::new();
        while !c.is_empty() {
            edits.push(Edit::decode(&mut c)?);
        }
        if edits.is_empty() {
            return Err(c.error("manifest record without edits"));
        }
        Ok(VersionEdit { edits })
    }
}

impl Edit {
    /// The table an edit belongs to; `None` for database-wide counters.
    pub(crate) fn table(&self) -> Option<TableId> {
        match self {
            Edit::CreateTable { id, .. } | Edit::DropTable { id } => Some(*id),
            Edit::AddFile { table, .. }
            | Edit::RemoveFile { table, .. }
            | Edit::SetLogNumber { table, .. }
            | Edit::SetTableKey { table, .. } => Some(*table),
            Edit::DeclareIndex(d) => Some(d.index),
            Edit::IndexReady { index } => Some(*index),
            Edit::DeclareLocalIndex(d) => Some(d.table),
            Edit::TableKeyVersion(k) => Some(k.table),
            Edit::RetireTableKey { table, .. } => Some(*table),
            Edit::SetNextFileNumber(_)
            | Edit::SetLastSeq(_)
            | Edit::SetNextTableId(_)
            | Edit::SetDatabaseKey(_)
            | Edit::SnapshotEnd { .. }
            | Edit::AddWalSegment(_) => None,
        }
    }

    pub(crate) fn tag(&self) -> EditTag {
        match self {
            Edit::CreateTable { .. } => EditTag::CreateTable,
            Edit::DropTable { .. } => EditTag::DropTable,
            Edit::AddFile { .. } => EditTag::AddFile,
            Edit::RemoveFile { .. } => EditTag::RemoveFile,
            Edit::SetLogNumber { .. } => EditTag::SetLogNumber,
            Edit::SetNextFileNumber(_) => EditTag::SetNextFileNumber,
            Edit::SetLastSeq(_) => EditTag::SetLastSeq,
            Edit::SetNextTableId(_) => EditTag::SetNextTableId,
            Edit::SetTableKey { .. } => EditTag::SetTableKey,
            Edit::SetDatabaseKey(_) => EditTag::SetDatabaseKey,
            Edit::SnapshotEnd { .. } => EditTag::SnapshotEnd,
            Edit::AddWalSegment(_) => EditTag::AddWalSegment,
            Edit::DeclareIndex(_) => EditTag::DeclareIndex,
            Edit::IndexReady { .. } => EditTag::IndexReady,
            Edit::DeclareLocalIndex(_) => EditTag::DeclareLocalIndex,
            Edit::TableKeyVersion(_) => EditTag::TableKeyVersion,
            Edit::RetireTableKey { .. } => EditTag::RetireTableKey,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.tag() as u8);
        match self {
            Edit::CreateTable { id, name, meta } => {
                out.extend_from_slice(&id.0.to_le_bytes());
                put_len_prefixed(out, name.as_bytes())?;
                meta.encode(out)?;
            }
            Edit::DropTable { id } => out.extend_from_slice(&id.0.to_le_bytes()),
            Edit::AddFile { table, file: f } => {
                out.extend_from_slice(&table.0.to_le_bytes());
                out.push(f.level.0);
                for v in [f.number.0, f.size, f.entries, f.min_seq.0, f.max_seq.0] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                f.smallest.encode(out)?;
                f.largest.encode(out)?;
            }
            Edit::RemoveFile { table, level, file } => {
                out.extend_from_slice(&table.0.to_le_bytes());
                out.push(level.0);
                out.extend_from_slice(&file.0.to_le_bytes());
            }
            Edit::SetLogNumber { table, log } => {
                out.extend_from_slice(&table.0.to_le_bytes());
                out.extend_from_slice(&log.0.to_le_bytes());
            }
            Edit::SetNextFileNumber(n) => out.extend_from_slice(&n.0.to_le_bytes()),
            Edit::SetLastSeq(s) => out.extend_from_slice(&s.0.to_le_bytes()),
            Edit::SetNextTableId(t) => out.extend_from_slice(&t.0.to_le_bytes()),
            Edit::SetTableKey { table, meta } => {
                out.extend_from_slice(&table.0.to_le_bytes());
                meta.encode(out)?;
            }
            Edit::SetDatabaseKey(k) => {
                put_len_prefixed(out, k.db_id.as_bytes())?;
                put_len_prefixed(out, k.key_arn.as_bytes())?;
                put_len_prefixed(out, &k.wrapped_key)?;
                put_len_prefixed(out, k.grant_id.as_bytes())?;
            }
            Edit::SnapshotEnd { records } => out.extend_from_slice(&records.to_le_bytes()),
            Edit::AddWalSegment(n) => out.extend_from_slice(&n.0.to_le_bytes()),
            Edit::DeclareIndex(d) => {
                out.extend_from_slice(&d.index.0.to_le_bytes());
                out.extend_from_slice(&d.table.0.to_le_bytes());
                put_len_prefixed(out, d.name.as_bytes())?;
                out.push(if d.unique { INDEX_UNIQUE } else { 0 });
                out.push(d.kind as u8);
                put_len_prefixed(out, d.extractor.as_bytes())?;
            }
            Edit::IndexReady { index } => out.extend_from_slice(&index.0.to_le_bytes()),
            Edit::DeclareLocalIndex(d) => {
                out.extend_from_slice(&d.table.0.to_le_bytes());
                out.push(d.slot);
                put_len_prefixed(out, d.name.as_bytes())?;
                out.push(if d.unique { INDEX_UNIQUE } else { 0 });
                out.push(d.kind as u8);
                put_len_prefixed(out, d.extractor.as_bytes())?;
            }
            Edit::TableKeyVersion(k) => {
                out.extend_from_slice(&k.table.0.to_le_bytes());
                out.extend_from_slice(&k.version.to_le_bytes());
                out.extend_from_slice(&k.first_file.to_le_bytes());
                out.extend_from_slice(&k.first_segment.to_le_bytes());
                put_len_prefixed(out, &k.wrapped_table_key)?;
            }
            Edit::RetireTableKey { table, version } => {
                out.extend_from_slice(&table.0.to_le_bytes());
                out.extend_from_slice(&version.to_le_bytes());
            }
        }
        Ok(())
    }

    pub(crate) fn decode(c: &mut Cursor<'_>) -> Result<Edit> {
        let at = c.offset();
        let tag = c.u8("edit tag")?;
        let tag = EditTag::try_from(tag)
            .map_err(|t| c.error_at(at, format!("unknown manifest edit tag {t}")))?;
        let table = |c: &mut Cursor<'_>| c.u32("table id").map(TableId);
        Ok(match tag {
            EditTag::CreateTable => Edit::CreateTable {
                id: table(c)?,
                name: decode_str(c, "table name")?,
                meta: TableMeta::decode(c)?,
            },
            EditTag::DropTable => Edit::DropTable { id: table(c)? },
            EditTag::AddFile => Edit::AddFile {
                table: table(c)?,
                file: FileMeta {
                    level: Level(c.u8("level")?),
                    number: FileNumber(c.u64("file number")?),
                    size: c.u64("file size")?,
                    entries: c.u64("entry count")?,
                    min_seq: SeqNo(c.u64("smallest sequence number")?),
                    max_seq: SeqNo(c.u64("largest sequence number")?),
                    smallest: Boundary::decode(c)?,
                    largest: Boundary::decode(c)?,
                },
            },
            EditTag::RemoveFile => Edit::RemoveFile {
                table: table(c)?,
                level: Level(c.u8("level")?),
                file: FileNumber(c.u64("file number")?),
            },
            EditTag::SetLogNumber => Edit::SetLogNumber {
                table: table(c)?,
                log: FileNumber(c.u64("log number")?),
            },
            EditTag::SetNextFileNumber => {
                Edit::SetNextFileNumber(FileNumber(c.u64("next file number")?))
            }
            EditTag::SetLastSeq => Edit::SetLastSeq(SeqNo(c.u64("last sequence number")?)),
            EditTag::SetNextTableId => Edit::SetNextTableId(table(c)?),
            EditTag::SetTableKey => Edit::SetTableKey {
                table: table(c)?,
                meta: TableMeta::decode(c)?,
            },
            EditTag::SetDatabaseKey => Edit::SetDatabaseKey(DatabaseKeyMeta {
                db_id: decode_str(c, "database id")?,
                key_arn: decode_str(c, "database key ARN")?,
                wrapped_key: c.len_prefixed("wrapped database key")?.to_vec(),
                grant_id: decode_str(c, "database key grant id")?,
            }),
            EditTag::SnapshotEnd => Edit::SnapshotEnd {
                records: c.u32("snapshot record count")?,
            },
            EditTag::AddWalSegment => Edit::AddWalSegment(FileNumber(c.u64("WAL segment")?)),
            EditTag::DeclareIndex => {
                let index = table(c)?;
                let parent = table(c)?;
                let name = decode_str(c, "index name")?;
                let (unique, kind) = index_flags_and_kind(c)?;
                Edit::DeclareIndex(IndexDecl {
                    index,
                    table: parent,
                    name,
                    unique,
                    kind,
                    extractor: decode_str(c, "index extractor")?,
                })
            }
            EditTag::IndexReady => Edit::IndexReady { index: table(c)? },
            EditTag::DeclareLocalIndex => {
                let parent = table(c)?;
                let slot = c.u8("local index slot")?;
                let name = decode_str(c, "index name")?;
                let (unique, kind) = index_flags_and_kind(c)?;
                Edit::DeclareLocalIndex(LocalIndexDecl {
                    table: parent,
                    slot,
                    name,
                    unique,
                    kind,
                    extractor: decode_str(c, "index extractor")?,
                })
            }
            EditTag::TableKeyVersion => Edit::TableKeyVersion(OldTableKey {
                table: table(c)?,
                version: c.u32("table key version")?,
                first_file: c.u64("first file under the next version")?,
                first_segment: c.u64("first WAL segment under the next version")?,
                wrapped_table_key: c.len_prefixed("old wrapped table key")?.to_vec(),
            }),
            EditTag::RetireTableKey => Edit::RetireTableKey {
                table: table(c)?,
                version: c.u32("retired table key version")?,
            },
        })
    }
}

/// The flags and extractor kind of an index declaration (tags 20 and 22).
fn index_flags_and_kind(c: &mut Cursor<'_>) -> Result<(bool, ExtractorKind)> {
    let flags = c.u8("index flags")?;
    if flags & !INDEX_UNIQUE != 0 {
        return Err(c.error(format!("unknown index flags {flags:#04x}")));
    }
    let kind = c.u8("index extractor kind")?;
    let kind = ExtractorKind::try_from(kind)
        .map_err(|k| c.error(format!("unknown index extractor kind {k}")))?;
    Ok((flags & INDEX_UNIQUE != 0, kind))
}

fn decode_str(c: &mut Cursor<'_>, what: &str) -> Result<String> {
    let at = c.offset();
    let bytes = c.len_prefixed(what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| c.error_at(at, format!("{what} is not UTF-8")))
}

impl TableMeta {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut flags = 0u8;
        if self.encrypted {
            flags |= META_ENCRYPTED;
        }
        if self.sealed_boundaries {
            flags |= META_SEALED_BOUNDARIES;
        }
        flags |= (self.compression as u8) << META_COMPRESSION_SHIFT;
        out.push(flags);
        put_len_prefixed(out, self.key_arn.as_bytes())?;
        put_len_prefixed(out, &self.wrapped_table_key)?;
        put_len_prefixed(out, self.grant_id.as_bytes())?;
        for v in [self.key_version, self.block_size, self.bloom_bits_per_key] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(())
    }

    fn decode(c: &mut Cursor<'_>) -> Result<TableMeta> {
        let flags = c.u8("table flags")?;
        if flags & !(META_ENCRYPTED | META_SEALED_BOUNDARIES | META_COMPRESSION_MASK) != 0 {
            return Err(c.error(format!("unknown table flags {flags:#04x}")));
        }
        let compression =
            Compression::try_from((flags & META_COMPRESSION_MASK) >> META_COMPRESSION_SHIFT)
                .map_err(|t| c.error(format!("unknown table compression {t}")))?;
        Ok(TableMeta {
            encrypted: flags & META_ENCRYPTED != 0,
            sealed_boundaries: flags & META_SEALED_BOUNDARIES != 0,
            key_arn: decode_str(c, "key ARN")?,
            wrapped_table_key: c.len_prefixed("wrapped table key")?.to_vec(),
            grant_id: decode_str(c, "grant id")?,
            key_version: c.u32("key version")?,
            block_size: c.u32("block size")?,
            bloom_bits_per_key: c.u32("bloom bits per key")?,
            compression,
        })
    }
}

impl Boundary {
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let (tag, bytes) = match self {
            Boundary::Plain(b) => (BoundaryTag::Plain, b),
            Boundary::Sealed(b) => (BoundaryTag::Sealed, b),
        };
        out.push(tag as u8);
        put_len_prefixed(out, bytes)
    }

    fn decode(c: &mut Cursor<'_>) -> Result<Boundary> {
        let tag = c.u8("boundary kind")?;
        let bytes = c.len_prefixed("boundary")?.to_vec();
        match tag {
            t if t == BoundaryTag::Plain as u8 => Ok(Boundary::Plain(bytes)),
            t if t == BoundaryTag::Sealed as u8 => Ok(Boundary::Sealed(bytes)),
            other => Err(c.error(format!("unknown boundary kind {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta_strategy() -> impl Strategy<Value = TableMeta> {
        (
            any::<(bool, bool)>(),
            ".{0,20}",
            bytes(80),
            "[a-f0-9]{0,64}",
            any::<(u32, u32, u32)>(),
            any::<bool>(),
        )
            .prop_map(|((e, s), arn, blob, grant, (v, b, bl), lz4)| TableMeta {
                encrypted: e,
                sealed_boundaries: s,
                key_arn: arn,
                wrapped_table_key: blob,
                grant_id: grant,
                key_version: v,
                block_size: b,
                bloom_bits_per_key: bl,
                compression: if lz4 {
                    Compression::Lz4
                } else {
                    Compression::None
                },
            })
    }

    /// Byte strings shorter than `max`.
    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    fn boundary_strategy() -> impl Strategy<Value = Boundary> {
        prop_oneof![
            bytes(40).prop_map(Boundary::Plain),
            bytes(40).prop_map(Boundary::Sealed),
        ]
    }

    /// What a global and a local index declaration share: name, unique, kind, extractor.
    fn index_fields() -> impl Strategy<Value = (String, bool, ExtractorKind, String)> {
        (
            ".{0,8}",
            any::<bool>(),
            prop_oneof![Just(ExtractorKind::JsonPointer), Just(ExtractorKind::Named)],
            ".{0,12}",
        )
    }

    pub(crate) fn edit_strategy() -> impl Strategy<Value = Edit> {
        let t = any::<u32>().prop_map(TableId);
        let f = any::<u64>().prop_map(FileNumber);
        prop_oneof![
            (t.clone(), ".{0,16}", meta_strategy())
                .prop_map(|(id, name, meta)| Edit::CreateTable { id, name, meta }),
            t.clone().prop_map(|id| Edit::DropTable { id }),
            (
                t.clone(),
                any::<u8>(),
                f.clone(),
                any::<(u64, u64, u64, u64)>(),
                boundary_strategy(),
                boundary_strategy()
            )
                .prop_map(
                    |(table, l, file, (size, entries, a, b), smallest, largest)| {
                        Edit::AddFile {
                            table,
                            file: FileMeta {
                                number: file,
                                level: Level(l),
                                size,
                                entries,
                                min_seq: SeqNo(a),
                                max_seq: SeqNo(b),
                                smallest,
                                largest,
                            },
                        }
                    }
                ),
            (t.clone(), any::<u8>(), f.clone()).prop_map(|(table, l, file)| Edit::RemoveFile {
                table,
                level: Level(l),
                file
            }),
            (t.clone(), f.clone()).prop_map(|(table, log)| Edit::SetLogNumber { table, log }),
            f.prop_map(Edit::SetNextFileNumber),
            any::<u64>().prop_map(|s| Edit::SetLastSeq(SeqNo(s))),
            t.clone().prop_map(Edit::SetNextTableId),
            (t, meta_strategy()).prop_map(|(table, meta)| Edit::SetTableKey { table, meta }),
            (".{0,8}", ".{0,8}", bytes(40), ".{0,8}").prop_map(
                |(db_id, key_arn, wrapped_key, grant_id)| {
                    Edit::SetDatabaseKey(DatabaseKeyMeta {
                        db_id,
                        key_arn,
                        wrapped_key,
                        grant_id,
                    })
                }
            ),
            any::<u32>().prop_map(|records| Edit::SnapshotEnd { records }),
            any::<u64>().prop_map(|n| Edit::AddWalSegment(FileNumber(n))),
            (any::<(u32, u32)>(), index_fields()).prop_map(
                |((index, table), (name, unique, kind, extractor))| {
                    Edit::DeclareIndex(IndexDecl {
                        index: TableId(index),
                        table: TableId(table),
                        name,
                        unique,
                        kind,
                        extractor,
                    })
                }
            ),
            any::<u32>().prop_map(|i| Edit::IndexReady { index: TableId(i) }),
            (any::<(u32, u8)>(), index_fields()).prop_map(
                |((table, slot), (name, unique, kind, extractor))| {
                    Edit::DeclareLocalIndex(LocalIndexDecl {
                        table: TableId(table),
                        slot,
                        name,
                        unique,
                        kind,
                        extractor,
                    })
                }
            ),
            (any::<(u32, u32, u64, u64)>(), bytes(40)).prop_map(
                |((t, version, first_file, first_segment), wrapped)| {
                    Edit::TableKeyVersion(OldTableKey {
                        table: TableId(t),
                        version,
                        first_file,
                        first_segment,
                        wrapped_table_key: wrapped,
                    })
                }
            ),
            any::<(u32, u32)>().prop_map(|(t, version)| Edit::RetireTableKey {
                table: TableId(t),
                version
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_edit_round_trips(edits in proptest::collection::vec(edit_strategy(), 1..8)) {
            let ve = VersionEdit::new(edits);
            let mut out = Vec::new();
            ve.encode(&mut out)?;
            prop_assert_eq!(VersionEdit::decode(&out, 0, "m")?, ve.clone());
            // Every strict prefix fails to decode rather than decoding to something else.
            for cut in 0..out.len() {
                if let Ok(got) = VersionEdit::decode(&out[..cut], 0, "m") {
                    prop_assert!(ve.edits.starts_with(&got.edits) && got.edits.len() < ve.edits.len());
                }
            }
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = VersionEdit::decode(&bytes, 0, "m");
        }
    }

    #[test]
    fn tags_are_frozen() {
        for t in (1..=12u8).chain(20..=22).chain(30..=31) {
            assert_eq!(EditTag::try_from(t).map(|e| e as u8), Ok(t));
        }
        for t in [0u8, 13, 19, 23, 29, 32, 39] {
            assert_eq!(EditTag::try_from(t), Err(t));
        }
    }

    #[test]
    fn golden_bytes_of_each_edit_kind() -> Result<()> {
        let meta = TableMeta {
            encrypted: true,
            sealed_boundaries: false,
            key_arn: "k".into(),
            wrapped_table_key: vec![0xAA, 0xBB],
            grant_id: "g".into(),
            key_version: 1,
            block_size: 4096,
            bloom_bits_per_key: 10,
            compression: Compression::None,
        };
        let cases: Vec<(Edit, &str)> = vec![
            (
                Edit::CreateTable { id: TableId(1), name: "t".into(), meta: meta.clone() },
                "01 01000000 01000000 74 01 01000000 6b 02000000 aabb 01000000 67 01000000 00100000 0a000000",
            ),
            (Edit::DropTable { id: TableId(2) }, "02 02000000"),
            (
                Edit::AddFile {
                    table: TableId(1),
                    file: FileMeta {
                        number: FileNumber(9),
                        level: Level(2),
                        size: 300,
                        entries: 4,
                        min_seq: SeqNo(5),
                        max_seq: SeqNo(6),
                        smallest: Boundary::Plain(b"a".to_vec()),
                        largest: Boundary::Sealed(b"z".to_vec()),
                    },
                },
                "03 01000000 02 0900000000000000 2c01000000000000 0400000000000000 \
                 0500000000000000 0600000000000000 01 01000000 61 02 01000000 7a",
            ),
            (
                Edit::RemoveFile { table: TableId(1), level: Level(0), file: FileNumber(3) },
                "04 01000000 00 0300000000000000",
            ),
            (
                Edit::SetLogNumber { table: TableId(1), log: FileNumber(7) },
                "05 01000000 0700000000000000",
            ),
            (Edit::SetNextFileNumber(FileNumber(8)), "06 0800000000000000"),
            (Edit::SetLastSeq(SeqNo(258)), "07 0201000000000000"),
            (Edit::SetNextTableId(TableId(3)), "08 03000000"),
            (
                Edit::SetTableKey { table: TableId(1), meta: TableMeta::default() },
                "09 01000000 00 00000000 00000000 00000000 00000000 00000000 00000000",
            ),
            (
                Edit::SetDatabaseKey(DatabaseKeyMeta {
                    db_id: "d".into(),
                    key_arn: "k".into(),
                    wrapped_key: vec![0xCC],
                    grant_id: "g".into(),
                }),
                "0a 01000000 64 01000000 6b 01000000 cc 01000000 67",
            ),
            (Edit::SnapshotEnd { records: 3 }, "0b 03000000"),
            (Edit::AddWalSegment(FileNumber(5)), "0c 0500000000000000"),
            (
                Edit::DeclareIndex(IndexDecl {
                    index: TableId(4),
                    table: TableId(1),
                    name: "by".into(),
                    unique: true,
                    kind: ExtractorKind::JsonPointer,
                    extractor: "/a".into(),
                }),
                "14 04000000 01000000 02000000 6279 01 01 02000000 2f61",
            ),
            (Edit::IndexReady { index: TableId(4) }, "15 04000000"),
            (
                Edit::DeclareLocalIndex(LocalIndexDecl {
                    table: TableId(1),
                    slot: 2,
                    name: "by".into(),
                    unique: false,
                    kind: ExtractorKind::Named,
                    extractor: "f".into(),
                }),
                "16 01000000 02 02000000 6279 00 02 01000000 66",
            ),
            (
                Edit::TableKeyVersion(OldTableKey {
                    table: TableId(1),
                    version: 2,
                    first_file: 17,
                    first_segment: 16,
                    wrapped_table_key: vec![0xDD, 0xEE],
                }),
                "1e 01000000 02000000 1100000000000000 1000000000000000 02000000 ddee",
            ),
            (
                Edit::RetireTableKey { table: TableId(1), version: 2 },
                "1f 01000000 02000000",
            ),
        ];
        for (edit, hex_str) in cases {
            let mut out = Vec::new();
            edit.encode(&mut out)?;
            let expected: String = hex_str.split_whitespace().collect();
            assert_eq!(hex::encode(&out), expected, "{edit:?}");
        }
        Ok(())
    }

    #[test]
    fn compression_lives_in_flag_bits_and_old_records_read_as_none() -> Result<()> {
        let meta = TableMeta {
            encrypted: true,
            compression: Compression::Lz4,
            ..TableMeta::default()
        };
        let mut out = Vec::new();
        Edit::SetTableKey {
            table: TableId(1),
            meta: meta.clone(),
        }
        .encode(&mut out)?;
        assert_eq!(out[5], 0x05, "flags: encrypted | lz4 << 2");
        assert_eq!(
            VersionEdit::decode(&out, 0, "m")?.edits,
            vec![Edit::SetTableKey {
                table: TableId(1),
                meta: meta.clone()
            }]
        );
        // A record from before compression existed: bits 2-3 clear.
        out[5] = 0x01;
        match &VersionEdit::decode(&out, 0, "m")?.edits[..] {
            [Edit::SetTableKey { meta: m, .. }] => assert_eq!(m.compression, Compression::None),
            other => panic!("{other:?}"),
        }
        // Unknown compression values (2, 3) are corruption.
        for f in [0x09u8, 0x0D] {
            out[5] = f;
            assert!(VersionEdit::decode(&out, 0, "m").is_err(), "{f:#x}");
        }
        Ok(())
    }

    #[test]
    fn bad_utf8_and_unknown_tags_are_corruption() {
        let mut out = vec![EditTag::DropTable as u8];
        out.extend_from_slice(&1u32.to_le_bytes());
        out.push(42);
        assert!(VersionEdit::decode(&out, 0, "m").is_err());
        let mut bad = vec![EditTag::CreateTable as u8];
        bad.extend_from_slice(&1u32.to_le_bytes());
        bad.extend_from_slice(&1u32.to_le_bytes());
        bad.push(0xFF);
        assert!(VersionEdit::decode(&bad, 0, "m").is_err());
        assert!(VersionEdit::decode(&[], 0, "m").is_err());
    }
}
