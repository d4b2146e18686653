//! `flush`, `compact`, `inspect`, `verify`, `status`, `renew-grant`: the database as a whole.

use std::io;
use std::time::Duration;

use serde_json::json;

use sealdb::kms::{Caller, Kms};
use sealdb::{CacheEntryStatus, Db, Error, TableLayout};

use super::Context;
use crate::args::Format;
use crate::output::{print_json, print_line, report, CliError};

pub fn flush(ctx: &Context, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    db.flush()?;
    report(fmt.json, "flushed", json!({"flushed": true}))
}

pub fn compact(ctx: &Context, table: Option<&str>, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    match table {
        Some(t) => db.compact_table(t)?,
        None => db.compact_all()?,
    }
    let stats = db.stats();
    if fmt.json {
        let tables: Vec<_> = stats
            .tables
            .iter()
            .filter(|s| table.is_none_or(|n| n == s.name))
            .map(|t| {
                let levels: Vec<_> = t
                    .levels
                    .iter()
                    .filter(|l| l.files > 0)
                    .map(|l| json!({"level": l.level, "files": l.files, "bytes": l.bytes}))
                    .collect();
                json!({"table": t.name, "levels": levels})
            })
            .collect();
        return print_json(&json!({"compacted": table, "tables": tables}));
    }
    let mut out = io::stdout().lock();
    print_line(
        &mut out,
        &format!("compacted {}", table.unwrap_or("every table")),
    )?;
    for t in stats
        .tables
        .iter()
        .filter(|s| table.is_none_or(|n| n == s.name))
    {
        let levels: Vec<String> = t
            .levels
            .iter()
            .filter(|l| l.files > 0)
            .map(|l| format!("L{}: {} files {} bytes", l.level, l.files, l.bytes))
            .collect();
        print_line(&mut out, &format!("{}: {}", t.name, levels.join(", ")))?;
    }
    Ok(())
}

pub fn renew_grant(ctx: &Context, table: &str, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let grant = db.renew_grant(table)?;
    report(
        fmt.json,
        &format!("new grant {grant} for table {table}"),
        json!({"table": table, "grant_id": grant.to_string()}),
    )
}

