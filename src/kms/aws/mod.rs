//! `AwsKms`: the `Kms` trait over the real AWS KMS API (cargo feature `aws-kms`).
//!
//! What differs from `LocalKms` (see `docs/aws-kms.md`):
//! - The `Caller` argument is not sent: AWS decides the principal from the credentials in
//!   use, and applies its key policies, grants and `kms:ViaService` itself. CloudTrail is the
//!   audit trail; `AwsKms` keeps per-operation call counts and, if asked
//!   (`AwsKmsOptions::audit_dir`), a local trail naming the `Caller` (`audited.rs`).
//! - `alias/aws/sealdb` (an AWS managed alias, reserved to AWS services) stands for the
//!   customer managed key in `AwsKmsOptions::key_id`, in every call that names a key.
//! - Ciphertext blobs, key ids and grant ids are whatever the server returns: opaque.

mod audited;
mod client;
mod convert;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec as SdkDataKeySpec;
use parking_lot::Mutex;
use std::path::PathBuf;
use zeroize::Zeroizing;

pub use self::audited::AwsKms;
use self::client::Driver;
use self::convert::{
    constraints_to_sdk, context_to_sdk, from_sdk_error, grant_entry_from_sdk,
    grant_operation_to_sdk, key_metadata_from_sdk, CallSite,
};
use super::{
    Caller, CreateGrantRequest, CreateGrantResponse, CreateKeyRequest, DataKeySpec, DecryptedKey,
    EncryptionContext, GeneratedDataKey, GrantEntry, KeyMetadata, KeyRotation, KeyRotationStatus,
    Kms, KmsError, RotationType, MAX_PLAINTEXT_LEN, SERVICE_DEFAULT_ALIAS,
};

/// How long a key's current material, as the last DescribeKey said, serves
/// `get_key_rotation_status` (whose AWS answer does not name it) before it asks again. Key
/// material changes only by a rotation: one on demand through this client forgets it at
/// once; an automatic one (at least 90 days apart) shows within this time.
const MATERIAL_TTL: Duration = Duration::from_secs(300);

/// Upper bound on ListGrants pages followed, against a server that never stops paging.
const MAX_LIST_PAGES: usize = 10_000;

/// Options of `AwsKms::new`. Credentials are not here: they come from the standard AWS
/// chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, `AWS_PROFILE`
/// and the shared config files, web identity, container or instance roles).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AwsKmsOptions {
    /// e.g. `us-west-2`; `None` takes `AWS_REGION` or the profile's region.
    pub region: Option<String>,
    /// Another endpoint than the region's (a VPC endpoint, a test server); `None` takes
    /// `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL` if set, else the regional endpoint.
    pub endpoint_url: Option<String>,
    /// Bound on each attempt, connecting included.
    pub timeout: Duration,
    /// Attempts per call, the first included (1 = no retry). Retried: throttling, 5xx,
    /// connection failures and timeouts, with exponential backoff and jitter.
    pub max_attempts: u32,
    /// The customer managed key sealdb uses where the engine names `alias/aws/sealdb`:
    /// a key id, key ARN, alias name (`alias/...`) or alias ARN.
    pub key_id: String,
    /// Where to keep sealdb's own record of its calls (`<dir>/audit/*.jsonl`, the same
    /// CloudTrail-shaped events as `LocalKms`, naming the `Caller`); `None` keeps none.
    /// CloudTrail remains the authoritative trail.
    pub audit_dir: Option<PathBuf>,
}

impl AwsKmsOptions {
    /// Options for `key_id` with the region from the environment, a 5-second timeout and
    /// 3 attempts.
    pub fn new(key_id: &str) -> AwsKmsOptions {
        AwsKmsOptions {
            region: None,
            endpoint_url: None,
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            key_id: key_id.to_string(),
            audit_dir: None,
        }
    }
}

/// The client proper: every `Kms` call over the SDK. `AwsKms` wraps it with the optional
/// local audit trail.
pub(crate) struct AwsClient {
    client: aws_sdk_kms::Client,
    region: String,
    key_id: String,
    endpoint_url: Option<String>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
    /// Key (as named in the call, its ARN and its id) -> its current key material and when a
    /// DescribeKey said so (see `MATERIAL_TTL`).
    materials: Mutex<HashMap<String, (Option<String>, Instant)>>,
    // Last: dropped after the client, whose connections live on this runtime.
    driver: Driver,
}

