//! The encryption context a table key is bound to, and the record that carries it beside
//! the table key's KMS ciphertext blob (the manifest's `wrapped_table_key`, format 3).
//!
//! ```text
//! bound wrapped key (tables created by manifest-format-3 code):
//!   magic       : [u8; 8] = "sealdbTK"
//!   version     : u8      = 1                       (on disk: never renumber)
//!   database_id : str     the database's id (its database key's `sealdb:databaseId`)
//!   incarnation : str     a random UUID, fresh for each create_table
//!   blob        : bytes   the KMS ciphertext blob of the table key
//! str, bytes = len : u32 LE | [u8; len]
//!
//! anything else: a bare KMS ciphertext blob (tables created before format 3), bound to the
//! context {sealdb:tableName, sealdb:subscriberId} only
//! ```
//!
//! A bound key's context is {sealdb:tableName, sealdb:subscriberId, sealdb:tableDatabaseId,
//! sealdb:tableIncarnation}: the same table name in two databases of one account, or a
//! table re-created under a dropped one's name, has another context, so neither the blob
//! nor a grant constrained to it serves the other. The pairs are not secret (they are in
//! every audit event); the KMS binds them to the blob as associated data, so editing them
//! makes Decrypt fail.

use crate::coding::{put_len_prefixed, Cursor};
use crate::error::{Error, Result};
use crate::kms::EncryptionContext;

/// Leads a bound wrapped key. Neither `LocalKms` blobs (version byte 1) nor AWS KMS blobs
/// (version byte 1 or 2) start with it, and the engine refuses a KMS blob that does.
pub(crate) const BOUND_KEY_MAGIC: &[u8; 8] = b"sealdbTK";
/// The bound wrapped key's version.
const BOUND_KEY_VERSION: u8 = 1;
/// The context key naming one creation of a table.
pub(crate) const INCARNATION_CONTEXT_KEY: &str = "sealdb:tableIncarnation";
/// The context key naming the database a table belongs to. Not `sealdb:databaseId`: the
/// engine's database-key grant is constrained to the subset {sealdb:databaseId,
/// sealdb:subscriberId}, which every table context holding that pair would satisfy.
pub(crate) const TABLE_DATABASE_CONTEXT_KEY: &str = "sealdb:tableDatabaseId";

/// What binds a table key to one database and one creation of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) database_id: String,
    pub(crate) incarnation: String,
}

/// A table's wrapped key, split: its binding (none for a table created before format 3)
/// and the KMS ciphertext blob.
pub(crate) struct WrappedTableKey<'a> {
    pub(crate) binding: Option<Binding>,
    pub(crate) blob: &'a [u8],
}

impl Binding {
    /// A fresh incarnation of a table in `database_id`.
    pub(crate) fn fresh(database_id: &str) -> Binding {
        Binding {
            database_id: database_id.to_owned(),
            incarnation: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The bound wrapped key: the layout in the module comment.
    pub(crate) fn wrap(&self, blob: &[u8]) -> Result<Vec<u8>> {
        if blob.starts_with(BOUND_KEY_MAGIC) {
            return Err(Error::Kms(crate::kms::KmsError::InvalidArgument(
                "the KMS returned a ciphertext blob that starts like a sealdb bound key".into(),
            )));
        }
        let mut out = Vec::with_capacity(blob.len() + 96);
        out.extend_from_slice(BOUND_KEY_MAGIC);
        out.push(BOUND_KEY_VERSION);
        put_len_prefixed(&mut out, self.database_id.as_bytes())?;
        put_len_prefixed(&mut out, self.incarnation.as_bytes())?;
        put_len_prefixed(&mut out, blob)?;
        Ok(out)
    }
}

/// Splits a manifest's `wrapped_table_key` (`table` names it in errors).
pub(crate) fn split<'w>(table: &str, wrapped: &'w [u8]) -> Result<WrappedTableKey<'w>> {
    let Some(rest) = wrapped.strip_prefix(BOUND_KEY_MAGIC.as_slice()) else {
        return Ok(WrappedTableKey {
            binding: None,
            blob: wrapped,
        });
    };
    // The label names the table only when something is wrong (no formatting per call).
    split_bound(wrapped, rest).map_err(|e| match e {
        Error::Corruption { offset, what, .. } => Error::Corruption {
            file: format!("the wrapped key of table {table:?}"),
            offset,
            what,
        },
        other => other,
    })
}

