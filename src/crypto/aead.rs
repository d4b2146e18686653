//! AES-256-GCM, the one AEAD under every sealed unit and wrapped key, on one of two
//! backends chosen when the crate is built. Both produce the same bytes (NIST SP 800-38D,
//! 96-bit nonce, 128-bit tag); the known-answer tests below pin them.
//!
//! - `aws-lc` feature (default): `aws-lc-rs` over AWS-LC's assembly (AES-NI/VAES with
//!   CLMUL GHASH). The expanded key lives in an `EVP_AEAD_CTX` that AWS-LC allocates and
//!   cleanses (`OPENSSL_cleanse` in `OPENSSL_free`) when the key is dropped.
//! - without it: RustCrypto `aes-gcm` (pure Rust). The `zeroize` features of `aes` and
//!   `polyval` (both turned on in Cargo.toml) wipe the round keys and the GHASH key on drop.
//!
//! The type is deliberately small: no `Clone`, `Debug` names only the algorithm, errors
//! say nothing, and callers pass nonces they derive from positions (see `unit.rs`).

use std::fmt;

use super::{KEY_LEN, NONCE_LEN, TAG_LEN};

/// Which implementation seals and opens units in this build.
#[cfg(feature = "aws-lc")]
pub const BACKEND: &str = "aws-lc-rs";
/// Which implementation seals and opens units in this build.
#[cfg(not(feature = "aws-lc"))]
pub const BACKEND: &str = "aes-gcm (RustCrypto)";

/// A failed seal (input too large) or open (wrong key, nonce, associated data or bytes).
/// Deliberately carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadError;

/// An AES-256-GCM key with its expanded schedule, erased on drop by the backend.
pub(crate) struct AeadKey(backend::Key);

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AeadKey(AES-256-GCM, {BACKEND})")
    }
}

impl AeadKey {
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> AeadKey {
        AeadKey(backend::Key::new(key))
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadError> {
        self.0.seal_in_place(nonce, aad, in_out)
    }

    /// Checks `tag` and decrypts `ciphertext` into `out` (same length): one pass from,
    /// say, a memory map into a cache's buffer. On failure `out` is zeroed.
    pub(crate) fn open_into(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> Result<(), AeadError> {
        if ciphertext.len() != out.len() {
            return Err(AeadError);
        }
        self.0
            .open_into(nonce, aad, ciphertext, tag, out)
            .inspect_err(|_| {
                out.fill(0);
            })
    }
}

#[cfg(feature = "aws-lc")]
mod backend {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

    use super::{AeadError, KEY_LEN, NONCE_LEN, TAG_LEN};

    /// `LessSafeKey` because nonces come from file positions under a per-file key (the
    /// sealer enforces their uniqueness), not from a `NonceSequence`.
    pub(super) struct Key(LessSafeKey);

    impl Key {
        pub(super) fn new(key: &[u8; KEY_LEN]) -> Key {
            // AES_256_GCM accepts every 32-byte key; the only failure is a wrong length.
            match UnboundKey::new(&AES_256_GCM, key) {
                Ok(k) => Key(LessSafeKey::new(k)),
                Err(_) => unreachable!("a 32-byte key is a valid AES-256-GCM key"),
            }
        }

        pub(super) fn seal_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            in_out: &mut [u8],
        ) -> Result<[u8; TAG_LEN], AeadError> {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    in_out,
                )
                .map_err(|_| AeadError)?;
            tag.as_ref().try_into().map_err(|_| AeadError)
        }

        pub(super) fn open_into(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            ciphertext: &[u8],
            tag: &[u8; TAG_LEN],
            out: &mut [u8],
        ) -> Result<(), AeadError> {
            self.0
                .open_separate_gather(
                    Nonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    ciphertext,
                    tag,
                    out,
                )
                .map_err(|_| AeadError)
        }
    }
}

#[cfg(not(feature = "aws-lc"))]
mod backend {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    use super::{AeadError, KEY_LEN, NONCE_LEN, TAG_LEN};

    /// Boxed: the expanded key is large and the `zeroize` feature wipes it where it lives.
    pub(super) struct Key(Box<Aes256Gcm>);

    impl Key {
        pub(super) fn new(key: &[u8; KEY_LEN]) -> Key {
            Key(Box::new(Aes256Gcm::new(key.into())))
        }

        pub(super) fn seal_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            in_out: &mut [u8],
        ) -> Result<[u8; TAG_LEN], AeadError> {
            self.0
                .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, in_out)
                .map(Into::into)
                .map_err(|_| AeadError)
        }

        pub(super) fn open_into(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            ciphertext: &[u8],
            tag: &[u8; TAG_LEN],
            out: &mut [u8],
        ) -> Result<(), AeadError> {
            // RustCrypto decrypts in place only: one copy, then one pass.
            out.copy_from_slice(ciphertext);
            self.0
                .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, out, Tag::from_slice(tag))
                .map_err(|_| AeadError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap_or_default()
    }

    /// The GCM specification's test case 16 (AES-256, 96-bit IV, 20 bytes of AAD).
    #[test]
    fn gcm_spec_test_case_16() -> Result<(), AeadError> {
        let key: [u8; KEY_LEN] =
            h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
                .try_into()
                .map_err(|_| AeadError)?;
        let nonce: [u8; NONCE_LEN] = h("cafebabefacedbaddecaf888")
            .try_into()
            .map_err(|_| AeadError)?;
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let plain = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let k = AeadKey::new(&key);
        let mut buf = plain.clone();
        let tag = k.seal_in_place(&nonce, &aad, &mut buf)?;
        assert_eq!(
            hex::encode(&buf),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        );
        assert_eq!(hex::encode(tag), "76fc6ece0f4e1768cddf8853bb2d551b");
        let mut out = vec![0u8; buf.len()];
        k.open_into(&nonce, &aad, &buf, &tag, &mut out)?;
        assert_eq!(out, plain);
        Ok(())
    }

    #[test]
    fn a_failed_open_leaves_only_zeros() -> Result<(), AeadError> {
        let k = AeadKey::new(&[9; KEY_LEN]);
        let nonce = [1; NONCE_LEN];
        let mut buf = b"some plaintext of a block".to_vec();
        let mut tag = k.seal_in_place(&nonce, b"aad", &mut buf)?;
        tag[0] ^= 1;
        let mut out = vec![0xEE; buf.len()];
        assert_eq!(
            k.open_into(&nonce, b"aad", &buf, &tag, &mut out),
            Err(AeadError)
        );
        assert!(out.iter().all(|&b| b == 0));
        // Lengths must agree.
        assert_eq!(
            k.open_into(&nonce, b"aad", &[0; 4], &tag, &mut [0; 5]),
            Err(AeadError)
        );
        Ok(())
    }

    #[test]
    fn debug_names_only_the_algorithm() {
        let s = format!("{:?}", AeadKey::new(&[0x5A; KEY_LEN]));
        assert!(s.starts_with("AeadKey(AES-256-GCM") && !s.to_lowercase().contains("5a"));
    }
}
