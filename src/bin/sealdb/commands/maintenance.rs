//! `flush`, `compact`, `inspect`, `verify`, `status`: the database as a whole.
//!
//! `compact`, `inspect` and `verify` need engine calls (`Db::compact_table`,
//! `Db::inspect`, `Db::verify`) that this build does not have; they say so and exit 2.

use std::io;

use serde_json::json;

use sealdb::{Db, Error};

use super::Context;
use crate::args::Format;
use crate::output::{print_json, print_line, CliError};

pub fn flush(ctx: &Context) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    db.flush()?;
    print_line(&mut io::stdout().lock(), "flushed")
}

pub fn compact(_ctx: &Context, _table: Option<&str>) -> Result<(), CliError> {
    Err(CliError::unavailable("compact"))
}

pub fn inspect(_ctx: &Context, _table: Option<&str>, _fmt: Format) -> Result<(), CliError> {
    Err(CliError::unavailable("inspect"))
}

pub fn verify(_ctx: &Context, _fmt: Format) -> Result<(), CliError> {
    Err(CliError::unavailable("verify"))
}

/// One table's encryption status, in DynamoDB's words (`SSEDescription.Status`, and
/// `INACCESSIBLE_ENCRYPTION_CREDENTIALS` when the principal cannot use the table key).
pub struct TableStatus {
    pub table: String,
    pub encrypted: bool,
    /// `ENABLED`, `DISABLED` (plaintext), or `INACCESSIBLE_ENCRYPTION_CREDENTIALS`.
    pub status: &'static str,
    /// Why the table key is not usable, when it is not.
    pub reason: Option<String>,
}

/// Checks each table's key by using it: a read of one key makes the engine unwrap the
/// table key for this principal through the KMS (or its cache).
pub fn table_statuses(db: &Db) -> Result<Vec<TableStatus>, CliError> {
    let mut out = Vec::new();
    for name in db.tables() {
        let t = db.table(&name)?;
        let encrypted = t.is_encrypted();
        let (status, reason) = match (encrypted, t.get(b"")) {
            (false, _) => ("DISABLED", None),
            (true, Ok(_)) => ("ENABLED", None),
            (true, Err(e @ (Error::Kms(_) | Error::TableUnavailable { .. }))) => {
                ("INACCESSIBLE_ENCRYPTION_CREDENTIALS", Some(e.to_string()))
            }
            (true, Err(e)) => return Err(e.into()),
        };
        out.push(TableStatus {
            table: name,
            encrypted,
            status,
            reason,
        });
    }
    Ok(out)
}

pub fn status_lines(rows: &[TableStatus]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let mut line = format!("{}\t{}", r.table, r.status);
            if let Some(why) = &r.reason {
                line.push_str(&format!("\t{why}"));
            }
            line
        })
        .collect()
}

pub fn status(ctx: &Context, f: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let rows = table_statuses(&db)?;
    if f.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"table": r.table, "encrypted": r.encrypted, "status": r.status,
                       "reason": r.reason})
            })
            .collect();
        return print_json(&json!({"principal": ctx.principal.arn, "tables": v}));
    }
    let mut out = io::stdout().lock();
    for line in status_lines(&rows) {
        print_line(&mut out, &line)?;
    }
    Ok(())
}
