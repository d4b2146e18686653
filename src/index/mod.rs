//! Secondary indexes (DESIGN.md section 7 "Indexes").
//!
//! A *global* index is an internal table of its own: its own memtables, LSM files,
//! compaction and WAL sections, under the **same** table key as the table it indexes (its
//! catalogue entry repeats the table's key material, so each of its files gets a fresh data
//! key wrapped by that table key, and a plaintext table's index is CRC-only). Its entries
//! are `key::encode(index key, primary key)` with an empty value; a query looks the item
//! up in the table at the same snapshot and re-extracts its keys, so an entry that does not
//! match its item is never returned.
//!
//! Exactness: the write path (`maintain`) computes each index's entries for a batch under
//! the write lock, reading the items' old values there, and appends them as sections of
//! the **same** WAL record as the table write. So an index is never behind its table,
//! after a crash either. Adding an index backfills it (`backfill`) through the same write
//! path; it is not readable until an `IndexReady` edit commits.
//!
//! Not built yet: *local* indexes (entries inside the table's own LSM).

mod backfill;
mod extractor;
pub(crate) mod key;
mod maintain;
mod query;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::manifest::{Edit, ExtractorKind, IndexDecl, TableMeta};

pub(crate) use extractor::Extractor;
pub use extractor::{ExtractorFn, IndexExtractors};
pub(crate) use maintain::{index_ops, BackfillChunk};
pub use query::{Index, IndexCheck, IndexEntry, IndexIter};

/// How to build an index: its key extractor and whether its keys are unique.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    kind: ExtractorKind,
    extractor: String,
    unique: bool,
}

impl IndexSpec {
    /// Index keys from an RFC 6901 JSON pointer into JSON values (`/author`,
    /// `/address/city`): a string, number or boolean there is one key, an array's scalar
    /// elements are one key each; items without one are not in the index.
    pub fn json_pointer(pointer: impl Into<String>) -> IndexSpec {
        IndexSpec {
            kind: ExtractorKind::JsonPointer,
            extractor: pointer.into(),
            unique: false,
        }
    }

    /// Index keys from the Rust extractor registered under `name` in
    /// `Options::index_extractors` (it must be registered at every open).
    pub fn named(name: impl Into<String>) -> IndexSpec {
        IndexSpec {
            kind: ExtractorKind::Named,
            extractor: name.into(),
            unique: false,
        }
    }

    /// A write that would give two items the same index key fails, and nothing of it is
    /// applied.
    pub fn unique(mut self) -> IndexSpec {
        self.unique = true;
        self
    }
}

/// What `Table::indexes` reports of one index.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct IndexStatus {
    /// The index's name.
    pub name: String,
    /// `json-pointer` or `named`.
    pub extractor_kind: &'static str,
    /// The pointer, or the registered extractor's name.
    pub extractor: String,
    /// Whether its keys are unique.
    pub unique: bool,
    /// True once its backfill committed: only then can it be read.
    pub ready: bool,
    /// Items the backfill has indexed so far in this process: its progress while
    /// `ready` is false; 0 for an index completed before this open.
    pub backfilled: u64,
    /// Whether its files' range boundaries are sealed in the manifest (always, for an
    /// encrypted table: they are attribute values).
    pub sealed_boundaries: bool,
}

/// The engine's state of one index, attached to its internal table.
pub(crate) struct IndexDef {
    pub(crate) decl: IndexDecl,
    pub(crate) extractor: Extractor,
    /// Committed as `IndexReady`: queries are allowed.
    pub(crate) ready: AtomicBool,
    /// Items indexed by the backfill so far.
    pub(crate) backfilled: AtomicU64,
}

impl IndexDef {
    pub(crate) fn new(decl: IndexDecl, extractor: Extractor, ready: bool) -> IndexDef {
        IndexDef {
            decl,
            extractor,
            ready: AtomicBool::new(ready),
            backfilled: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn status(&self, sealed_boundaries: bool) -> IndexStatus {
        IndexStatus {
            name: self.decl.name.clone(),
            extractor_kind: match self.decl.kind {
                ExtractorKind::JsonPointer => "json-pointer",
                ExtractorKind::Named => "named",
            },
            extractor: self.decl.extractor.clone(),
            unique: self.decl.unique,
            ready: self.is_ready(),
            backfilled: self.backfilled.load(Ordering::Acquire),
            sealed_boundaries,
        }
    }
}

/// The catalogue entry of an index's internal table: the table's own key material (its
/// data keys are wrapped by the same table key, under the same KMS grant), with sealed
/// boundaries whenever the table is encrypted, because an index's boundaries are attribute
/// values even where the table's own boundaries are its primary keys.
pub(crate) fn index_meta(table: &TableMeta) -> TableMeta {
    TableMeta {
        sealed_boundaries: table.encrypted,
        ..table.clone()
    }
}

/// The edits that describe index `def` in a manifest snapshot, after its `CreateTable`.
pub(crate) fn catalogue_edits(def: &IndexDef) -> Vec<Edit> {
    let mut out = vec![Edit::DeclareIndex(def.decl.clone())];
    if def.is_ready() {
        out.push(Edit::IndexReady {
            index: def.decl.index,
        });
    }
    out
}

/// Names an index may have.
pub(crate) fn check_index_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "index name {name:?} must be 1-255 characters of A-Z a-z 0-9 _ - ."
        )))
    }
}

