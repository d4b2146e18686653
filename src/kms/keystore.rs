//! The sealed keystore file: every key, alias, grant and policy of a `LocalKms`, as one
//! AES-256-GCM blob under the root key, replaced atomically on every change.
//!
//! ```text
//! keystore.bin:
//!   magic      : [u8; 8] = "SEALDBKS"
//!   version    : u8 = 2                 // on disk: never renumber (1 still read)
//!   root_kind  : u8                     // RootKind; on disk: never renumber
//!   m_cost_kib : u32 LE                 // Argon2id parameters (zero for a key file)
//!   t_cost     : u32 LE
//!   p_cost     : u32 LE
//!   salt       : [u8; 16]               // Argon2id salt (zero for a key file)
//!   key_check  : [u8; 16]               // HMAC-SHA256(check_key, header[0..38])[..16]
//!   nonce      : [u8; 12]               // random, fresh on every write
//!   body       : AES-256-GCM(enc_key, state as JSON) || tag : [u8; 16]
//! aad = header (bytes 0..66); enc_key, check_key = HKDF-SHA256(root key, purpose)
//! ```
//!
//! The key check tells a wrong passphrase or key file apart from a damaged body.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::key::{KeyId, KeyRecord};
use super::root_key::{KdfParams, RootKey, RootKeySource, DEV_ROOT_KEY_FILE};
use super::KmsError;
use crate::coding::Cursor;
use crate::crypto::{NONCE_LEN, TAG_LEN};
use crate::storage::{Env, FileLock};

/// The keystore file's name inside the KMS directory.
pub const KEYSTORE_FILE: &str = "keystore.bin";
const TEMP_FILE: &str = "keystore.bin.tmp";
const LOCK_FILE: &str = "LOCK";
const MAGIC: &[u8; 8] = b"SEALDBKS";
/// The version this code writes. Version 2 adds per-key rotation state to the sealed JSON
/// body (`KeyRecord::rotation`); the header is the same. A version-1 keystore opens (its
/// keys read with rotation off) and is written as version 2 at its next change.
const VERSION: u8 = 2;
/// Versions this code reads.
const READABLE_VERSIONS: [u8; 2] = [1, 2];
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const CHECKED_LEN: usize = MAGIC.len() + 2 + 3 * size_of::<u32>() + SALT_LEN;
/// Bytes before the sealed body.
pub(crate) const HEADER_LEN: usize = CHECKED_LEN + CHECK_LEN + NONCE_LEN;

/// How the root key was obtained.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum RootKind {
    // on disk: never renumber
    Passphrase = 1,
    KeyFile = 2,
}

impl TryFrom<u8> for RootKind {
    type Error = KmsError;
    fn try_from(v: u8) -> Result<Self, KmsError> {
        match v {
            1 => Ok(RootKind::Passphrase),
            2 => Ok(RootKind::KeyFile),
            other => Err(KmsError::Keystore(format!("unknown root key kind {other}"))),
        }
    }
}

/// Everything the keystore persists.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct KeystoreState {
    pub(crate) keys: BTreeMap<KeyId, KeyRecord>,
    /// account -> alias name (`alias/...`) -> key id.
    pub(crate) aliases: BTreeMap<String, BTreeMap<String, KeyId>>,
}

/// An open keystore: the file, its root key and the lock that makes it ours. Every read
/// and write of the keystore goes through `env` (so a fault-injecting env reaches it); the
/// root key file itself is read and created with `std::fs` (it needs mode 0600).
pub(crate) struct Keystore {
    env: Arc<dyn Env>,
    dir: PathBuf,
    kind: RootKind,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    root: RootKey,
    _lock: Box<dyn FileLock>,
}

fn ks_err(what: &str, path: &Path, e: io::Error) -> KmsError {
    KmsError::Io {
        context: format!("{what} {}", path.display()),
        source: e,
    }
}