/// A stored boundary (hex from the engine) shown as text when it is printable UTF-8.
pub fn show_boundary(b: &Option<String>) -> String {
    let Some(h) = b else {
        return "(sealed)".to_owned();
    };
    match hex::decode(h)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
    {
        Some(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => format!("0x{h}"),
    }
}

/// The names of `table`'s local indexes, joined, if it has any.
fn local_index_names(db: &sealdb::Db, table: &str) -> Vec<String> {
    db.table(table).map_or_else(
        |_| Vec::new(),
        |t| {
            t.indexes()
                .into_iter()
                .filter(|i| i.local)
                .map(|i| i.name)
                .collect()
        },
    )
}

/// The lines `inspect` prints for one table.
pub fn layout_lines(t: &TableLayout) -> Vec<String> {
    let how = match &t.key_arn {
        Some(arn) => format!("encrypted under {arn}"),
        None => "plaintext".to_owned(),
    };
    let mut v = vec![format!(
        "{} ({how}); memtable {} bytes, {} immutable",
        t.table, t.memtable_bytes, t.immutable_memtables
    )];
    // An index's own files are listed as `table/index` (no table name has a '/').
    if let Some((table, index)) = t.table.split_once('/') {
        v.push(if t.encrypted {
            format!(
                "  index {index} of table {table}: boundaries sealed (its keys are attribute values)"
            )
        } else {
            format!("  index {index} of table {table}: boundaries plaintext (table not encrypted)")
        });
    }
    for f in &t.files {
        v.push(format!(
            "  L{} {} {:>10} bytes {:>8} entries seq {}..{}  [{} .. {}]",
            f.level,
            f.file,
            f.size,
            f.entries,
            f.min_seq,
            f.max_seq,
            show_boundary(&f.smallest),
            show_boundary(&f.largest)
        ));
    }
    v
}

pub fn inspect(ctx: &Context, table: Option<&str>, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    if let Some(name) = table {
        db.table(name)?;
    }
    let layouts: Vec<TableLayout> = db
        .inspect()
        .into_iter()
        // A table's indexes (`table/index`) with it.
        .filter(|t| {
            table.is_none_or(|n| t.table.split_once('/').map_or(t.table.as_str(), |p| p.0) == n)
        })
        .collect();
    if fmt.json {
        let mut v = Vec::new();
        for t in &layouts {
            let mut row = serde_json::to_value(t)?;
            if let Some(obj) = row.as_object_mut() {
                match t.table.split_once('/') {
                    Some((table, index)) => {
                        obj.insert(
                            "index".into(),
                            json!({"table": table, "name": index, "sealed_boundaries": t.encrypted}),
                        );
                    }
                    // A table's local indexes keep their entries in its own files (counted in
                    // its entry counts), as the text output says.
                    None => {
                        obj.insert(
                            "local_indexes".into(),
                            json!(local_index_names(&db, &t.table)),
                        );
                    }
                }
            }
            v.push(row);
        }
        return print_json(&json!(v));
    }
    let mut out = io::stdout().lock();
    for t in &layouts {
        for line in layout_lines(t) {
            print_line(&mut out, &line)?;
        }
        // A table with local indexes keeps their entries in its own files.
        let local = local_index_names(&db, &t.table);
        if !local.is_empty() {
            let local = local.join(", ");
            print_line(
                &mut out,
                &format!(
                    "  local indexes {local}: their entries live in these files, and the entry counts include them"
                ),
            )?;
        }
    }
    Ok(())
}

pub fn verify(ctx: &Context, fmt: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let r = db.verify()?;
    if fmt.json {
        return print_json(&serde_json::to_value(&r)?);
    }
    let mut out = io::stdout().lock();
    print_line(
        &mut out,
        &format!(
            "ok: {} tables, {} SSTables and {} WAL segments; every block and record checked",
            r.tables, r.sstables, r.wal_segments
        ),
    )?;
    if !r.locked.is_empty() {
        print_line(
            &mut out,
            &format!(
                "locked (key unavailable; not checked): {}",
                r.locked.join(", ")
            ),
        )?;
    }
    if !r.unreferenced.is_empty() {
        print_line(
            &mut out,
            &format!(
                "unreferenced (no table needs them; not read, not deleted): {}",
                r.unreferenced.join(" ")
            ),
        )?;
    }
    Ok(())
}

/// One table's encryption status, in DynamoDB's words (`SSEDescription.Status`, and
/// `INACCESSIBLE_ENCRYPTION_CREDENTIALS` when the principal cannot use the table key).
pub struct TableStatus {
    pub table: String,
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
            (
                true,
                Err(
                    e
                    @ (Error::Kms(_) | Error::TableUnavailable { .. } | Error::TableLocked { .. }),
                ),
            ) => ("INACCESSIBLE_ENCRYPTION_CREDENTIALS", Some(e.to_string())),
            (true, Err(e)) => return Err(e.into()),
        };
        out.push(TableStatus {
            table: name,
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

/// Whether `material` is the newest of key `arn`, as the acting principal can see it.
fn material_state(ctx: &Context, kms: &dyn Kms, arn: &str, material: &str) -> String {
    match kms
        .describe_key(&Caller::direct(ctx.principal.clone()), arn)
        .map(|m| m.current_key_material_id)
    {
        Ok(Some(current)) if current == material => "current".to_owned(),
        Ok(Some(current)) => format!("older: the key rotated to {current}; re-wrap pending"),
        Ok(None) => "current material unknown".to_owned(),
        Err(e) => format!("current material unknown: {e}"),
    }
}

pub fn status(ctx: &Context, f: Format) -> Result<(), CliError> {
    let (db, kms) = ctx.open_db(false)?;
    let access = table_statuses(&db)?;
    let engine = db.encryption_status();
    if f.json {
        let mut tables = Vec::new();
        for e in &engine {
            let mut v = serde_json::to_value(e)?;
            let mine = access.iter().find(|a| a.table == e.table);
            if let (Some(obj), Some(a)) = (v.as_object_mut(), mine) {
                obj.insert("status".into(), json!(a.status));
                obj.insert("reason".into(), json!(a.reason));
            }
            if let Some(obj) = v.as_object_mut() {
                obj.insert("cached_keys".into(), cached_keys_json(&e.cached_keys));
                if let Ok(t) = db.table(&e.table) {
                    obj.insert("indexes".into(), json!(t.indexes()));
                }
            }
            tables.push(v);
        }
        return print_json(&json!({"principal": ctx.principal.arn, "tables": tables}));
    }
    let mut out = io::stdout().lock();
    for (line, a) in status_lines(&access).into_iter().zip(&access) {
        print_line(&mut out, &line)?;
        if let Some(e) = engine.iter().find(|e| e.table == a.table) {
            if let Some(arn) = &e.key_arn {
                print_line(&mut out, &format!("  key          {arn}"))?;
            }
            if let (Some(arn), Some(m)) = (&e.key_arn, &e.key_material) {
                print_line(
                    &mut out,
                    &format!(
                        "  material     {m} ({})",
                        material_state(ctx, kms.as_ref(), arn, m)
                    ),
                )?;
            }
            if let Some(k) = &e.key_versions {
                print_line(&mut out, &format!("  table key    {}", k.summary()))?;
            }
            print_line(&mut out, &format!("  boundaries   {}", e.boundaries))?;
            print_line(
                &mut out,
                &format!(
                    "  files        {} SSTables, {} data keys",
                    e.sstables, e.data_keys
                ),
            )?;
            if let Some(grant) = &e.grant_id {
                print_line(&mut out, &format!("  grant        {grant}"))?;
            }
            if e.encrypted {
                print_line(
                    &mut out,
                    &format!("  key cache    {}", key_cache_text(&e.cached_keys)),
                )?;
            }
            print_line(&mut out, &format!("  maintenance  {}", e.maintenance))?;
            let compaction = match &e.compaction_error {
                Some(why) => format!("failing: {why}"),
                None => "ok".to_owned(),
            };
            print_line(&mut out, &format!("  compaction   {compaction}"))?;
            if let (Some(why), Some(detail)) = (&e.locked, &e.locked_detail) {
                print_line(&mut out, &format!("  locked       {why} ({detail})"))?;
            }
            for i in db.table(&a.table)?.indexes() {
                print_line(
                    &mut out,
                    &format!(
                        "  index        {}; boundaries {}",
                        super::index::index_line(&i),
                        if i.sealed_boundaries {
                            "sealed"
                        } else {
                            "plaintext"
                        }
                    ),
                )?;
            }
        }
    }
    Ok(())
}

/// The table-key cache in one line: who holds the key, confirmed by the KMS how long ago,
/// used how long ago.
fn key_cache_text(entries: &[CacheEntryStatus]) -> String {
    if entries.is_empty() {
        return "empty (the next read or write asks the KMS)".to_owned();
    }
    entries
        .iter()
        .map(|c| {
            format!(
                "{} (confirmed {} ago, used {} ago)",
                c.principal,
                short_duration(c.age),
                short_duration(c.idle)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whole seconds, as `humantime` spells them (`4m 10s`); below a second, `0s`.
fn short_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// The cache entries with their durations in seconds (JSON numbers).
fn cached_keys_json(entries: &[CacheEntryStatus]) -> serde_json::Value {
    entries
        .iter()
        .map(|c| {
            json!({
                "principal": c.principal,
                "table": c.table,
                "age_secs": c.age.as_secs_f64(),
                "idle_secs": c.idle.as_secs_f64(),
            })
        })
        .collect()
}
