//! A manifest record's payload, and the per-table MAC chain that authenticates it.
//!
//! ```text
//! record payload (framed by crate::framing, record type 1 = Edit):
//!   edits_len : u32 LE
//!   edits     : [u8; edits_len]          VersionEdit encoding (edit.rs)
//!   mac_count : u32 LE
//!   mac*      : table : u32 LE | hmac : [u8; 32]    table ids strictly ascending
//!   db_mac_len : u8                      format 2 only: 0, or 32 when the manifest has a
//!   db_mac    : [u8; db_mac_len]         database key (then every record has one)
//!
//! hmac = HMAC-SHA256(HKDF(table_key, "manifest-mac"),
//!          "sealdb-manifest-mac" || FORMAT_VERSION : u8 || manifest : u64 LE
//!          || prev : [u8; 32] || table : u32 LE || edits_len : u32 LE || edits)
//! prev = the table's previous hmac in this manifest; 32 zero bytes for the first,
//!        which must be the record holding the table's CreateTable.
//!
//! db_mac = HMAC-SHA256(HKDF(database_key, "manifest-db-mac"),
//!          "sealdb-manifest-db-mac" || 2 : u8 || manifest : u64 LE || prev_db : [u8; 32]
//!          || covered_len : u32 LE || covered)
//! covered = the payload bytes before db_mac_len (edits_len .. the last table MAC)
//! prev_db = the previous record's db_mac; 32 zero bytes for the first record
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::edit::VersionEdit;
use crate::coding::Cursor;
use crate::crypto::{TableKey, FORMAT_VERSION};
use crate::error::{Error, Result};
use crate::types::{FileNumber, TableId};

/// Manifest record types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ManifestRecordType {
    // on disk: never renumber
    Edit = 1,
}

impl TryFrom<u8> for ManifestRecordType {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            1 => Ok(ManifestRecordType::Edit),
            other => Err(other),
        }
    }
}

/// Magic at the start of every manifest.
pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"SEALMAN\0";
/// Format 4 plus local index declarations (edit 22, only in its table's CreateTable record).
/// Still read.
pub(crate) const MANIFEST_V5: u8 = 5;
/// The manifest format this code writes: format 5 plus the table-key versions (edits 30,
/// 31; `db::table_key_rotation`).
pub(crate) const MANIFEST_VERSION: u8 = 6;
/// Format 3 plus the index catalogue edits (20, 21). Still read.
pub(crate) const MANIFEST_V4: u8 = 4;
/// A snapshot may carry a locked table's records without their table MACs (the database
/// MAC covers them), and a table's wrapped key may be bound to its database and
/// incarnation (`db::table_context`). Still read.
pub(crate) const MANIFEST_V3: u8 = 3;
/// Database MACs, the snapshot end, WAL segments. Still read.
pub(crate) const MANIFEST_V2: u8 = 2;
/// The first manifest format (table MAC chains only). Still read.
pub(crate) const MANIFEST_V1: u8 = 1;
/// Every manifest format this code reads.
pub(crate) const MANIFEST_VERSIONS: [u8; 6] = [
    MANIFEST_V1,
    MANIFEST_V2,
    MANIFEST_V3,
    MANIFEST_V4,
    MANIFEST_V5,
    MANIFEST_VERSION,
];
/// Bytes of a MAC.
pub(crate) const MAC_LEN: usize = 32;
/// The chain's starting value.
pub(crate) const CHAIN_START: [u8; MAC_LEN] = [0; MAC_LEN];

const MAC_LABEL: &[u8] = b"sealdb-manifest-mac";
const SUBKEY_INFO: &[u8] = b"manifest-mac";
const DB_MAC_LABEL: &[u8] = b"sealdb-manifest-db-mac";
const DB_SUBKEY_INFO: &[u8] = b"manifest-db-mac";

/// The database's MAC chain key (format 2 and later): covers every record of the manifest.
/// Each MAC binds the manifest's format version.
pub(crate) struct DbChainKey {
    mac: Hmac<Sha256>,
    version: u8,
}

/// HMAC-SHA256 keyed with the subkey `info` of `key`.
fn mac_under(key: &TableKey, info: &[u8]) -> Result<Hmac<Sha256>> {
    let sub = key.derive_subkey(info);
    <Hmac<Sha256> as Mac>::new_from_slice(&sub[..])
        .map_err(|_| Error::Internal("manifest MAC key length".into()))
}

impl DbChainKey {
    /// The key for a manifest of format `version`.
    pub(crate) fn new(database_key: &TableKey, version: u8) -> Result<DbChainKey> {
        mac_under(database_key, DB_SUBKEY_INFO).map(|mac| DbChainKey { mac, version })
    }

