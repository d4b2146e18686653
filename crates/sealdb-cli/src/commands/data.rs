//! `put`, `get`, `delete`, `scan`: one key or one range of one table.

use std::io;
use std::ops::Bound;

use serde_json::json;

use sealdb::WriteOptions;

use super::Context;
use crate::args::{Encoding, Format, ScanArgs};
use crate::output::{
    decode_arg, encode_bytes, print_json, print_line, report, tsv_line, CliError, Exit,
};

pub fn put(
    ctx: &Context,
    table: &str,
    key: &str,
    value: &str,
    enc: Encoding,
    sync: bool,
    fmt: Format,
) -> Result<(), CliError> {
    let k = decode_arg("key", key, enc.hex)?;
    let v = decode_arg("value", value, enc.hex)?;
    let (db, _kms) = ctx.open_db(false)?;
    db.table(table)?
        .put_opt(k, v, WriteOptions::with_sync(sync))?;
    if fmt.json {
        return report(
            true,
            "",
            json!({"table": table, "key": key, "put": true, "synced": sync}),
        );
    }
    Ok(())
}

pub fn get(
    ctx: &Context,
    table: &str,
    key: &str,
    enc: Encoding,
    fmt: Format,
) -> Result<(), CliError> {
    let k = decode_arg("key", key, enc.hex)?;
    let (db, _kms) = ctx.open_db(false)?;
    let Some(v) = db.table(table)?.get(&k)? else {
        if fmt.json {
            // A JSON reader gets an object either way; the exit code still says "absent".
            print_json(&json!({"key": key, "value": null}))?;
            return Err(CliError::new(Exit::NotFound, ""));
        }
        return Err(CliError::not_found(format!(
            "key {key:?} is not in table {table}"
        )));
    };
    let value = encode_bytes("value", &v, enc.hex)?;
    if fmt.json {
        return print_json(&json!({"key": key, "value": value}));
    }
    print_line(&mut io::stdout().lock(), &value)
}

pub fn delete(
    ctx: &Context,
    table: &str,
    key: &str,
    enc: Encoding,
    sync: bool,
    fmt: Format,
) -> Result<(), CliError> {
    let k = decode_arg("key", key, enc.hex)?;
    let (db, _kms) = ctx.open_db(false)?;
    db.table(table)?
        .delete_opt(k, WriteOptions::with_sync(sync))?;
    if fmt.json {
        return report(
            true,
            "",
            json!({"table": table, "key": key, "deleted": true, "synced": sync}),
        );
    }
    Ok(())
}

pub fn scan(ctx: &Context, a: ScanArgs) -> Result<(), CliError> {
    let bound = |b: &Option<String>, what: &str, inclusive: bool| -> Result<_, CliError> {
        Ok(match b {
            None => Bound::Unbounded,
            Some(s) if inclusive => Bound::Included(decode_arg(what, s, a.enc.hex)?),
            Some(s) => Bound::Excluded(decode_arg(what, s, a.enc.hex)?),
        })
    };
    let lower = bound(&a.range.from, "--from key", true)?;
    let upper = bound(&a.range.to, "--to key", false)?;
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    let mut iter = t.range::<Vec<u8>>((lower, upper))?;
    if a.range.reverse {
        iter = iter.rev();
    }
    let limit = a.range.limit.unwrap_or(u64::MAX);
    let mut out = io::stdout().lock();
    for item in iter.take(usize::try_from(limit).unwrap_or(usize::MAX)) {
        let (k, v) = item?;
        let key = encode_bytes("key", &k, a.enc.hex)?;
        let value = encode_bytes("value", &v, a.enc.hex)?;
        let line = if a.fmt.json {
            serde_json::to_string(&json!({"key": key, "value": value}))?
        } else {
            tsv_line(&key, &value)?
        };
        print_line(&mut out, &line)?;
    }
    Ok(())
}