impl Keystore {
    /// Opens the keystore in `dir`, creating the directory and an empty keystore if absent.
    pub(crate) fn open(
        env: Arc<dyn Env>,
        dir: &Path,
        source: &RootKeySource,
    ) -> Result<(Keystore, KeystoreState), KmsError> {
        env.create_dir_all(dir)
            .map_err(|e| ks_err("cannot create", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = env.lock(&lock_path).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => KmsError::Keystore(format!(
                "keystore {} is in use by another process or LocalKms",
                dir.display()
            )),
            _ => ks_err("cannot lock", &lock_path, e),
        })?;
        let path = dir.join(KEYSTORE_FILE);
        match env.read_all(&path) {
            Ok(bytes) => Keystore::open_existing(env, dir, source, lock, &bytes),
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ks_err("cannot read", &path, e)),
            Err(_) => {
                let ks = Keystore::create(env, dir, source, lock)?;
                let state = KeystoreState::default();
                ks.save(&state)?;
                Ok((ks, state))
            }
        }
    }

    fn create(
        env: Arc<dyn Env>,
        dir: &Path,
        source: &RootKeySource,
        lock: Box<dyn FileLock>,
    ) -> Result<Keystore, KmsError> {
        let mut salt = [0u8; SALT_LEN];
        let (kind, kdf, root) = match source {
            RootKeySource::Passphrase { passphrase, kdf } => {
                rand::rngs::OsRng.fill_bytes(&mut salt);
                let root = RootKey::from_passphrase(passphrase, &salt, kdf)?;
                (RootKind::Passphrase, *kdf, root)
            }
            RootKeySource::KeyFile(p) => {
                (RootKind::KeyFile, zero_kdf(), RootKey::from_file(&*env, p)?)
            }
            RootKeySource::DevDefault => {
                (RootKind::KeyFile, zero_kdf(), new_dev_root_key(&*env, dir)?)
            }
        };
        Ok(Keystore {
            env,
            dir: dir.to_path_buf(),
            kind,
            kdf,
            salt,
            root,
            _lock: lock,
        })
    }

    fn open_existing(
        env: Arc<dyn Env>,
        dir: &Path,
        source: &RootKeySource,
        lock: Box<dyn FileLock>,
        bytes: &[u8],
    ) -> Result<(Keystore, KeystoreState), KmsError> {
        let path = dir.join(KEYSTORE_FILE);
        let label = path.display().to_string();
        let damaged = |what: &str| KmsError::Keystore(format!("{label} is damaged: {what}"));
        // A cursor error names the file, the offset and the field.
        let field = |e: crate::Error| KmsError::Keystore(format!("damaged: {e}"));
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(damaged("too short"));
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        let mut r = Cursor::new(header, 0, &label);
        if r.bytes(MAGIC.len(), "magic").map_err(field)? != MAGIC {
            return Err(damaged("bad magic (not a sealdb keystore)"));
        }
        let version = r.u8("version").map_err(field)?;
        if !READABLE_VERSIONS.contains(&version) {
            return Err(damaged(&format!("unsupported version {version}")));
        }
        let kind = RootKind::try_from(r.u8("root key kind").map_err(field)?)
            .map_err(|_| damaged("unknown root key kind"))?;
        let kdf = KdfParams {
            m_cost_kib: r.u32("m_cost_kib").map_err(field)?,
            t_cost: r.u32("t_cost").map_err(field)?,
            p_cost: r.u32("p_cost").map_err(field)?,
        };
        let salt: [u8; SALT_LEN] = r.array("salt").map_err(field)?;
        let root = match (kind, source) {
            (RootKind::Passphrase, RootKeySource::Passphrase { passphrase, .. }) => {
                kdf.check_bounds()?;
                RootKey::from_passphrase(passphrase, &salt, &kdf)?
            }
            (RootKind::KeyFile, RootKeySource::KeyFile(p)) => RootKey::from_file(&*env, p)?,
            (RootKind::KeyFile, RootKeySource::DevDefault) => existing_dev_root_key(&*env, dir)?,
            (RootKind::Passphrase, _) => {
                return Err(KmsError::Keystore(
                    "keystore is sealed under a passphrase; set SEALDB_KMS_PASSPHRASE".into(),
                ))
            }
            (RootKind::KeyFile, _) => {
                return Err(KmsError::Keystore(
                    "keystore is sealed under a root key file, but a passphrase was given".into(),
                ))
            }
        };
        let ks = Keystore {
            env,
            dir: dir.to_path_buf(),
            kind,
            kdf,
            salt,
            root,
            _lock: lock,
        };
        let state = ks.open_body(header, body)?;
        Ok((ks, state))
    }

    /// Reads the keystore file back (to undo in memory a change that was never written).
    pub(crate) fn reload(&self) -> Result<KeystoreState, KmsError> {
        let path = self.dir.join(KEYSTORE_FILE);
        let bytes = self
            .env
            .read_all(&path)
            .map_err(|e| ks_err("cannot read", &path, e))?;
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(KmsError::Keystore(format!(
                "{} is damaged: too short",
                path.display()
            )));
        }
        let (header, body) = bytes.split_at(HEADER_LEN);
        self.open_body(header, body)
    }

    /// Checks the header's key check and opens the sealed body (`header` is HEADER_LEN
    /// bytes, `body` at least TAG_LEN).
    fn open_body(&self, header: &[u8], body: &[u8]) -> Result<KeystoreState, KmsError> {
        let damaged = |what: &str| {
            KmsError::Keystore(format!(
                "{} is damaged: {what}",
                self.dir.join(KEYSTORE_FILE).display()
            ))
        };
        let checked = header.get(..CHECKED_LEN).ok_or_else(|| damaged("header"))?;
        let check = header
            .get(CHECKED_LEN..CHECKED_LEN + CHECK_LEN)
            .ok_or_else(|| damaged("header"))?;
        let nonce = header
            .get(CHECKED_LEN + CHECK_LEN..)
            .ok_or_else(|| damaged("header"))?;
        if nonce.len() != NONCE_LEN || body.len() < TAG_LEN {
            return Err(damaged("header"));
        }
        if !self.key_check_matches(checked, check) {
            return Err(KmsError::Keystore(
                "wrong passphrase or root key for this keystore (or its header is damaged)".into(),
            ));
        }
        let (ct, tag) = body.split_at(body.len() - TAG_LEN);
        let mut plain = Zeroizing::new(ct.to_vec());
        self.cipher()
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                header,
                &mut plain[..],
                Tag::from_slice(tag),
            )
            .map_err(|_| damaged("authentication failed"))?;
        serde_json::from_slice(&plain).map_err(|e| damaged(&format!("contents unreadable: {e}")))
    }

    fn cipher(&self) -> Aes256Gcm {
        let k = self.root.derive(b"keystore encryption");
        Aes256Gcm::new((&*k).into())
    }

    fn key_check(&self, checked: &[u8]) -> Hmac<sha2::Sha256> {
        let k = self.root.derive(b"keystore key check");
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&k[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(checked);
        mac
    }

    fn key_check_matches(&self, checked: &[u8], check: &[u8]) -> bool {
        self.key_check(checked).verify_truncated_left(check).is_ok()
    }

    fn header(&self, nonce: &[u8; NONCE_LEN], version: u8) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(MAGIC);
        h.push(version);
        h.push(self.kind as u8);
        h.extend_from_slice(&self.kdf.m_cost_kib.to_le_bytes());
        h.extend_from_slice(&self.kdf.t_cost.to_le_bytes());
        h.extend_from_slice(&self.kdf.p_cost.to_le_bytes());
        h.extend_from_slice(&self.salt);
        let check = self.key_check(&h).finalize().into_bytes();
        h.extend_from_slice(check.get(..CHECK_LEN).unwrap_or_default());
        h.extend_from_slice(nonce);
        h
    }

    /// Seals `state` and atomically replaces the keystore file with it.
    pub(crate) fn save(&self, state: &KeystoreState) -> Result<(), KmsError> {
        let mut body = ZeroizingWriter::with_capacity(4096 + state.keys.len() * 1024);
        serde_json::to_writer(&mut body, state)
            .map_err(|e| KmsError::Keystore(format!("cannot encode keystore: {e}")))?;
        self.write_sealed(body.0, VERSION)
    }

    /// Seals the JSON body `buf` under a header of `version` and atomically replaces the
    /// keystore file with it.
    fn write_sealed(&self, mut buf: Zeroizing<Vec<u8>>, version: u8) -> Result<(), KmsError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let header = self.header(&nonce, version);
        let tag = self
            .cipher()
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &header, &mut buf[..])
            .map_err(|_| KmsError::Keystore("keystore too large to seal".into()))?;
        let tmp = self.dir.join(TEMP_FILE);
        let dst = self.dir.join(KEYSTORE_FILE);
        let write = || -> io::Result<()> {
            let mut f = self.env.create(&tmp)?;
            let mut sealed = Vec::with_capacity(header.len() + buf.len() + tag.len());
            sealed.extend_from_slice(&header);
            sealed.extend_from_slice(&buf); // ciphertext: nothing secret left in it
            sealed.extend_from_slice(&tag);
            f.append(&sealed)?;
            // IMPORTANT: the new contents must be durable before the rename publishes them.
            f.sync()?;
            drop(f);
            // IMPORTANT: atomic rename: a crash leaves the old or the new keystore, whole.
            self.env.rename(&tmp, &dst)?;
            // IMPORTANT: directory fsync makes the rename durable.
            self.env.sync_dir(&self.dir)
        };
        write().map_err(|e| ks_err("cannot write", &dst, e))
    }

    /// Writes `state` the way keystore version 1 did: version byte 1, and no rotation
    /// state in the key records (for the tests that old keystores still open).
    #[cfg(test)]
    pub(crate) fn save_as_version_1(&self, state: &KeystoreState) -> Result<(), KmsError> {
        let mut v = serde_json::to_value(state)
            .map_err(|e| KmsError::Keystore(format!("cannot encode keystore: {e}")))?;
        if let Some(keys) = v.get_mut("keys").and_then(|k| k.as_object_mut()) {
            for rec in keys.values_mut() {
                if let Some(r) = rec.as_object_mut() {
                    r.remove("rotation");
                }
            }
        }
        let body = serde_json::to_vec(&v)
            .map_err(|e| KmsError::Keystore(format!("cannot encode keystore: {e}")))?;
        self.write_sealed(Zeroizing::new(body), 1)
    }
}

