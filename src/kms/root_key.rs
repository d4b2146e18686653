//! Where the keystore's root key comes from: a passphrase through Argon2id, or a key file.

use std::fmt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::KmsError;
use crate::crypto::KEY_LEN;
use crate::storage::Env;

/// Environment variable holding the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "SEALDB_KMS_PASSPHRASE";
/// Environment variable naming a root key file.
pub const KEY_FILE_ENV: &str = "SEALDB_KMS_KEY_FILE";
/// The root key file a development setup generates inside the keystore directory.
pub const DEV_ROOT_KEY_FILE: &str = "dev-root.key";

/// Upper bounds on KDF parameters read from a keystore header, so that a damaged header
/// cannot make open allocate gigabytes or spin for hours before failing authentication.
const MAX_M_COST_KIB: u32 = 1 << 21; // 2 GiB
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

/// Argon2id cost parameters; stored in the keystore header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// Production parameters: 64 MiB, 3 passes, 1 lane (above OWASP's Argon2id minimum).
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// The cheapest parameters Argon2 accepts. Tests only: it offers no protection.
    pub fn insecure_fast_for_tests() -> KdfParams {
        KdfParams {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    pub(crate) fn check_bounds(&self) -> Result<(), KmsError> {
        let ok = (1..=MAX_P_COST).contains(&self.p_cost)
            && (1..=MAX_T_COST).contains(&self.t_cost)
            && self.m_cost_kib >= 8 * self.p_cost
            && self.m_cost_kib <= MAX_M_COST_KIB;
        if ok {
            Ok(())
        } else {
            Err(KmsError::Keystore(format!(
                "KDF parameters out of range (m={} KiB, t={}, p={}); the header is damaged or \
                 the parameters are unsupported",
                self.m_cost_kib, self.t_cost, self.p_cost
            )))
        }
    }
}

/// How `LocalKms` obtains the root key that seals its keystore.
pub enum RootKeySource {
    /// A passphrase stretched with Argon2id. `kdf` applies when the keystore is created;
    /// an existing keystore's header names its own parameters.
    Passphrase {
        /// The passphrase (zeroized on drop).
        passphrase: Zeroizing<String>,
        /// The Argon2id cost parameters.
        kdf: KdfParams,
    },
    /// A file holding the 32-byte root key, raw or as 64 hex digits. It must exist.
    KeyFile(PathBuf),
    /// A development setup: `<dir>/dev-root.key` is created (0600) if absent, and every
    /// open prints a one-line warning on stderr.
    DevDefault,
}

impl RootKeySource {
    /// A passphrase with production KDF parameters.
    pub fn passphrase(p: &str) -> RootKeySource {
        RootKeySource::Passphrase {
            passphrase: Zeroizing::new(p.to_string()),
            kdf: KdfParams::default(),
        }
    }

    /// `SEALDB_KMS_PASSPHRASE`, else `SEALDB_KMS_KEY_FILE`, else the development default.
    pub fn from_env() -> RootKeySource {
        if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
            if !p.is_empty() {
                let p = Zeroizing::new(p);
                return RootKeySource::Passphrase {
                    passphrase: p,
                    kdf: KdfParams::default(),
                };
            }
        }
        match std::env::var_os(KEY_FILE_ENV) {
            Some(path) if !path.is_empty() => RootKeySource::KeyFile(PathBuf::from(path)),
            _ => RootKeySource::DevDefault,
        }
    }
}

impl fmt::Debug for RootKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootKeySource::Passphrase { kdf, .. } => {
                write!(f, "Passphrase(redacted, {kdf:?})")
            }
            RootKeySource::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
            RootKeySource::DevDefault => f.write_str("DevDefault"),
        }
    }
}

/// The keystore's root key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey([u8; KEY_LEN]);

