//! The key management service: the root of the key hierarchy.
//!
//! `Kms` is modelled on AWS KMS operation for operation, so that `LocalKms` (the embedded
//! default, a sealed keystore directory) and a client of the real AWS KMS fit one trait.
//! Every call names its `Caller`: a principal and, when the engine calls on its behalf,
//! the service it comes through (`kms:ViaService`).

mod audit;
#[cfg(feature = "aws-kms")]
mod aws;
mod blob;
mod context;
mod defaults;
mod error;
mod grant;
mod key;
mod keystore;
mod local;
mod policy;
mod principal;
mod root_key;
mod rotation;

use std::fmt;

use zeroize::Zeroizing;

pub use audit::{AuditLog, AuditQuery, EVENT_VERSION};
#[cfg(feature = "aws-kms")]
pub use aws::{AwsKms, AwsKmsOptions};
pub use blob::MAX_PLAINTEXT_LEN;
pub use context::{
    EncryptionContext, DATABASE_ID_CONTEXT_KEY, MAX_CONTEXT_BYTES, SUBSCRIBER_ID_CONTEXT_KEY,
    TABLE_NAME_CONTEXT_KEY,
};
pub use defaults::{
    customer_default_policy, service_default_policy, via_service_name, SERVICE_DEFAULT_ALIAS,
    SERVICE_PRINCIPAL,
};
pub use error::KmsError;
pub use grant::{
    CreateGrantRequest, CreateGrantResponse, GrantConstraints, GrantEntry, GrantOperation,
};
pub use key::{CreateKeyRequest, DataKeySpec, KeyManager, KeyMetadata, KeyState};
pub use keystore::KEYSTORE_FILE;
pub use local::{AliasListEntry, KeyListEntry, LocalKms, LocalKmsOptions};
pub use policy::{KeyPolicy, PolicyDecision, PolicyRequest, MAX_POLICY_BYTES};
#[cfg(feature = "test-callers")]
pub use principal::testing;
pub use principal::{Caller, Principal, PrincipalKind};
pub use root_key::{KdfParams, RootKeySource, DEV_ROOT_KEY_FILE, KEY_FILE_ENV, PASSPHRASE_ENV};
pub use rotation::{
    KeyRotation, KeyRotationStatus, RotationType, DEFAULT_ROTATION_PERIOD_DAYS,
    MAX_ON_DEMAND_ROTATIONS, MAX_ROTATION_PERIOD_DAYS, MIN_ROTATION_PERIOD_DAYS,
};

/// Fuzzing entry point: parses a ciphertext blob's clear parts (length checks, version).
#[cfg(feature = "fuzzing")]
pub fn fuzz_parse_blob(data: &[u8]) -> bool {
    blob::parse(data).is_ok()
}

/// What GenerateDataKey returns: the plaintext key (zeroized on drop) and its blob.
pub struct GeneratedDataKey {
    /// The data key in plaintext (zeroized on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// The ARN of the KMS key that protects it.
    pub key_arn: String,
}

impl fmt::Debug for GeneratedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedDataKey")
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .field(
                "ciphertext_blob",
                &format_args!("<{} bytes>", self.ciphertext_blob.len()),
            )
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

/// What Decrypt returns.
pub struct DecryptedKey {
    /// The decrypted data (zeroized on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The ARN of the KMS key that protected it.
    pub key_arn: String,
}

impl fmt::Debug for DecryptedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptedKey")
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

fn unsupported(op: &str) -> KmsError {
    KmsError::UnsupportedOperation(format!("this KMS implementation does not provide {op}"))
}

