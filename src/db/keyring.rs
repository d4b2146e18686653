//! Table keys from the KMS, the way the seed says DynamoDB gets them: a per-principal cache
//! of plaintext table keys, re-checked with the KMS after an idle interval and kept at most
//! a maximum age, and grants that let the engine's own service principal maintain tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::kms::{
    via_service_name, Caller, CreateGrantRequest, DataKeySpec, EncryptionContext, GrantConstraints,
    GrantOperation, Kms, KmsError, Principal, SERVICE_DEFAULT_ALIAS,
};
use crate::manifest::{DatabaseKeyMeta, TableMeta};

use super::{DatabaseKey, Encryption, TableOptions};

/// What the engine's database-key grant allows: unwrap the key at every open.
const DATABASE_GRANT_OPERATIONS: [GrantOperation; 3] = [
    GrantOperation::DescribeKey,
    GrantOperation::Decrypt,
    GrantOperation::RetireGrant,
];

/// A new table's key: the plaintext (for immediate use) and what the manifest keeps.
pub(crate) struct GeneratedTableKey {
    pub(crate) key: TableKey,
    /// The KMS ciphertext blob of the table key: kept for the table's lifetime.
    pub(crate) wrapped: Vec<u8>,
    pub(crate) key_arn: String,
    pub(crate) grant_id: String,
}

/// The operations the engine's per-table grant allows (the seed's CreateGrant event).
pub(crate) const GRANT_OPERATIONS: [GrantOperation; 7] = [
    GrantOperation::DescribeKey,
    GrantOperation::GenerateDataKey,
    GrantOperation::Decrypt,
    GrantOperation::Encrypt,
    GrantOperation::ReEncryptFrom,
    GrantOperation::ReEncryptTo,
    GrantOperation::RetireGrant,
];

struct CachedKey {
    key: Arc<TableKey>,
    /// When the KMS last confirmed this principal's access.
    confirmed: SystemTime,
    last_used: SystemTime,
}

/// One cache entry as `encryption_status` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheEntryStatus {
    /// The principal the cached key was unwrapped for (its ARN).
    pub principal: String,
    /// The table whose key it is.
    pub table: String,
    /// Time since the KMS last confirmed access.
    pub age: Duration,
    /// Time since the key was last used.
    pub idle: Duration,
}

/// Table keys from a KMS, cached per (principal, table).
pub(crate) struct Keyring {
    kms: Arc<dyn Kms>,
    account: String,
    region: String,
    clock: Arc<dyn Clock>,
    recheck_after_idle: Duration,
    max_age: Duration,
    /// table name -> principal ARN -> key: looked up by `&str` with no allocation.
    cache: Mutex<HashMap<String, HashMap<String, CachedKey>>>,
}