impl RootKey {
    /// Argon2id(passphrase, salt, params).
    pub(crate) fn from_passphrase(
        passphrase: &str,
        salt: &[u8],
        kdf: &KdfParams,
    ) -> Result<RootKey, KmsError> {
        kdf.check_bounds()?;
        let params = Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(KEY_LEN))
            .map_err(|e| KmsError::Keystore(format!("bad KDF parameters: {e}")))?;
        let mut out = [0u8; KEY_LEN];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), salt, &mut out)
            .map_err(|e| KmsError::Keystore(format!("key derivation failed: {e}")))?;
        let key = RootKey(out);
        out.zeroize();
        Ok(key)
    }

    /// Reads a key file through `env`: exactly 32 raw bytes, or 64 hex digits (surrounding
    /// whitespace ok).
    pub(crate) fn from_file(env: &dyn Env, path: &Path) -> Result<RootKey, KmsError> {
        let raw = Zeroizing::new(env.read_all(path).map_err(|e| {
            KmsError::Keystore(format!("cannot read root key file {}: {e}", path.display()))
        })?);
        let mut key = [0u8; KEY_LEN];
        if raw.len() == KEY_LEN {
            key.copy_from_slice(&raw);
        } else {
            let text = std::str::from_utf8(&raw).map(str::trim).unwrap_or_default();
            if hex::decode_to_slice(text, &mut key).is_err() {
                key.zeroize();
                return Err(KmsError::Keystore(format!(
                    "root key file {} must hold 32 raw bytes or 64 hex digits",
                    path.display()
                )));
            }
        }
        let out = RootKey(key);
        key.zeroize();
        Ok(out)
    }

    /// Creates `path` through `env` with a fresh random key, readable by the owner only
    /// (`Env::create_private`: 0600 on unix); never overwrites an existing file.
    pub(crate) fn create_file(env: &dyn Env, path: &Path) -> Result<(), KmsError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        let io = |e: std::io::Error| {
            KmsError::Keystore(format!(
                "cannot create root key file {}: {e}",
                path.display()
            ))
        };
        let mut f = env.create_private(path).map_err(io)?;
        f.append(&key[..]).map_err(io)?;
        // IMPORTANT: the key must be durable before a keystore sealed under it is.
        f.sync().map_err(io)?;
        if let Some(dir) = path.parent() {
            // IMPORTANT: directory fsync makes the new file's name durable.
            env.sync_dir(dir).map_err(io)?;
        }
        Ok(())
    }

    /// A 256-bit subkey for one purpose (HKDF-SHA256).
    pub(crate) fn derive(&self, info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"sealdb-kms-v1"), &self.0);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        hk.expand(info, &mut out[..])
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        out
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn debug_redacts_passphrase() {
        let s = RootKeySource::Passphrase {
            passphrase: Zeroizing::new("hunter2-secret".into()),
            kdf: KdfParams::insecure_fast_for_tests(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn passphrase_derivation_is_deterministic_and_salted() -> Result<(), KmsError> {
        let kdf = KdfParams::insecure_fast_for_tests();
        let a = RootKey::from_passphrase("pw", &[1; 16], &kdf)?;
        let b = RootKey::from_passphrase("pw", &[1; 16], &kdf)?;
        let c = RootKey::from_passphrase("pw", &[2; 16], &kdf)?;
        let d = RootKey::from_passphrase("pw2", &[1; 16], &kdf)?;
        assert_eq!(a.0, b.0);
        assert_ne!(a.0, c.0);
        assert_ne!(a.0, d.0);
        Ok(())
    }

    #[test]
    fn bounds_refuse_absurd_params() {
        let huge = KdfParams {
            m_cost_kib: u32::MAX,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(huge.check_bounds().is_err());
        assert!(KdfParams::default().check_bounds().is_ok());
        assert!(KdfParams::insecure_fast_for_tests().check_bounds().is_ok());
    }

    #[test]
    fn key_files_raw_hex_and_permissions() -> Result<(), Box<dyn std::error::Error>> {
        let env = crate::storage::StdEnv;
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k");
        RootKey::create_file(&env, &p)?;
        assert_eq!(fs::read(&p)?.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        }
        assert!(
            RootKey::create_file(&env, &p).is_err(),
            "never overwrites a key"
        );
        let raw = RootKey::from_file(&env, &p)?;
        let h = dir.path().join("h");
        fs::write(&h, format!("{}\n", hex::encode(raw.0)))?;
        assert_eq!(RootKey::from_file(&env, &h)?.0, raw.0);
        fs::write(&h, "short")?;
        assert!(RootKey::from_file(&env, &h).is_err());
        Ok(())
    }

    #[test]
    fn key_file_create_and_read_go_through_the_env() -> Result<(), Box<dyn std::error::Error>> {
        use crate::storage::fault::{FaultEnv, FaultKind, FaultOp, Trigger};
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("k");
        let env = FaultEnv::new();
        env.arm(FaultOp::Create, Trigger::Always, FaultKind::Eio);
        let e = RootKey::create_file(&env, &p)
            .err()
            .ok_or("create faulted")?;
        assert!(e.to_string().contains("cannot create root key file"), "{e}");
        assert!(!p.exists(), "nothing written under a failed create");
        env.disarm_all();
        env.arm(FaultOp::Sync, Trigger::Always, FaultKind::Eio);
        assert!(
            RootKey::create_file(&env, &p).is_err(),
            "an unsynced key is an error"
        );
        env.disarm_all();
        fs::remove_file(&p)?;
        RootKey::create_file(&env, &p)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        }
        env.arm(FaultOp::Read, Trigger::Always, FaultKind::Eio);
        let e = RootKey::from_file(&env, &p).err().ok_or("read faulted")?;
        assert!(e.to_string().contains("cannot read root key file"), "{e}");
        Ok(())
    }
}
