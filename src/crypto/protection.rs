//! How the writer of one file is told to protect its units: the one Plain/Sealed choice
//! shared by SSTables (a whole file) and WAL segments (one table's sections in a segment).
//!
//! A sealed file gets a data key of its own, wrapped under the table key for exactly that
//! (table, file kind, file, key version); the writer records the wrapped key (the SSTable
//! footer, the WAL's `TableKey` record) and seals every unit under the plaintext key, which
//! is dropped, zeroized, as soon as the sealer holds its cipher.

use std::fmt;
use std::sync::Arc;

use super::{
    wrap_data_key, DataKey, FileKind, TableKey, UnitContext, UnitSealer, WrapContext,
    WRAPPED_KEY_LEN,
};
use crate::types::{FileNumber, TableId};

/// How a file's units are protected.
pub(crate) enum Protection {
    /// A plaintext table: CRC32 on every unit.
    Plain,
    /// An encrypted table: AES-256-GCM under the file's own data key.
    Sealed { dek: DataKey, wrapped: WrappedKey },
}

/// What a sealed file records about its data key: the key wrapped under the table key, and
/// the context the wrap is bound to. Not secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WrappedKey {
    pub(crate) ctx: WrapContext,
    pub(crate) wrapped_dek: [u8; WRAPPED_KEY_LEN],
}

impl Protection {
    /// Seals under `dek`, wrapped by `table_key` for `ctx`. Callers other than tests and
    /// benches use `fresh_sst` or `fresh_wal`, which never reuse a data key.
    pub(crate) fn with_key(dek: DataKey, table_key: &TableKey, ctx: WrapContext) -> Protection {
        let wrapped_dek = wrap_data_key(table_key, &dek, &ctx);
        Protection::Sealed {
            dek,
            wrapped: WrappedKey { ctx, wrapped_dek },
        }
    }

    /// A fresh data key for SSTable `file` of `table`, wrapped by generation `key_version`
    /// of the table key.
    pub(crate) fn fresh_sst(
        table_key: &TableKey,
        key_version: u32,
        table: TableId,
        file: FileNumber,
    ) -> Protection {
        Self::fresh(table_key, key_version, table, FileKind::Sst, file)
    }

    /// A fresh data key for `table`'s sections in WAL segment `segment`.
    pub(crate) fn fresh_wal(
        table_key: &TableKey,
        key_version: u32,
        table: TableId,
        segment: FileNumber,
    ) -> Protection {
        Self::fresh(table_key, key_version, table, FileKind::Wal, segment)
    }

    fn fresh(
        table_key: &TableKey,
        key_version: u32,
        table: TableId,
        file_kind: FileKind,
        file: FileNumber,
    ) -> Protection {
        let ctx = WrapContext {
            table,
            file_kind,
            file,
            key_version,
        };
        Self::with_key(DataKey::generate(), table_key, ctx)
    }

    /// The wrapped key a sealed file records; `None` for a plaintext one.
    pub(crate) fn wrapped(&self) -> Option<&WrappedKey> {
        match self {
            Protection::Plain => None,
            Protection::Sealed { wrapped, .. } => Some(wrapped),
        }
    }

    /// The sealer of the file's units (`label` names the file in errors). The data key is
    /// dropped, zeroized, here: the sealer keeps only the cipher's key schedule.
    pub(crate) fn into_sealer(self, label: Arc<str>) -> UnitSealer {
        match self {
            Protection::Plain => UnitSealer::plain(),
            Protection::Sealed { dek, wrapped } => UnitSealer::sealed(
                UnitContext {
                    table: wrapped.ctx.table,
                    file: wrapped.ctx.file,
                    file_kind: wrapped.ctx.file_kind,
                    label,
                },
                &dek,
            ),
        }
    }
}

impl fmt::Debug for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Plain => f.write_str("Plain"),
            Protection::Sealed { wrapped, .. } => write!(
                f,
                "Sealed({:?} {}, key_version {}, redacted)",
                wrapped.ctx.file_kind, wrapped.ctx.file, wrapped.ctx.key_version
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{unwrap_data_key, UnitKind, UnitOpener, KEY_LEN};
    use crate::error::Result;

    #[test]
    fn a_sealed_file_opens_with_its_unwrapped_key_and_nothing_else() -> Result<()> {
        let table_key = TableKey::from_bytes([3; KEY_LEN]);
        let p = Protection::fresh_sst(&table_key, 2, TableId(5), FileNumber(9));
        let wrapped = *p
            .wrapped()
            .ok_or_else(|| crate::Error::Internal("sealed".into()))?;
        assert_eq!(
            (
                wrapped.ctx.file_kind,
                wrapped.ctx.file,
                wrapped.ctx.key_version
            ),
            (FileKind::Sst, FileNumber(9), 2)
        );
        assert!(!format!("{p:?}").contains("03"), "{p:?}");
        let mut sealer = p.into_sealer(Arc::from("000009.sst"));
        let mut stored = Vec::new();
        sealer.seal(UnitKind::Data, 0, b"unit", &mut stored)?;
        let dek = unwrap_data_key(&table_key, &wrapped.wrapped_dek, &wrapped.ctx)
            .ok_or_else(|| crate::Error::Internal("unwraps".into()))?;
        let ctx = UnitContext {
            table: TableId(5),
            file: FileNumber(9),
            file_kind: FileKind::Sst,
            label: Arc::from("000009.sst"),
        };
        let opener = UnitOpener::sealed(ctx, &dek);
        assert_eq!(
            &opener.open(UnitKind::Data, 0, bytes::Bytes::from(stored))?[..],
            b"unit"
        );
        // Another file's wrap context does not unwrap it.
        let other = WrapContext {
            file: FileNumber(10),
            ..wrapped.ctx
        };
        assert!(unwrap_data_key(&table_key, &wrapped.wrapped_dek, &other).is_none());
        assert!(Protection::Plain.wrapped().is_none());
        Ok(())
    }
}