fn zero_kdf() -> KdfParams {
    KdfParams {
        m_cost_kib: 0,
        t_cost: 0,
        p_cost: 0,
    }
}

/// The development root key of a new keystore: `dir/dev-root.key` is written (0600) and
/// the warning printed, once, here at creation.
fn new_dev_root_key(env: &dyn Env, dir: &Path) -> Result<RootKey, KmsError> {
    let path = dir.join(DEV_ROOT_KEY_FILE);
    if !env.exists(&path) {
        RootKey::create_file(env, &path)?;
    }
    eprintln!(
        "sealdb: warning: KMS keystore {} is sealed by the generated key file {} \
         (development setup; set SEALDB_KMS_PASSPHRASE for production)",
        dir.display(),
        path.display()
    );
    RootKey::from_file(env, &path)
}

/// The development root key of an existing keystore: never written here (a keystore
/// sealed under another key file would get a new, useless dev-root.key beside it).
fn existing_dev_root_key(env: &dyn Env, dir: &Path) -> Result<RootKey, KmsError> {
    let path = dir.join(DEV_ROOT_KEY_FILE);
    if !env.exists(&path) {
        return Err(KmsError::Keystore(format!(
            "keystore {} is sealed under a root key file and has no {DEV_ROOT_KEY_FILE}; set \
             SEALDB_KMS_KEY_FILE to the key file it was created with",
            dir.display()
        )));
    }
    RootKey::from_file(env, &path)
}

