//! Secret key newtypes: no `Clone`, zeroized on drop, `Debug` shows nothing secret.

use std::fmt;

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::aead::AeadKey;
use super::KEY_LEN;

/// A table's 256-bit key, unwrapped by the KMS. It wraps the table's data keys.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TableKey([u8; KEY_LEN]);

impl TableKey {
    /// Takes ownership of raw key bytes (from a KMS `GenerateDataKey` or `Decrypt`).
    /// The caller's copy should be a zeroizing buffer too. Test and fixture code only.
    #[cfg(any(test, feature = "fuzzing", feature = "bench-internals"))]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> TableKey {
        TableKey(bytes)
    }

    /// Builds a key from a slice, refusing any length but 32.
    pub fn from_slice(bytes: &[u8]) -> Option<TableKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(TableKey(arr))
    }

    /// The AEAD key that wraps this table's data keys.
    pub(crate) fn cipher(&self) -> AeadKey {
        AeadKey::new(&self.0)
    }

    /// A 256-bit subkey for one purpose (HKDF-SHA256, `info` names the purpose), e.g. the
    /// manifest MAC key or the key that seals range boundaries.
    pub(crate) fn derive_subkey(&self, info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sealdb-v1"), &self.0);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(info, &mut out[..])
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        out
    }
}

impl fmt::Debug for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TableKey(AES-256, redacted)")
    }
}

/// A file's data encryption key (DEK): fresh and random for every SSTable and WAL segment.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub(crate) fn generate() -> DataKey {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DataKey(k)
    }

    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(bytes)
    }

    pub(crate) fn expose_secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The AEAD key that seals and opens this file's units.
    pub(crate) fn cipher(&self) -> AeadKey {
        AeadKey::new(&self.0)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(AES-256, redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = TableKey::from_bytes([0x5A; KEY_LEN]);
        let s = format!("{k:?}");
        assert!(!s.to_lowercase().contains("5a") && !s.contains("90"), "{s}");
        let d = DataKey::from_bytes([0x5C; KEY_LEN]);
        assert!(!format!("{d:?}").to_lowercase().contains("5c"));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            DataKey::generate().expose_secret_bytes(),
            DataKey::generate().expose_secret_bytes()
        );
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(TableKey::from_slice(&[0; 31]).is_none());
        assert!(TableKey::from_slice(&[0; 32]).is_some());
    }
}
