//! `LocalKms`: the embedded key management service over a sealed keystore directory.
//!
//! Every call runs under one lock: purge keys whose deletion date passed, resolve the key,
//! authorize (policy, then grants), check the key's state, act, persist if anything
//! changed, and append one audit event whatever the outcome.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use super::audit::{AuditLog, EventInput};
use super::grant::Grant;
use super::key::{to_secs, BackingKey, KeyId, KeyRecord};
use super::keystore::{Keystore, KeystoreState};
use super::principal::is_account_id;
use super::rotation::{RotationState, DEFAULT_ROTATION_PERIOD_DAYS};
use super::{
    service_default_policy, Caller, GrantOperation, KeyManager, KeyPolicy, KeyState, KmsError,
    PolicyDecision, PolicyRequest, RootKeySource, SERVICE_DEFAULT_ALIAS,
};
use crate::clock::{system_clock, Clock};
use crate::storage::{default_env, Env};

mod listing;
mod ops;
mod rotate;

pub use listing::{AliasListEntry, KeyListEntry};

/// Options of `LocalKms::open`: `LocalKmsOptions::new(account, region)`, then the
/// `with_*` methods or the fields.
#[non_exhaustive]
pub struct LocalKmsOptions {
    /// The account the KMS serves by default (service principals have none of their own).
    pub account: String,
    /// The region in key ARNs.
    pub region: String,
    /// Where the root key that seals the keystore comes from.
    pub root_key: RootKeySource,
    /// The source of every time: audit `eventTime`, creation and deletion dates.
    pub clock: Arc<dyn Clock>,
    /// Size at which an audit file is rotated; 0 means never.
    pub audit_max_bytes: u64,
    /// The file system the keystore and the audit log are read and written through (the
    /// engine's seam, so a fault-injecting env reaches the KMS too). The root key file is
    /// the exception: it is read and created with `std::fs`, which can set its mode.
    pub env: Arc<dyn Env>,
}

impl LocalKmsOptions {
    /// Options with the root key from the environment (`RootKeySource::from_env`), the
    /// system clock and 16 MiB audit files.
    pub fn new(account: &str, region: &str) -> LocalKmsOptions {
        LocalKmsOptions {
            account: account.to_string(),
            region: region.to_string(),
            root_key: RootKeySource::from_env(),
            clock: system_clock(),
            audit_max_bytes: 16 << 20,
            env: default_env(),
        }
    }

    /// These options with the keystore and audit log read and written through `env`.
    pub fn with_env(mut self, env: Arc<dyn Env>) -> LocalKmsOptions {
        self.env = env;
        self
    }

    /// These options with the root key from `root_key`.
    pub fn with_root_key(mut self, root_key: RootKeySource) -> LocalKmsOptions {
        self.root_key = root_key;
        self
    }

    /// These options with `clock` as the source of every time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> LocalKmsOptions {
        self.clock = clock;
        self
    }

    /// These options with audit files rotated at `bytes` (0: never).
    pub fn with_audit_max_bytes(mut self, bytes: u64) -> LocalKmsOptions {
        self.audit_max_bytes = bytes;
        self
    }
}

impl std::fmt::Debug for LocalKmsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKmsOptions")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("root_key", &self.root_key)
            .field("audit_max_bytes", &self.audit_max_bytes)
            .finish_non_exhaustive()
    }
}

/// The embedded KMS. See the module docs and DESIGN.md section 12.
pub struct LocalKms {
    dir: PathBuf,
    account: String,
    region: String,
    clock: Arc<dyn Clock>,
    store: Keystore,
    state: Mutex<KeystoreState>,
    audit: AuditLog,
    available: AtomicBool,
    /// Set when a keystore write failed: memory may be ahead of disk; reopen.
    poisoned: AtomicBool,
    /// Set (under the state lock) when the current call changed the state: it is written
    /// only after the call's audit event, so a call refused for want of an audit record
    /// leaves the keystore as it was.
    dirty: AtomicBool,
    /// The earliest time (keystore seconds) at which a key's deletion or automatic
    /// rotation falls due; `u64::MAX` when none will. Recomputed (under the state lock)
    /// whenever the state changes, so a call before it does not scan the keystore.
    next_due: AtomicU64,
}

