//! `audit`: the local KMS's CloudTrail-shaped events, as JSON lines.

use std::io;
use std::time::SystemTime;

use sealdb::kms::AuditQuery;

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
    let q = AuditQuery {
        event_name: event.map(str::to_owned),
        key_id: a.key_id,
        table: a.table,
        since,
        until,
    };
    let mut out = io::stdout().lock();
    let events = kms.audit().query(&q)?;
    for event in events.iter().take(a.limit.unwrap_or(usize::MAX)) {
        print_line(&mut out, &serde_json::to_string(event)?)?;
    }
    Ok(())
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
