//! Table keys from the KMS, the way the seed says DynamoDB gets them: a per-principal cache
//! of plaintext table keys, re-checked with the KMS after an idle interval and kept at most
//! a maximum age, and grants that let the engine's own service principal maintain tables.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::kms::{
    via_service_name, Caller, CreateGrantRequest, DataKeySpec, EncryptionContext, GrantConstraints,
    GrantEntry, GrantOperation, Kms, KmsError, Principal, SERVICE_DEFAULT_ALIAS, SERVICE_PRINCIPAL,
    TABLE_NAME_CONTEXT_KEY,
};
use crate::manifest::{DatabaseKeyMeta, TableMeta};
use crate::storage::Env;

use super::pending_retires::{PendingRetire, PendingRetires};
use super::table_context::{self, Binding};
use super::{DatabaseKey, Encryption, TableOptions};

/// How long after a failed retry the worker tries the pending grant retirements again.
const RETIRE_RETRY_INTERVAL: Duration = Duration::from_secs(30);

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

/// One (table, principal) entry. Shared with the threads' recent-key memos, so the
/// times a read updates are atomics; `confirmed_nanos` never changes (a re-check inserts
/// a new entry).
struct CachedKey {
    key: Arc<TableKey>,
    /// The table-key version `key` is (`TableMeta::key_version`): an entry of another
    /// version than the caller's metadata names is never served (a table-key rotation).
    version: u32,
    /// When the KMS last confirmed this principal's access, in nanoseconds since the Unix
    /// epoch (one integer for both the locked path and the memo).
    confirmed_nanos: u64,
    /// When the key was last used, in nanoseconds since the Unix epoch.
    last_used: AtomicU64,
    /// Cleared (under the cache lock) when the entry leaves the cache: a memo holding it
    /// must then go through the cache again. Shared with the memos (it holds no key).
    live: Arc<AtomicBool>,
}

