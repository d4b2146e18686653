//! An adversary's manifest toolkit: parse a MANIFEST into its frames and edits, change
//! them, and write it back with every checksum recomputed (the record CRCs, the record
//! header CRCs and the file header CRC are no secret). MACs are kept as found: forging
//! them needs a key the adversary does not have.
//!
//! Written from the layouts in DESIGN.md section 7 and /work/notes/manifest_v2.md, not
//! from the engine's code, so that a drift between the two shows up here as a parse error.
//!
//! ```text
//! file header (24): magic "SEALMAN\0" | version u8 | 3 zero | number u64 | crc32(0..20) u32
//! record: len u32 | crc32(type || payload) u32 | type u8 | crc32(first 9 bytes) u32 | payload
//! payload: edits_len u32 | edits | mac_count u32 | (table u32 | hmac[32])*
//!          | v2 only: db_mac_len u8 (0 or 32) | db_mac
//! ```
#![allow(dead_code)]

pub mod check;
pub mod fixture;

use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"SEALMAN\0";
pub const FILE_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 13;
pub const MAC_LEN: usize = 32;
/// The only manifest record type.
pub const RECORD_EDIT: u8 = 1;

pub type CraftResult<T> = Result<T, String>;

/// A whole manifest as frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The 24-byte file header as found (re-checksummed by `encode`).
    pub header: [u8; FILE_HEADER_LEN],
    pub records: Vec<Record>,
}

/// One framed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub rtype: u8,
    pub payload: Vec<u8>,
}

/// A record payload, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub edits: Vec<Edit>,
    pub macs: Vec<(u32, [u8; MAC_LEN])>,
    /// `None`: a version-1 payload (no field). `Some(empty)`: v2 with `db_mac_len` 0.
    pub db_mac: Option<Vec<u8>>,
}

/// A table's persistent settings, as encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// bit 0 encrypted, bit 1 sealed boundaries, bits 2-3 compression.
    pub flags: u8,
    pub key_arn: Vec<u8>,
    pub wrapped_table_key: Vec<u8>,
    pub grant_id: Vec<u8>,
    pub key_version: u32,
    pub block_size: u32,
    pub bloom_bits_per_key: u32,
}

pub const META_ENCRYPTED: u8 = 0x01;

/// One edit, by tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    CreateTable {
        id: u32,
        name: Vec<u8>,
        meta: Meta,
    },
    DropTable {
        id: u32,
    },
    AddFile {
        table: u32,
        level: u8,
        file: u64,
        size: u64,
        entries: u64,
        min_seq: u64,
        max_seq: u64,
        smallest: (u8, Vec<u8>),
        largest: (u8, Vec<u8>),
    },
    RemoveFile {
        table: u32,
        level: u8,
        file: u64,
    },
    SetLogNumber {
        table: u32,
        log: u64,
    },
    SetNextFileNumber(u64),
    SetLastSeq(u64),
    SetNextTableId(u32),
    SetTableKey {
        table: u32,
        meta: Meta,
    },
    SetDatabaseKey {
        db_id: Vec<u8>,
        key_arn: Vec<u8>,
        wrapped_key: Vec<u8>,
        grant_id: Vec<u8>,
    },
    SnapshotEnd {
        records: u32,
    },
    AddWalSegment(u64),
}

impl Edit {
    pub fn table(&self) -> Option<u32> {
        match self {
            Edit::CreateTable { id, .. } | Edit::DropTable { id } => Some(*id),
            Edit::AddFile { table, .. }
            | Edit::RemoveFile { table, .. }
            | Edit::SetLogNumber { table, .. }
            | Edit::SetTableKey { table, .. } => Some(*table),
            _ => None,
        }
    }
}

