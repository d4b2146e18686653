//! The audit trail: one CloudTrail-shaped JSON event per KMS call, allowed or not, appended
//! to `<kms dir>/audit/audit-NNNNNN.jsonl` with size-based rotation, and a query API.
//!
//! Events carry names, ARNs, encryption contexts, key specs, grant ids and error codes.
//! They never carry key material, plaintext, ciphertext blobs or passphrases: event
//! builders take only those non-secret fields (see `EventInput`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::principal::PrincipalKind;
use super::{Caller, KmsError, TABLE_NAME_CONTEXT_KEY};
use crate::storage::{Env, WritableFile};

/// CloudTrail's event version, as in the seed's examples.
pub const EVENT_VERSION: &str = "1.05";
const AUDIT_DIR: &str = "audit";

/// What one event records. Only non-secret fields exist here.
pub(crate) struct EventInput<'a> {
    pub(crate) caller: &'a Caller,
    pub(crate) event_name: &'a str,
    pub(crate) region: &'a str,
    pub(crate) request_parameters: Value,
    pub(crate) response_elements: Value,
    pub(crate) read_only: bool,
    /// The ARN and account of each key involved, once known.
    pub(crate) keys: Vec<(String, String)>,
    /// Account to use as the recipient when no key is known.
    pub(crate) default_account: &'a str,
    pub(crate) error: Option<&'a KmsError>,
    pub(crate) time: SystemTime,
}

/// A query over the audit trail; every set field must match.
#[derive(Clone, Default, Debug)]
pub struct AuditQuery {
    /// E.g. `Decrypt`.
    pub event_name: Option<String>,
    /// A key id or key ARN (matched against `resources` and `requestParameters.keyId`).
    pub key_id: Option<String>,
    /// A table name (the `sealdb:tableName` context entry or grant constraint).
    pub table: Option<String>,
    /// Inclusive bounds on `eventTime`.
    pub since: Option<SystemTime>,
    /// Only events before this time.
    pub until: Option<SystemTime>,
}

/// The audit log of one `LocalKms`.
///
/// Durability contract (DESIGN.md section 12, "Audit trail"): `record` returns only once
/// the event's line is fsynced in a file whose directory entry is fsynced, and a call whose
/// event was not recorded fails, so no call that succeeded is missing from the trail. Each
/// open writes to a new file, and a file whose append or sync failed is never written
/// again: a torn line is always the last line of its file, where `query` skips it.
pub struct AuditLog {
    env: Arc<dyn Env>,
    dir: PathBuf,
    max_bytes: u64,
    writer: Mutex<Writer>,
    counts: Mutex<HashMap<String, u64>>,
}

struct Writer {
    index: u32,
    size: u64,
    file: Option<Box<dyn WritableFile>>,
}

fn audit_err(what: &str, path: &Path, e: io::Error) -> KmsError {
    KmsError::AuditFailed(format!("audit log: {what} {}: {e}", path.display()))
}

fn file_name(index: u32) -> String {
    format!("audit-{index:06}.jsonl")
}

impl AuditLog {
    /// Opens (creating) `<kms_dir>/audit` on the real file system. `max_bytes` is the
    /// size at which a file is rotated; 0 means never. (The local KMS opens its log
    /// through its `Env` with `open_in`; this is the AWS backend's and the tests'.)
    #[cfg(any(test, feature = "aws-kms", feature = "fuzzing"))]
    pub(crate) fn open(kms_dir: &Path, max_bytes: u64) -> Result<AuditLog, KmsError> {
        AuditLog::open_in(crate::storage::default_env(), kms_dir, max_bytes)
    }

