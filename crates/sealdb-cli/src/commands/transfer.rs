//! `import`, `export` and `load`: many keys at once, written in atomic batches.

use std::io::{self, BufRead, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use sealdb::{Db, Table, WriteBatch, WriteOptions};

use super::Context;
use crate::args::{ImportExportArgs, LoadArgs};
use crate::output::{decode_arg, encode_bytes, print_line, tsv_line, CliError};

/// Writes per batch: large enough to amortize the WAL append, small enough to bound memory.
pub const BATCH: usize = 1000;

#[derive(Deserialize)]
struct Record {
    key: String,
    value: String,
}

/// Parses one input line into a key and a value.
fn parse_line(line: &str, n: usize, a: &ImportExportArgs) -> Result<(Vec<u8>, Vec<u8>), CliError> {
    let (k, v) = if a.jsonl {
        let r: Record = serde_json::from_str(line).map_err(|e| {
            CliError::usage(format!(
                "line {n}: expected {{\"key\": ..., \"value\": ...}}: {e}"
            ))
        })?;
        (r.key, r.value)
    } else {
        let (k, v) = line.split_once('\t').ok_or_else(|| {
            CliError::usage(format!("line {n}: expected key<TAB>value, found no tab"))
        })?;
        (k.to_owned(), v.to_owned())
    };
    let ctx = |what: &str| format!("{what} on line {n}");
    Ok((
        decode_arg(&ctx("key"), &k, a.enc.hex)?,
        decode_arg(&ctx("value"), &v, a.enc.hex)?,
    ))
}

pub fn import(ctx: &Context, a: ImportExportArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    let opts = WriteOptions { sync: a.sync };
    let mut batch = WriteBatch::new();
    let mut total = 0u64;
    for (i, line) in io::stdin().lock().lines().enumerate() {
        let line = line?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        let (k, v) = parse_line(line, i + 1, &a)?;
        batch.put(&t, k, v);
        total += 1;
        if batch.len() >= BATCH {
            db.write(&batch, opts)?;
            batch = WriteBatch::new();
        }
    }
    if !batch.is_empty() {
        db.write(&batch, opts)?;
    }
    eprintln!("imported {total} records into {}", a.table);
    Ok(())
}

pub fn export(ctx: &Context, a: ImportExportArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for item in t.iter()? {
        let (k, v) = item?;
        let key = encode_bytes("key", &k, a.enc.hex)?;
        let value = encode_bytes("value", &v, a.enc.hex)?;
        let line = if a.jsonl {
            serde_json::to_string(&json!({"key": key, "value": value}))?
        } else {
            tsv_line(&key, &value)?
        };
        print_line(&mut out, &line)?;
    }
    Ok(())
}

/// A progress bar on stderr, hidden when stderr is not a terminal (pipes, CI, tests).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let target = if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// The key `load` writes for index `i`: fixed width so that key order is index order.
pub fn load_key(i: u64) -> String {
    format!("key{i:012}")
}

/// Writes `count` generated keys with random values of `value_size` bytes into `t`,
/// in batches; returns the time it took.
pub fn load_table(
    db: &Db,
    t: &Table,
    count: u64,
    value_size: usize,
    opts: WriteOptions,
) -> Result<Duration, CliError> {
    let bar = progress_bar(count, t.name());
    let start = Instant::now();
    let mut rng = rand::thread_rng();
    let mut raw = vec![0u8; value_size.div_ceil(2)];
    let mut batch = WriteBatch::new();
    for i in 0..count {
        rng.fill_bytes(&mut raw);
        // Printable values, so that `get` and `scan` show them as text.
        let mut value = hex::encode(&raw);
        value.truncate(value_size);
        batch.put(t, load_key(i), value);
        if batch.len() >= BATCH {
            db.write(&batch, opts)?;
            batch = WriteBatch::new();
            bar.set_position(i + 1);
        }
    }
    if !batch.is_empty() {
        db.write(&batch, opts)?;
    }
    bar.finish_and_clear();
    Ok(start.elapsed())
}

pub fn load(ctx: &Context, a: LoadArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    let took = load_table(
        &db,
        &t,
        a.count,
        a.value_size,
        WriteOptions { sync: a.sync },
    )?;
    let secs = took.as_secs_f64().max(1e-9);
    print_line(
        &mut io::stdout().lock(),
        &format!(
            "loaded {} keys of {} value bytes into {} in {:.2}s ({:.0} writes/s)",
            a.count,
            a.value_size,
            a.table,
            secs,
            a.count as f64 / secs
        ),
    )
}
