//! `AwsKms`: the AWS client plus, optionally, sealdb's own audit trail of the calls it made.
//!
//! AWS records every call in CloudTrail under the principal of the credentials. The local
//! trail adds what only sealdb knows: the `Caller` it acted for. One event per `Kms` call,
//! in `LocalKms`'s format; DescribeKey calls made only to resolve an alias are not recorded.

use std::fmt;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::{AwsClient, AwsKmsOptions};
use crate::kms::audit::{AuditLog, EventInput};
use crate::kms::{
    Caller, CreateGrantRequest, CreateGrantResponse, CreateKeyRequest, DataKeySpec, DecryptedKey,
    EncryptionContext, GeneratedDataKey, GrantEntry, KeyMetadata, KeyRotation, KeyRotationStatus,
    Kms, KmsError,
};

/// Size at which a local audit file is rotated.
const AUDIT_FILE_BYTES: u64 = 16 << 20;

/// A client of AWS KMS implementing `Kms`. See `docs/aws-kms.md`.
pub struct AwsKms {
    inner: AwsClient,
    audit: Option<AuditLog>,
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("client", &self.inner)
            .field("audit", &self.audit.as_ref().map(AuditLog::dir))
            .finish()
    }
}

/// The account in a key ARN (`arn:aws:kms:<region>:<account>:key/<id>`).
fn arn_account(key: &str) -> Option<&str> {
    key.strip_prefix("arn:")?.split(':').nth(3)
}

impl AwsKms {
    /// Loads the configuration (region, credentials chain, endpoint), builds the client and
    /// opens the local audit trail if asked. Makes no KMS call: a wrong key or unreachable
    /// endpoint shows on first use.
    pub fn new(opts: AwsKmsOptions) -> Result<AwsKms, KmsError> {
        let inner = AwsClient::new(&opts)?;
        let audit = match &opts.audit_dir {
            Some(dir) => Some(AuditLog::open(dir, AUDIT_FILE_BYTES)?),
            None => None,
        };
        Ok(AwsKms { inner, audit })
    }

    /// The region the client resolved.
    pub fn region(&self) -> &str {
        self.inner.region()
    }

    /// The customer managed key standing in for `alias/aws/sealdb`.
    pub fn key_id(&self) -> &str {
        self.inner.key_id()
    }

    /// How many calls of operation `op` (e.g. `"Decrypt"`) this client made, failed ones
    /// included (DescribeKey calls made to resolve an alias count as DescribeKey).
    pub fn call_count(&self, op: &str) -> u64 {
        self.inner.call_count(op)
    }

    /// The local audit trail, when `AwsKmsOptions::audit_dir` was set.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// Runs `body` and records one event for it. A read-only call (a key use) whose event
    /// cannot be recorded fails with `AuditFailed`, as with `LocalKms`; a change AWS has
    /// already applied is returned as it went (it cannot be undone here, and AWS's own
    /// CloudTrail has it). A direct caller naming a service principal is refused before
    /// anything is sent: AWS would authorize the request as the credentials' principal,
    /// so this client must not let a caller label it as the engine's own identity.
    fn audited<T>(
        &self,
        caller: &Caller,
        event_name: &str,
        read_only: bool,
        params: Value,
        body: impl FnOnce() -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let res = caller.check_not_borrowed().and_then(|()| body());
        if let Some(audit) = &self.audit {
            let key = params.get("keyId").and_then(Value::as_str).map(|k| {
                if k == crate::kms::SERVICE_DEFAULT_ALIAS {
                    self.key_id()
                } else {
                    k
                }
            });
            let keys = key
                .and_then(|k| arn_account(k).map(|a| (k.to_string(), a.to_string())))
                .into_iter()
                .collect();
            let recorded = audit.record(EventInput {
                caller,
                event_name,
                region: self.region(),
                request_parameters: params,
                response_elements: Value::Null,
                read_only,
                keys,
                default_account: caller.account(),
                error: res.as_ref().err(),
                time: SystemTime::now(),
            });
            if let Err(e) = recorded {
                // A key use without a local record fails closed. A change AWS has applied
                // is not reported as failed (CloudTrail, the authoritative trail, has it).
                if read_only || res.is_err() {
                    return Err(e);
                }
            }
        }
        res
    }
}

fn key_params(key_id: &str) -> Value {
    json!({ "keyId": key_id })
}

fn crypto_params(key_id: Option<&str>, ctx: &EncryptionContext) -> Value {
    let mut p = json!({ "encryptionContext": ctx });
    if let Some(k) = key_id {
        p["keyId"] = json!(k);
    }
    p
}

impl Kms for AwsKms {
    fn create_key(&self, caller: &Caller, req: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        let params = json!({ "description": req.description });
        self.audited(caller, "CreateKey", false, params, || {
            self.inner.create_key(caller, req)
        })
    }

