//! The operations of `LocalKms`, one `Kms` method each, on top of the call machinery of
//! the parent module (resolve, authorize, state checks, persistence, audit).

use std::time::Duration;

use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{
    check_customer_managed, check_usable, denied, key_mut, key_ref, validate_alias_name, LocalKms,
};
use crate::kms::grant::{validate_request, Grant};
use crate::kms::key::{key_arn, to_secs, BackingKey, KeyId, KeyRecord};
use crate::kms::{
    blob, customer_default_policy, Caller, CreateGrantRequest, CreateGrantResponse,
    CreateKeyRequest, DataKeySpec, DecryptedKey, EncryptionContext, GeneratedDataKey, GrantEntry,
    GrantOperation, KeyManager, KeyMetadata, KeyPolicy, KeyRotation, KeyRotationStatus, KeyState,
    Kms, KmsError, PolicyRequest,
};

impl Kms for LocalKms {
    fn create_key(&self, caller: &Caller, req: CreateKeyRequest) -> Result<KeyMetadata, KmsError> {
        let params = json!({"description": req.description, "keyUsage": "ENCRYPT_DECRYPT",
                            "policy": req.policy});
        self.call(caller, "CreateKey", false, params, |st, facts| {
            if caller.principal().is_service() {
                return Err(denied(caller, "kms:CreateKey", "*"));
            }
            let account = caller.principal().account.clone();
            let id = KeyId::generate();
            let arn = key_arn(&self.region, &account, &id);
            let policy = req
                .policy
                .unwrap_or_else(|| customer_default_policy(&account));
            self.check_lockout(&KeyPolicy::parse(&policy)?, caller, &arn)?;
            let rec = KeyRecord {
                id,
                account,
                region: self.region.clone(),
                description: req.description,
                manager: KeyManager::Customer,
                state: KeyState::Enabled,
                created_secs: to_secs(self.clock.now()),
                deletion_secs: None,
                policy,
                material: vec![BackingKey::generate()],
                grants: Vec::new(),
                rotation: Default::default(),
            };
            facts.key(&rec);
            let md = rec.metadata();
            facts.response = json!({"keyMetadata": {"keyId": md.key_id, "arn": md.arn}});
            st.keys.insert(id, rec);
            self.save(st)?;
            Ok(md)
        })
    }

    fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.call(
            caller,
            "DescribeKey",
            true,
            json!({"keyId": key_id}),
            |st, facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_ref(st, &id)?;
                self.authorize_on(
                    rec,
                    facts,
                    caller,
                    "kms:DescribeKey",
                    None,
                    Some(GrantOperation::DescribeKey),
                )?;
                Ok(rec.metadata())
            },
        )
    }

    fn create_alias(
        &self,
        caller: &Caller,
        alias: &str,
        target_key_id: &str,
    ) -> Result<(), KmsError> {
        let params = json!({"aliasName": alias, "targetKeyId": target_key_id});
        self.call(caller, "CreateAlias", false, params, |st, facts| {
            validate_alias_name(alias)?;
            let id = self.resolve(st, caller, target_key_id)?;
            let rec = key_ref(st, &id)?;
            self.authorize_on(rec, facts, caller, "kms:CreateAlias", None, None)?;
            check_customer_managed(rec, caller, "kms:CreateAlias")?;
            let account = rec.account.clone();
            let aliases = st.aliases.entry(account).or_default();
            if aliases.contains_key(alias) {
                return Err(KmsError::AlreadyExists(format!("alias {alias}")));
            }
            aliases.insert(alias.to_string(), id);
            self.save(st)
        })
    }

    fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        spec: DataKeySpec,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, KmsError> {
        let mut params = json!({"encryptionContext": ctx, "keyId": key_id});
        match spec {
            DataKeySpec::Aes256 => params["keySpec"] = json!("AES_256"),
            DataKeySpec::Aes128 => params["keySpec"] = json!("AES_128"),
            DataKeySpec::NumberOfBytes(n) => params["numberOfBytes"] = json!(n),
        }
        self.call(caller, "GenerateDataKey", true, params, |st, facts| {
            let len = spec.len()?;
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_ref(st, &id)?;
            self.authorize_on(
                rec,
                facts,
                caller,
                "kms:GenerateDataKey",
                Some(ctx),
                Some(GrantOperation::GenerateDataKey),
            )?;
            check_usable(rec)?;
            let mut plaintext = Zeroizing::new(vec![0u8; len]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut plaintext[..]);
            let (gen, key) = rec.current_material()?;
            let ciphertext_blob = blob::seal(&rec.id, gen, key, &plaintext, ctx)?;
            Ok(GeneratedDataKey {
                plaintext,
                ciphertext_blob,
                key_arn: rec.arn(),
            })
        })
    }

    fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let params = json!({"keyId": key_id, "encryptionContext": ctx});
        self.call(caller, "Encrypt", true, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_ref(st, &id)?;
            self.authorize_on(
                rec,
                facts,
                caller,
                "kms:Encrypt",
                Some(ctx),
                Some(GrantOperation::Encrypt),
            )?;
            check_usable(rec)?;
            let (gen, key) = rec.current_material()?;
            blob::seal(&rec.id, gen, key, plaintext, ctx)
        })
    }

    fn decrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        ctx: &EncryptionContext,
        key_id: Option<&str>,
    ) -> Result<DecryptedKey, KmsError> {
        let mut params = json!({"encryptionContext": ctx});
        if let Some(k) = key_id {
            params["keyId"] = json!(k);
        }
        self.call(caller, "Decrypt", true, params, |st, facts| {
            let parsed = blob::parse(ciphertext)?;
            if let Some(k) = key_id {
                let named = self.resolve(st, caller, k)?;
                if named != parsed.key_id {
                    return Err(KmsError::IncorrectKey(k.to_string()));
                }
            }
            let rec = key_ref(st, &parsed.key_id)?;
            self.authorize_on(
                rec,
                facts,
                caller,
                "kms:Decrypt",
                Some(ctx),
                Some(GrantOperation::Decrypt),
            )?;
            check_usable(rec)?;
            let material = usize::try_from(parsed.key_gen)
                .ok()
                .and_then(|g| rec.material.get(g))
                .ok_or(KmsError::InvalidCiphertext)?;
            Ok(DecryptedKey {
                plaintext: blob::open(&parsed, material, ctx)?,
                key_arn: rec.arn(),
            })
        })
    }

    fn re_encrypt(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        source_ctx: &EncryptionContext,
        dest_key_id: &str,
        dest_ctx: &EncryptionContext,
    ) -> Result<Vec<u8>, KmsError> {
        let params = json!({"sourceEncryptionContext": source_ctx,
                            "destinationKeyId": dest_key_id,
                            "destinationEncryptionContext": dest_ctx});
        self.call(caller, "ReEncrypt", true, params, |st, facts| {
            let parsed = blob::parse(ciphertext)?;
            let dest_id = self.resolve(st, caller, dest_key_id)?;
            let src = key_ref(st, &parsed.key_id)?;
            self.authorize_on(
                src,
                facts,
                caller,
                "kms:ReEncryptFrom",
                Some(source_ctx),
                Some(GrantOperation::ReEncryptFrom),
            )?;
            check_usable(src)?;
            let dest = key_ref(st, &dest_id)?;
            if dest_id != parsed.key_id {
                facts.key(dest);
            }
            let dest_arn = dest.arn();
            let req =
                PolicyRequest::new(caller, "kms:ReEncryptTo", &dest_arn).with_context(dest_ctx);
            self.authorize(dest, &req, Some(GrantOperation::ReEncryptTo))?;
            check_usable(dest)?;
            let material = usize::try_from(parsed.key_gen)
                .ok()
                .and_then(|g| src.material.get(g))
                .ok_or(KmsError::InvalidCiphertext)?;
            let plain = blob::open(&parsed, material, source_ctx)?;
            let (gen, key) = dest.current_material()?;
            blob::seal(&dest.id, gen, key, &plain, dest_ctx)
        })
    }

    fn create_grant(
        &self,
        caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreateGrantResponse, KmsError> {
        let ops: Vec<&str> = req.operations.iter().map(|o| o.as_str()).collect();
        let mut params = json!({"keyId": req.key_id, "granteePrincipal": req.grantee_principal,
                                "operations": ops});
        if let Some(r) = &req.retiring_principal {
            params["retiringPrincipal"] = json!(r);
        }
        if let Some(c) = &req.constraints {
            params["constraints"] = json!(c);
        }
        if let Some(n) = &req.name {
            params["name"] = json!(n);
        }
        self.call(caller, "CreateGrant", false, params, |st, facts| {
            validate_request(&req)?;
            let id = self.resolve(st, caller, &req.key_id)?;
            let rec = key_mut(st, &id)?;
            facts.key(rec);
            let arn = rec.arn();
            let policy_req = PolicyRequest {
                caller,
                action: "kms:CreateGrant",
                key_arn: &arn,
                encryption_context: None,
                grant_operations: &ops,
                grantee_principal: Some(&req.grantee_principal),
                retiring_principal: req.retiring_principal.as_deref(),
            };
            // A grant that allows CreateGrant lets its grantee create only narrower grants.
            if let Some(parent) =
                self.authorize(rec, &policy_req, Some(GrantOperation::CreateGrant))?
            {
                let parent_constraints = parent.constraints.clone().unwrap_or_default();
                let narrower = req.operations.iter().all(|o| parent.operations.contains(o))
                    && req
                        .constraints
                        .clone()
                        .unwrap_or_default()
                        .at_least_as_strict_as(&parent_constraints);
                if !narrower {
                    return Err(denied(caller, "kms:CreateGrant", &arn));
                }
            }
            check_usable(rec)?;
            let grant = Grant {
                id: Grant::new_id(),
                name: req.name.clone(),
                created_secs: to_secs(self.clock.now()),
                grantee: req.grantee_principal.clone(),
                retiring: req.retiring_principal.clone(),
                issuing_account: self.caller_account(caller).to_string(),
                operations: req.operations.clone(),
                constraints: req.constraints.clone(),
            };
            let grant_id = grant.id.clone();
            rec.grants.push(grant);
            self.save(st)?;
            facts.response = json!({"grantId": grant_id});
            Ok(CreateGrantResponse { grant_id })
        })
    }

    fn list_grants(&self, caller: &Caller, key_id: &str) -> Result<Vec<GrantEntry>, KmsError> {
        self.call(
            caller,
            "ListGrants",
            true,
            json!({"keyId": key_id}),
            |st, facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_ref(st, &id)?;
                self.authorize_on(rec, facts, caller, "kms:ListGrants", None, None)?;
                let arn = rec.arn();
                Ok(rec.grants.iter().map(|g| g.entry(&arn)).collect())
            },
        )
    }

    fn retire_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let params = json!({"keyId": key_id, "grantId": grant_id});
        self.call(caller, "RetireGrant", false, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_mut(st, &id)?;
            facts.key(rec);
            let pos = rec
                .grants
                .iter()
                .position(|g| g.id == grant_id)
                .ok_or_else(|| KmsError::NotFound(format!("grant {grant_id}")))?;
            let allowed = rec
                .grants
                .get(pos)
                .is_some_and(|g| g.retirable_by(&caller.principal().arn));
            if !allowed {
                return Err(denied(caller, "kms:RetireGrant", &rec.arn()));
            }
            rec.grants.remove(pos);
            self.save(st)
        })
    }

    fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<(), KmsError> {
        let params = json!({"keyId": key_id, "grantId": grant_id});
        self.call(caller, "RevokeGrant", false, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_mut(st, &id)?;
            self.authorize_on(rec, facts, caller, "kms:RevokeGrant", None, None)?;
            let before = rec.grants.len();
            rec.grants.retain(|g| g.id != grant_id);
            if rec.grants.len() == before {
                return Err(KmsError::NotFound(format!("grant {grant_id}")));
            }
            self.save(st)
        })
    }

    fn get_key_policy(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        let params = json!({"keyId": key_id, "policyName": "default"});
        self.call(caller, "GetKeyPolicy", true, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_ref(st, &id)?;
            self.authorize_on(rec, facts, caller, "kms:GetKeyPolicy", None, None)?;
            Ok(rec.policy.clone())
        })
    }

    fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_json: &str,
    ) -> Result<(), KmsError> {
        let params = json!({"keyId": key_id, "policyName": "default", "policy": policy_json});
        self.manage(caller, "PutKeyPolicy", key_id, params, |rec| {
            let policy = KeyPolicy::parse(policy_json)?;
            self.check_lockout(&policy, caller, &rec.arn())?;
            rec.policy = policy_json.to_string();
            Ok(Value::Null)
        })
    }

    fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.set_enabled(caller, "EnableKey", key_id, KeyState::Enabled)
    }

    fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.set_enabled(caller, "DisableKey", key_id, KeyState::Disabled)
    }

    fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_days: u32,
    ) -> Result<(), KmsError> {
        let params = json!({"keyId": key_id, "pendingWindowInDays": pending_days});
        let now = self.clock.now();
        self.manage(caller, "ScheduleKeyDeletion", key_id, params, |rec| {
            if !(7..=30).contains(&pending_days) {
                return Err(KmsError::InvalidArgument(format!(
                    "PendingWindowInDays must be 7 to 30, got {pending_days}"
                )));
            }
            if rec.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState {
                    key: rec.arn(),
                    state: rec.state.as_str().into(),
                });
            }
            let when = now + Duration::from_secs(u64::from(pending_days) * 86_400);
            rec.state = KeyState::PendingDeletion;
            rec.deletion_secs = Some(to_secs(when));
            Ok(json!({"keyId": rec.arn(),
                      "deletionDate": humantime::format_rfc3339_seconds(when).to_string()}))
        })
    }

    fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.manage(
            caller,
            "CancelKeyDeletion",
            key_id,
            json!({"keyId": key_id}),
            |rec| {
                if rec.state != KeyState::PendingDeletion {
                    return Err(KmsError::InvalidState {
                        key: rec.arn(),
                        state: rec.state.as_str().into(),
                    });
                }
                // As in AWS KMS, a key whose deletion was cancelled comes back disabled.
                rec.state = KeyState::Disabled;
                rec.deletion_secs = None;
                Ok(json!({"keyId": rec.arn()}))
            },
        )
    }

    fn enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        rotation_period_in_days: Option<u32>,
    ) -> Result<(), KmsError> {
        self.enable_rotation(caller, key_id, rotation_period_in_days)
    }

    fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.disable_rotation(caller, key_id)
    }

    fn get_key_rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KeyRotationStatus, KmsError> {
        self.rotation_status(caller, key_id)
    }

    fn rotate_key_on_demand(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        self.rotate_now(caller, key_id)
    }

    fn list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        self.rotations(caller, key_id)
    }

    /// The generation in the blob's clear header, as its material id.
    fn key_material_of(&self, ciphertext: &[u8]) -> Option<String> {
        let parsed = blob::parse(ciphertext).ok()?;
        Some(crate::kms::rotation::material_id(
            &parsed.key_id,
            parsed.key_gen,
        ))
    }
}