/// A key management service, as the engine uses it. Synchronous; shareable across threads.
///
/// `key_id` arguments accept a key id, key ARN, alias name (`alias/...`) or alias ARN.
pub trait Kms: Send + Sync {
    /// CreateKey: a customer managed key in the caller's account.
    fn create_key(&self, caller: &Caller, req: CreateKeyRequest) -> Result<KeyMetadata, KmsError>;
    /// DescribeKey. Describing `alias/aws/sealdb` creates the service default key for the
    /// caller's account and region if absent (as AWS does for AWS managed keys), with the
    /// seed's three-statement policy (service name filled in).
    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyMetadata, KmsError>;
    /// CreateAlias: `alias/<name>` (not `alias/aws/...`) for a customer managed key.
    fn create_alias(
        &self,
        caller: &Caller,
        alias: &str,
        target_key_id: &str,
    ) -> Result<(), KmsError>;
    /// GenerateDataKey: a fresh random key, returned in plaintext and sealed under `key_id`
    /// bound to `ctx`.
    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        spec: DataKeySpec,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError>;
    /// Encrypt: at most 4096 bytes.
    fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError>;
    /// Decrypt: the blob names its key; `ctx` must equal the context it was sealed with.
    /// With `key_id`, the blob must be under that key (`IncorrectKeyException`).
    fn decrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<DecryptedKey, KmsError>;
    /// ReEncrypt: decrypt under the blob's key (ReEncryptFrom), seal under `dest_key_id`
    /// (ReEncryptTo) without the plaintext leaving the KMS.
    fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        source_ctx: &EncryptionContext,
        dest_key_id: &str,
        dest_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError>;
    /// `CreateGrant`: lets a grantee use a key; returns the grant id and token.
    fn create_grant(
        &self,
        caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError>;
    /// `ListGrants`: the grants on a key.
    fn list_grants(&self, caller: &Caller, key_id: &str) -> Result<Vec<GrantEntry>, KmsError>;
    /// RetireGrant: by the grant's retiring principal, or its grantee if the grant
    /// includes RetireGrant.
    fn retire_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError>;
    /// RevokeGrant: by a principal the key policy allows `kms:RevokeGrant`.
    fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError>;
    /// `GetKeyPolicy`: the key's policy document (JSON).
    fn get_key_policy(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError>;
    /// PutKeyPolicy: customer managed keys only.
    fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_json: &str,
    ) -> Result<(), KmsError>;
    /// `EnableKey`.
    fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError>;
    /// `DisableKey`: refuses cryptographic operations under the key.
    fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError>;
    /// ScheduleKeyDeletion: 7 to 30 days; the key is unusable meanwhile and destroyed
    /// (with every blob under it) when the date passes.
    fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_days: u32,
    ) -> Result<(), KmsError>;
    /// `CancelKeyDeletion`: back to `Disabled`.
    fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError>;
    /// EnableKeyRotation: rotate a customer managed key's material automatically every
    /// `rotation_period_in_days` (90 to 2560; `None`: 365). The AWS managed service default
    /// key always rotates yearly and refuses this (`UnsupportedOperation`).
    ///
    /// The rotation calls have default bodies that refuse with `UnsupportedOperation`, so
    /// that an implementation written before them (a test double, a wrapper) still builds;
    /// `LocalKms` and `AwsKms` implement them all.
    fn enable_key_rotation(
        &self,
        _caller: &Caller,
        _key_id: &str,
        _rotation_period_in_days: Option<u32>,
    ) -> Result<(), KmsError> {
        Err(unsupported("EnableKeyRotation"))
    }
    /// DisableKeyRotation: no more automatic rotations (material already added stays).
    fn disable_key_rotation(&self, _caller: &Caller, _key_id: &str) -> Result<(), KmsError> {
        Err(unsupported("DisableKeyRotation"))
    }
    /// GetKeyRotationStatus.
    fn get_key_rotation_status(
        &self,
        _caller: &Caller,
        _key_id: &str,
    ) -> Result<KeyRotationStatus, KmsError> {
        Err(unsupported("GetKeyRotationStatus"))
    }
    /// RotateKeyOnDemand: adds new key material now (customer managed keys; at most
    /// `MAX_ON_DEMAND_ROTATIONS` per key). Returns the key's ARN.
    fn rotate_key_on_demand(&self, _caller: &Caller, _key_id: &str) -> Result<String, KmsError> {
        Err(unsupported("RotateKeyOnDemand"))
    }
    /// ListKeyRotations: the rotations that happened, oldest first.
    fn list_key_rotations(
        &self,
        _caller: &Caller,
        _key_id: &str,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        Err(unsupported("ListKeyRotations"))
    }
    /// The key material a ciphertext blob says it was sealed with, when the blob's format
    /// shows it without asking the KMS (the local KMS's blob header; not authenticated
    /// until Decrypt). `None` for opaque blobs (AWS KMS's).
    fn key_material_of(&self, _blob: &[u8]) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_debug_is_redacted() {
        let g = GeneratedDataKey {
            plaintext: Zeroizing::new(vec![0x5A; 32]),
            ciphertext_blob: vec![0x77; 60],
            key_arn: "arn".into(),
        };
        let s = format!("{g:?}");
        assert!(
            !s.contains("90") && !s.to_lowercase().contains("5a") && !s.contains("119"),
            "{s}"
        );
        let d = DecryptedKey {
            plaintext: Zeroizing::new(vec![0x5A; 32]),
            key_arn: "arn".into(),
        };
        assert!(!format!("{d:?}").contains("90"));
    }
}
