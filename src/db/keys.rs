//! The seam through which the engine gets table keys. The KMS-backed keyring implements
//! it; the engine never sees how.

use crate::crypto::TableKey;
use crate::error::Result;
use crate::manifest::TableMeta;

use super::TableOptions;

/// A new table's key: the plaintext (for immediate use) and what the manifest keeps.
pub(crate) struct GeneratedTableKey {
    pub(crate) key: TableKey,
    /// The KMS ciphertext blob of the table key: kept for the table's lifetime.
    pub(crate) wrapped: Vec<u8>,
    pub(crate) key_arn: String,
    pub(crate) grant_id: String,
}

/// Where table keys come from.
pub(crate) trait TableKeySource: Send + Sync {
    /// Creates the key of a new encrypted table.
    fn generate(&self, table_name: &str, options: &TableOptions) -> Result<GeneratedTableKey>;
    /// Unwraps a table's key for the engine's own use (recovery, flush, compaction).
    fn unwrap(&self, table_name: &str, meta: &TableMeta) -> Result<TableKey>;
    /// Called when a table is dropped (retire its grant).
    fn retire(&self, table_name: &str, meta: &TableMeta) -> Result<()>;
}