/// When the first deletion or automatic rotation in `st` falls due (`u64::MAX`: none).
fn next_due(st: &KeystoreState) -> u64 {
    st.keys
        .values()
        .filter_map(|k| match k.state {
            KeyState::PendingDeletion => k.deletion_secs,
            KeyState::Enabled => rotate::next_rotation(k),
            KeyState::Disabled => None,
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// What a call learned for its audit event.
#[derive(Default)]
struct Facts {
    keys: Vec<(String, String)>,
    response: Value,
}

impl Facts {
    fn key(&mut self, rec: &KeyRecord) {
        self.keys.push((rec.arn(), rec.account.clone()));
    }
}

fn denied(caller: &Caller, action: &str, key: &str) -> KmsError {
    KmsError::AccessDenied {
        principal: caller.principal().arn.clone(),
        action: action.to_string(),
        key: key.to_string(),
    }
}

fn key_mut<'a>(st: &'a mut KeystoreState, id: &KeyId) -> Result<&'a mut KeyRecord, KmsError> {
    st.keys
        .get_mut(id)
        .ok_or_else(|| KmsError::NotFound(format!("key {id}")))
}

fn key_ref<'a>(st: &'a KeystoreState, id: &KeyId) -> Result<&'a KeyRecord, KmsError> {
    st.keys
        .get(id)
        .ok_or_else(|| KmsError::NotFound(format!("key {id}")))
}

/// Refuses crypto and grant operations on a key that is not enabled.
fn check_usable(rec: &KeyRecord) -> Result<(), KmsError> {
    match rec.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(rec.arn())),
        KeyState::PendingDeletion => Err(KmsError::InvalidState {
            key: rec.arn(),
            state: rec.state.as_str().to_string(),
        }),
    }
}

/// Refuses management operations on the service default key.
fn check_customer_managed(rec: &KeyRecord, caller: &Caller, action: &str) -> Result<(), KmsError> {
    match rec.manager {
        KeyManager::Customer => Ok(()),
        KeyManager::Aws => Err(denied(caller, action, &rec.arn())),
    }
}

fn validate_alias_name(alias: &str) -> Result<(), KmsError> {
    let name = alias.strip_prefix("alias/").unwrap_or_default();
    let ok = !name.is_empty()
        && alias.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
    if !ok {
        return Err(KmsError::InvalidArgument(format!(
            "alias {alias:?} must be alias/<1-250 of [a-zA-Z0-9/_-]>"
        )));
    }
    if name.starts_with("aws/") {
        return Err(KmsError::InvalidArgument(format!(
            "alias {alias:?}: the alias/aws/ prefix is reserved for AWS managed keys"
        )));
    }
    Ok(())
}

