//! Wrapping a file's data key under its table key.
//!
//! ```text
//! wrapped key (60 bytes) = nonce : [u8; 12] || AES-256-GCM(table_key, dek) : [u8; 32] || tag : [u8; 16]
//! aad = "sealdb-dek" || FORMAT_VERSION : u8 || table : u32 LE || file_kind : u8
//!       || file : u64 LE || key_version : u32 LE
//! ```
//!
//! Nonces here are random (96 bits): a table key wraps one data key per file it ever
//! protects, far below the 2^32 random-nonce messages NIST SP 800-38D allows under one key.

use rand::RngCore;
use zeroize::Zeroizing;

use super::{DataKey, FileKind, TableKey, FORMAT_VERSION, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::types::{FileNumber, TableId};

/// Bytes of a wrapped data key.
pub(crate) const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

const WRAP_LABEL: &[u8] = b"sealdb-dek";

/// What a wrapped key is bound to: it unwraps only for the same file of the same table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WrapContext {
    pub(crate) table: TableId,
    pub(crate) file_kind: FileKind,
    pub(crate) file: FileNumber,
    /// Which generation of the table key wrapped it.
    pub(crate) key_version: u32,
}

impl WrapContext {
    fn aad(&self) -> Vec<u8> {
        let mut a = Vec::with_capacity(WRAP_LABEL.len() + 18);
        a.extend_from_slice(WRAP_LABEL);
        a.push(FORMAT_VERSION);
        a.extend_from_slice(&self.table.0.to_le_bytes());
        a.push(self.file_kind as u8);
        a.extend_from_slice(&self.file.0.to_le_bytes());
        a.extend_from_slice(&self.key_version.to_le_bytes());
        a
    }
}

/// Wraps `dek` under `table_key` for the file named by `ctx`.
pub(crate) fn wrap_data_key(
    table_key: &TableKey,
    dek: &DataKey,
    ctx: &WrapContext,
) -> [u8; WRAPPED_KEY_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut body = Zeroizing::new(*dek.expose_secret_bytes());
    let tag = table_key
        .cipher()
        .seal_in_place(&nonce, &ctx.aad(), &mut body[..])
        .unwrap_or_else(|_| unreachable!("32-byte plaintext is within AES-GCM limits"));
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    out[NONCE_LEN..NONCE_LEN + KEY_LEN].copy_from_slice(&body[..]);
    out[NONCE_LEN + KEY_LEN..].copy_from_slice(&tag);
    out
}

/// Unwraps a data key; `None` when the blob is malformed, from another file, table or
/// key, or was modified.
pub(crate) fn unwrap_data_key(
    table_key: &TableKey,
    wrapped: &[u8],
    ctx: &WrapContext,
) -> Option<DataKey> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return None;
    }
    let (nonce, rest) = wrapped.split_first_chunk::<NONCE_LEN>()?;
    let (body, tag) = rest.split_first_chunk::<KEY_LEN>()?;
    let tag: &[u8; TAG_LEN] = tag.try_into().ok()?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    table_key
        .cipher()
        .open_into(nonce, &ctx.aad(), body, tag, &mut key[..])
        .ok()?;
    Some(DataKey::from_bytes(*key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(file: u64) -> WrapContext {
        WrapContext {
            table: TableId(3),
            file_kind: FileKind::Sst,
            file: FileNumber(file),
            key_version: 1,
        }
    }

    /// A data key wrapped by the RustCrypto `aes-gcm` backend (commit d29aef8), random
    /// nonce included: every backend must unwrap it.
    const KAT_WRAPPED: &str = concat!(
        "ac73158482e1ab8343e11fba713542635c79222c90ca8821c4d0d5f929bdfc6b",
        "9984a5b043c58ce23a76f686a3f735bc711bab3921a706b36984db55"
    );

    #[test]
    fn unwraps_a_key_wrapped_by_the_rustcrypto_backend() {
        let tk = TableKey::from_bytes([7; KEY_LEN]);
        let wrapped = hex::decode(KAT_WRAPPED).unwrap_or_default();
        let back = unwrap_data_key(&tk, &wrapped, &ctx(9)).map(|k| *k.expose_secret_bytes());
        assert_eq!(back, Some([0x33; KEY_LEN]));
        assert!(unwrap_data_key(&tk, &wrapped, &ctx(10)).is_none());
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let tk = TableKey::from_bytes([7; KEY_LEN]);
        let dek = DataKey::generate();
        let w = wrap_data_key(&tk, &dek, &ctx(9));
        let back = unwrap_data_key(&tk, &w, &ctx(9)).map(|k| *k.expose_secret_bytes());
        assert_eq!(back, Some(*dek.expose_secret_bytes()));
        assert!(unwrap_data_key(&tk, &w, &ctx(10)).is_none());
        assert!(unwrap_data_key(&TableKey::from_bytes([8; KEY_LEN]), &w, &ctx(9)).is_none());
        assert!(unwrap_data_key(&tk, &w[..59], &ctx(9)).is_none());
        let mut bad = w;
        bad[20] ^= 1;
        assert!(unwrap_data_key(&tk, &bad, &ctx(9)).is_none());
    }
}