    /// Opens (creating) `<kms_dir>/audit` through `env`. Events of this process go to a
    /// new file after the newest one there (created at the first event).
    pub(crate) fn open_in(
        env: Arc<dyn Env>,
        kms_dir: &Path,
        max_bytes: u64,
    ) -> Result<AuditLog, KmsError> {
        let dir = kms_dir.join(AUDIT_DIR);
        env.create_dir_all(&dir)
            .map_err(|e| audit_err("cannot create", &dir, e))?;
        let newest = list_files(env.as_ref(), &dir)?.last().map(|(i, _)| *i);
        let index = match newest {
            None => 1,
            Some(i) => i
                .checked_add(1)
                .ok_or_else(|| KmsError::AuditFailed("audit log: file index exhausted".into()))?,
        };
        Ok(AuditLog {
            env,
            dir,
            max_bytes,
            writer: Mutex::new(Writer {
                index,
                size: 0,
                file: None,
            }),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// The directory holding the event files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many `event_name` calls this process recorded since open.
    pub fn count(&self, event_name: &str) -> u64 {
        self.counts.lock().get(event_name).copied().unwrap_or(0)
    }

    /// Builds and appends one event. A call whose event cannot be recorded fails
    /// (fail closed): the trail must not miss a use of a key.
    pub(crate) fn record(&self, input: EventInput<'_>) -> Result<Value, KmsError> {
        let event = build_event(input);
        let mut line = serde_json::to_vec(&event)
            .map_err(|e| KmsError::AuditFailed(format!("audit log: cannot encode: {e}")))?;
        line.push(b'\n');
        self.append(&line)?;
        if let Some(name) = event.get("eventName").and_then(Value::as_str) {
            *self.counts.lock().entry(name.to_string()).or_insert(0) += 1;
        }
        Ok(event)
    }

    fn append(&self, line: &[u8]) -> Result<(), KmsError> {
        let mut w = self.writer.lock();
        let len = line.len() as u64;
        if self.max_bytes > 0 && w.size > 0 && w.size + len > self.max_bytes {
            next_file(&mut w)?;
        }
        let path = self.dir.join(file_name(w.index));
        let file = match w.file.take() {
            Some(f) => f,
            None => {
                let created = self
                    .env
                    .create(&path)
                    // IMPORTANT: the new file's name must be durable before an event in it
                    // is acknowledged.
                    .and_then(|f| self.env.sync_dir(&self.dir).map(|()| f));
                match created {
                    Ok(f) => f,
                    // Nothing was acknowledged in it: the next event creates it again.
                    Err(e) => return Err(audit_err("cannot create", &path, e)),
                }
            }
        };
        let mut file = file;
        // IMPORTANT: the event is durable before the call it records is acknowledged.
        match file.append(line).and_then(|()| file.sync()) {
            Ok(()) => {
                w.file = Some(file);
                w.size += len;
                Ok(())
            }
            Err(e) => {
                // A failed append may have left part of the line, and after a failed sync
                // the file's unsynced bytes are in doubt (a retried fsync can report
                // success for pages the kernel dropped): the file is not written again,
                // so its torn line stays its last one.
                drop(file);
                next_file(&mut w)?;
                Err(audit_err("cannot append to", &path, e))
            }
        }
    }

    /// The events matching `q`, oldest first. A torn tail of a file (a crash mid-append:
    /// damage after its last good event) is skipped; a damaged line before a good event is
    /// an error.
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<Value>, KmsError> {
        let _w = self.writer.lock(); // a consistent view: no append in between
        let mut out = Vec::new();
        for (_, path) in list_files(self.env.as_ref(), &self.dir)? {
            let data = self
                .env
                .read_all(&path)
                .map_err(|e| audit_err("cannot read", &path, e))?;
            let body = data.strip_suffix(b"\n").unwrap_or(&data);
            if body.is_empty() {
                continue;
            }
            let parsed: Vec<Result<Value, serde_json::Error>> = body
                .split(|&b| b == b'\n')
                .map(serde_json::from_slice)
                .collect();
            // Only the file's last event can be torn (each is fsynced before the next is
            // written), and a torn page may hold newlines: damage after the last good event
            // is the torn tail, skipped; damage before a good event is an error.
            let good_end = parsed.iter().rposition(Result::is_ok).map_or(0, |i| i + 1);
            for (i, event) in parsed.into_iter().take(good_end).enumerate() {
                let event = event.map_err(|e| {
                    KmsError::AuditFailed(format!(
                        "audit log {} line {}: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
                if matches(&event, q) {
                    out.push(event);
                }
            }
        }
        Ok(out)
    }
}

/// Moves the writer to the next file (rotation, or a file that must not be written again).
fn next_file(w: &mut Writer) -> Result<(), KmsError> {
    w.index = w
        .index
        .checked_add(1)
        .ok_or_else(|| KmsError::AuditFailed("audit log: file index exhausted".into()))?;
    w.size = 0;
    w.file = None;
    Ok(())
}

fn list_files(env: &dyn Env, dir: &Path) -> Result<Vec<(u32, PathBuf)>, KmsError> {
    let mut files = Vec::new();
    for name in env
        .list_dir(dir)
        .map_err(|e| audit_err("cannot list", dir, e))?
    {
        let idx = name
            .strip_prefix("audit-")
            .and_then(|s| s.strip_suffix(".jsonl"))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(i) = idx {
            files.push((i, dir.join(&name)));
        }
    }
    files.sort();
    Ok(files)
}

fn matches(event: &Value, q: &AuditQuery) -> bool {
    if let Some(name) = &q.event_name {
        if event.get("eventName").and_then(Value::as_str) != Some(name.as_str()) {
            return false;
        }
    }
    if let Some(key) = &q.key_id {
        let is_key = |s: &str| s == key || s.ends_with(&format!("/{key}"));
        let in_resources = event
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|rs| {
                rs.iter()
                    .filter_map(|r| r.get("ARN").and_then(Value::as_str))
                    .any(is_key)
            });
        let in_params = event
            .pointer("/requestParameters/keyId")
            .and_then(Value::as_str)
            .is_some_and(is_key);
        if !in_resources && !in_params {
            return false;
        }
    }
    if let Some(table) = &q.table {
        let ptr = |p: &str| {
            event
                .pointer(p)
                .and_then(|c| c.get(TABLE_NAME_CONTEXT_KEY))
                .and_then(Value::as_str)
                == Some(table.as_str())
        };
        if !ptr("/requestParameters/encryptionContext")
            && !ptr("/requestParameters/sourceEncryptionContext")
            && !ptr("/requestParameters/destinationEncryptionContext")
            && !ptr("/requestParameters/constraints/encryptionContextSubset")
            && !ptr("/requestParameters/constraints/encryptionContextEquals")
        {
            return false;
        }
    }
    if q.since.is_some() || q.until.is_some() {
        let Some(t) = event
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(|s| humantime::parse_rfc3339(s).ok())
        else {
            return false;
        };
        if q.since.is_some_and(|s| t < s) || q.until.is_some_and(|u| t > u) {
            return false;
        }
    }
    true
}

/// The global service principal of a (possibly regional) service name:
/// `sealdb.us-west-2.amazonaws.com` -> `sealdb.amazonaws.com`.
pub(crate) fn global_service_name(name: &str) -> String {
    match name.strip_suffix(".amazonaws.com") {
        Some(rest) => match rest.split_once('.') {
            Some((svc, _region)) => format!("{svc}.amazonaws.com"),
            None => name.to_string(),
        },
        None => name.to_string(),
    }
}

fn user_identity(caller: &Caller) -> Value {
    let p = caller.principal();
    let kind = p.kind();
    let mut id = Map::new();
    id.insert("type".into(), json!(kind.cloudtrail_type()));
    if kind == PrincipalKind::AwsService {
        id.insert("invokedBy".into(), json!(global_service_name(&p.arn)));
        return Value::Object(id);
    }
    id.insert("principalId".into(), json!(p.principal_id()));
    id.insert("arn".into(), json!(p.arn));
    id.insert("accountId".into(), json!(p.account));
    if let (PrincipalKind::AssumedRole, Some(role_arn)) = (kind, p.role_arn()) {
        let role_name = role_arn.rsplit('/').next().unwrap_or_default().to_string();
        let role_id = p
            .principal_id()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        id.insert(
            "sessionContext".into(),
            json!({"sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": role_arn,
                "accountId": p.account,
                "userName": role_name,
            }}),
        );
    }
    if let Some(via) = caller.via_service() {
        id.insert("invokedBy".into(), json!(global_service_name(via)));
    }
    Value::Object(id)
}

fn build_event(i: EventInput<'_>) -> Value {
    let is_service = i.caller.principal().is_service();
    let source = match (i.caller.via_service(), is_service) {
        (Some(via), _) => global_service_name(via),
        (None, true) => global_service_name(&i.caller.principal().arn),
        (None, false) => "127.0.0.1".to_string(),
    };
    let agent = if source == "127.0.0.1" {
        format!("sealdb/{}", env!("CARGO_PKG_VERSION"))
    } else {
        source.clone()
    };
    let recipient = i
        .keys
        .first()
        .map(|(_, acct)| acct.clone())
        .unwrap_or_else(|| {
            if is_service {
                i.default_account.to_string()
            } else {
                i.caller.principal().account.clone()
            }
        });
    let mut e = Map::new();
    e.insert("eventVersion".into(), json!(EVENT_VERSION));
    e.insert("userIdentity".into(), user_identity(i.caller));
    e.insert(
        "eventTime".into(),
        json!(humantime::format_rfc3339_seconds(i.time).to_string()),
    );
    e.insert("eventSource".into(), json!("kms.amazonaws.com"));
    e.insert("eventName".into(), json!(i.event_name));
    e.insert("awsRegion".into(), json!(i.region));
    e.insert("sourceIPAddress".into(), json!(source));
    e.insert("userAgent".into(), json!(agent));
    if let Some(err) = i.error {
        e.insert("errorCode".into(), json!(err.code()));
        e.insert("errorMessage".into(), json!(err.to_string()));
    }
    e.insert("requestParameters".into(), i.request_parameters);
    e.insert("responseElements".into(), i.response_elements);
    e.insert("requestID".into(), json!(uuid::Uuid::new_v4().to_string()));
    e.insert("eventID".into(), json!(uuid::Uuid::new_v4().to_string()));
    e.insert("readOnly".into(), json!(i.read_only));
    if !i.keys.is_empty() {
        let resources: Vec<Value> = i
            .keys
            .iter()
            .map(|(arn, acct)| json!({"ARN": arn, "accountId": acct, "type": "AWS::KMS::Key"}))
            .collect();
        e.insert("resources".into(), Value::Array(resources));
    }
    e.insert("eventType".into(), json!("AwsApiCall"));
    e.insert("recipientAccountId".into(), json!(recipient));
    if is_service {
        e.insert(
            "sharedEventID".into(),
            json!(uuid::Uuid::new_v4().to_string()),
        );
    }
    Value::Object(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::Principal;
    use std::io::Write;
    use std::time::Duration;

    fn input<'a>(caller: &'a Caller, name: &'a str, t: SystemTime) -> EventInput<'a> {
        EventInput {
            caller,
            event_name: name,
            region: "us-west-2",
            request_parameters: json!({"keyId": "k1", "encryptionContext": {"sealdb:tableName": "Books"}}),
            response_elements: Value::Null,
            read_only: true,
            keys: vec![(
                "arn:aws:kms:us-west-2:111122223333:key/k1".into(),
                "111122223333".into(),
            )],
            default_account: "111122223333",
            error: None,
            time: t,
        }
    }

    #[test]
    fn global_service_names() {
        assert_eq!(
            global_service_name("sealdb.us-west-2.amazonaws.com"),
            "sealdb.amazonaws.com"
        );
        assert_eq!(
            global_service_name("sealdb.amazonaws.com"),
            "sealdb.amazonaws.com"
        );
        assert_eq!(global_service_name("other"), "other");
    }

    #[test]
    fn rotation_and_query() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let log = AuditLog::open(dir.path(), 600)?;
        let caller = Caller::engine_via(
            Principal::user("111122223333", "alice"),
            "sealdb.us-west-2.amazonaws.com",
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..10u64 {
            let name = if i % 2 == 0 { "Decrypt" } else { "Encrypt" };
            log.record(input(&caller, name, t0 + Duration::from_secs(i)))?;
        }
        assert!(
            list_files(&crate::storage::StdEnv, log.dir())?.len() > 1,
            "rotated"
        );
        assert_eq!(log.query(&AuditQuery::default())?.len(), 10);
        let q = AuditQuery {
            event_name: Some("Decrypt".into()),
            since: Some(t0 + Duration::from_secs(2)),
            until: Some(t0 + Duration::from_secs(6)),
            ..Default::default()
        };
        assert_eq!(log.query(&q)?.len(), 3);
        let by_key = AuditQuery {
            key_id: Some("k1".into()),
            table: Some("Books".into()),
            ..Default::default()
        };
        assert_eq!(log.query(&by_key)?.len(), 10);
        let other = AuditQuery {
            table: Some("Movies".into()),
            ..Default::default()
        };
        assert!(log.query(&other)?.is_empty());
        assert_eq!(log.count("Decrypt"), 5);
        drop(log);
        // A reopen writes a new file and sees everything.
        let log = AuditLog::open(dir.path(), 600)?;
        log.record(input(&caller, "Decrypt", t0))?;
        assert_eq!(log.query(&AuditQuery::default())?.len(), 11);
        Ok(())
    }

    #[test]
    fn torn_tail_is_skipped_but_middle_damage_is_reported() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let log = AuditLog::open(dir.path(), 0)?;
        let caller = Caller::direct(Principal::root("111122223333"));
        log.record(input(&caller, "DescribeKey", SystemTime::UNIX_EPOCH))?;
        let path = log.dir().join(file_name(1));
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(b"{\"eventVersion\":")?;
        assert_eq!(log.query(&AuditQuery::default())?.len(), 1);
        f.write_all(b"\n{}\n")?;
        assert!(log.query(&AuditQuery::default()).is_err());
        Ok(())
    }

    #[test]
    fn identity_shapes() {
        let svc = Caller::engine_via(
            Principal::service("sealdb.us-west-2.amazonaws.com"),
            "sealdb.us-west-2.amazonaws.com",
        );
        assert_eq!(
            user_identity(&svc),
            json!({"type": "AWSService", "invokedBy": "sealdb.amazonaws.com"})
        );
        let root = Caller::direct(Principal::root("111122223333"));
        let id = user_identity(&root);
        assert_eq!(id["type"], "Root");
        assert!(id.get("invokedBy").is_none());
        let user = Caller::engine_via(
            Principal::user("111122223333", "alice"),
            "sealdb.us-west-2.amazonaws.com",
        );
        assert_eq!(user_identity(&user)["type"], "IAMUser");
        assert_eq!(user_identity(&user)["invokedBy"], "sealdb.amazonaws.com");
    }
}
