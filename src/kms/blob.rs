//! The ciphertext blob the local KMS returns from Encrypt and GenerateDataKey.
//!
//! ```text
//! blob (49 + n bytes):
//!   version      : u8 = 1          // on disk: never renumber
//!   key_id       : [u8; 16]        // the KMS key's UUID, big-endian as printed
//!   key_gen      : u32 LE          // which generation of the key's backing material sealed it
//!   nonce        : [u8; 12]        // random
//!   ciphertext   : [u8; n]         // AES-256-GCM(backing key, plaintext), n <= 4096
//!   tag          : [u8; 16]
//! aad = "sealdb-kms-blob" || version : u8 || key_id : [u8; 16] || key_gen : u32 LE
//!       || canonical(encryption context)
//! ```
//!
//! The header is authenticated as associated data, and so is the encryption context, which
//! is not stored: Decrypt must be given the same context, or authentication fails.
//! Nonces are random: a backing key seals far fewer than 2^32 blobs (one per table key).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand::RngCore;
use zeroize::Zeroizing;

use super::key::{BackingKey, KeyId};
use super::{EncryptionContext, KmsError};
use crate::crypto::{NONCE_LEN, TAG_LEN};

/// The blob format version.
pub(crate) const BLOB_VERSION: u8 = 1;
/// Largest plaintext Encrypt accepts (AWS KMS's limit).
pub const MAX_PLAINTEXT_LEN: usize = 4096;

const BLOB_LABEL: &[u8] = b"sealdb-kms-blob";
const KEY_ID_LEN: usize = 16;
const HEADER_LEN: usize = size_of::<u8>() + KEY_ID_LEN + size_of::<u32>();
/// Bytes of a blob around its ciphertext.
pub(crate) const BLOB_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A parsed, not yet authenticated, blob.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedBlob<'a> {
    pub(crate) key_id: KeyId,
    pub(crate) key_gen: u32,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

fn aad(key_id: &KeyId, key_gen: u32, ctx: &EncryptionContext) -> Result<Vec<u8>, KmsError> {
    let mut a = Vec::with_capacity(BLOB_LABEL.len() + HEADER_LEN + 64);
    a.extend_from_slice(BLOB_LABEL);
    a.push(BLOB_VERSION);
    a.extend_from_slice(key_id.as_bytes());
    a.extend_from_slice(&key_gen.to_le_bytes());
    a.extend_from_slice(&ctx.canonical_bytes()?);
    Ok(a)
}

fn cipher(key: &BackingKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose_secret_bytes().into())
}

/// Seals `plaintext` under `key` (generation `key_gen` of key `key_id`), bound to `ctx`.
pub(crate) fn seal(
    key_id: &KeyId,
    key_gen: u32,
    key: &BackingKey,
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Vec<u8>, KmsError> {
    if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(KmsError::InvalidArgument(format!(
            "plaintext must be 1 to {MAX_PLAINTEXT_LEN} bytes, got {}",
            plaintext.len()
        )));
    }
    let aad = aad(key_id, key_gen, ctx)?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(BLOB_OVERHEAD + plaintext.len());
    out.push(BLOB_VERSION);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&key_gen.to_le_bytes());
    out.extend_from_slice(&nonce);
    let body_at = out.len();
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut out[body_at..])
        .map_err(|_| KmsError::InvalidArgument("plaintext too long for AES-GCM".to_string()))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Parses the clear parts of a blob; checks every length before slicing.
pub(crate) fn parse(blob: &[u8]) -> Result<ParsedBlob<'_>, KmsError> {
    if blob.len() <= BLOB_OVERHEAD || blob.len() > BLOB_OVERHEAD + MAX_PLAINTEXT_LEN {
        return Err(KmsError::InvalidCiphertext);
    }
    let (version, rest) = blob.split_at(1);
    if version != [BLOB_VERSION] {
        return Err(KmsError::InvalidCiphertext);
    }
    let (key_id, rest) = rest.split_at(KEY_ID_LEN);
    let (key_gen, rest) = rest.split_at(size_of::<u32>());
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let key_id = KeyId::from_bytes(key_id.try_into().map_err(|_| KmsError::InvalidCiphertext)?);
    let key_gen = u32::from_le_bytes(
        key_gen
            .try_into()
            .map_err(|_| KmsError::InvalidCiphertext)?,
    );
    Ok(ParsedBlob {
        key_id,
        key_gen,
        nonce,
        ciphertext,
        tag,
    })
}

