//! `audit`: the local KMS's CloudTrail-shaped events, as JSON lines.

use std::io;
use std::time::SystemTime;

use std::collections::HashSet;

use serde_json::Value;

use sealdb::kms::{AuditQuery, TABLE_NAME_CONTEXT_KEY};

use super::Context;
use crate::args::AuditArgs;
use crate::output::{print_line, CliError};

/// Every event name the local KMS records (its CloudTrail `eventName`s).
const EVENT_NAMES: &[&str] = &[
    "CancelKeyDeletion",
    "CreateAlias",
    "CreateGrant",
    "CreateKey",
    "Decrypt",
    "DescribeKey",
    "DisableKey",
    "EnableKey",
    "Encrypt",
    "GenerateDataKey",
    "GetKeyPolicy",
    "ListAliases",
    "ListGrants",
    "ListKeys",
    "PutKeyPolicy",
    "ReEncrypt",
    "RetireGrant",
    "RevokeGrant",
    "ScheduleKeyDeletion",
];

fn parse_time(flag: &str, s: &str) -> Result<SystemTime, CliError> {
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        CliError::usage(format!(
            "{flag} {s:?} is not an RFC 3339 time such as 2024-05-01T00:00:00Z: {e}"
        ))
    })
}

/// The recorded spelling of `name`, matched in any case; unknown names are refused (a typo
/// would otherwise match nothing and look like an empty trail).
fn event_name(name: &str) -> Result<&'static str, CliError> {
    EVENT_NAMES
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            CliError::usage(format!(
                "--event {name:?} is not an event the KMS records; one of: {}",
                EVENT_NAMES.join(", ")
            ))
        })
}

pub fn run(ctx: &Context, a: AuditArgs) -> Result<(), CliError> {
    let since = a
        .since
        .as_deref()
        .map(|s| parse_time("--since", s))
        .transpose()?;
    let until = a
        .until
        .as_deref()
        .map(|s| parse_time("--until", s))
        .transpose()?;
    let event = a.event.as_deref().map(event_name).transpose()?;
    let kms = ctx.open_kms()?;
    let audit = kms.audit();
    let q = AuditQuery {
        event_name: event.map(str::to_owned),
        key_id: a.key_id,
        table: None,
        since,
        until,
    };
    let events = match &a.table {
        None => audit.query(&q)?,
        Some(table) => {
            // The table's own events (its name in a context or grant constraint), over the
            // whole trail: they tell its grants, its keys and its lifetime.
            let own = audit.query(&AuditQuery {
                table: Some(table.clone()),
                ..AuditQuery::default()
            })?;
            let trail = audit.query(&AuditQuery::default())?;
            let of_table = TableEvents::from_own(&own).with_end(&trail);
            audit
                .query(&q)?
                .into_iter()
                .filter(|e| of_table.contains(e))
                .collect()
        }
    };
    let mut out = io::stdout().lock();
    for event in events.iter().take(a.limit.unwrap_or(usize::MAX)) {
        print_line(&mut out, &serde_json::to_string(event)?)?;
    }
    Ok(())
}

/// What ties an event to one table. Besides the events that name it (encryption context,
/// grant constraint), a table's events are those on one of its grants (RetireGrant,
/// RevokeGrant, ListGrants of that grant: they carry only the grant id), and the key-level
/// events (DescribeKey, ListGrants, policy and state changes: they carry only the key) on
/// a key it uses, from its first event to the retirement of its last grant. A key shared
/// by several tables (the service default key) shares its key-level events among them.
#[derive(Default)]
struct TableEvents {
    ids: HashSet<String>,
    grants: HashSet<String>,
    keys: HashSet<String>,
    first: Option<String>,
    /// Set once every grant of the table is retired or revoked (the table was dropped).
    last: Option<String>,
}

impl TableEvents {
    fn from_own(own: &[Value]) -> TableEvents {
        let mut t = TableEvents::default();
        for e in own {
            t.ids.extend(str_at(e, "/eventID"));
            t.grants.extend(str_at(e, "/responseElements/grantId"));
            t.keys.extend(key_arns(e));
            if t.first.is_none() {
                t.first = str_at(e, "/eventTime");
            }
        }
        t
    }

    fn contains(&self, e: &Value) -> bool {
        if str_at(e, "/eventID").is_some_and(|id| self.ids.contains(&id)) {
            return true;
        }
        if names_an_owner(e) {
            return false; // another table's, or the database's
        }
        if let Some(g) = str_at(e, "/requestParameters/grantId") {
            return self.grants.contains(&g);
        }
        let time = str_at(e, "/eventTime").unwrap_or_default();
        // RFC 3339 UTC times of one format compare as strings.
        let during = self.first.as_ref().is_some_and(|f| time >= *f)
            && self.last.as_ref().is_none_or(|l| time <= *l);
        during && key_arns(e).any(|k| self.keys.contains(&k))
    }

    /// Closes the lifetime at the retirement or revocation of the table's last grant.
    fn with_end(mut self, trail: &[Value]) -> TableEvents {
        let mut open: HashSet<&String> = self.grants.iter().collect();
        for e in trail {
            let name = str_at(e, "/eventName").unwrap_or_default();
            if name != "RetireGrant" && name != "RevokeGrant" {
                continue;
            }
            if let Some(g) = str_at(e, "/requestParameters/grantId") {
                if open.remove(&g) && open.is_empty() {
                    self.last = str_at(e, "/eventTime");
                }
            }
        }
        self
    }
}

fn str_at(e: &Value, pointer: &str) -> Option<String> {
    e.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The key ARNs an event is about (its `resources`).
fn key_arns(e: &Value) -> impl Iterator<Item = String> + '_ {
    e.get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("ARN").and_then(Value::as_str).map(str::to_owned))
}

/// The context entry that names a database's own key material (its manifest key), not a
/// table's (the engine's `sealdb:databaseId`).
const DATABASE_ID_CONTEXT_KEY: &str = "sealdb:databaseId";

/// True when a context or constraint of the event names its owner: a table (any table)
/// or a database's own key.
fn names_an_owner(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            k == TABLE_NAME_CONTEXT_KEY || k == DATABASE_ID_CONTEXT_KEY || names_an_owner(v)
        }),
        Value::Array(a) => a.iter().any(names_an_owner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_match_in_any_case() -> Result<(), CliError> {
        assert_eq!(event_name("decrypt")?, "Decrypt");
        assert_eq!(event_name("GENERATEDATAKEY")?, "GenerateDataKey");
        assert!(event_name("Decrpyt").is_err());
        Ok(())
    }
}