/// `split` of a bound key: `rest` is `wrapped` after the magic.
fn split_bound<'w>(wrapped: &'w [u8], rest: &'w [u8]) -> Result<WrappedTableKey<'w>> {
    let mut c = Cursor::new(rest, 0, "a wrapped table key");
    let version = c.u8("bound key version")?;
    if version != BOUND_KEY_VERSION {
        return Err(c.error(format!("unknown bound key version {version}")));
    }
    let text = |c: &mut Cursor<'_>, field: &str| -> Result<String> {
        let bytes = c.len_prefixed(field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| c.error(format!("{field} is not UTF-8")))
    };
    let database_id = text(&mut c, "database id")?;
    let incarnation = text(&mut c, "table incarnation")?;
    let blob_len = c.len_prefixed("table key blob")?.len();
    if !c.is_empty() {
        return Err(c.error("trailing bytes after the table key blob"));
    }
    // Nothing follows the blob, so it is the last `blob_len` bytes.
    let blob = wrapped
        .get(wrapped.len() - blob_len..)
        .ok_or_else(|| c.error("table key blob"))?;
    if database_id.is_empty() || incarnation.is_empty() {
        return Err(c.error("empty database id or incarnation"));
    }
    Ok(WrappedTableKey {
        binding: Some(Binding {
            database_id,
            incarnation,
        }),
        blob,
    })
}

/// The encryption context of `table`'s key in `account`, with its binding if it has one.
pub(crate) fn context(table: &str, account: &str, binding: Option<&Binding>) -> EncryptionContext {
    let ctx = EncryptionContext::for_table(table, account);
    match binding {
        Some(b) => ctx
            .with(TABLE_DATABASE_CONTEXT_KEY, &b.database_id)
            .with(INCARNATION_CONTEXT_KEY, &b.incarnation),
        None => ctx,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_key_layout_is_pinned() -> Result<()> {
        let b = Binding {
            database_id: "db".into(),
            incarnation: "inc1".into(),
        };
        let wrapped = b.wrap(&[1, 2, 3])?;
        let mut expected = b"sealdbTK\x01".to_vec();
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(b"db");
        expected.extend_from_slice(&[4, 0, 0, 0]);
        expected.extend_from_slice(b"inc1");
        expected.extend_from_slice(&[3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(wrapped, expected);
        let split = split("T", &wrapped)?;
        assert_eq!(split.binding, Some(b));
        assert_eq!(split.blob, &[1, 2, 3]);
        Ok(())
    }

    #[test]
    fn a_bare_blob_is_an_unbound_key() -> Result<()> {
        let blob = [1u8, 9, 9, 9];
        let s = split("T", &blob)?;
        assert!(s.binding.is_none());
        assert_eq!(s.blob, &blob);
        let ctx = context("Books", "111122223333", None);
        assert_eq!(ctx, EncryptionContext::for_table("Books", "111122223333"));
        Ok(())
    }

    #[test]
    fn damaged_bound_keys_are_corruption_never_a_panic() -> Result<()> {
        let wrapped = Binding::fresh("d").wrap(&[7; 40])?;
        for cut in BOUND_KEY_MAGIC.len()..wrapped.len() {
            let e = split("T", &wrapped[..cut]).err();
            assert!(e.is_some_and(|e| e.is_integrity_failure()), "cut at {cut}");
        }
        let mut trailing = wrapped.clone();
        trailing.push(0);
        assert!(split("T", &trailing).is_err());
        let mut version = wrapped;
        version[BOUND_KEY_MAGIC.len()] = 2;
        assert!(split("T", &version).is_err());
        assert!(Binding::fresh("d").wrap(b"sealdbTK-like").is_err());
        Ok(())
    }

    #[test]
    fn incarnations_and_databases_give_distinct_contexts() {
        let a = Binding::fresh("db-a");
        let a2 = Binding::fresh("db-a");
        let b = Binding {
            database_id: "db-b".into(),
            incarnation: a.incarnation.clone(),
        };
        let c = |x: &Binding| context("Books", "111122223333", Some(x));
        assert_ne!(c(&a), c(&a2));
        assert_ne!(c(&a), c(&b));
        assert_eq!(c(&a).len(), 4);
    }
}