/// Authenticates and decrypts a parsed blob with its key and the caller's context.
pub(crate) fn open(
    parsed: &ParsedBlob<'_>,
    key: &BackingKey,
    ctx: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let aad = aad(&parsed.key_id, parsed.key_gen, ctx).map_err(|_| KmsError::InvalidCiphertext)?;
    let mut plain = Zeroizing::new(parsed.ciphertext.to_vec());
    cipher(key)
        .decrypt_in_place_detached(
            Nonce::from_slice(parsed.nonce),
            &aad,
            &mut plain[..],
            Tag::from_slice(parsed.tag),
        )
        .map_err(|_| KmsError::InvalidCiphertext)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> KeyId {
        KeyId::from_bytes([0x12; 16])
    }

    #[test]
    fn round_trip_and_context_binding() -> Result<(), KmsError> {
        let k = BackingKey::from_bytes([9; 32]);
        let ctx = EncryptionContext::for_table("Books", "111122223333");
        let blob = seal(&id(), 0, &k, b"table key bytes", &ctx)?;
        assert_eq!(blob.len(), BLOB_OVERHEAD + 15);
        let p = parse(&blob)?;
        assert_eq!(p.key_id, id());
        assert_eq!(&open(&p, &k, &ctx)?[..], b"table key bytes");

        let movies = EncryptionContext::for_table("Movies", "111122223333");
        let subset = EncryptionContext::new().with("sealdb:tableName", "Books");
        let superset = ctx.clone().with("extra", "1");
        for wrong in [movies, subset, superset, EncryptionContext::new()] {
            assert!(matches!(
                open(&p, &k, &wrong),
                Err(KmsError::InvalidCiphertext)
            ));
        }
        let other = BackingKey::from_bytes([8; 32]);
        assert!(open(&p, &other, &ctx).is_err());
        Ok(())
    }

    #[test]
    fn every_flipped_byte_and_truncation_fails() -> Result<(), KmsError> {
        let k = BackingKey::from_bytes([9; 32]);
        let ctx = EncryptionContext::for_table("Books", "111122223333");
        let blob = seal(&id(), 3, &k, &[7u8; 32], &ctx)?;
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x40;
            // A flipped key id parses but names another key; the AEAD still refuses it.
            let res = parse(&bad).and_then(|p| open(&p, &k, &ctx));
            assert!(res.is_err(), "byte {i}");
        }
        for len in 0..blob.len() {
            let res = parse(&blob[..len]).and_then(|p| open(&p, &k, &ctx));
            assert!(res.is_err(), "len {len}");
        }
        Ok(())
    }

    #[test]
    fn golden_layout() -> Result<(), KmsError> {
        let k = BackingKey::from_bytes([9; 32]);
        let blob = seal(
            &id(),
            0x0102_0304,
            &k,
            &[0xAA; 4],
            &EncryptionContext::new(),
        )?;
        assert_eq!(blob[0], 1, "version");
        assert_eq!(&blob[1..17], &[0x12; 16], "key id");
        assert_eq!(
            &blob[17..21],
            &[4, 3, 2, 1],
            "key generation, little-endian"
        );
        assert_eq!(blob.len(), 21 + 12 + 4 + 16);
        assert_eq!(parse(&blob)?.key_gen, 0x0102_0304);
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn parse_and_open_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let k = BackingKey::from_bytes([9; 32]);
            if let Ok(p) = parse(&bytes) {
                proptest::prop_assert!(open(&p, &k, &EncryptionContext::new()).is_err());
            }
        }
    }

    #[test]
    fn plaintext_limits() {
        let k = BackingKey::from_bytes([9; 32]);
        let ctx = EncryptionContext::new();
        assert!(seal(&id(), 0, &k, &[], &ctx).is_err());
        assert!(seal(&id(), 0, &k, &[0; MAX_PLAINTEXT_LEN + 1], &ctx).is_err());
        assert!(seal(&id(), 0, &k, &[0; MAX_PLAINTEXT_LEN], &ctx).is_ok());
    }
}