/// An `io::Write` into a zeroizing buffer that, when it must grow, copies into a larger
/// zeroizing buffer, so no unzeroized copy of the plaintext keystore is left behind.
struct ZeroizingWriter(Zeroizing<Vec<u8>>);

impl ZeroizingWriter {
    fn with_capacity(n: usize) -> ZeroizingWriter {
        ZeroizingWriter(Zeroizing::new(Vec::with_capacity(n)))
    }
}

impl Write for ZeroizingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger; // the old buffer zeroizes on drop
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn env() -> Arc<dyn Env> {
        crate::storage::default_env()
    }

    fn fast(p: &str) -> RootKeySource {
        RootKeySource::Passphrase {
            passphrase: Zeroizing::new(p.into()),
            kdf: KdfParams::insecure_fast_for_tests(),
        }
    }

    #[test]
    fn header_golden_layout() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (ks, _) = Keystore::open(env(), dir.path(), &fast("pw"))?;
        let bytes = fs::read(dir.path().join(KEYSTORE_FILE))?;
        assert_eq!(&bytes[0..8], b"SEALDBKS");
        assert_eq!(bytes[8], 2, "version");
        assert_eq!(bytes[9], 1, "root kind: passphrase");
        assert_eq!(&bytes[10..14], &8u32.to_le_bytes(), "m_cost");
        assert_eq!(&bytes[14..18], &1u32.to_le_bytes(), "t_cost");
        assert_eq!(&bytes[18..22], &1u32.to_le_bytes(), "p_cost");
        assert_eq!(&bytes[22..38], &ks.salt, "salt");
        assert_eq!(HEADER_LEN, 66);
        // Empty state {"keys":{},"aliases":{}} sealed: 24 bytes + tag.
        assert_eq!(bytes.len(), HEADER_LEN + 24 + TAG_LEN);
        Ok(())
    }

    #[test]
    fn wrong_passphrase_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        drop(Keystore::open(env(), dir.path(), &fast("right"))?);
        match Keystore::open(env(), dir.path(), &fast("wrong")) {
            Err(KmsError::Keystore(m)) => assert!(m.contains("wrong passphrase"), "{m}"),
            other => panic!("{other:?}", other = other.map(|_| ())),
        }
        match Keystore::open(env(), dir.path(), &RootKeySource::DevDefault) {
            Err(KmsError::Keystore(m)) => assert!(m.contains("passphrase"), "{m}"),
            other => panic!("{other:?}", other = other.map(|_| ())),
        }
        assert!(Keystore::open(env(), dir.path(), &fast("right")).is_ok());
        Ok(())
    }

    #[test]
    fn dev_key_file_is_written_only_at_creation() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let kf = dir.path().join("root.key");
        fs::write(&kf, [7u8; 32])?;
        let ks_dir = dir.path().join("kms");
        drop(Keystore::open(env(), &ks_dir, &RootKeySource::KeyFile(kf))?);
        match Keystore::open(env(), &ks_dir, &RootKeySource::DevDefault) {
            Err(KmsError::Keystore(m)) => assert!(m.contains("SEALDB_KMS_KEY_FILE"), "{m}"),
            other => panic!("{other:?}", other = other.map(|_| ())),
        }
        assert!(!ks_dir.join(DEV_ROOT_KEY_FILE).exists());
        // Created with it: written once, then read back.
        let dev = dir.path().join("dev");
        drop(Keystore::open(env(), &dev, &RootKeySource::DevDefault)?);
        let key = fs::read(dev.join(DEV_ROOT_KEY_FILE))?;
        drop(Keystore::open(env(), &dev, &RootKeySource::DevDefault)?);
        assert_eq!(fs::read(dev.join(DEV_ROOT_KEY_FILE))?, key);
        Ok(())
    }

    #[test]
    fn second_open_is_refused_while_locked() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = Keystore::open(env(), dir.path(), &fast("pw"))?;
        assert!(matches!(
            Keystore::open(env(), dir.path(), &fast("pw")),
            Err(KmsError::Keystore(_))
        ));
        drop(first);
        assert!(Keystore::open(env(), dir.path(), &fast("pw")).is_ok());
        Ok(())
    }

    #[test]
    fn zeroizing_writer_grows() -> io::Result<()> {
        let mut w = ZeroizingWriter::with_capacity(2);
        w.write_all(b"hello ")?;
        w.write_all(b"world")?;
        assert_eq!(&w.0[..], b"hello world");
        Ok(())
    }
}
