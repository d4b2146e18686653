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
use crate::output::{
    decode_arg, encode_bytes, print_line, rate, report, thousands, tsv_line, CliError,
};

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
    let opts = WriteOptions::with_sync(a.sync);
    let mut batch = WriteBatch::new();
    // Records acknowledged by the engine so far: what a failure leaves in the table.
    let mut written = 0u64;
    let mut read = 0u64;
    let failed = |written: u64, e: CliError| {
        let kept = if a.atomic || written == 0 {
            "nothing was written".to_owned()
        } else {
            format!(
                "the first {written} records were written (in batches of {BATCH}); rerun with \
                 --atomic for all or nothing"
            )
        };
        CliError::new(e.exit, format!("{}; {kept}", e.message))
    };
    for (i, line) in io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| failed(written, e.into()))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        let (k, v) = parse_line(line, i + 1, &a).map_err(|e| failed(written, e))?;
        batch.put(&t, k, v);
        read += 1;
        if !a.atomic && batch.len() >= BATCH {
            db.write(&batch, opts)
                .map_err(|e| failed(written, e.into()))?;
            written = read;
            batch = WriteBatch::new();
        }
    }
    if !batch.is_empty() {
        db.write(&batch, opts)
            .map_err(|e| failed(written, e.into()))?;
        written = read;
    }
    let text = format!("imported {written} records into {}", a.table);
    if a.json {
        return report(
            true,
            "",
            json!({"table": a.table, "imported": written, "atomic": a.atomic}),
        );
    }
    eprintln!("{text}");
    Ok(())
}

/// One exported line: a JSON object, or `key<TAB>value` (refused for text with a tab or a
/// newline, which would not read back the same).
fn export_line(k: &[u8], v: &[u8], a: &ImportExportArgs) -> Result<String, CliError> {
    let key = encode_bytes("key", k, a.enc.hex)?;
    let value = encode_bytes("value", v, a.enc.hex)?;
    if a.jsonl {
        Ok(serde_json::to_string(&json!({"key": key, "value": value}))?)
    } else {
        tsv_line(&key, &value)
    }
}

pub fn export(ctx: &Context, a: ImportExportArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let t = db.table(&a.table)?;
    // Both passes read one snapshot, and this process holds the database lock: the check
    // sees exactly the entries the second pass prints, so nothing is half printed.
    let snap = db.snapshot();
    for item in t.range_at_snapshot::<&[u8]>(.., &snap)? {
        let (k, v) = item?;
        export_line(&k, &v, &a)?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    for item in t.range_at_snapshot::<&[u8]>(.., &snap)? {
        let (k, v) = item?;
        print_line(&mut out, &export_line(&k, &v, &a)?)?;
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
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({rate}, {eta} left)")
    {
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&rate(state.per_sec()));
            },
        );
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
        WriteOptions::with_sync(a.sync),
    )?;
    let secs = took.as_secs_f64().max(1e-9);
    let per_sec = a.count as f64 / secs;
    report(
        a.fmt.json,
        &format!(
            "loaded {} keys of {} value bytes into {} in {:.2}s ({} writes/s)",
            a.count,
            a.value_size,
            a.table,
            secs,
            thousands(per_sec.round() as u64)
        ),
        json!({
            "table": a.table,
            "keys": a.count,
            "value_size": a.value_size,
            "seconds": secs,
            "writes_per_second": per_sec,
        }),
    )
}
