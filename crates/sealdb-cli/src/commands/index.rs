//! `create-index`, `drop-index`, `query`: global secondary indexes of a table.

use std::io;
use std::ops::Bound;
use std::time::{Duration, Instant};

use serde_json::json;

use sealdb::{IndexSpec, IndexStatus};

use super::transfer::progress_bar;
use super::Context;
use crate::args::{CreateIndexArgs, Format, QueryArgs};
use crate::output::{decode_arg, encode_bytes, print_json, print_line, report, CliError};

pub fn create(ctx: &Context, a: CreateIndexArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    let mut spec = match (&a.path, &a.pointer, &a.extractor) {
        (Some(p), None, None) | (None, Some(p), None) => IndexSpec::json_pointer(p.clone()),
        (None, None, Some(n)) => IndexSpec::named(n.clone()),
        _ => {
            return Err(CliError::usage(
                "give exactly one of a POINTER (/path) or --extractor NAME",
            ))
        }
    };
    if a.unique {
        spec = spec.unique();
    }
    // The backfill's length, for the progress bar: the table's items now.
    let items = t.iter()?.count() as u64;
    let bar = progress_bar(items, &format!("{}/{}", a.table, a.name));
    let start = Instant::now();
    // Declared here; the engine backfills it on a thread of its own.
    t.start_index(&a.name, &spec)?;
    let status = std::thread::scope(|s| {
        let build = s.spawn(|| t.wait_index(&a.name));
        while !build.is_finished() {
            if let Some(st) = t.indexes().iter().find(|i| i.name == a.name) {
                bar.set_position(st.backfilled.min(items));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        build
            .join()
            .map_err(|_| CliError::usage("waiting for the index panicked"))
    })?;
    status?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let st = t
        .indexes()
        .into_iter()
        .find(|i| i.name == a.name)
        .ok_or_else(|| CliError::not_found(format!("index {} vanished", a.name)))?;
    report(
        a.fmt.json,
        &format!(
            "created index {}/{} ({} {}{}), backfilled {} items in {:.2?}; boundaries {}",
            a.table,
            st.name,
            st.extractor_kind,
            st.extractor,
            if st.unique { ", unique" } else { "" },
            st.backfilled,
            elapsed,
            if st.sealed_boundaries {
                "sealed"
            } else {
                "plaintext (table not encrypted)"
            },
        ),
        json!({
            "table": a.table,
            "index": st,
            "seconds": elapsed.as_secs_f64(),
        }),
    )
}

pub fn drop(ctx: &Context, table: &str, name: &str, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    db.table(table)?.drop_index(name)?;
    report(
        fmt.json,
        &format!("dropped index {table}/{name}"),
        json!({"table": table, "index": name, "dropped": true}),
    )
}

pub fn list(ctx: &Context, table: &str, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let st = db.table(table)?.indexes();
    if fmt.json {
        return print_json(&json!(st));
    }
    let mut out = io::stdout().lock();
    for i in st {
        let line = format!(
            "{}\t{}\t{} {}\t{}\t{}\tboundaries {}",
            i.name,
            if i.local { "local" } else { "global" },
            i.extractor_kind,
            i.extractor,
            if i.unique { "unique" } else { "non-unique" },
            index_state(&i),
            if i.sealed_boundaries {
                "sealed"
            } else {
                "plaintext"
            },
        );
        print_line(&mut out, &line)?;
    }
    Ok(())
}

/// Where an index stands, in a few words (`indexes`, `tables`, `status`).
pub fn index_state(i: &IndexStatus) -> String {
    if let Some(why) = i.locked {
        return format!("locked: {why}");
    }
    match (&i.backfill_error, i.ready) {
        (_, true) => "ready".to_owned(),
        (Some(why), false) if i.backfill_retrying => {
            format!("backfill retrying after {} items ({why})", i.backfilled)
        }
        (Some(why), false) => format!(
            "backfill failed after {} items ({why}); resumes at the next open",
            i.backfilled
        ),
        (None, false) => format!("backfilling ({} items so far)", i.backfilled),
    }
}

/// One line describing an index: name, `local` for a local one, extractor, uniqueness and
/// state.
pub fn index_line(i: &IndexStatus) -> String {
    format!(
        "{}{} {} {}{}, {}",
        i.name,
        if i.local { " local" } else { "" },
        i.extractor_kind,
        i.extractor,
        if i.unique { ", unique" } else { "" },
        index_state(i)
    )
}

pub fn query(ctx: &Context, a: QueryArgs) -> Result<(), CliError> {
    let bound = |b: &Option<String>, what: &str, inclusive: bool| -> Result<_, CliError> {
        Ok(match b {
            None => Bound::Unbounded,
            Some(s) if inclusive => Bound::Included(decode_arg(what, s, a.enc.hex)?),
            Some(s) => Bound::Excluded(decode_arg(what, s, a.enc.hex)?),
        })
    };
    let (db, _kms) = ctx.open_db(false)?;
    let index = db.table(&a.table)?.index(&a.name)?;
    let mut iter = match &a.prefix {
        Some(p) => {
            if a.range.from.is_some() || a.range.to.is_some() {
                return Err(CliError::usage("--prefix excludes --from and --to"));
            }
            index.prefix(decode_arg("--prefix", p, a.enc.hex)?)?
        }
        None => index.range::<Vec<u8>>((
            bound(&a.range.from, "--from key", true)?,
            bound(&a.range.to, "--to key", false)?,
        ))?,
    };
    if a.range.reverse {
        iter = iter.rev();
    }
    let limit = usize::try_from(a.range.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    let mut out = io::stdout().lock();
    for item in iter.take(limit) {
        let e = item?;
        let ik = encode_bytes("index key", &e.index_key, a.enc.hex)?;
        let pk = encode_bytes("key", &e.primary_key, a.enc.hex)?;
        let value = encode_bytes("value", &e.value, a.enc.hex)?;
        let line = if a.fmt.json {
            serde_json::to_string(&json!({"index_key": ik, "key": pk, "value": value}))?
        } else {
            [ik, pk, value].join("\t")
        };
        print_line(&mut out, &line)?;
    }
    Ok(())
}