impl fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsClient")
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// True for `alias/aws/sealdb` and its alias ARNs.
fn is_service_default(key_id: &str) -> bool {
    key_id == SERVICE_DEFAULT_ALIAS
        || (key_id.starts_with("arn:") && key_id.ends_with(&format!(":{SERVICE_DEFAULT_ALIAS}")))
}

/// True for an alias name or alias ARN.
fn is_alias(key_id: &str) -> bool {
    key_id.starts_with("alias/") || (key_id.starts_with("arn:") && key_id.contains(":alias/"))
}

/// True for a key ARN (`arn:<partition>:kms:<region>:<account>:key/<id>`).
fn is_key_arn(key_id: &str) -> bool {
    key_id.starts_with("arn:") && key_id.contains(":key/")
}

fn missing(action: &str, field: &str) -> KmsError {
    KmsError::Unavailable(format!("{action}: the KMS response has no {field}"))
}

fn data_key_spec(spec: DataKeySpec) -> Result<(Option<SdkDataKeySpec>, Option<i32>), KmsError> {
    let len = spec.len()?;
    Ok(match spec {
        DataKeySpec::Aes256 => (Some(SdkDataKeySpec::Aes256), None),
        DataKeySpec::Aes128 => (Some(SdkDataKeySpec::Aes128), None),
        DataKeySpec::NumberOfBytes(_) => (
            None,
            Some(i32::try_from(len).map_err(|_| {
                KmsError::InvalidArgument(format!("NumberOfBytes {len} out of range"))
            })?),
        ),
    })
}

impl AwsClient {
    /// Loads the configuration (region, credentials chain, endpoint) and builds the client.
    /// Makes no KMS call: a wrong key or unreachable endpoint shows on first use.
    pub(crate) fn new(opts: &AwsKmsOptions) -> Result<AwsClient, KmsError> {
        if opts.key_id.is_empty() {
            return Err(KmsError::InvalidArgument(
                "AwsKmsOptions::key_id is empty: sealdb over AWS KMS needs a customer managed key"
                    .into(),
            ));
        }
        if is_service_default(&opts.key_id) {
            return Err(KmsError::InvalidArgument(format!(
                "{SERVICE_DEFAULT_ALIAS} is reserved to AWS services; configure a customer managed key"
            )));
        }
        if opts.timeout.is_zero() {
            return Err(KmsError::InvalidArgument(
                "AwsKmsOptions::timeout is zero".into(),
            ));
        }
        let driver = Driver::new()?;
        let (client, region) = driver.block_on(client::connect(opts))?;
        Ok(AwsClient {
            client,
            region,
            key_id: opts.key_id.clone(),
            endpoint_url: opts.endpoint_url.clone(),
            calls: Mutex::new(BTreeMap::new()),
            materials: Mutex::new(HashMap::new()),
            driver,
        })
    }

    /// The region the client resolved.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// The customer managed key standing in for `alias/aws/sealdb`.
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// How many calls of operation `op` (e.g. `"Decrypt"`) this client made, failed ones
    /// included (DescribeKey calls made to resolve an alias count as DescribeKey).
    pub(crate) fn call_count(&self, op: &str) -> u64 {
        self.calls.lock().get(op).copied().unwrap_or(0)
    }