    /// `alias/aws/sealdb` describes the configured customer managed key.
    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.audited(caller, "DescribeKey", true, key_params(key_id), || {
            self.inner.describe_key(caller, key_id)
        })
    }

    fn create_alias(&self, caller: &Caller, alias: &str, target: &str) -> Result<(), KmsError> {
        let params = json!({ "aliasName": alias, "targetKeyId": target });
        self.audited(caller, "CreateAlias", false, params, || {
            self.inner.create_alias(caller, alias, target)
        })
    }

    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        spec: DataKeySpec,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let mut params = crypto_params(Some(key_id), ctx);
        match spec {
            DataKeySpec::Aes256 => params["keySpec"] = json!("AES_256"),
            DataKeySpec::Aes128 => params["keySpec"] = json!("AES_128"),
            DataKeySpec::NumberOfBytes(n) => params["numberOfBytes"] = json!(n),
        }
        self.audited(caller, "GenerateDataKey", true, params, || {
            self.inner.generate_data_key(caller, key_id, spec, ctx)
        })
    }

    fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        self.audited(
            caller,
            "Encrypt",
            true,
            crypto_params(Some(key_id), ctx),
            || self.inner.encrypt(caller, key_id, plaintext, ctx),
        )
    }

    fn decrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<DecryptedKey, KmsError> {
        self.audited(caller, "Decrypt", true, crypto_params(key_id, ctx), || {
            self.inner.decrypt(caller, blob, ctx, key_id)
        })
    }

    fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        source_ctx: &EncryptionContext,
        dest_key_id: &str,
        dest_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let params = json!({
            "sourceEncryptionContext": source_ctx,
            "destinationKeyId": dest_key_id,
            "destinationEncryptionContext": dest_ctx,
        });
        self.audited(caller, "ReEncrypt", true, params, || {
            self.inner
                .re_encrypt(caller, blob, source_ctx, dest_key_id, dest_ctx)
        })
    }

    fn create_grant(
        &self,
        caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        let params = json!({
            "keyId": req.key_id,
            "granteePrincipal": req.grantee_principal,
            "retiringPrincipal": req.retiring_principal,
            "operations": req.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "constraints": req.constraints,
        });
        self.audited(caller, "CreateGrant", false, params, || {
            self.inner.create_grant(caller, req)
        })
    }

    fn list_grants(&self, caller: &Caller, key_id: &str) -> Result<Vec<GrantEntry>, KmsError> {
        self.audited(caller, "ListGrants", true, key_params(key_id), || {
            self.inner.list_grants(caller, key_id)
        })
    }

    fn retire_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let params = json!({ "keyId": key_id, "grantId": grant_id });
        self.audited(caller, "RetireGrant", false, params, || {
            self.inner.retire_grant(caller, key_id, grant_id)
        })
    }

    fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let params = json!({ "keyId": key_id, "grantId": grant_id });
        self.audited(caller, "RevokeGrant", false, params, || {
            self.inner.revoke_grant(caller, key_id, grant_id)
        })
    }

    fn get_key_policy(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        let params = json!({ "keyId": key_id, "policyName": "default" });
        self.audited(caller, "GetKeyPolicy", true, params, || {
            self.inner.get_key_policy(caller, key_id)
        })
    }

    fn put_key_policy(&self, caller: &Caller, key_id: &str, policy: &str) -> Result<(), KmsError> {
        let params = json!({ "keyId": key_id, "policyName": "default" });
        self.audited(caller, "PutKeyPolicy", false, params, || {
            self.inner.put_key_policy(caller, key_id, policy)
        })
    }

    fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.audited(caller, "EnableKey", false, key_params(key_id), || {
            self.inner.enable_key(caller, key_id)
        })
    }

    fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.audited(caller, "DisableKey", false, key_params(key_id), || {
            self.inner.disable_key(caller, key_id)
        })
    }

    fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_days: u32,
    ) -> Result<(), KmsError> {
        let params = json!({ "keyId": key_id, "pendingWindowInDays": pending_days });
        self.audited(caller, "ScheduleKeyDeletion", false, params, || {
            self.inner
                .schedule_key_deletion(caller, key_id, pending_days)
        })
    }

    fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.audited(
            caller,
            "CancelKeyDeletion",
            false,
            key_params(key_id),
            || self.inner.cancel_key_deletion(caller, key_id),
        )
    }

    fn enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        days: Option<u32>,
    ) -> Result<(), KmsError> {
        let params = json!({ "keyId": key_id, "rotationPeriodInDays": days });
        self.audited(caller, "EnableKeyRotation", false, params, || {
            self.inner.enable_key_rotation(caller, key_id, days)
        })
    }

    fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.audited(
            caller,
            "DisableKeyRotation",
            false,
            key_params(key_id),
            || self.inner.disable_key_rotation(caller, key_id),
        )
    }

    fn get_key_rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KeyRotationStatus, KmsError> {
        self.audited(
            caller,
            "GetKeyRotationStatus",
            true,
            key_params(key_id),
            || self.inner.get_key_rotation_status(caller, key_id),
        )
    }

    fn rotate_key_on_demand(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        self.audited(
            caller,
            "RotateKeyOnDemand",
            false,
            key_params(key_id),
            || self.inner.rotate_key_on_demand(caller, key_id),
        )
    }

    fn list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        self.audited(caller, "ListKeyRotations", true, key_params(key_id), || {
            self.inner.list_key_rotations(caller, key_id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_accounts() {
        assert_eq!(
            arn_account("arn:aws:kms:us-west-2:111122223333:key/abc"),
            Some("111122223333")
        );
        assert_eq!(arn_account("alias/books"), None);
    }
}