/// A cursor over bytes that fails with a description instead of panicking.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &str) -> CraftResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("{what}: {n} bytes past the end at {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> CraftResult<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> CraftResult<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> CraftResult<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self, what: &str) -> CraftResult<Vec<u8>> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }
    fn done(&self) -> bool {
        self.pos == self.data.len()
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl Meta {
    fn decode(r: &mut Reader<'_>) -> CraftResult<Meta> {
        Ok(Meta {
            flags: r.u8("flags")?,
            key_arn: r.bytes("key arn")?,
            wrapped_table_key: r.bytes("wrapped table key")?,
            grant_id: r.bytes("grant id")?,
            key_version: r.u32("key version")?,
            block_size: r.u32("block size")?,
            bloom_bits_per_key: r.u32("bloom bits")?,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.flags);
        put_bytes(out, &self.key_arn);
        put_bytes(out, &self.wrapped_table_key);
        put_bytes(out, &self.grant_id);
        for v in [self.key_version, self.block_size, self.bloom_bits_per_key] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn decode_boundary(r: &mut Reader<'_>) -> CraftResult<(u8, Vec<u8>)> {
    Ok((r.u8("boundary kind")?, r.bytes("boundary")?))
}

fn encode_boundary(b: &(u8, Vec<u8>), out: &mut Vec<u8>) {
    out.push(b.0);
    put_bytes(out, &b.1);
}

pub fn decode_edits(data: &[u8]) -> CraftResult<Vec<Edit>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while !r.done() {
        let tag = r.u8("edit tag")?;
        out.push(match tag {
            1 => Edit::CreateTable {
                id: r.u32("id")?,
                name: r.bytes("name")?,
                meta: Meta::decode(&mut r)?,
            },
            2 => Edit::DropTable { id: r.u32("id")? },
            3 => Edit::AddFile {
                table: r.u32("table")?,
                level: r.u8("level")?,
                file: r.u64("file")?,
                size: r.u64("size")?,
                entries: r.u64("entries")?,
                min_seq: r.u64("min seq")?,
                max_seq: r.u64("max seq")?,
                smallest: decode_boundary(&mut r)?,
                largest: decode_boundary(&mut r)?,
            },
            4 => Edit::RemoveFile {
                table: r.u32("table")?,
                level: r.u8("level")?,
                file: r.u64("file")?,
            },
            5 => Edit::SetLogNumber {
                table: r.u32("table")?,
                log: r.u64("log")?,
            },
            6 => Edit::SetNextFileNumber(r.u64("next file")?),
            7 => Edit::SetLastSeq(r.u64("last seq")?),
            8 => Edit::SetNextTableId(r.u32("next table id")?),
            9 => Edit::SetTableKey {
                table: r.u32("table")?,
                meta: Meta::decode(&mut r)?,
            },
            10 => Edit::SetDatabaseKey {
                db_id: r.bytes("db id")?,
                key_arn: r.bytes("key arn")?,
                wrapped_key: r.bytes("wrapped key")?,
                grant_id: r.bytes("grant id")?,
            },
            11 => Edit::SnapshotEnd {
                records: r.u32("records")?,
            },
            12 => Edit::AddWalSegment(r.u64("segment")?),
            other => return Err(format!("unknown edit tag {other} at {}", r.pos - 1)),
        });
    }
    Ok(out)
}

pub fn encode_edits(edits: &[Edit]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in edits {
        match e {
            Edit::CreateTable { id, name, meta } => {
                out.push(1);
                out.extend_from_slice(&id.to_le_bytes());
                put_bytes(&mut out, name);
                meta.encode(&mut out);
            }
            Edit::DropTable { id } => {
                out.push(2);
                out.extend_from_slice(&id.to_le_bytes());
            }
            Edit::AddFile {
                table,
                level,
                file,
                size,
                entries,
                min_seq,
                max_seq,
                smallest,
                largest,
            } => {
                out.push(3);
                out.extend_from_slice(&table.to_le_bytes());
                out.push(*level);
                for v in [*file, *size, *entries, *min_seq, *max_seq] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                encode_boundary(smallest, &mut out);
                encode_boundary(largest, &mut out);
            }
            Edit::RemoveFile { table, level, file } => {
                out.push(4);
                out.extend_from_slice(&table.to_le_bytes());
                out.push(*level);
                out.extend_from_slice(&file.to_le_bytes());
            }
            Edit::SetLogNumber { table, log } => {
                out.push(5);
                out.extend_from_slice(&table.to_le_bytes());
                out.extend_from_slice(&log.to_le_bytes());
            }
            Edit::SetNextFileNumber(n) => {
                out.push(6);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Edit::SetLastSeq(s) => {
                out.push(7);
                out.extend_from_slice(&s.to_le_bytes());
            }
            Edit::SetNextTableId(t) => {
                out.push(8);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Edit::SetTableKey { table, meta } => {
                out.push(9);
                out.extend_from_slice(&table.to_le_bytes());
                meta.encode(&mut out);
            }
            Edit::SetDatabaseKey {
                db_id,
                key_arn,
                wrapped_key,
                grant_id,
            } => {
                out.push(10);
                put_bytes(&mut out, db_id);
                put_bytes(&mut out, key_arn);
                put_bytes(&mut out, wrapped_key);
                put_bytes(&mut out, grant_id);
            }
            Edit::SnapshotEnd { records } => {
                out.push(11);
                out.extend_from_slice(&records.to_le_bytes());
            }
            Edit::AddWalSegment(s) => {
                out.push(12);
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    out
}

impl Payload {
    /// Decodes a payload of a manifest of format `version`.
    pub fn decode(data: &[u8], version: u8) -> CraftResult<Payload> {
        let mut r = Reader::new(data);
        let edits = decode_edits(&r.bytes("edits")?)?;
        let count = r.u32("mac count")?;
        let mut macs = Vec::new();
        for _ in 0..count {
            let table = r.u32("mac table")?;
            let mut mac = [0u8; MAC_LEN];
            mac.copy_from_slice(r.take(MAC_LEN, "mac")?);
            macs.push((table, mac));
        }
        let db_mac = if version >= 2 {
            let n = r.u8("db mac len")? as usize;
            Some(r.take(n, "db mac")?.to_vec())
        } else {
            None
        };
        if !r.done() {
            return Err(format!("{} trailing payload bytes", data.len() - r.pos));
        }
        Ok(Payload {
            edits,
            macs,
            db_mac,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, &encode_edits(&self.edits));
        out.extend_from_slice(&(self.macs.len() as u32).to_le_bytes());
        for (t, m) in &self.macs {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(m);
        }
        if let Some(m) = &self.db_mac {
            out.push(m.len() as u8);
            out.extend_from_slice(m);
        }
        out
    }

    /// A payload carrying `edits` and no MAC at all (what someone without keys can write).
    pub fn unauthenticated(edits: Vec<Edit>, version: u8) -> Payload {
        Payload {
            edits,
            macs: Vec::new(),
            db_mac: (version >= 2).then(Vec::new),
        }
    }
}

pub fn frame_record(rtype: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; RECORD_HEADER_LEN];
    head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&[rtype]);
    h.update(payload);
    head[4..8].copy_from_slice(&h.finalize().to_le_bytes());
    head[8] = rtype;
    let hcrc = crc32fast::hash(&head[..9]);
    head[9..].copy_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
}

impl Manifest {
    /// Parses a manifest whose every record is whole and checks out. Checks that
    /// re-encoding gives back the same bytes, so that the helper's layout matches the
    /// engine's exactly (a crafted edit then changes only what it means to).
    pub fn parse(data: &[u8]) -> CraftResult<Manifest> {
        let mut r = Reader::new(data);
        let mut header = [0u8; FILE_HEADER_LEN];
        header.copy_from_slice(r.take(FILE_HEADER_LEN, "file header")?);
        if &header[..8] != MAGIC {
            return Err("bad manifest magic".into());
        }
        let mut records = Vec::new();
        while !r.done() {
            let at = r.pos;
            let len = r.u32("record len")? as usize;
            let crc = r.u32("record crc")?;
            let rtype = r.u8("record type")?;
            let _hcrc = r.u32("record header crc")?;
            let payload = r.take(len, "record payload")?.to_vec();
            let mut h = crc32fast::Hasher::new();
            h.update(&[rtype]);
            h.update(&payload);
            if h.finalize() != crc {
                return Err(format!("record at {at} fails its crc"));
            }
            records.push(Record { rtype, payload });
        }
        let m = Manifest { header, records };
        if m.encode() != data {
            return Err("re-encoding the manifest does not give back its bytes".into());
        }
        for (i, rec) in m.records.iter().enumerate() {
            let p = m.payload(i)?;
            if p.encode() != rec.payload {
                return Err(format!("record {i}: payload does not round-trip"));
            }
        }
        Ok(m)
    }

    pub fn read(path: &Path) -> CraftResult<Manifest> {
        let data = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Manifest::parse(&data)
    }

    pub fn version(&self) -> u8 {
        self.header[8]
    }

    pub fn number(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.header[12..20]);
        u64::from_le_bytes(a)
    }

    pub fn payload(&self, i: usize) -> CraftResult<Payload> {
        let rec = self
            .records
            .get(i)
            .ok_or_else(|| format!("no record {i}"))?;
        Payload::decode(&rec.payload, self.version())
    }

    pub fn payloads(&self) -> CraftResult<Vec<Payload>> {
        (0..self.records.len()).map(|i| self.payload(i)).collect()
    }

    pub fn set_payload(&mut self, i: usize, p: &Payload) {
        self.records[i].payload = p.encode();
    }

    pub fn push(&mut self, p: &Payload) {
        self.records.push(Record {
            rtype: RECORD_EDIT,
            payload: p.encode(),
        });
    }

    /// The whole file, every checksum recomputed.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header.to_vec();
        let crc = crc32fast::hash(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        for rec in &self.records {
            frame_record(rec.rtype, &rec.payload, &mut out);
        }
        out
    }

    /// The file offset just past each record.
    pub fn record_ends(&self) -> Vec<usize> {
        let mut at = FILE_HEADER_LEN;
        self.records
            .iter()
            .map(|r| {
                at += RECORD_HEADER_LEN + r.payload.len();
                at
            })
            .collect()
    }

    /// Applies `f` to every edit of every record (MACs kept as found).
    pub fn map_edits(&mut self, mut f: impl FnMut(&mut Edit)) -> CraftResult<usize> {
        let mut changed = 0;
        for i in 0..self.records.len() {
            let mut p = self.payload(i)?;
            let before = p.clone();
            for e in &mut p.edits {
                f(e);
            }
            if p != before {
                changed += 1;
                self.set_payload(i, &p);
            }
        }
        Ok(changed)
    }

    /// Every edit, in order.
    pub fn all_edits(&self) -> CraftResult<Vec<Edit>> {
        Ok(self.payloads()?.into_iter().flat_map(|p| p.edits).collect())
    }

    /// The id of the table named `name` (from its CreateTable).
    pub fn table_id(&self, name: &str) -> CraftResult<u32> {
        self.all_edits()?
            .iter()
            .find_map(|e| match e {
                Edit::CreateTable { id, name: n, .. } if n == name.as_bytes() => Some(*id),
                _ => None,
            })
            .ok_or_else(|| format!("no CreateTable for {name}"))
    }
}

impl Manifest {
    /// Live SSTables per table id after replaying every AddFile/RemoveFile/DropTable.
    pub fn live_files(&self) -> CraftResult<std::collections::BTreeMap<u32, Vec<u64>>> {
        let mut live: std::collections::BTreeMap<u32, std::collections::BTreeSet<u64>> =
            Default::default();
        for e in self.all_edits()? {
            match e {
                Edit::AddFile { table, file, .. } => {
                    live.entry(table).or_default().insert(file);
                }
                Edit::RemoveFile { table, file, .. } => {
                    live.entry(table).or_default().remove(&file);
                }
                Edit::DropTable { id } => {
                    live.remove(&id);
                }
                _ => {}
            }
        }
        Ok(live
            .into_iter()
            .map(|(t, f)| (t, f.into_iter().collect()))
            .collect())
    }

    /// Index of the record holding `SnapshotEnd` (format 2).
    pub fn snapshot_end(&self) -> CraftResult<Option<usize>> {
        for (i, p) in self.payloads()?.iter().enumerate() {
            if p.edits
                .iter()
                .any(|e| matches!(e, Edit::SnapshotEnd { .. }))
            {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }
}

/// The live manifest of `db` (the one CURRENT names).
pub fn live_manifest_path(db: &Path) -> CraftResult<PathBuf> {
    let cur = std::fs::read_to_string(db.join("CURRENT")).map_err(|e| e.to_string())?;
    let name = cur
        .strip_suffix('\n')
        .ok_or_else(|| "CURRENT without newline".to_string())?;
    Ok(db.join(name))
}

#[cfg(test)]
mod self_tests {
    use super::*;

    #[test]
    fn crafted_records_round_trip() -> CraftResult<()> {
        let mut header = [0u8; FILE_HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8] = 2;
        header[12] = 7;
        let mut m = Manifest {
            header,
            records: Vec::new(),
        };
        m.push(&Payload::unauthenticated(
            vec![
                Edit::SetLastSeq(9),
                Edit::DropTable { id: 3 },
                Edit::AddWalSegment(5),
                Edit::SnapshotEnd { records: 1 },
            ],
            2,
        ));
        let bytes = m.encode();
        assert_eq!(Manifest::parse(&bytes)?.encode(), bytes);
        assert_eq!(m.number(), 7);
        assert_eq!(m.record_ends(), vec![bytes.len()]);
        Ok(())
    }
}
