//! KMS keys: their metadata, state, backing material and the record the keystore persists.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::grant::Grant;
use super::rotation::{material_id, RotationState};
use super::KmsError;
use crate::crypto::KEY_LEN;

/// A KMS key's id: a random UUID, printed in its hyphenated form, 16 bytes in blobs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct KeyId(Uuid);

impl KeyId {
    pub(crate) fn generate() -> KeyId {
        KeyId(Uuid::new_v4())
    }

    /// Parses the hyphenated text form.
    pub(crate) fn parse(s: &str) -> Option<KeyId> {
        Uuid::try_parse(s).ok().map(KeyId)
    }

    pub(crate) fn from_bytes(b: [u8; 16]) -> KeyId {
        KeyId(Uuid::from_bytes(b))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.hyphenated())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyId::parse(&s).ok_or_else(|| serde::de::Error::custom("bad key id"))
    }
}

/// A KMS key's secret backing material: 256 bits, never leaves the keystore unsealed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct BackingKey([u8; KEY_LEN]);

impl BackingKey {
    pub(crate) fn generate() -> BackingKey {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        BackingKey(k)
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> BackingKey {
        BackingKey(bytes)
    }

    pub(crate) fn expose_secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for BackingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackingKey(AES-256, redacted)")
    }
}

// Serialized as a JSON array of numbers straight into the keystore's zeroizing buffer;
// no intermediate hex string is allocated.
impl Serialize for BackingKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BackingKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut bytes = <[u8; KEY_LEN]>::deserialize(d)?;
        let key = BackingKey(bytes);
        bytes.zeroize();
        Ok(key)
    }
}

/// `KeyState` as AWS names it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Refuses cryptographic operations until enabled.
    Disabled,
    /// Scheduled for deletion; refuses cryptographic operations.
    PendingDeletion,
}

impl KeyState {
    /// The state's name as AWS KMS writes it (`Enabled`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages a key: the service (the default key) or the customer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum KeyManager {
    /// An AWS managed key (`alias/aws/sealdb`): policy fixed, cannot be disabled or deleted.
    Aws,
    /// A customer managed key.
    Customer,
}

/// What DescribeKey returns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyMetadata {
    /// The key's UUID, e.g. `1234abcd-12ab-34cd-56ef-1234567890ab`.
    pub key_id: String,
    /// `arn:aws:kms:<region>:<account>:key/<key_id>`.
    pub arn: String,
    /// The account that owns the key.
    pub aws_account_id: String,
    /// The key's description.
    pub description: String,
    /// When the key was created.
    pub creation_date: SystemTime,
    /// True when the key is enabled.
    pub enabled: bool,
    /// The key's state.
    pub key_state: KeyState,
    /// When a key pending deletion will be deleted.
    pub deletion_date: Option<SystemTime>,
    /// Who manages the key (AWS or the customer).
    pub key_manager: KeyManager,
    /// Always `ENCRYPT_DECRYPT` (symmetric keys only).
    pub key_usage: &'static str,
    /// The key material new encryptions use (`CurrentKeyMaterialId`); `None` where the
    /// KMS does not say.
    pub current_key_material_id: Option<String>,
}

/// The request of CreateKey: `CreateKeyRequest::new(description)`, optionally
/// `.with_policy(..)`.
#[derive(Clone, Default, Debug)]
#[non_exhaustive]
pub struct CreateKeyRequest {
    /// A description for the new key.
    pub description: String,
    /// A key policy document; `None` gives AWS's default policy (the account root, and so
    /// every principal of the account, may do everything).
    pub policy: Option<String>,
}

impl CreateKeyRequest {
    /// A request for a key described by `description`, with the default policy.
    pub fn new(description: impl Into<String>) -> CreateKeyRequest {
        CreateKeyRequest {
            description: description.into(),
            policy: None,
        }
    }

    /// The request with `policy` (a JSON key policy document) instead of the default.
    pub fn with_policy(mut self, policy: impl Into<String>) -> CreateKeyRequest {
        self.policy = Some(policy.into());
        self
    }
}

/// GenerateDataKey's `KeySpec` / `NumberOfBytes`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataKeySpec {
    /// A 256-bit key (32 bytes).
    Aes256,
    /// A 128-bit key (16 bytes).
    Aes128,
    /// 1 to 1024 bytes.
    NumberOfBytes(u16),
}

