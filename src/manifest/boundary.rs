//! Sealed range boundaries, for tables created with `boundaries: Sealed`.
//!
//! ```text
//! sealed boundary = nonce : [u8; 12] || AES-256-GCM(subkey, internal_key) || tag : [u8; 16]
//! subkey = HKDF-SHA256(table_key, info = "boundaries")
//! aad    = "sealdb-boundary" || FORMAT_VERSION : u8 || table : u32 LE || file : u64 LE
//!          || end : u8 (0 smallest, 1 largest)
//! ```
//!
//! Nonces are random: a table key seals two boundaries per file the table ever writes,
//! far below the 2^32 random-nonce messages NIST SP 800-38D allows under one key. The AAD
//! binds each boundary to its file and end, so boundaries cannot be swapped between files
//! or between the two ends of one file.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand::RngCore;

use crate::crypto::{TableKey, FORMAT_VERSION, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::types::{FileNumber, TableId};

const LABEL: &[u8] = b"sealdb-boundary";
const SUBKEY_INFO: &[u8] = b"boundaries";

fn aad(table: TableId, file: FileNumber, is_largest: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(LABEL.len() + 1 + 4 + 8 + 1);
    a.extend_from_slice(LABEL);
    a.push(FORMAT_VERSION);
    a.extend_from_slice(&table.0.to_le_bytes());
    a.extend_from_slice(&file.0.to_le_bytes());
    a.push(u8::from(is_largest));
    a
}

fn cipher(key: &TableKey) -> Result<Aes256Gcm> {
    let sub = key.derive_subkey(SUBKEY_INFO);
    Aes256Gcm::new_from_slice(&sub[..])
        .map_err(|_| Error::Internal("boundary subkey length".to_owned()))
}

/// Seals one end (`is_largest`) of file `file`'s key range.
pub(crate) fn seal_boundary(
    key: &TableKey,
    table: TableId,
    file: FileNumber,
    is_largest: bool,
    boundary: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + boundary.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(boundary);
    let tag = cipher(key)?
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad(table, file, is_largest),
            &mut out[NONCE_LEN..],
        )
        .map_err(|_| Error::InvalidArgument("boundary too large to seal".to_owned()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a sealed boundary; `Integrity` (naming the file) when it was modified, moved to
/// another file or end, or sealed under another key.
pub(crate) fn open_boundary(
    key: &TableKey,
    table: TableId,
    file: FileNumber,
    is_largest: bool,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let integrity = || Error::Integrity {
        file: format!(
            "{} boundary of table file {file}",
            if is_largest { "largest" } else { "smallest" }
        ),
        offset: 0,
    };
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(integrity());
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = body.to_vec();
    cipher(key)?
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad(table, file, is_largest),
            &mut buf,
            Tag::from_slice(tag),
        )
        .map_err(|_| integrity())?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    #[test]
    fn round_trip_and_binding() -> Result<()> {
        let k = TableKey::from_bytes([3; KEY_LEN]);
        let (t, f) = (TableId(4), FileNumber(12));
        let s = seal_boundary(&k, t, f, false, b"MARKER-user-key")?;
        assert!(!s.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(open_boundary(&k, t, f, false, &s)?, b"MARKER-user-key");
        assert!(open_boundary(&k, t, f, true, &s).is_err());
        assert!(open_boundary(&k, t, FileNumber(13), false, &s).is_err());
        assert!(open_boundary(&k, TableId(5), f, false, &s).is_err());
        assert!(open_boundary(&TableKey::from_bytes([4; KEY_LEN]), t, f, false, &s).is_err());
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] ^= 0x80;
            assert!(open_boundary(&k, t, f, false, &bad).is_err());
        }
        for cut in 0..s.len() {
            assert!(open_boundary(&k, t, f, false, &s[..cut]).is_err());
        }
        // The empty key seals too.
        let e = seal_boundary(&k, t, f, true, b"")?;
        assert_eq!(open_boundary(&k, t, f, true, &e)?, b"");
        Ok(())
    }
}