    fn start(&self, manifest: FileNumber, prev: &[u8; MAC_LEN], covered: &[u8]) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(DB_MAC_LABEL);
        m.update(&[self.version]);
        m.update(&manifest.0.to_le_bytes());
        m.update(prev);
        m.update(
            &u32::try_from(covered.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        m.update(covered);
        m
    }

    /// The database MAC of a record whose covered bytes are `covered`, after `prev`.
    pub(crate) fn compute(
        &self,
        manifest: FileNumber,
        prev: &[u8; MAC_LEN],
        covered: &[u8],
    ) -> [u8; MAC_LEN] {
        self.start(manifest, prev, covered)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a stored database MAC in constant time.
    pub(crate) fn verify(
        &self,
        manifest: FileNumber,
        prev: &[u8; MAC_LEN],
        covered: &[u8],
        mac: &[u8; MAC_LEN],
    ) -> bool {
        self.start(manifest, prev, covered)
            .verify_slice(mac)
            .is_ok()
    }
}

/// A table's MAC chain key.
pub(crate) struct ChainKey(Hmac<Sha256>);

impl ChainKey {
    pub(crate) fn new(table_key: &TableKey) -> Result<ChainKey> {
        mac_under(table_key, SUBKEY_INFO).map(ChainKey)
    }

    fn start(
        &self,
        manifest: FileNumber,
        prev: &[u8; MAC_LEN],
        table: TableId,
        edits: &[u8],
    ) -> Hmac<Sha256> {
        let mut m = self.0.clone();
        m.update(MAC_LABEL);
        m.update(&[FORMAT_VERSION]);
        m.update(&manifest.0.to_le_bytes());
        m.update(prev);
        m.update(&table.0.to_le_bytes());
        m.update(&u32::try_from(edits.len()).unwrap_or(u32::MAX).to_le_bytes());
        m.update(edits);
        m
    }

    /// The MAC of one record for `table`, chained after `prev`.
    pub(crate) fn compute(
        &self,
        manifest: FileNumber,
        prev: &[u8; MAC_LEN],
        table: TableId,
        edits: &[u8],
    ) -> [u8; MAC_LEN] {
        self.start(manifest, prev, table, edits)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a stored MAC in constant time.
    pub(crate) fn verify(
        &self,
        manifest: FileNumber,
        prev: &[u8; MAC_LEN],
        table: TableId,
        edits: &[u8],
        mac: &[u8; MAC_LEN],
    ) -> bool {
        self.start(manifest, prev, table, edits)
            .verify_slice(mac)
            .is_ok()
    }
}

/// Appends the format-2 database MAC field: its length byte, then the MAC if any.
pub(crate) fn encode_db_mac(db_mac: Option<&[u8; MAC_LEN]>, out: &mut Vec<u8>) {
    match db_mac {
        Some(m) => {
            out.push(MAC_LEN as u8);
            out.extend_from_slice(m);
        }
        None => out.push(0),
    }
}

/// Encodes a record payload up to (not including) the database MAC field; `macs` must be
/// ascending by table.
pub(crate) fn encode_payload(
    edits: &[u8],
    macs: &[(TableId, [u8; MAC_LEN])],
    out: &mut Vec<u8>,
) -> Result<()> {
    crate::coding::put_len_prefixed(out, edits)?;
    let count = u32::try_from(macs.len())
        .map_err(|_| Error::InvalidArgument("too many tables in one edit".into()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (t, m) in macs {
        out.extend_from_slice(&t.0.to_le_bytes());
        out.extend_from_slice(m);
    }
    Ok(())
}

/// A decoded record payload.
pub(crate) struct DecodedRecord<'a> {
    pub(crate) edit: VersionEdit,
    pub(crate) edits_bytes: &'a [u8],
    /// File offset of `edits_bytes`.
    pub(crate) edits_offset: u64,
    pub(crate) macs: Vec<(TableId, [u8; MAC_LEN])>,
    /// Bytes of the payload the database MAC covers.
    pub(crate) covered_len: usize,
    /// The database MAC (format 2, when the manifest has a database key).
    pub(crate) db_mac: Option<[u8; MAC_LEN]>,
}

/// Decodes a record payload of manifest format `version`.
pub(crate) fn decode_payload<'a>(
    payload: &'a [u8],
    offset: u64,
    label: &'a str,
    version: u8,
) -> Result<DecodedRecord<'a>> {
    let mut c = Cursor::new(payload, offset, label);
    let edits_offset = c.offset() + std::mem::size_of::<u32>() as u64;
    let edits_bytes = c.len_prefixed("edits")?;
    let edit = VersionEdit::decode(edits_bytes, edits_offset, label)?;
    let count = c.u32("MAC count")?;
    let mut macs: Vec<(TableId, [u8; MAC_LEN])> = Vec::new();
    let touched = edit.tables();
    for _ in 0..count {
        let at = c.offset();
        let table = TableId(c.u32("MAC table id")?);
        let mac = c.array::<MAC_LEN>("MAC")?;
        if macs.last().is_some_and(|(prev, _)| *prev >= table) {
            return Err(c.error_at(at, "MAC table ids not ascending"));
        }
        if touched.binary_search(&table).is_err() {
            return Err(c.error_at(
                at,
                format!("MAC for table {table} the record does not touch"),
            ));
        }
        macs.push((table, mac));
    }
    let covered_len = usize::try_from(c.offset() - offset).map_err(|_| c.error("record length"))?;
    let mut db_mac = None;
    if version >= MANIFEST_V2 {
        let at = c.offset();
        match c.u8("database MAC length")? {
            0 => {}
            n if usize::from(n) == MAC_LEN => db_mac = Some(c.array::<MAC_LEN>("database MAC")?),
            n => return Err(c.error_at(at, format!("database MAC of {n} bytes"))),
        }
    }
    if !c.is_empty() {
        return Err(c.error("trailing bytes after the MACs"));
    }
    Ok(DecodedRecord {
        edit,
        edits_bytes,
        edits_offset,
        macs,
        covered_len,
        db_mac,
    })
}
