//! The manifest: an edit log of the database's tables and files, named by `CURRENT`.
//!
//! Each record is one `VersionEdit` (an atomic group of edits), framed like WAL records.
//! For every encrypted table, each record touching it carries an HMAC chained to the
//! table's previous one, under a key derived from the table key. The format is in
//! DESIGN.md section 7; the layouts are atop `edit.rs`, `record.rs` and `current.rs`.

mod boundary;
mod current;
mod edit;
mod reader;
mod record;
mod writer;

#[cfg(test)]
mod kat_tests;
#[cfg(test)]
mod tests;

pub(crate) use boundary::{open_boundary, seal_boundary};
pub(crate) use current::current_manifest_number;
#[cfg(feature = "fuzzing")]
pub(crate) use current::set_current;
pub(crate) use edit::{
    Boundary, DatabaseKeyMeta, Edit, ExtractorKind, FileMeta, IndexDecl, LocalIndexDecl,
    OldTableKey, TableMeta, VersionEdit,
};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reader::parse_manifest;
pub(crate) use reader::{read_current, read_manifest, ManifestContents};
pub(crate) use writer::ManifestWriter;

/// Runs the manifest decoder over arbitrary bytes (as manifest 1), and verifies every
/// table's chain under a fixed key. Never panics.
#[cfg(feature = "fuzzing")]
pub fn fuzz_manifest(data: &[u8]) {
    use crate::crypto::{TableKey, KEY_LEN};
    if let Ok(m) = parse_manifest(
        bytes::Bytes::copy_from_slice(data),
        crate::types::FileNumber(1),
        "MANIFEST-000001",
    ) {
        let key = TableKey::from_bytes([0; KEY_LEN]);
        let _ = m.verify_database_chain(&key);
        for table in m.edits.iter().flat_map(VersionEdit::tables) {
            let _ = m.verify_table_chain(table, &key);
        }
    }
}