    /// Counts one call of `op` and runs `fut` on the internal runtime.
    fn run<T: Send>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, KmsError>> + Send,
    ) -> Result<T, KmsError> {
        *self.calls.lock().entry(op).or_insert(0) += 1;
        self.driver.block_on(fut)
    }

    /// The key a call names, with the service default alias replaced by the configured key.
    fn target<'a>(&'a self, key_id: &'a str) -> &'a str {
        if is_service_default(key_id) {
            &self.key_id
        } else {
            key_id
        }
    }

    /// The key's ARN, for calls that take no alias (grants, policies, key state).
    /// Key ARNs pass through; anything else is looked up with DescribeKey.
    fn key_arn(&self, key_id: &str) -> Result<String, KmsError> {
        let key = self.target(key_id);
        if is_key_arn(key) {
            return Ok(key.to_string());
        }
        self.describe(key).map(|m| m.arn)
    }

    /// A key id or key ARN, resolving aliases, for calls that refuse aliases.
    fn key_ref(&self, key_id: &str) -> Result<String, KmsError> {
        let key = self.target(key_id);
        if is_alias(key) {
            self.key_arn(key)
        } else {
            Ok(key.to_string())
        }
    }

    fn describe(&self, key: &str) -> Result<KeyMetadata, KmsError> {
        let site = CallSite {
            action: "kms:DescribeKey",
            key,
        };
        self.run("DescribeKey", async {
            let out = self
                .client
                .describe_key()
                .key_id(key)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            let m = out
                .key_metadata()
                .ok_or_else(|| missing(site.action, "KeyMetadata"))?;
            Ok(key_metadata_from_sdk(m))
        })
        .inspect(|md| {
            let at = Instant::now();
            let mut materials = self.materials.lock();
            for name in [key, md.arn.as_str(), md.key_id.as_str()] {
                materials.insert(name.to_owned(), (md.current_key_material_id.clone(), at));
            }
        })
    }

    /// The current key material of `key`: from the last DescribeKey if younger than
    /// `MATERIAL_TTL`, else from a new one.
    fn current_material(&self, key: &str) -> Result<Option<String>, KmsError> {
        if let Some((m, at)) = self.materials.lock().get(key) {
            if at.elapsed() < MATERIAL_TTL {
                return Ok(m.clone());
            }
        }
        Ok(self.describe(key)?.current_key_material_id)
    }

    /// Shared body of calls that take a key id or ARN and return nothing.
    fn simple<F, Fut, O, E>(
        &self,
        op: &'static str,
        action: &'static str,
        key_id: &str,
        f: F,
    ) -> Result<(), KmsError>
    where
        F: FnOnce(aws_sdk_kms::Client, String) -> Fut + Send,
        Fut: Future<Output = Result<O, aws_sdk_kms::error::SdkError<E>>> + Send,
        E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + 'static,
        O: Send,
    {
        let key = self.key_ref(key_id)?;
        let site = CallSite { action, key: &key };
        let call = f(self.client.clone(), key.clone());
        self.run(op, async {
            call.await.map_err(|e| from_sdk_error(e, site))?;
            Ok(())
        })
    }
}

impl Kms for AwsClient {
    fn create_key(&self, _caller: &Caller, req: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        let site = CallSite {
            action: "kms:CreateKey",
            key: "",
        };
        self.run("CreateKey", async {
            let out = self
                .client
                .create_key()
                .description(req.description)
                .set_policy(req.policy)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            let m = out
                .key_metadata()
                .ok_or_else(|| missing(site.action, "KeyMetadata"))?;
            Ok(key_metadata_from_sdk(m))
        })
    }

    /// `alias/aws/sealdb` describes the configured customer managed key.
    fn describe_key(&self, _caller: &Caller, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.describe(self.target(key_id))
    }

    fn create_alias(
        &self,
        _caller: &Caller,
        alias: &str,
        target_key_id: &str,
    ) -> Result<(), KmsError> {
        let target = self.key_ref(target_key_id)?;
        let site = CallSite {
            action: "kms:CreateAlias",
            key: &target,
        };
        self.run("CreateAlias", async {
            self.client
                .create_alias()
                .alias_name(alias)
                .target_key_id(&target)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            Ok(())
        })
    }

    fn generate_data_key(
        &self,
        _caller: &Caller,
        key_id: &str,
        spec: DataKeySpec,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let key = self.target(key_id);
        let site = CallSite {
            action: "kms:GenerateDataKey",
            key,
        };
        let want = spec.len()?;
        let (key_spec, number_of_bytes) = data_key_spec(spec)?;
        self.run("GenerateDataKey", async {
            let mut out = self
                .client
                .generate_data_key()
                .key_id(key)
                .set_key_spec(key_spec)
                .set_number_of_bytes(number_of_bytes)
                .set_encryption_context(context_to_sdk(ctx))
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            // Moved, not copied, into a zeroizing buffer.
            let plaintext = Zeroizing::new(
                out.plaintext
                    .take()
                    .ok_or_else(|| missing(site.action, "Plaintext"))?
                    .into_inner(),
            );
            if plaintext.len() != want {
                return Err(KmsError::Unavailable(format!(
                    "{}: the KMS returned a {}-byte data key, {want} were asked",
                    site.action,
                    plaintext.len()
                )));
            }
            let ciphertext_blob = out
                .ciphertext_blob
                .take()
                .ok_or_else(|| missing(site.action, "CiphertextBlob"))?
                .into_inner();
            let key_arn = out
                .key_id
                .take()
                .ok_or_else(|| missing(site.action, "KeyId"))?;
            Ok(GeneratedDataKey {
                plaintext,
                ciphertext_blob,
                key_arn,
            })
        })
    }