/// Attaches the indexes the manifest declares (`decls`: index id -> declaration, ready) to
/// the tables recovered at open. A declaration that does not fit its tables is corruption;
/// a named extractor that is not registered is refused (the open fails, changing nothing).
pub(crate) fn attach(
    states: &std::collections::BTreeMap<crate::types::TableId, Arc<crate::db::TableState>>,
    decls: &std::collections::BTreeMap<crate::types::TableId, (IndexDecl, bool)>,
    registered: &IndexExtractors,
    manifest: &str,
) -> Result<()> {
    let bad = |what: String| Error::Corruption {
        file: manifest.to_owned(),
        offset: 0,
        what,
    };
    for (id, (decl, ready)) in decls {
        let (Some(index), Some(table)) = (states.get(id), states.get(&decl.table)) else {
            return Err(bad(format!(
                "index {:?} (#{id}) declared without its table or its own table",
                decl.name
            )));
        };
        if decl.table == *id || decls.contains_key(&decl.table) {
            return Err(bad(format!(
                "index {:?} (#{id}) indexes an index",
                decl.name
            )));
        }
        {
            let (im, tm) = (index.meta.read(), table.meta.read());
            if im.encrypted != tm.encrypted || im.wrapped_table_key != tm.wrapped_table_key {
                return Err(bad(format!(
                    "index {:?} (#{id}) is not under its table's key",
                    decl.name
                )));
            }
        }
        let extractor =
            Extractor::resolve(decl.kind, &decl.extractor, registered).map_err(|e| {
                Error::InvalidArgument(format!("table {:?} index {:?}: {e}", table.name, decl.name))
            })?;
        index
            .index
            .set(Arc::new(IndexDef::new(decl.clone(), extractor, *ready)))
            .map_err(|_| bad(format!("index #{id} declared twice")))?;
        table.indexes.write().push(Arc::clone(index));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_file_header_version;
    use crate::manifest::{ManifestWriter, VersionEdit};
    use crate::storage::StdEnv;
    use crate::types::{FileNumber, TableId};

    /// Index edits read back from a format-4 manifest, and are corruption in a format-3
    /// one (the same bytes with the header's version set to 3).
    #[test]
    fn index_edits_need_manifest_format_4() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let meta = TableMeta::default();
        let decl = IndexDecl {
            index: TableId(2),
            table: TableId(1),
            name: "by_author".into(),
            unique: false,
            kind: ExtractorKind::JsonPointer,
            extractor: "/author".into(),
        };
        let snapshot = vec![
            VersionEdit::new(vec![Edit::CreateTable {
                id: TableId(1),
                name: "t".into(),
                meta: meta.clone(),
            }]),
            VersionEdit::new(vec![
                Edit::CreateTable {
                    id: TableId(2),
                    name: "t".into(),
                    meta: index_meta(&meta),
                },
                Edit::DeclareIndex(decl.clone()),
                Edit::IndexReady { index: TableId(2) },
            ]),
        ];
        drop(ManifestWriter::create(
            &StdEnv,
            dir.path(),
            FileNumber(1),
            &snapshot,
            &|_| None,
            None,
        )?);
        let path = dir.path().join(crate::filename::manifest(FileNumber(1)));
        let mut bytes = std::fs::read(&path).map_err(|e| Error::io("reading", e))?;
        let m = crate::manifest::parse_manifest(bytes.clone().into(), FileNumber(1), "m")?;
        assert_eq!(m.version, 4);
        assert!(m
            .edits
            .iter()
            .any(|e| e.edits.contains(&Edit::DeclareIndex(decl.clone()))));
        let header = encode_file_header_version(b"SEALMAN\0", FileNumber(1), 3);
        bytes
            .get_mut(..header.len())
            .ok_or_else(|| Error::Internal("short manifest".into()))?
            .copy_from_slice(&header);
        match crate::manifest::parse_manifest(bytes.into(), FileNumber(1), "m") {
            Err(Error::Corruption { what, .. }) => {
                assert!(what.contains("index catalogue edit"), "{what}")
            }
            other => panic!("format 3 with index edits: {other:?}"),
        }
        Ok(())
    }
}
