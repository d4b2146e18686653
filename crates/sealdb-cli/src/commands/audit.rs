//! `audit`: the local KMS's CloudTrail-shaped events, as JSON lines.

use std::io;
use std::time::SystemTime;

use sealdb::kms::AuditQuery;

use super::Context;
use crate::args::AuditArgs;
use crate::output::{print_line, CliError};

fn parse_since(s: &str) -> Result<SystemTime, CliError> {
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        CliError::usage(format!(
            "--since {s:?} is not an RFC 3339 time such as 2024-05-01T00:00:00Z: {e}"
        ))
    })
}

pub fn run(ctx: &Context, a: AuditArgs) -> Result<(), CliError> {
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let kms = ctx.open_kms()?;
    let q = AuditQuery {
        event_name: a.event,
        key_id: a.key_id,
        table: a.table,
        since,
        until: None,
    };
    let mut out = io::stdout().lock();
    for event in kms.audit().query(&q)? {
        print_line(&mut out, &serde_json::to_string(&event)?)?;
    }
    Ok(())
}