impl DataKeySpec {
    pub(crate) fn len(self) -> Result<usize, KmsError> {
        match self {
            DataKeySpec::Aes256 => Ok(32),
            DataKeySpec::Aes128 => Ok(16),
            DataKeySpec::NumberOfBytes(n) if (1..=1024).contains(&n) => Ok(usize::from(n)),
            DataKeySpec::NumberOfBytes(n) => Err(KmsError::InvalidArgument(format!(
                "NumberOfBytes must be 1 to 1024, got {n}"
            ))),
        }
    }
}

/// A key as the keystore holds it.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) id: KeyId,
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) description: String,
    pub(crate) manager: KeyManager,
    pub(crate) state: KeyState,
    pub(crate) created_secs: u64,
    pub(crate) deletion_secs: Option<u64>,
    /// The key policy document as given (or generated); returned verbatim by GetKeyPolicy.
    pub(crate) policy: String,
    /// Backing material, one per generation; blobs name the generation that sealed them.
    pub(crate) material: Vec<BackingKey>,
    pub(crate) grants: Vec<Grant>,
    /// Rotation settings and history (absent in keystore version 1: rotation off).
    #[serde(default)]
    pub(crate) rotation: RotationState,
}

impl KeyRecord {
    pub(crate) fn arn(&self) -> String {
        key_arn(&self.region, &self.account, &self.id)
    }

    pub(crate) fn metadata(&self) -> KeyMetadata {
        KeyMetadata {
            key_id: self.id.to_string(),
            arn: self.arn(),
            aws_account_id: self.account.clone(),
            description: self.description.clone(),
            creation_date: from_secs(self.created_secs),
            enabled: self.state == KeyState::Enabled,
            key_state: self.state,
            deletion_date: self.deletion_secs.map(from_secs),
            key_manager: self.manager,
            key_usage: "ENCRYPT_DECRYPT",
            current_key_material_id: self
                .current_material()
                .ok()
                .map(|(gen, _)| material_id(&self.id, gen)),
        }
    }

    /// The current backing key and its generation.
    pub(crate) fn current_material(&self) -> Result<(u32, &BackingKey), KmsError> {
        let last = self
            .material
            .len()
            .checked_sub(1)
            .ok_or_else(|| KmsError::Keystore(format!("key {} has no material", self.id)))?;
        let gen = u32::try_from(last)
            .map_err(|_| KmsError::Keystore(format!("key {} has too many generations", self.id)))?;
        let key = self
            .material
            .get(last)
            .ok_or_else(|| KmsError::Keystore(format!("key {} has no material", self.id)))?;
        Ok((gen, key))
    }
}

/// `arn:aws:kms:<region>:<account>:key/<id>`.
pub(crate) fn key_arn(region: &str, account: &str, id: &KeyId) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

pub(crate) fn to_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The last second of the year 9999: every platform's `SystemTime` holds it.
const MAX_SECS: u64 = 253_402_300_799;

/// A keystore's seconds since the epoch as a time. Out-of-range values (which only a
/// writer holding the keystore's root key could store) are clamped, never a panic.
pub(crate) fn from_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.min(MAX_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_seconds_out_of_range_are_clamped_not_a_panic() {
        assert!(super::from_secs(u64::MAX) > super::from_secs(4_000_000_000));
    }

    #[test]
    fn backing_key_debug_is_redacted() {
        let k = BackingKey::from_bytes([0x5A; 32]);
        assert!(!format!("{k:?}").to_lowercase().contains("5a"));
        assert!(!format!("{k:?}").contains("90"));
    }

    #[test]
    fn data_key_spec_lengths() {
        assert_eq!(DataKeySpec::Aes256.len().ok(), Some(32));
        assert_eq!(DataKeySpec::Aes128.len().ok(), Some(16));
        assert_eq!(DataKeySpec::NumberOfBytes(64).len().ok(), Some(64));
        assert!(DataKeySpec::NumberOfBytes(0).len().is_err());
        assert!(DataKeySpec::NumberOfBytes(1025).len().is_err());
    }

    #[test]
    fn backing_key_serde_round_trip() -> Result<(), serde_json::Error> {
        let k = BackingKey::from_bytes([7; 32]);
        let s = serde_json::to_vec(&k)?;
        let back: BackingKey = serde_json::from_slice(&s)?;
        assert_eq!(back.expose_secret_bytes(), &[7; 32]);
        Ok(())
    }
}