impl LocalKms {
    /// Opens (creating if absent) the KMS in `dir`: its keystore and audit trail.
    /// `dir` must not be inside a database's data directory.
    pub fn open(dir: &Path, opts: LocalKmsOptions) -> Result<LocalKms, KmsError> {
        if !is_account_id(&opts.account) {
            return Err(KmsError::InvalidArgument(format!(
                "account {:?} is not a 12-digit account id",
                opts.account
            )));
        }
        if opts.region.is_empty()
            || !opts
                .region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(KmsError::InvalidArgument(format!(
                "bad region {:?}",
                opts.region
            )));
        }
        let (store, state) = Keystore::open(Arc::clone(&opts.env), dir, &opts.root_key)?;
        let audit = AuditLog::open_in(opts.env, dir, opts.audit_max_bytes)?;
        let due = next_due(&state);
        Ok(LocalKms {
            dir: dir.to_path_buf(),
            account: opts.account,
            region: opts.region,
            clock: opts.clock,
            store,
            state: Mutex::new(state),
            audit,
            available: AtomicBool::new(true),
            poisoned: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            next_due: AtomicU64::new(due),
        })
    }

    /// The audit trail.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// How many calls of operation `op` (e.g. `"Decrypt"`) reached this KMS since open,
    /// allowed or denied. For tests asserting "a handful of KMS calls".
    pub fn call_count(&self, op: &str) -> u64 {
        self.audit.count(op)
    }

    /// Test and operations hook simulating an outage: while false, every call fails with
    /// `KmsError::Unavailable` and, as with an unreachable KMS, nothing is audited.
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::SeqCst);
    }

    /// The keystore directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The account the keystore belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The region in its key ARNs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The account a call acts in: the principal's, or the KMS's for a service principal.
    fn caller_account<'a>(&'a self, caller: &'a Caller) -> &'a str {
        if caller.principal().is_service() {
            &self.account
        } else {
            &caller.principal().account
        }
    }

    /// Runs one call: availability, caller, poisoning, purge, `f`, then one audit event,
    /// then the keystore write if the call changed anything. The event comes first: a call
    /// whose event cannot be written fails with `AuditFailed` and its change is undone in
    /// memory (the keystore file never had it), so a refused call never took effect.
    fn call<T>(
        &self,
        caller: &Caller,
        event_name: &str,
        read_only: bool,
        params: Value,
        f: impl FnOnce(&mut KeystoreState, &mut Facts) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        if !self.available.load(Ordering::SeqCst) {
            return Err(KmsError::Unavailable(
                "LocalKms is marked unavailable (set_available(false))".into(),
            ));
        }
        let mut st = self.state.lock();
        self.dirty.store(false, Ordering::SeqCst);
        let mut facts = Facts::default();
        let res = self
            .check_caller(caller)
            .and_then(|()| self.check_poisoned())
            .and_then(|()| {
                if to_secs(self.clock.now()) < self.next_due.load(Ordering::SeqCst) {
                    return Ok(()); // nothing falls due yet: no scan
                }
                self.purge_due(&mut st)
                    .and_then(|()| self.rotate_due(&mut st))
            })
            .and_then(|()| f(&mut st, &mut facts));
        let recorded = self.audit.record(EventInput {
            caller,
            event_name,
            region: &self.region,
            request_parameters: params,
            response_elements: if res.is_ok() {
                facts.response
            } else {
                Value::Null
            },
            read_only,
            keys: facts.keys,
            default_account: &self.account,
            error: res.as_ref().err(),
            time: self.clock.now(),
        });
        let changed = self.dirty.swap(false, Ordering::SeqCst);
        let res = self.finish(&mut st, changed, recorded.map(|_| ()), res);
        if changed {
            self.next_due.store(next_due(&st), Ordering::SeqCst);
        }
        res
    }

    /// The end of `call`: undo in memory a change whose event could not be recorded, or
    /// write it.
    fn finish<T>(
        &self,
        st: &mut KeystoreState,
        changed: bool,
        recorded: Result<(), KmsError>,
        res: Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        if let Err(e) = recorded {
            if changed {
                match self.store.reload() {
                    Ok(previous) => *st = previous,
                    Err(reload) => {
                        self.poisoned.store(true, Ordering::SeqCst);
                        return Err(KmsError::AuditFailed(format!(
                            "{e}; the call's change was not written, but the keystore could not be \
                             read back to undo it in memory ({reload}): reopen the KMS"
                        )));
                    }
                }
            }
            return Err(e);
        }
        if changed {
            self.store.save(st).inspect_err(|_| {
                self.poisoned.store(true, Ordering::SeqCst);
            })?;
        }
        res
    }

    fn check_caller(&self, caller: &Caller) -> Result<(), KmsError> {
        caller.check_not_borrowed()?;
        let p = caller.principal();
        if p.arn.is_empty() || (!p.is_service() && !is_account_id(&p.account)) {
            return Err(KmsError::InvalidArgument(format!(
                "caller {:?} has no valid account",
                p.arn
            )));
        }
        Ok(())
    }

    fn check_poisoned(&self) -> Result<(), KmsError> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(KmsError::Keystore(
                "an earlier keystore write failed; reopen the KMS".into(),
            ));
        }
        Ok(())
    }

    /// Marks the state changed: `call` writes it once the call's audit event is written.
    fn save(&self, _st: &KeystoreState) -> Result<(), KmsError> {
        self.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Destroys keys whose deletion date has passed, with their aliases and grants.
    fn purge_due(&self, st: &mut KeystoreState) -> Result<(), KmsError> {
        let now = to_secs(self.clock.now());
        let due: Vec<KeyId> = st
            .keys
            .values()
            .filter(|k| {
                k.state == KeyState::PendingDeletion && k.deletion_secs.is_some_and(|d| d <= now)
            })
            .map(|k| k.id)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for id in &due {
            st.keys.remove(id);
        }
        for aliases in st.aliases.values_mut() {
            aliases.retain(|_, target| !due.contains(target));
        }
        self.save(st)
    }

    /// Resolves a key id, key ARN, alias name or alias ARN. The service default alias
    /// creates the default key for the caller's account if absent.
    fn resolve(
        &self,
        st: &mut KeystoreState,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KeyId, KmsError> {
        let not_found = || KmsError::NotFound(format!("key {key_id}"));
        let (account, rest) = match key_id.strip_prefix("arn:aws:kms:") {
            Some(arn) => {
                let mut parts = arn.splitn(3, ':');
                let region = parts.next().unwrap_or_default();
                let account = parts.next().unwrap_or_default();
                let rest = parts.next().unwrap_or_default();
                if region != self.region {
                    return Err(not_found());
                }
                (account.to_string(), rest)
            }
            None => (self.caller_account(caller).to_string(), key_id),
        };
        if rest.starts_with("alias/") {
            if rest == SERVICE_DEFAULT_ALIAS {
                // Only an account's own calls create its default key.
                let existing = st.aliases.get(&account).and_then(|m| m.get(rest)).copied();
                return match existing {
                    Some(id) => Ok(id),
                    None if account == self.caller_account(caller) => {
                        self.default_key(st, &account)
                    }
                    None => Err(not_found()),
                };
            }
            return st
                .aliases
                .get(&account)
                .and_then(|m| m.get(rest))
                .copied()
                .ok_or_else(not_found);
        }
        let id_text = rest.strip_prefix("key/").unwrap_or(rest);
        let id = KeyId::parse(id_text).ok_or_else(not_found)?;
        match st.keys.get(&id) {
            Some(k) if !key_id.starts_with("arn:") || k.account == account => Ok(id),
            _ => Err(not_found()),
        }
    }

    /// The service default key of `account`, created (and persisted) on first use.
    fn default_key(&self, st: &mut KeystoreState, account: &str) -> Result<KeyId, KmsError> {
        if let Some(id) = st
            .aliases
            .get(account)
            .and_then(|m| m.get(SERVICE_DEFAULT_ALIAS))
        {
            return Ok(*id);
        }
        if !is_account_id(account) {
            return Err(KmsError::NotFound(format!(
                "{SERVICE_DEFAULT_ALIAS} for {account:?}"
            )));
        }
        let id = KeyId::generate();
        st.keys.insert(
            id,
            KeyRecord {
                id,
                account: account.to_string(),
                region: self.region.clone(),
                description: "Default key that protects my sealdb tables when no other key is defined"
                    .into(),
                manager: KeyManager::Aws,
                state: KeyState::Enabled,
                created_secs: to_secs(self.clock.now()),
                deletion_secs: None,
                policy: service_default_policy(account, &self.region),
                material: vec![BackingKey::generate()],
                grants: Vec::new(),
                rotation: RotationState {
                    enabled: true,
                    period_days: DEFAULT_ROTATION_PERIOD_DAYS,
                    next_secs: Some(to_secs(self.clock.now()).saturating_add(
                        u64::from(DEFAULT_ROTATION_PERIOD_DAYS) * 86_400,
                    )),
                    history: Vec::new(),
                },
            },
        );
        st.aliases
            .entry(account.to_string())
            .or_default()
            .insert(SERVICE_DEFAULT_ALIAS.to_string(), id);
        self.save(st)?;
        Ok(id)
    }

    /// Authorizes `action` on `rec`: an explicit Deny in the policy refuses; an Allow
    /// allows; otherwise a grant to the caller for the operation (constraints checked
    /// against `ctx`) allows; otherwise refuses. Returns the grant used, if any.
    /// Records the key for the call's audit event and authorizes `action` on it for
    /// `caller`: key policy, then grants for `grant_op`, with the request's encryption
    /// context if it has one.
    fn authorize_on<'r>(
        &self,
        rec: &'r KeyRecord,
        facts: &mut Facts,
        caller: &Caller,
        action: &str,
        ctx: Option<&crate::kms::EncryptionContext>,
        grant_op: Option<GrantOperation>,
    ) -> Result<Option<&'r Grant>, KmsError> {
        facts.key(rec);
        let arn = rec.arn();
        let mut req = PolicyRequest::new(caller, action, &arn);
        if let Some(ctx) = ctx {
            req = req.with_context(ctx);
        }
        self.authorize(rec, &req, grant_op)
    }

    fn authorize<'r>(
        &self,
        rec: &'r KeyRecord,
        req: &PolicyRequest<'_>,
        grant_op: Option<GrantOperation>,
    ) -> Result<Option<&'r Grant>, KmsError> {
        let arn = rec.arn();
        let refuse = || denied(req.caller, req.action, &arn);
        let policy = KeyPolicy::parse(&rec.policy)?;
        match policy.evaluate(req) {
            PolicyDecision::ExplicitDeny { .. } => Err(refuse()),
            PolicyDecision::Allow { .. } => Ok(None),
            PolicyDecision::ImplicitDeny => {
                let op = grant_op.ok_or_else(refuse)?;
                rec.grants
                    .iter()
                    .find(|g| g.allows(&req.caller.principal().arn, op, req.encryption_context))
                    .map(Some)
                    .ok_or_else(refuse)
            }
        }
    }

    /// Policy lockout safety check (as KMS does without BypassPolicyLockoutSafetyCheck):
    /// a policy that would not let the caller change it again is refused.
    fn check_lockout(
        &self,
        policy: &KeyPolicy,
        caller: &Caller,
        key_arn: &str,
    ) -> Result<(), KmsError> {
        let req = PolicyRequest::new(caller, "kms:PutKeyPolicy", key_arn);
        match policy.evaluate(&req) {
            PolicyDecision::Allow { .. } => Ok(()),
            _ => Err(KmsError::MalformedPolicy(format!(
                "the new key policy would not allow {} to update it later (lockout safety check)",
                caller.principal().arn
            ))),
        }
    }

    /// Shared body of simple key-management calls: resolve, authorize, then `f`.
    fn manage(
        &self,
        caller: &Caller,
        event_name: &str,
        key_id: &str,
        params: Value,
        f: impl FnOnce(&mut KeyRecord) -> Result<Value, KmsError>,
    ) -> Result<(), KmsError> {
        let action = format!("kms:{event_name}");
        self.call(caller, event_name, false, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_mut(st, &id)?;
            self.authorize_on(rec, facts, caller, &action, None, None)?;
            check_customer_managed(rec, caller, &action)?;
            facts.response = f(rec)?;
            self.save(st)
        })
    }

    /// EnableKey / DisableKey: a key pending deletion must be cancelled first.
    fn set_enabled(
        &self,
        caller: &Caller,
        event_name: &str,
        key_id: &str,
        state: KeyState,
    ) -> Result<(), KmsError> {
        self.manage(
            caller,
            event_name,
            key_id,
            serde_json::json!({"keyId": key_id}),
            |rec| {
                if rec.state == KeyState::PendingDeletion {
                    return Err(KmsError::InvalidState {
                        key: rec.arn(),
                        state: rec.state.as_str().into(),
                    });
                }
                rec.state = state;
                Ok(Value::Null)
            },
        )
    }
}