    fn encrypt(
        &self,
        _caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(KmsError::InvalidArgument(format!(
                "Encrypt takes 1 to {MAX_PLAINTEXT_LEN} bytes, got {}",
                plaintext.len()
            )));
        }
        let key = self.target(key_id);
        let site = CallSite {
            action: "kms:Encrypt",
            key,
        };
        self.run("Encrypt", async {
            let out = self
                .client
                .encrypt()
                .key_id(key)
                // The SDK copies the plaintext into its request body, which it does not
                // zeroize; sealdb only encrypts key material this way in tests and tools.
                .plaintext(Blob::new(plaintext))
                .set_encryption_context(context_to_sdk(ctx))
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            out.ciphertext_blob
                .map(Blob::into_inner)
                .ok_or_else(|| missing(site.action, "CiphertextBlob"))
        })
    }

    fn decrypt(
        &self,
        _caller: &Caller,
        blob: &[u8],
        ctx: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<DecryptedKey, KmsError> {
        let key = key_id.map(|k| self.target(k));
        let site = CallSite {
            action: "kms:Decrypt",
            key: key.unwrap_or_default(),
        };
        self.run("Decrypt", async {
            let mut out = self
                .client
                .decrypt()
                .ciphertext_blob(Blob::new(blob))
                .set_encryption_context(context_to_sdk(ctx))
                .set_key_id(key.map(str::to_string))
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            let plaintext = Zeroizing::new(
                out.plaintext
                    .take()
                    .ok_or_else(|| missing(site.action, "Plaintext"))?
                    .into_inner(),
            );
            let key_arn = out
                .key_id
                .take()
                .ok_or_else(|| missing(site.action, "KeyId"))?;
            Ok(DecryptedKey { plaintext, key_arn })
        })
    }

    fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &[u8],
        source_ctx: &EncryptionContext,
        dest_key_id: &str,
        dest_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let dest = self.target(dest_key_id);
        let site = CallSite {
            action: "kms:ReEncrypt",
            key: dest,
        };
        self.run("ReEncrypt", async {
            let out = self
                .client
                .re_encrypt()
                .ciphertext_blob(Blob::new(blob))
                .set_source_encryption_context(context_to_sdk(source_ctx))
                .destination_key_id(dest)
                .set_destination_encryption_context(context_to_sdk(dest_ctx))
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            out.ciphertext_blob
                .map(Blob::into_inner)
                .ok_or_else(|| missing(site.action, "CiphertextBlob"))
        })
    }

    fn create_grant(
        &self,
        _caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        let key = self.key_ref(&req.key_id)?;
        let site = CallSite {
            action: "kms:CreateGrant",
            key: &key,
        };
        let operations = req
            .operations
            .iter()
            .copied()
            .map(grant_operation_to_sdk)
            .collect();
        self.run("CreateGrant", async {
            let out = self
                .client
                .create_grant()
                .key_id(&key)
                .grantee_principal(req.grantee_principal)
                .set_retiring_principal(req.retiring_principal)
                .set_operations(Some(operations))
                .set_constraints(req.constraints.as_ref().map(constraints_to_sdk))
                .set_name(req.name)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            let grant_id = out
                .grant_id
                .ok_or_else(|| missing(site.action, "GrantId"))?;
            Ok(CreateGrantResponse { grant_id })
        })
    }

    fn list_grants(&self, _caller: &Caller, key_id: &str) -> Result<Vec<GrantEntry>, KmsError> {
        let key = self.key_ref(key_id)?;
        let site = CallSite {
            action: "kms:ListGrants",
            key: &key,
        };
        self.run("ListGrants", async {
            let mut grants = Vec::new();
            let mut marker: Option<String> = None;
            for _ in 0..MAX_LIST_PAGES {
                let out = self
                    .client
                    .list_grants()
                    .key_id(&key)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk_error(e, site))?;
                grants.extend(out.grants().iter().map(grant_entry_from_sdk));
                match out.next_marker() {
                    Some(next) if out.truncated() && !next.is_empty() => {
                        marker = Some(next.to_string())
                    }
                    _ => return Ok(grants),
                }
            }
            Err(KmsError::Unavailable(format!(
                "{}: more than {MAX_LIST_PAGES} pages of grants",
                site.action
            )))
        })
    }

    /// AWS identifies the grant by key ARN and grant id (a grant token is not kept).
    fn retire_grant(&self, _caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let key = self.key_arn(key_id)?;
        let site = CallSite {
            action: "kms:RetireGrant",
            key: &key,
        };
        self.run("RetireGrant", async {
            self.client
                .retire_grant()
                .key_id(&key)
                .grant_id(grant_id)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            Ok(())
        })
    }

    fn revoke_grant(&self, _caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let grant_id = grant_id.to_string();
        self.simple("RevokeGrant", "kms:RevokeGrant", key_id, |c, key| {
            c.revoke_grant().key_id(key).grant_id(grant_id).send()
        })
    }

    fn get_key_policy(&self, _caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        let key = self.key_ref(key_id)?;
        let site = CallSite {
            action: "kms:GetKeyPolicy",
            key: &key,
        };
        self.run("GetKeyPolicy", async {
            let out = self
                .client
                .get_key_policy()
                .key_id(&key)
                .policy_name("default")
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            out.policy.ok_or_else(|| missing(site.action, "Policy"))
        })
    }

    fn put_key_policy(
        &self,
        _caller: &Caller,
        key_id: &str,
        policy_json: &str,
    ) -> Result<(), KmsError> {
        let policy = policy_json.to_string();
        self.simple("PutKeyPolicy", "kms:PutKeyPolicy", key_id, |c, key| {
            c.put_key_policy()
                .key_id(key)
                .policy_name("default")
                .policy(policy)
                .send()
        })
    }

    fn enable_key(&self, _caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.simple("EnableKey", "kms:EnableKey", key_id, |c, key| {
            c.enable_key().key_id(key).send()
        })
    }

    fn disable_key(&self, _caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.simple("DisableKey", "kms:DisableKey", key_id, |c, key| {
            c.disable_key().key_id(key).send()
        })
    }

    fn schedule_key_deletion(
        &self,
        _caller: &Caller,
        key_id: &str,
        pending_days: u32,
    ) -> Result<(), KmsError> {
        let days = i32::try_from(pending_days)
            .ok()
            .filter(|d| (7..=30).contains(d))
            .ok_or_else(|| {
                KmsError::InvalidArgument(format!(
                    "PendingWindowInDays must be 7 to 30, got {pending_days}"
                ))
            })?;
        self.simple(
            "ScheduleKeyDeletion",
            "kms:ScheduleKeyDeletion",
            key_id,
            |c, key| {
                c.schedule_key_deletion()
                    .key_id(key)
                    .pending_window_in_days(days)
                    .send()
            },
        )
    }

    fn cancel_key_deletion(&self, _caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.simple(
            "CancelKeyDeletion",
            "kms:CancelKeyDeletion",
            key_id,
            |c, key| c.cancel_key_deletion().key_id(key).send(),
        )
    }

    fn enable_key_rotation(
        &self,
        _caller: &Caller,
        key_id: &str,
        days: Option<u32>,
    ) -> Result<(), KmsError> {
        let days = days
            .map(|d| {
                i32::try_from(d).map_err(|_| {
                    KmsError::InvalidArgument(format!("RotationPeriodInDays {d} is out of range"))
                })
            })
            .transpose()?;
        self.simple(
            "EnableKeyRotation",
            "kms:EnableKeyRotation",
            key_id,
            |c, key| {
                c.enable_key_rotation()
                    .key_id(key)
                    .set_rotation_period_in_days(days)
                    .send()
            },
        )
    }

    fn disable_key_rotation(&self, _caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.simple(
            "DisableKeyRotation",
            "kms:DisableKeyRotation",
            key_id,
            |c, key| c.disable_key_rotation().key_id(key).send(),
        )
    }

    fn get_key_rotation_status(
        &self,
        _caller: &Caller,
        key_id: &str,
    ) -> Result<KeyRotationStatus, KmsError> {
        let key = self.key_ref(key_id)?;
        let site = CallSite {
            action: "kms:GetKeyRotationStatus",
            key: &key,
        };
        let out = self.run("GetKeyRotationStatus", async {
            self.client
                .get_key_rotation_status()
                .key_id(&key)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))
        })?;
        // GetKeyRotationStatus does not name the current material; DescribeKey does.
        let current = self.current_material(&key)?;
        Ok(KeyRotationStatus {
            key_id: out.key_id().unwrap_or(&key).to_string(),
            key_rotation_enabled: out.key_rotation_enabled(),
            rotation_period_in_days: out
                .rotation_period_in_days()
                .and_then(|d| u32::try_from(d).ok()),
            next_rotation_date: out
                .next_rotation_date()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
            current_key_material_id: current,
        })
    }

    fn rotate_key_on_demand(&self, _caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        let key = self.key_ref(key_id)?;
        let site = CallSite {
            action: "kms:RotateKeyOnDemand",
            key: &key,
        };
        let rotated = self.run("RotateKeyOnDemand", async {
            let out = self
                .client
                .rotate_key_on_demand()
                .key_id(&key)
                .send()
                .await
                .map_err(|e| from_sdk_error(e, site))?;
            Ok(out.key_id().unwrap_or(&key).to_string())
        });
        // New material (or perhaps, after an error): what DescribeKey said of any key's is
        // forgotten (a key may be cached under several names).
        self.materials.lock().clear();
        rotated
    }

    fn list_key_rotations(
        &self,
        _caller: &Caller,
        key_id: &str,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        let key = self.key_ref(key_id)?;
        let site = CallSite {
            action: "kms:ListKeyRotations",
            key: &key,
        };
        self.run("ListKeyRotations", async {
            let mut all = Vec::new();
            let mut marker: Option<String> = None;
            for _ in 0..MAX_LIST_PAGES {
                let out = self
                    .client
                    .list_key_rotations()
                    .key_id(&key)
                    .set_marker(marker.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk_error(e, site))?;
                for r in out.rotations() {
                    all.push(KeyRotation {
                        key_id: r.key_id().unwrap_or(&key).to_string(),
                        key_material_id: r.key_material_id().unwrap_or_default().to_string(),
                        rotation_date: r
                            .rotation_date()
                            .and_then(|t| std::time::SystemTime::try_from(*t).ok())
                            .unwrap_or(std::time::UNIX_EPOCH),
                        rotation_type: match r.rotation_type() {
                            Some(aws_sdk_kms::types::RotationType::OnDemand) => {
                                RotationType::OnDemand
                            }
                            _ => RotationType::Automatic,
                        },
                    });
                }
                match out.next_marker() {
                    Some(next) if out.truncated() && !next.is_empty() => {
                        marker = Some(next.to_string())
                    }
                    _ => return Ok(all),
                }
            }
            Err(KmsError::Unavailable(format!(
                "ListKeyRotations on {key}: more than {MAX_LIST_PAGES} pages"
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_shapes() {
        assert!(is_service_default("alias/aws/sealdb"));
        assert!(is_service_default(
            "arn:aws:kms:us-west-2:111122223333:alias/aws/sealdb"
        ));
        assert!(!is_service_default("alias/aws/sealdb2"));
        assert!(is_alias("alias/books"));
        assert!(is_alias("arn:aws:kms:us-west-2:111122223333:alias/books"));
        assert!(!is_alias("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(is_key_arn(
            "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(!is_key_arn("1234abcd-12ab-34cd-56ef-1234567890ab"));
    }

    #[test]
    fn data_key_specs() -> Result<(), KmsError> {
        assert_eq!(
            data_key_spec(DataKeySpec::Aes256)?,
            (Some(SdkDataKeySpec::Aes256), None)
        );
        assert_eq!(
            data_key_spec(DataKeySpec::NumberOfBytes(64))?,
            (None, Some(64))
        );
        assert!(data_key_spec(DataKeySpec::NumberOfBytes(0)).is_err());
        Ok(())
    }

    #[test]
    fn options_are_checked() {
        let reserved = AwsKmsOptions::new(SERVICE_DEFAULT_ALIAS);
        assert!(matches!(
            AwsKms::new(reserved),
            Err(KmsError::InvalidArgument(_))
        ));
        assert!(matches!(
            AwsKms::new(AwsKmsOptions::new("")),
            Err(KmsError::InvalidArgument(_))
        ));
        let mut zero = AwsKmsOptions::new("alias/sealdb");
        zero.timeout = Duration::ZERO;
        assert!(matches!(
            AwsKms::new(zero),
            Err(KmsError::InvalidArgument(_))
        ));
    }
}
