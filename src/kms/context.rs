//! The encryption context: non-secret key-value pairs bound to every ciphertext blob.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::KmsError;

/// The context key naming the table (the seed's `aws:dynamodb:tableName`).
pub const TABLE_NAME_CONTEXT_KEY: &str = "sealdb:tableName";
/// The context key naming the account (the seed's `aws:dynamodb:subscriberId`).
pub const SUBSCRIBER_ID_CONTEXT_KEY: &str = "sealdb:subscriberId";

/// The context key naming the database whose manifest a database key authenticates.
pub const DATABASE_ID_CONTEXT_KEY: &str = "sealdb:databaseId";

/// Limit on the canonical encoding of a context, to keep blobs and audit events bounded.
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// An encryption context, sorted by key so that its encoding is canonical.
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// The empty context.
    pub fn new() -> EncryptionContext {
        EncryptionContext(BTreeMap::new())
    }

    /// The engine's context for a table: `{sealdb:tableName: table, sealdb:subscriberId: account}`.
    pub fn for_table(table: &str, account: &str) -> EncryptionContext {
        EncryptionContext::new()
            .with(TABLE_NAME_CONTEXT_KEY, table)
            .with(SUBSCRIBER_ID_CONTEXT_KEY, account)
    }

    /// The engine's context for a database key:
    /// `{sealdb:databaseId: id, sealdb:subscriberId: account}`.
    pub fn for_database(database_id: &str, account: &str) -> EncryptionContext {
        EncryptionContext::new()
            .with(DATABASE_ID_CONTEXT_KEY, database_id)
            .with(SUBSCRIBER_ID_CONTEXT_KEY, account)
    }

    /// Adds a pair (builder style).
    pub fn with(mut self, key: &str, value: &str) -> EncryptionContext {
        self.0.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds or replaces a pair.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The table this context names, if any.
    pub fn table_name(&self) -> Option<&str> {
        self.get(TABLE_NAME_CONTEXT_KEY)
    }

    /// The pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when the context has no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of key-value pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when every pair of `self` is in `other` with the same value.
    pub fn is_subset_of(&self, other: &EncryptionContext) -> bool {
        self.0.iter().all(|(k, v)| other.0.get(k) == Some(v))
    }

    /// The canonical encoding, used as associated data of ciphertext blobs.
    ///
    /// ```text
    /// count : u32 LE || count * (key_len : u32 LE || key || value_len : u32 LE || value)
    /// ```
    /// Pairs in byte order of their keys (the `BTreeMap` order). Length prefixes make the
    /// encoding injective: no two contexts share one.
    pub(crate) fn canonical_bytes(&self) -> Result<Vec<u8>, KmsError> {
        let mut out = Vec::new();
        out.extend_from_slice(&len_u32(self.0.len())?.to_le_bytes());
        for (k, v) in &self.0 {
            out.extend_from_slice(&len_u32(k.len())?.to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&len_u32(v.len())?.to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        if out.len() > MAX_CONTEXT_BYTES {
            return Err(KmsError::InvalidArgument(format!(
                "encryption context is {} bytes encoded, more than {MAX_CONTEXT_BYTES}",
                out.len()
            )));
        }
        Ok(out)
    }
}

fn len_u32(n: usize) -> Result<u32, KmsError> {
    u32::try_from(n)
        .map_err(|_| KmsError::InvalidArgument("encryption context too large".to_string()))
}

impl FromIterator<(String, String)> for EncryptionContext {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        EncryptionContext(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_golden() -> Result<(), KmsError> {
        let c = EncryptionContext::new().with("b", "2").with("a", "1");
        let expected: &[u8] = &[
            2, 0, 0, 0, // count
            1, 0, 0, 0, b'a', 1, 0, 0, 0, b'1', // a=1 first: sorted
            1, 0, 0, 0, b'b', 1, 0, 0, 0, b'2',
        ];
        assert_eq!(c.canonical_bytes()?, expected);
        assert_eq!(EncryptionContext::new().canonical_bytes()?, [0, 0, 0, 0]);
        Ok(())
    }

    #[test]
    fn canonical_bytes_are_injective_on_boundaries() -> Result<(), KmsError> {
        let a = EncryptionContext::new().with("ab", "c");
        let b = EncryptionContext::new().with("a", "bc");
        assert_ne!(a.canonical_bytes()?, b.canonical_bytes()?);
        Ok(())
    }

    #[test]
    fn subset() {
        let full = EncryptionContext::for_table("Books", "111122223333");
        let part = EncryptionContext::new().with(TABLE_NAME_CONTEXT_KEY, "Books");
        assert!(part.is_subset_of(&full));
        assert!(!full.is_subset_of(&part));
        assert!(EncryptionContext::new().is_subset_of(&part));
        let movies = EncryptionContext::new().with(TABLE_NAME_CONTEXT_KEY, "Movies");
        assert!(!movies.is_subset_of(&full));
        assert_eq!(full.table_name(), Some("Books"));
    }

    #[test]
    fn json_shape_is_a_plain_object() -> Result<(), serde_json::Error> {
        let c = EncryptionContext::for_table("Books", "111122223333");
        let v = serde_json::to_value(&c)?;
        assert_eq!(
            v,
            serde_json::json!({"sealdb:tableName": "Books", "sealdb:subscriberId": "111122223333"})
        );
        let back: EncryptionContext = serde_json::from_value(v)?;
        assert_eq!(back, c);
        Ok(())
    }

    #[test]
    fn oversized_context_is_rejected() {
        let big = "x".repeat(MAX_CONTEXT_BYTES);
        let c = EncryptionContext::new().with("k", &big);
        assert!(c.canonical_bytes().is_err());
    }
}