impl CachedKey {
    fn new(key: Arc<TableKey>, version: u32, now: SystemTime) -> Arc<CachedKey> {
        Arc::new(CachedKey {
            key,
            version,
            confirmed_nanos: nanos(now),
            last_used: AtomicU64::new(nanos(now)),
            live: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Time since the KMS last confirmed access.
    fn age(&self, now: SystemTime) -> Duration {
        Duration::from_nanos(nanos(now).saturating_sub(self.confirmed_nanos))
    }

    fn idle(&self, now: SystemTime) -> Duration {
        Duration::from_nanos(nanos(now).saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    fn touch(&self, now: SystemTime) {
        self.last_used.fetch_max(nanos(now), Ordering::Relaxed);
    }

    fn retire(&self) {
        self.live.store(false, Ordering::Release);
    }
}

/// The entry this thread used last, so that a run of reads by one principal of one table
/// finds its key without the cache's lock and two string hashes per read. The time checks
/// are the same on both paths; only the lookup is skipped. A weak reference: the memo
/// never keeps a key alive (and unzeroized) after the cache let go of it.
///
/// `has_recent_key` (the check of every read) decides from the memo alone when it can:
/// the entry is live and `now` is before `quick_until`; otherwise it takes the full path
/// through the entry.
struct RecentKey {
    keyring: u64,
    table: String,
    principal: String,
    entry: Weak<CachedKey>,
    /// The entry's `live` flag.
    live: Arc<AtomicBool>,
    /// Before this time the full check would pass without recording a use: the earliest of
    /// the entry's confirmation + the maximum age, the last use this thread saw + the idle
    /// interval, and that use + the touch granularity. Never later than the full check's
    /// deadlines (another thread's use only moves the idle one later), so a hit here is a
    /// hit there, and one time comparison per read.
    quick_until: SystemTime,
}

thread_local! {
    static RECENT: RefCell<Option<RecentKey>> = const { RefCell::new(None) };
}

/// How stale a memo hit may leave an entry's last-use time (see `recent_key`).
const TOUCH_GRANULARITY_NANOS: u64 = 1_000_000;

/// Tells keyrings apart in the threads' memos (never reused in the process).
static NEXT_KEYRING_ID: AtomicU64 = AtomicU64::new(1);

type Entries = HashMap<String, HashMap<String, Arc<CachedKey>>>;

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
    cache: Mutex<Entries>,
    /// This keyring's name in the threads' memos.
    id: u64,
    /// The database's id (`sealdb:databaseId`): bound once, by the open, from the
    /// manifest's database key (or chosen fresh for a database that has none yet, whose
    /// first encrypted table's key is made before its database key). Every bound table
    /// key must name it; nothing is unwrapped before it is bound.
    database_id: OnceLock<String>,
    /// Grants whose RetireGrant failed, retried by the worker (`retry_pending_retires`).
    pending: PendingRetires,
    /// The earliest time of the next retry.
    next_retry: Mutex<Option<SystemTime>>,
    /// Held while a table's key changes (a key switch, a re-wrap): the queue of grants to
    /// retire is not processed meanwhile (see `retry_pending_retires`).
    key_change: Mutex<()>,
    /// When the worker next checks for table keys to re-wrap under rotated material.
    next_rewrap_check: Mutex<Option<SystemTime>>,
    /// KMS key ARN -> (its current key material, when DescribeKey said so): the worker's
    /// re-wrap pass asks again only after `MATERIAL_REFRESH` on the clock.
    materials: Mutex<HashMap<String, (Option<String>, SystemTime)>>,
}

/// How long the re-wrap pass trusts a KMS key's current material (DescribeKey). Material
/// changes only by a rotation: the automatic ones come at least 90 days apart, and an
/// on-demand one is followed by `Db::rewrap_table_keys`, which always asks afresh.
const MATERIAL_REFRESH: Duration = Duration::from_secs(3600);

impl Keyring {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kms: Arc<dyn Kms>,
        account: String,
        region: String,
        clock: Arc<dyn Clock>,
        recheck_after_idle: Duration,
        max_age: Duration,
        env: Arc<dyn Env>,
        dir: &std::path::Path,
    ) -> Keyring {
        Keyring {
            database_id: OnceLock::new(),
            materials: Mutex::new(HashMap::new()),
            pending: PendingRetires::new(env, dir),
            next_retry: Mutex::new(None),
            key_change: Mutex::new(()),
            next_rewrap_check: Mutex::new(None),
            kms,
            account,
            region,
            clock,
            recheck_after_idle,
            max_age,
            cache: Mutex::new(HashMap::new()),
            id: NEXT_KEYRING_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The engine's own identity: its service principal, acting through table grants.
    pub(crate) fn service_principal(&self) -> Principal {
        Principal::service(&via_service_name(&self.region))
    }

    /// The engine calling on `p`'s behalf (`kms:ViaService`: only the engine builds this).
    fn via(&self, p: &Principal) -> Caller {
        Caller::engine_via(p.clone(), &via_service_name(&self.region))
    }

    /// The engine acting as its own service principal, through its grants.
    fn as_service(&self) -> Caller {
        Caller::engine_service(&via_service_name(&self.region))
    }

    /// Binds the keyring to its database: `Some(db_id)` from the manifest's database key,
    /// `None` for a database that has none yet (a fresh id is chosen). Called once by the
    /// open, before any key is unwrapped; binding again to another id is refused.
    pub(crate) fn bind_database(&self, db_id: Option<&str>) -> Result<()> {
        let id = db_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let bound = self.database_id.get_or_init(|| id.clone());
        match db_id {
            Some(want) if bound != want => Err(Error::Internal(format!(
                "keyring bound to database {bound}, asked to bind to {want}"
            ))),
            _ => Ok(()),
        }
    }

    /// The encryption context of `table`'s key, and the KMS blob to decrypt under it. A
    /// key bound to another database than this one is refused: its grant and context are
    /// that database's.
    pub(crate) fn context<'m>(
        &self,
        table: &str,
        meta: &'m TableMeta,
    ) -> Result<(EncryptionContext, &'m [u8])> {
        let split = table_context::split(table, &meta.wrapped_table_key)?;
        let ctx = self.context_of(table, &split)?;
        Ok((ctx, split.blob))
    }

    /// The encryption context of an already split wrapped key (see `context`).
    fn context_of(
        &self,
        table: &str,
        split: &table_context::WrappedTableKey<'_>,
    ) -> Result<EncryptionContext> {
        if let Some(b) = &split.binding {
            let ours = self.database_id()?;
            if b.database_id != ours {
                return Err(Error::TableUnavailable {
                    table: table.to_owned(),
                    reason: format!(
                        "its key is bound to database {}, not to this database ({ours})",
                        b.database_id
                    ),
                });
            }
        }
        Ok(table_context::context(
            table,
            &self.account,
            split.binding.as_ref(),
        ))
    }

    /// The database's id; an error before the open bound it (`bind_database`).
    fn database_id(&self) -> Result<&str> {
        self.database_id
            .get()
            .map(String::as_str)
            .ok_or_else(|| Error::Internal("the keyring is not bound to a database yet".to_owned()))
    }

    /// Refuses a service principal as the acting principal: only the engine acts as one.
    /// The attempt is put to the KMS as what it is, a caller-asserted identity, so that the
    /// KMS's audit trail records the refusal; the engine refuses whatever the KMS says.
    pub(crate) fn refuse_service_principal(&self, p: &Principal) -> Result<()> {
        if !p.is_service() {
            return Ok(());
        }
        match self
            .kms
            .describe_key(&Caller::direct(p.clone()), SERVICE_DEFAULT_ALIAS)
        {
            Err(e @ KmsError::ServicePrincipalRefused { .. }) => Err(Error::Kms(e)),
            _ => Err(service_principal_refused(p)),
        }
    }

    /// Asks the KMS, now (not from the cache), whether `principal` may use `table`'s key:
    /// Decrypt on its behalf under the table's context. For a destructive call
    /// (`key_gone_allows`: drop), a key the KMS no longer has at all lets a principal of the
    /// database's account through, since no one can ever use that table again.
    pub(crate) fn confirm_access(
        &self,
        principal: &Principal,
        table: &str,
        meta: &TableMeta,
        key_gone_allows: bool,
    ) -> Result<()> {
        self.refuse_service_principal(principal)?;
        match self.decrypt(principal, table, meta) {
            Ok(key) => {
                let entry = CachedKey::new(Arc::new(key), meta.key_version, self.clock.now());
                if let Some(old) = self
                    .cache
                    .lock()
                    .entry(table.to_owned())
                    .or_default()
                    .insert(principal.arn.clone(), entry)
                {
                    old.retire();
                }
                Ok(())
            }
            Err(Error::Kms(KmsError::NotFound(_)))
                if key_gone_allows && principal.account == self.account =>
            {
                Ok(())
            }
            // An outage says nothing about this principal's access: its cached key (if
            // any) keeps serving within its maximum age, as in `key_for`.
            Err(e @ Error::Kms(KmsError::Unavailable(_))) => Err(e),
            Err(e) => {
                let mut cache = self.cache.lock();
                self.remove_locked(&mut cache, principal, table);
                Err(e)
            }
        }
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
        let binding = Binding::fresh(self.database_id()?);
        let ctx = table_context::context(table, &self.account, Some(&binding));
        let grant_id = self.create_grant_for(creator, &md.arn, table, &ctx)?;
        let generated =
            match self
                .kms
                .generate_data_key(&self.as_service(), &md.arn, DataKeySpec::Aes256, &ctx)
            {
                Ok(g) => g,
                Err(e) => {
                    // No table will have this context: the grant serves nothing.
                    self.retire_or_queue(creator, table, &md.arn, &grant_id);
                    return Err(e.into());
                }
            };
        let (key, wrapped) = match table_key_of(&generated, Some(&binding)) {
            Ok(k) => k,
            Err(e) => {
                self.retire_or_queue(creator, table, &md.arn, &grant_id);
                return Err(e);
            }
        };
        Ok(GeneratedTableKey {
            key,
            wrapped,
            key_arn: md.arn,
            grant_id,
        })
    }

    /// Creates the database key that authenticates the manifest: a grant for the engine on
    /// the service default key, constrained to the database's encryption context (on the
    /// creator's behalf), then GenerateDataKey through it, as for a table key.
    pub(crate) fn create_database_key(&self, creator: &Principal) -> Result<DatabaseKey> {
        let db_id = self.database_id()?.to_owned();
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

    /// Unwraps the database key as the engine, through its grant. The key must be the one
    /// of the database this keyring is bound to.
    pub(crate) fn database_key(&self, meta: &DatabaseKeyMeta) -> Result<TableKey> {
        let ours = self.database_id()?;
        if meta.db_id != ours {
            return Err(Error::Internal(format!(
                "database key of {} offered to the keyring of database {ours}",
                meta.db_id
            )));
        }
        let out = self
            .kms
            .decrypt(
                &self.as_service(),
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

    /// CreateGrant for the engine's service principal on `table` (on `creator`'s behalf),
    /// constrained to the table key's encryption context (`meta` says which).
    pub(crate) fn create_grant(
        &self,
        creator: &Principal,
        table: &str,
        meta: &TableMeta,
    ) -> Result<String> {
        let (ctx, _) = self.context(table, meta)?;
        self.create_grant_for(creator, &meta.key_arn, table, &ctx)
    }

    fn create_grant_for(
        &self,
        creator: &Principal,
        key_arn: &str,
        table: &str,
        ctx: &EncryptionContext,
    ) -> Result<String> {
        let service = via_service_name(&self.region);
        let resp = self.kms.create_grant(
            &self.via(creator),
            CreateGrantRequest {
                key_id: key_arn.to_owned(),
                grantee_principal: service.clone(),
                retiring_principal: Some(service),
                operations: GRANT_OPERATIONS.to_vec(),
                constraints: Some(GrantConstraints::subset(ctx.clone())),
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
        if let Some(key) = self.recent_key(principal, table, meta.key_version, now) {
            return Ok(key);
        }
        let stale = {
            let mut cache = self.cache.lock();
            let entries = cache.get(table);
            let entry = entries.and_then(|m| m.get(principal.arn.as_str())).cloned();
            match entry {
                // Another table-key version than the caller's metadata names (a rotation
                // committed in between): never served, not even while the KMS is down.
                Some(e) if e.version != meta.key_version => {
                    self.remove_locked(&mut cache, principal, table);
                    None
                }
                Some(e) if e.age(now) >= self.max_age => {
                    // Too old to trust: dropping it zeroizes the key (unless in use elsewhere).
                    self.remove_locked(&mut cache, principal, table);
                    None
                }
                Some(e) if e.idle(now) < self.recheck_after_idle => {
                    e.touch(now);
                    drop(cache);
                    self.remember_recent(principal, table, &e);
                    return Ok(Arc::clone(&e.key));
                }
                Some(e) => Some(Arc::clone(&e.key)),
                None => None,
            }
        };
        match self.decrypt(principal, table, meta) {
            Ok(key) => {
                let key = Arc::new(key);
                let entry = CachedKey::new(Arc::clone(&key), meta.key_version, now);
                let replaced = self
                    .cache
                    .lock()
                    .entry(table.to_owned())
                    .or_default()
                    .insert(principal.arn.clone(), Arc::clone(&entry));
                if let Some(old) = replaced {
                    old.retire();
                }
                self.remember_recent(principal, table, &entry);
                Ok(key)
            }
            Err(Error::Kms(KmsError::Unavailable(why))) => match stale {
                // The KMS is down: the cached key carries on within its maximum age.
                Some(key) => {
                    let cache = self.cache.lock();
                    if let Some(e) = cache.get(table).and_then(|m| m.get(principal.arn.as_str())) {
                        e.touch(now);
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

    /// The key of this thread's last (table, principal) entry, if it is still cached and
    /// needs no KMS call at `now` (the same two checks as the locked path).
    fn recent_key(
        &self,
        principal: &Principal,
        table: &str,
        version: u32,
        now: SystemTime,
    ) -> Option<Arc<TableKey>> {
        self.recent_entry(principal, table, now, |e| {
            (e.version == version).then(|| Arc::clone(&e.key))
        })
        .flatten()
    }

    /// `found(entry)` for this thread's memo entry if it is usable at `now` (see
    /// `recent_key`), recording the use.
    fn recent_entry<T>(
        &self,
        principal: &Principal,
        table: &str,
        now: SystemTime,
        found: impl FnOnce(&CachedKey) -> T,
    ) -> Option<T> {
        RECENT.with_borrow_mut(|recent| {
            let r = recent.as_mut()?;
            if r.keyring != self.id || r.table != table || r.principal != principal.arn {
                return None;
            }
            let e = r.entry.upgrade()?;
            // The same two checks as the locked path, on integer nanoseconds.
            let n = nanos(now);
            let last = e.last_used.load(Ordering::Relaxed);
            let usable = e.live.load(Ordering::Acquire)
                && u128::from(n.saturating_sub(e.confirmed_nanos)) < self.max_age.as_nanos()
                && u128::from(n.saturating_sub(last)) < self.recheck_after_idle.as_nanos();
            if !usable {
                return None;
            }
            // A use within a millisecond of the recorded one is not written again: the
            // threads reading one table do not all write the entry's line on every read
            // (the idle time can only come out up to 1 ms longer: a re-check comes sooner).
            let touched = if n.saturating_sub(last) >= TOUCH_GRANULARITY_NANOS {
                e.last_used.fetch_max(n, Ordering::Relaxed);
                n
            } else {
                last
            };
            r.quick_until = self.quick_until(&e, touched);
            Some(found(&e))
        })
    }

    /// Until when `e`, last used at `last_used` (nanoseconds), passes `recent_entry`'s
    /// checks without a new use being recorded (`RecentKey::quick_until`).
    fn quick_until(&self, e: &CachedKey, last_used: u64) -> SystemTime {
        let limit = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let by_age = e.confirmed_nanos.saturating_add(limit(self.max_age));
        let by_idle = last_used.saturating_add(limit(self.recheck_after_idle));
        let by_touch = last_used.saturating_add(TOUCH_GRANULARITY_NANOS);
        let until = by_age.min(by_idle).min(by_touch);
        SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_nanos(until))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Whether this thread's memo holds a usable key for (`table`, `principal`) at the
    /// clock's current time (`recent_key` without handing out a reference). The check of
    /// every read: from the memo alone (no reference-count traffic on the entry) while the
    /// entry is live, within its deadline and used by this thread in the last millisecond.
    pub(crate) fn has_recent_key(&self, principal: &Principal, table: &str) -> bool {
        let now = self.clock.now();
        let quick = RECENT.with_borrow(|recent| {
            recent.as_ref().is_some_and(|r| {
                r.keyring == self.id
                    && r.table == table
                    && r.principal == principal.arn
                    && now < r.quick_until
                    && r.live.load(Ordering::Acquire)
            })
        });
        quick || self.recent_entry(principal, table, now, |_| ()).is_some()
    }

    fn remember_recent(&self, principal: &Principal, table: &str, entry: &Arc<CachedKey>) {
        let quick_until = self.quick_until(entry, entry.last_used.load(Ordering::Relaxed));
        RECENT.with_borrow_mut(|recent| match recent {
            Some(r) if r.keyring == self.id && r.table == table && r.principal == principal.arn => {
                r.entry = Arc::downgrade(entry);
                r.live = Arc::clone(&entry.live);
                r.quick_until = quick_until;
            }
            _ => {
                *recent = Some(RecentKey {
                    keyring: self.id,
                    table: table.to_owned(),
                    principal: principal.arn.clone(),
                    entry: Arc::downgrade(entry),
                    live: Arc::clone(&entry.live),
                    quick_until,
                })
            }
        });
    }

    fn remove_locked(&self, cache: &mut Entries, principal: &Principal, table: &str) {
        if let Some(m) = cache.get_mut(table) {
            if let Some(e) = m.remove(principal.arn.as_str()) {
                e.retire();
            }
            if m.is_empty() {
                cache.remove(table);
            }
        }
    }

    fn decrypt(&self, principal: &Principal, table: &str, meta: &TableMeta) -> Result<TableKey> {
        let (ctx, blob) = self.context(table, meta)?;
        let out = self
            .kms
            .decrypt(&self.via(principal), blob, &ctx, Some(&meta.key_arn))?;
        TableKey::from_slice(&out.plaintext).ok_or(Error::Kms(KmsError::InvalidCiphertext))
    }

    /// Forgets every cached key of `table` (dropped table, new grant).
    pub(crate) fn forget_table(&self, table: &str) {
        if let Some(m) = self.cache.lock().remove(table) {
            m.values().for_each(|e| e.retire());
        }
    }

    /// After a table-key rotation of `table`: every principal's cached key (of the older
    /// version) is forgotten, so each is checked with the KMS again; the engine keeps the
    /// new key it just had from GenerateDataKey through its grant, confirmed now.
    pub(crate) fn rotated(&self, table: &str, version: u32, key: &Arc<TableKey>) {
        let entry = CachedKey::new(Arc::clone(key), version, self.clock.now());
        let mut cache = self.cache.lock();
        if let Some(m) = cache.remove(table) {
            m.values().for_each(|e| e.retire());
        }
        cache
            .entry(table.to_owned())
            .or_default()
            .insert(self.service_principal().arn, entry);
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
            m.retain(|_, e| {
                let keep = e.age(now) < self.max_age;
                if !keep {
                    e.retire();
                }
                keep
            });
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
                    age: e.age(now),
                    idle: e.idle(now),
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

    /// RetireGrant of the table's own grant, by the engine as its retiring principal. Never
    /// fails: a drop has committed by the time it is called, so a grant that cannot be
    /// retired now is queued (`GRANTS-TO-RETIRE`) and retried by the worker.
    pub(crate) fn retire_grant(&self, meta: &TableMeta) -> Result<()> {
        if !meta.grant_id.is_empty() {
            self.retire_or_queue(&self.service_principal(), "", &meta.key_arn, &meta.grant_id);
        }
        Ok(())
    }

    /// Retires every grant on the dropped `table`'s key context (the engine's, and those
    /// made by hand), queueing the ones that cannot be retired now. `principal` dropped it.
    pub(crate) fn retire_table_grants(&self, principal: &Principal, table: &str, meta: &TableMeta) {
        let Ok((ctx, _)) = self.context(table, meta) else {
            return;
        };
        let grants = match self.list_grants_on(principal, &meta.key_arn) {
            Ok(g) => g,
            Err(_) => {
                // Cannot see them now: the table's own grant at least is queued.
                if !meta.grant_id.is_empty() {
                    self.queue(principal, table, &meta.key_arn, &meta.grant_id);
                }
                return;
            }
        };
        for g in grants
            .iter()
            .filter(|g| g.grant_id == meta.grant_id || on_context(g, table, &ctx))
        {
            self.retire_or_queue(principal, table, &meta.key_arn, &g.grant_id);
        }
    }

    /// ListGrants: on the principal's behalf, or else as the engine's service principal
    /// (which the service default key's policy lets list grants directly).
    fn list_grants_on(&self, principal: &Principal, key_arn: &str) -> Result<Vec<GrantEntry>> {
        match self.kms.list_grants(&self.via(principal), key_arn) {
            Ok(g) => Ok(g),
            Err(_) => Ok(self
                .kms
                .list_grants(&Caller::engine_direct_service(SERVICE_PRINCIPAL), key_arn)?),
        }
    }

    /// Retires `grant_id` (as the engine), or revokes it on `principal`'s behalf if the
    /// engine may not retire it; a grant already gone counts as retired. Returns false (and
    /// queues it) when neither worked.
    fn retire_or_queue(&self, principal: &Principal, table: &str, key_arn: &str, grant_id: &str) {
        if !self.try_retire(&principal.arn, key_arn, grant_id) {
            self.queue(principal, table, key_arn, grant_id);
        }
    }

    fn try_retire(&self, principal_arn: &str, key_arn: &str, grant_id: &str) -> bool {
        let gone = |e: &KmsError| matches!(e, KmsError::NotFound(_) | KmsError::InvalidGrant(_));
        match self.kms.retire_grant(&self.as_service(), key_arn, grant_id) {
            Ok(()) => return true,
            Err(e) if gone(&e) => return true,
            Err(KmsError::AccessDenied { .. }) => {}
            Err(_) => return false,
        }
        let Ok(p) = Principal::parse(principal_arn) else {
            return false;
        };
        if p.is_service() {
            return false;
        }
        match self.kms.revoke_grant(&self.via(&p), key_arn, grant_id) {
            Ok(()) => true,
            Err(e) => gone(&e),
        }
    }

    fn queue(&self, principal: &Principal, table: &str, key_arn: &str, grant_id: &str) {
        // If even the list cannot be written, the grant stays in the KMS, constrained to a
        // context no table will have again: nothing can use it for another table.
        let _ = self.pending.add(vec![PendingRetire {
            key_arn: key_arn.to_owned(),
            grant_id: grant_id.to_owned(),
            table: table.to_owned(),
            principal: principal.arn.clone(),
        }]);
    }

    /// Retries the queued retirements (the worker's tick; at most every
    /// `RETIRE_RETRY_INTERVAL` after a failed try). Returns how many are still pending.
    /// A queued grant that a table of the catalogue uses (`in_use`, asked after the key-change
    /// lock is taken) is not retired but dropped from the queue: a key switch queues both of
    /// its grants before it commits, so that after a crash at any point the one the table
    /// ended under stays and the other goes. Skipped while a key change is under way.
    pub(crate) fn retry_pending_retires(&self, in_use: impl FnOnce() -> HashSet<String>) -> usize {
        if matches!(self.pending.len(), Ok(0)) {
            return 0; // nothing queued: no set of grants in use to build
        }
        let Some(_change) = self.key_change.try_lock() else {
            return self.pending.len().unwrap_or(0);
        };
        self.retry_pending_locked(in_use(), true)
    }

    fn retry_pending_locked(&self, in_use: HashSet<String>, respect_interval: bool) -> usize {
        let now = self.clock.now();
        if respect_interval {
            let next = self.next_retry.lock();
            if next.is_some_and(|t| now < t) {
                return self.pending.len().unwrap_or(0);
            }
        }
        let Ok(pending) = self.pending.list() else {
            *self.next_retry.lock() = Some(now + RETIRE_RETRY_INTERVAL);
            return 0;
        };
        if pending.is_empty() {
            return 0;
        }
        let done: Vec<String> = pending
            .iter()
            .filter(|p| {
                in_use.contains(&p.grant_id)
                    || self.try_retire(&p.principal, &p.key_arn, &p.grant_id)
            })
            .map(|p| p.grant_id.clone())
            .collect();
        let left = pending.len() - done.len();
        let _ = self.pending.remove(&done);
        *self.next_retry.lock() = (left > 0).then_some(now + RETIRE_RETRY_INTERVAL);
        left
    }

    /// The key material the table key's KMS blob says it is wrapped under, when the blob
    /// shows it (the local KMS); `None` for opaque blobs (AWS KMS).
    pub(crate) fn key_material(&self, table: &str, meta: &TableMeta) -> Option<String> {
        let (_, blob) = self.context(table, meta).ok()?;
        self.kms.key_material_of(blob)
    }

    /// The material the KMS key encrypts under now (DescribeKey as the engine, which its
    /// table grant allows), if the KMS says. `fresh`: ask the KMS now; else an answer
    /// younger than `MATERIAL_REFRESH` on the clock serves.
    pub(crate) fn current_material(&self, key_arn: &str, fresh: bool) -> Result<Option<String>> {
        let now = self.clock.now();
        if !fresh {
            if let Some((m, at)) = self.materials.lock().get(key_arn) {
                if elapsed(*at, now) < MATERIAL_REFRESH {
                    return Ok(m.clone());
                }
            }
        }
        let m = self
            .kms
            .describe_key(&self.as_service(), key_arn)?
            .current_key_material_id;
        self.materials
            .lock()
            .insert(key_arn.to_owned(), (m.clone(), now));
        Ok(m)
    }

    /// True once every `interval` on the clock: the worker's re-wrap check is due.
    pub(crate) fn rewrap_check_due(&self, interval: Duration) -> bool {
        let now = self.clock.now();
        let mut next = self.next_rewrap_check.lock();
        match *next {
            // The first check comes one interval after open (an open makes no extra calls).
            None => {
                *next = Some(now + interval);
                false
            }
            Some(t) if now < t => false,
            Some(_) => {
                *next = Some(now + interval);
                true
            }
        }
    }

    /// ReEncrypt of the table key's blob to `dest_arn` under the same encryption context,
    /// as the engine through its grants (ReEncryptFrom on the old key's, ReEncryptTo on the
    /// destination's): the new `wrapped_table_key`, bound like the old one. The plaintext
    /// table key never leaves the KMS.
    pub(crate) fn re_encrypt_table_key(
        &self,
        table: &str,
        meta: &TableMeta,
        dest_arn: &str,
    ) -> Result<Vec<u8>> {
        let split = table_context::split(table, &meta.wrapped_table_key)?;
        let ctx = self.context_of(table, &split)?;
        let new_blob = self
            .kms
            .re_encrypt(&self.as_service(), split.blob, &ctx, dest_arn, &ctx)?;
        match &split.binding {
            Some(b) => b.wrap(&new_blob),
            None => Ok(new_blob),
        }
    }

    /// A new version of `table`'s key (a table-key rotation): GenerateDataKey on the
    /// table's KMS key as the engine, through its grant, under the same encryption context
    /// as the current key (the same database binding and incarnation), so the grant and
    /// the key policy that serve the current key serve the new one. Returns the plaintext
    /// key and its bound wrapped form.
    pub(crate) fn generate_next_table_key(
        &self,
        table: &str,
        meta: &TableMeta,
    ) -> Result<(TableKey, Vec<u8>)> {
        let split = table_context::split(table, &meta.wrapped_table_key)?;
        let ctx = self.context_of(table, &split)?;
        let generated = self
            .kms
            .generate_data_key(&self.as_service(), &meta.key_arn, DataKeySpec::Aes256, &ctx)
            .map_err(|e| maintenance_error(table, e.into()))?;
        table_key_of(&generated, split.binding.as_ref())
    }

    /// The key of an older table-key version (`wrapped`, bound like the current one), as
    /// the engine through the table's grant. Not cached here: the table keeps its copy
    /// while files use the version (`db::table_key_rotation`).
    pub(crate) fn unwrap_old_table_key(
        &self,
        table: &str,
        meta: &TableMeta,
        wrapped: &[u8],
    ) -> Result<TableKey> {
        let old = TableMeta {
            wrapped_table_key: wrapped.to_vec(),
            ..meta.clone()
        };
        self.decrypt(&self.service_principal(), table, &old)
            .map_err(|e| maintenance_error(table, e))
    }

    /// DescribeKey of `key_id` (id, ARN or alias) on `principal`'s behalf.
    pub(crate) fn describe_for(
        &self,
        principal: &Principal,
        key_id: &str,
    ) -> Result<crate::kms::KeyMetadata> {
        Ok(self.kms.describe_key(&self.via(principal), key_id)?)
    }

    /// A grant for the engine on `key_arn`, constrained to `table`'s key context (as
    /// `meta` binds it), created on `creator`'s behalf.
    pub(crate) fn create_grant_on(
        &self,
        creator: &Principal,
        key_arn: &str,
        table: &str,
        meta: &TableMeta,
    ) -> Result<String> {
        let (ctx, _) = self.context(table, meta)?;
        self.create_grant_for(creator, key_arn, table, &ctx)
    }

    /// Holds off the queue of grants to retire while a table's key changes.
    pub(crate) fn key_change_lock(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.key_change.lock()
    }

    /// Queues `grants` (key ARN, grant id) of `table` for retirement, durably, on
    /// `principal`'s behalf. Unlike a drop's queueing this fails if the list cannot be
    /// written: a key switch must not go on without it.
    pub(crate) fn queue_durably(
        &self,
        principal: &Principal,
        table: &str,
        grants: &[(&str, &str)],
    ) -> Result<()> {
        self.pending.add(
            grants
                .iter()
                .map(|(key_arn, grant_id)| PendingRetire {
                    key_arn: (*key_arn).to_owned(),
                    grant_id: (*grant_id).to_owned(),
                    table: table.to_owned(),
                    principal: principal.arn.clone(),
                })
                .collect(),
        )
    }

    /// Processes the queue now (the caller holds `key_change_lock`): grants in use are
    /// dropped from it, the others retired (or left queued). Returns how many are left.
    pub(crate) fn settle_pending(&self, in_use: HashSet<String>) -> usize {
        self.retry_pending_locked(in_use, false)
    }

    /// The grants queued for retirement, or why the list cannot be read (a checkpoint
    /// copies it and must not copy an empty list in place of an unreadable one).
    pub(crate) fn queued_retires(&self) -> Result<Vec<PendingRetire>> {
        self.pending.list()
    }

    /// The grants queued for retirement.
    pub(crate) fn pending_retires(&self) -> Vec<PendingRetire> {
        self.pending.list().unwrap_or_default()
    }
}

/// A table key from a GenerateDataKey answer, and its wrapped form as the catalogue keeps
/// it: the KMS blob in `binding`'s bound-key wrapper, or bare for a table created before
/// bindings (format 3). Refuses a plaintext that is not 256 bits, and a blob that starts
/// like a bound key (it would be read back as one).
fn table_key_of(
    generated: &crate::kms::GeneratedDataKey,
    binding: Option<&Binding>,
) -> Result<(TableKey, Vec<u8>)> {
    let key = TableKey::from_slice(&generated.plaintext).ok_or_else(|| {
        Error::Kms(KmsError::InvalidArgument(
            "GenerateDataKey returned a key that is not 256 bits".into(),
        ))
    })?;
    let wrapped = match binding {
        Some(b) => b.wrap(&generated.ciphertext_blob)?,
        None => {
            if generated
                .ciphertext_blob
                .starts_with(table_context::BOUND_KEY_MAGIC)
            {
                return Err(Error::Kms(KmsError::InvalidArgument(
                    "the KMS returned a ciphertext blob that starts like a sealdb bound key".into(),
                )));
            }
            generated.ciphertext_blob.clone()
        }
    };
    Ok((key, wrapped))
}

/// True when `g` is constrained to `table`'s key context: its constraints name the table
/// and every request under `ctx` satisfies them (so it serves this table and no other).
fn on_context(g: &GrantEntry, table: &str, ctx: &EncryptionContext) -> bool {
    let Some(c) = &g.constraints else {
        return false;
    };
    let names_table = [&c.encryption_context_subset, &c.encryption_context_equals]
        .into_iter()
        .flatten()
        .any(|x| x.get(TABLE_NAME_CONTEXT_KEY) == Some(table));
    names_table && c.allow(ctx)
}

/// The engine's refusal of a service principal as the acting principal.
pub(crate) fn service_principal_refused(p: &Principal) -> Error {
    Error::Kms(KmsError::ServicePrincipalRefused {
        principal: p.arn.clone(),
    })
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

/// `t` in nanoseconds since the Unix epoch (0 before it; saturating past year 2554).
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};

    const IDLE: Duration = Duration::from_secs(300);
    const MAX_AGE: Duration = Duration::from_secs(12 * 3600);

    struct Fixture {
        _dir: tempfile::TempDir,
        kms: Arc<LocalKms>,
        keyring: Keyring,
        meta: TableMeta,
    }

    fn fixture(clock: &ManualClock) -> Result<Fixture> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let kms = Arc::new(LocalKms::open(
            dir.path(),
            LocalKmsOptions {
                account: crate::DEFAULT_ACCOUNT.to_owned(),
                region: crate::DEFAULT_REGION.to_owned(),
                root_key: RootKeySource::Passphrase {
                    passphrase: zeroize::Zeroizing::new("keyring tests".to_owned()),
                    kdf: KdfParams::insecure_fast_for_tests(),
                },
                clock: Arc::new(clock.clone()),
                audit_max_bytes: 0,
                env: crate::storage::default_env(),
            },
        )?);
        let keyring = Keyring::new(
            Arc::clone(&kms) as Arc<dyn Kms>,
            crate::DEFAULT_ACCOUNT.to_owned(),
            crate::DEFAULT_REGION.to_owned(),
            Arc::new(clock.clone()),
            IDLE,
            MAX_AGE,
            crate::storage::default_env(),
            dir.path(),
        );
        keyring.bind_database(None)?;
        let g = keyring.create_table_key(&user(), "Books", &TableOptions::encrypted())?;
        let meta = TableMeta {
            encrypted: true,
            key_arn: g.key_arn,
            wrapped_table_key: g.wrapped,
            grant_id: g.grant_id,
            key_version: 1,
            ..TableMeta::default()
        };
        Ok(Fixture {
            _dir: dir,
            kms,
            keyring,
            meta,
        })
    }

    fn user() -> Principal {
        Principal::assumed_role(crate::DEFAULT_ACCOUNT, "Admin", "user01")
    }

    fn fingerprint(k: &TableKey) -> [u8; 32] {
        *k.derive_subkey(b"keyring test fingerprint")
    }

    #[test]
    fn remembered_key_keeps_the_idle_and_max_age_checks() -> Result<()> {
        let clock = ManualClock::default();
        let f = fixture(&clock)?;
        let decrypts = || f.kms.call_count("Decrypt");
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        let d0 = decrypts();
        // Used every 4m59s for 13 hours would never re-check idle, but the maximum age
        // still forces a Decrypt once 12 hours have passed since the last one.
        let step = IDLE - Duration::from_secs(1);
        let mut elapsed = Duration::ZERO;
        while elapsed + step < MAX_AGE {
            clock.advance(step);
            elapsed += step;
            f.keyring.key_for(&user(), "Books", &f.meta)?;
        }
        assert_eq!(decrypts(), d0, "used within the idle interval: no KMS call");
        clock.advance(step);
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert_eq!(decrypts(), d0 + 1, "past the maximum age: one Decrypt");
        // Exactly the idle interval: re-checked.
        clock.advance(IDLE);
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert_eq!(decrypts(), d0 + 2);
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert_eq!(decrypts(), d0 + 2);
        Ok(())
    }

    #[test]
    fn a_forgotten_or_expired_key_is_never_served_from_the_memo() -> Result<()> {
        let clock = ManualClock::default();
        let f = fixture(&clock)?;
        let decrypts = || f.kms.call_count("Decrypt");
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        let d0 = decrypts();
        f.keyring.forget_table("Books");
        assert!(!f.keyring.has_key_for("Books"));
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert_eq!(decrypts(), d0 + 1, "forgotten: back to the KMS");
        clock.advance(MAX_AGE);
        assert_eq!(f.keyring.expire(), 1);
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert_eq!(decrypts(), d0 + 2, "expired: back to the KMS");
        // The memo holds no strong reference: once the cache and the caller let go, the
        // key is dropped (and zeroized).
        let weak = {
            let k = f.keyring.key_for(&user(), "Books", &f.meta)?;
            Arc::downgrade(&k)
        };
        f.keyring.forget_table("Books");
        assert!(weak.upgrade().is_none());
        Ok(())
    }

    #[test]
    fn the_per_read_check_keeps_the_idle_max_age_and_forget_rules() -> Result<()> {
        let clock = ManualClock::default();
        let f = fixture(&clock)?;
        let usable = || f.keyring.has_recent_key(&user(), "Books");
        assert!(!usable(), "nothing cached yet");
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert!(usable());
        // Within the touch granularity (answered from the memo), then past it (a use is
        // recorded through the entry).
        clock.advance(Duration::from_micros(500));
        assert!(usable());
        clock.advance(Duration::from_millis(2));
        assert!(usable());
        // Checked every 4m59s: each check is a use, so only the maximum age ends it.
        let step = IDLE - Duration::from_secs(1);
        let mut elapsed = Duration::from_micros(2500);
        while elapsed + step < MAX_AGE {
            clock.advance(step);
            elapsed += step;
            assert!(usable(), "used within the idle interval at {elapsed:?}");
        }
        clock.advance(step);
        assert!(!usable(), "past the maximum age");
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert!(usable());
        clock.advance(IDLE);
        assert!(!usable(), "idle for the whole interval");
        f.keyring.key_for(&user(), "Books", &f.meta)?;
        assert!(usable());
        f.keyring.forget_table("Books");
        assert!(
            !usable(),
            "forgotten: not even within the memo's quick window"
        );
        Ok(())
    }

    #[test]
    fn the_memo_tells_keyrings_and_principals_apart() -> Result<()> {
        let clock = ManualClock::default();
        let (a, b) = (fixture(&clock)?, fixture(&clock)?);
        let other = Principal::assumed_role(crate::DEFAULT_ACCOUNT, "Admin", "user02");
        for _ in 0..3 {
            let ka = a.keyring.key_for(&user(), "Books", &a.meta)?;
            let kb = b.keyring.key_for(&user(), "Books", &b.meta)?;
            assert_ne!(
                fingerprint(&ka),
                fingerprint(&kb),
                "same name, other database"
            );
            let ko = a.keyring.key_for(&other, "Books", &a.meta)?;
            assert_eq!(fingerprint(&ka), fingerprint(&ko));
        }
        assert_eq!(a.keyring.cache_status().len(), 2);
        Ok(())
    }
}