impl Keyring {
    pub(crate) fn new(
        kms: Arc<dyn Kms>,
        account: String,
        region: String,
        clock: Arc<dyn Clock>,
        recheck_after_idle: Duration,
        max_age: Duration,
    ) -> Keyring {
        Keyring {
            kms,
            account,
            region,
            clock,
            recheck_after_idle,
            max_age,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The engine's own identity: its service principal, acting through table grants.
    pub(crate) fn service_principal(&self) -> Principal {
        Principal::service(&via_service_name(&self.region))
    }

    fn via(&self, p: &Principal) -> Caller {
        Caller {
            principal: p.clone(),
            via_service: Some(via_service_name(&self.region)),
        }
    }

    pub(crate) fn context(&self, table: &str) -> EncryptionContext {
        EncryptionContext::for_table(table, &self.account)
    }

    /// Creates an encrypted table's key, as DynamoDB does: DescribeKey (creating the
    /// service default key if absent), CreateGrant for the engine on the creator's behalf,
    /// then GenerateDataKey through that grant.
    pub(crate) fn create_table_key(
        &self,
        creator: &Principal,
        table: &str,
        options: &TableOptions,
    ) -> Result<GeneratedTableKey> {
        let key_id = match &options.encryption {
            Encryption::Encrypted { key_id: Some(k) } => k.clone(),
            _ => SERVICE_DEFAULT_ALIAS.to_owned(),
        };
        let caller = self.via(creator);
        let md = self.kms.describe_key(&caller, &key_id)?;
        let grant_id = self.create_grant(creator, &md.arn, table)?;
        let ctx = self.context(table);
        let generated = self.kms.generate_data_key(
            &self.via(&self.service_principal()),
            &md.arn,
            DataKeySpec::Aes256,
            &ctx,
        )?;
        let key = TableKey::from_slice(&generated.plaintext).ok_or_else(|| {
            Error::Kms(KmsError::InvalidArgument(
                "GenerateDataKey returned a key that is not 256 bits".into(),
            ))
        })?;
        Ok(GeneratedTableKey {
            key,
            wrapped: generated.ciphertext_blob,
            key_arn: md.arn,
            grant_id,
        })
    }

    /// Creates the database key that authenticates the manifest: a grant for the engine on
    /// the service default key, constrained to the database's encryption context (on the
    /// creator's behalf), then GenerateDataKey through it, as for a table key.
    pub(crate) fn create_database_key(&self, creator: &Principal) -> Result<DatabaseKey> {
        let db_id = uuid::Uuid::new_v4().to_string();
        let md = self
            .kms
            .describe_key(&self.via(creator), SERVICE_DEFAULT_ALIAS)?;
        let ctx = EncryptionContext::for_database(&db_id, &self.account);
        let service = via_service_name(&self.region);
        let grant = self.kms.create_grant(
            &self.via(creator),
            CreateGrantRequest {
                key_id: md.arn.clone(),
                grantee_principal: service.clone(),
                retiring_principal: Some(service),
                operations: DATABASE_GRANT_OPERATIONS.to_vec(),
                constraints: Some(GrantConstraints {
                    encryption_context_subset: Some(ctx.clone()),
                    encryption_context_equals: None,
                }),
                name: Some(format!("sealdb-database-{db_id}")),
            },
        )?;
        let generated =
            self.kms
                .generate_data_key(&self.via(creator), &md.arn, DataKeySpec::Aes256, &ctx)?;
        let key = TableKey::from_slice(&generated.plaintext).ok_or_else(|| {
            Error::Kms(KmsError::InvalidArgument(
                "GenerateDataKey returned a key that is not 256 bits".into(),
            ))
        })?;
        Ok(DatabaseKey {
            meta: DatabaseKeyMeta {
                db_id,
                key_arn: md.arn,
                wrapped_key: generated.ciphertext_blob,
                grant_id: grant.grant_id,
            },
            key: Arc::new(key),
        })
    }

    /// Unwraps the database key as the engine, through its grant.
    pub(crate) fn database_key(&self, meta: &DatabaseKeyMeta) -> Result<TableKey> {
        let out = self
            .kms
            .decrypt(
                &self.via(&self.service_principal()),
                &meta.wrapped_key,
                &EncryptionContext::for_database(&meta.db_id, &self.account),
                Some(&meta.key_arn),
            )
            .map_err(|e| match e {
                KmsError::Unavailable(why) => Error::TableUnavailable {
                    table: "(database)".into(),
                    reason: format!(
                        "the database key that authenticates the manifest cannot be unwrapped: the KMS is unavailable: {why}"
                    ),
                },
                other => Error::Kms(other),
            })?;
        TableKey::from_slice(&out.plaintext).ok_or(Error::Kms(KmsError::InvalidCiphertext))
    }

    /// CreateGrant for the engine's service principal on `table`, constrained to the
    /// table's encryption context.
    pub(crate) fn create_grant(
        &self,
        creator: &Principal,
        key_arn: &str,
        table: &str,
    ) -> Result<String> {
        let service = via_service_name(&self.region);
        let resp = self.kms.create_grant(
            &self.via(creator),
            CreateGrantRequest {
                key_id: key_arn.to_owned(),
                grantee_principal: service.clone(),
                retiring_principal: Some(service),
                operations: GRANT_OPERATIONS.to_vec(),
                constraints: Some(GrantConstraints {
                    encryption_context_subset: Some(self.context(table)),
                    encryption_context_equals: None,
                }),
                name: Some(format!("sealdb-table-{table}")),
            },
        )?;
        Ok(resp.grant_id)
    }

    /// The table key for `principal`, from the cache or the KMS:
    /// - used within `recheck_after_idle` of its last use: no KMS call;
    /// - idle longer: Decrypt again, so a revoked permission takes effect now; if the KMS
    ///   is unreachable the cached key serves on, until `max_age` after the KMS last
    ///   confirmed it; then the table fails closed.
    pub(crate) fn key_for(
        &self,
        principal: &Principal,
        table: &str,
        meta: &TableMeta,
    ) -> Result<Arc<TableKey>> {
        let now = self.clock.now();
        let stale = {
            let mut cache = self.cache.lock();
            let entries = cache.get_mut(table);
            let entry = entries.and_then(|m| m.get_mut(principal.arn.as_str()));
            match entry {
                Some(e) if elapsed(e.confirmed, now) >= self.max_age => {
                    // Too old to trust: dropping it zeroizes the key (unless in use elsewhere).
                    self.remove_locked(&mut cache, principal, table);
                    None
                }
                Some(e) if elapsed(e.last_used, now) < self.recheck_after_idle => {
                    e.last_used = now;
                    return Ok(Arc::clone(&e.key));
                }
                Some(e) => Some(Arc::clone(&e.key)),
                None => None,
            }
        };
        match self.decrypt(principal, table, meta) {
            Ok(key) => {
                let key = Arc::new(key);
                self.cache
                    .lock()
                    .entry(table.to_owned())
                    .or_default()
                    .insert(
                        principal.arn.clone(),
                        CachedKey {
                            key: Arc::clone(&key),
                            confirmed: now,
                            last_used: now,
                        },
                    );
                Ok(key)
            }
            Err(Error::Kms(KmsError::Unavailable(why))) => match stale {
                // The KMS is down: the cached key carries on within its maximum age.
                Some(key) => {
                    let mut cache = self.cache.lock();
                    if let Some(e) = cache
                        .get_mut(table)
                        .and_then(|m| m.get_mut(principal.arn.as_str()))
                    {
                        e.last_used = now;
                    }
                    Ok(key)
                }
                None => Err(Error::TableUnavailable {
                    table: table.to_owned(),
                    reason: format!(
                        "the KMS is unavailable and no cached table key is usable: {why}"
                    ),
                }),
            },
            Err(e) => {
                let mut cache = self.cache.lock();
                self.remove_locked(&mut cache, principal, table);
                Err(e)
            }
        }
    }

    fn remove_locked(
        &self,
        cache: &mut HashMap<String, HashMap<String, CachedKey>>,
        principal: &Principal,
        table: &str,
    ) {
        if let Some(m) = cache.get_mut(table) {
            m.remove(principal.arn.as_str());
            if m.is_empty() {
                cache.remove(table);
            }
        }
    }

    fn decrypt(&self, principal: &Principal, table: &str, meta: &TableMeta) -> Result<TableKey> {
        let out = self.kms.decrypt(
            &self.via(principal),
            &meta.wrapped_table_key,
            &self.context(table),
            Some(&meta.key_arn),
        )?;
        TableKey::from_slice(&out.plaintext).ok_or(Error::Kms(KmsError::InvalidCiphertext))
    }

    /// Forgets every cached key of `table` (dropped table, new grant).
    pub(crate) fn forget_table(&self, table: &str) {
        self.cache.lock().remove(table);
    }

    /// Forgets the engine's own cached key of `table` (a new grant must be checked).
    pub(crate) fn forget_maintenance(&self, table: &str) {
        let mut cache = self.cache.lock();
        self.remove_locked(&mut cache, &self.service_principal(), table);
    }

    /// Drops every cached key past its maximum age; returns how many were dropped.
    pub(crate) fn expire(&self) -> usize {
        let now = self.clock.now();
        let mut cache = self.cache.lock();
        let mut dropped = 0;
        for m in cache.values_mut() {
            let before = m.len();
            m.retain(|_, e| elapsed(e.confirmed, now) < self.max_age);
            dropped += before - m.len();
        }
        cache.retain(|_, m| !m.is_empty());
        dropped
    }

    /// True when some principal holds a live cached key of `table`.
    pub(crate) fn has_key_for(&self, table: &str) -> bool {
        self.cache.lock().get(table).is_some_and(|m| !m.is_empty())
    }

    pub(crate) fn cache_status(&self) -> Vec<CacheEntryStatus> {
        let now = self.clock.now();
        let mut v: Vec<CacheEntryStatus> = self
            .cache
            .lock()
            .iter()
            .flat_map(|(t, m)| {
                m.iter().map(move |(p, e)| CacheEntryStatus {
                    principal: p.clone(),
                    table: t.clone(),
                    age: elapsed(e.confirmed, now),
                    idle: elapsed(e.last_used, now),
                })
            })
            .collect();
        v.sort_by(|a, b| (&a.table, &a.principal).cmp(&(&b.table, &b.principal)));
        v
    }

    /// The engine's own copy of a table key, for recovery, flush and compaction: the
    /// service principal's cache entry, backed by the table's grant.
    pub(crate) fn maintenance_key(&self, table: &str, meta: &TableMeta) -> Result<Arc<TableKey>> {
        self.key_for(&self.service_principal(), table, meta)
            .map_err(|e| maintenance_error(table, e))
    }

    /// RetireGrant, by the engine as the grant's retiring principal.
    pub(crate) fn retire_grant(&self, meta: &TableMeta) -> Result<()> {
        if meta.grant_id.is_empty() {
            return Ok(());
        }
        self.kms.retire_grant(
            &self.via(&self.service_principal()),
            &meta.key_arn,
            &meta.grant_id,
        )?;
        Ok(())
    }
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

/// Says what an error means for upkeep of the table.
pub(crate) fn maintenance_error(table: &str, e: Error) -> Error {
    match e {
        Error::Kms(KmsError::AccessDenied { .. }) => Error::TableUnavailable {
            table: table.to_owned(),
            reason: format!("cannot maintain table {table}: grant revoked or access denied ({e})"),
        },
        other => other,
    }
}
