//! `create-table`, `drop-table`, `tables`, `update-table`, `rewrap-keys`,
//! `rotate-table-key`.

use std::io;

use serde_json::json;

use sealdb::TableOptions;

use super::Context;
use crate::args::{CreateTableArgs, Format, RotateTableKeyArgs, UpdateTableArgs};
use crate::output::{print_json, print_line, report, CliError};

pub fn create(ctx: &Context, a: CreateTableArgs) -> Result<(), CliError> {
    let mut opts = match (&a.key_id, a.plaintext) {
        (_, true) => TableOptions::plaintext(),
        (Some(k), false) => TableOptions::encrypted_with(k.clone()),
        (None, false) => TableOptions::encrypted(),
    };
    if a.lz4 {
        opts = opts.with_compression(sealdb::Compression::Lz4);
    }
    if a.sealed_boundaries {
        opts = opts.with_sealed_boundaries();
    }
    for spec in &a.index {
        let (name, spec) = local_index_arg(spec)?;
        opts = opts.with_local_index(name, spec);
    }
    let (db, _kms) = ctx.open_db(true)?;
    let t = db.create_table(&a.name, opts)?;
    let key_arn = db
        .encryption_status()
        .into_iter()
        .find(|s| s.table == a.name)
        .and_then(|s| s.key_arn);
    let how = match &key_arn {
        Some(arn) => format!("encrypted under {arn}"),
        None => "plaintext".to_owned(),
    };
    let local: Vec<String> = t.indexes().iter().map(|i| i.name.clone()).collect();
    let with = if local.is_empty() {
        String::new()
    } else {
        format!(", local indexes {}", local.join(", "))
    };
    report(
        a.fmt.json,
        &format!("created table {} ({how}{with})", a.name),
        json!({"table": a.name, "encrypted": t.is_encrypted(), "key_arn": key_arn, "created": true, "local_indexes": local}),
    )
}

/// `--index NAME=/pointer[,unique]`: a local index's name and spec.
fn local_index_arg(arg: &str) -> Result<(String, sealdb::IndexSpec), CliError> {
    let bad = || {
        CliError::usage(format!(
            "--index {arg:?}: expected NAME=/json/pointer or NAME=/json/pointer,unique"
        ))
    };
    let (name, rest) = arg.split_once('=').ok_or_else(bad)?;
    let (pointer, unique) = match rest.strip_suffix(",unique") {
        Some(p) => (p, true),
        None => (rest, false),
    };
    if name.is_empty() || !pointer.starts_with('/') {
        return Err(bad());
    }
    let spec = sealdb::IndexSpec::json_pointer(pointer);
    Ok((name.to_owned(), if unique { spec.unique() } else { spec }))
}

pub fn list(ctx: &Context, f: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let mut rows = Vec::new();
    for name in db.tables() {
        let t = db.table(&name)?;
        rows.push((name, t.is_encrypted(), t.locked(), t.indexes()));
    }
    if f.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(name, enc, locked, indexes)| {
                json!({
                    "name": name,
                    "encrypted": enc,
                    "locked": locked.map(|r| r.as_str()),
                    "indexes": indexes,
                })
            })
            .collect();
        return print_json(&json!(v));
    }
    let mut out = io::stdout().lock();
    for (name, enc, locked, indexes) in rows {
        let how = if enc { "encrypted" } else { "plaintext" };
        match locked {
            Some(why) => print_line(&mut out, &format!("{name}\t{how}\tlocked: {why}"))?,
            None => print_line(&mut out, &format!("{name}\t{how}"))?,
        }
        for i in &indexes {
            print_line(
                &mut out,
                &format!("  index {}", super::index::index_line(i)),
            )?;
        }
    }
    Ok(())
}

/// `update-table T --key-id K | --default-key`: the table key re-wrapped under another KMS key.
pub fn update(ctx: &Context, a: UpdateTableArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let before = db
        .encryption_status()
        .into_iter()
        .find(|s| s.table == a.name)
        .and_then(|s| s.key_arn);
    let key = if a.default_key {
        None
    } else {
        a.key_id.as_deref()
    };
    let arn = db.update_table_key(&a.name, key)?;
    report(
        a.fmt.json,
        &format!("table {} is encrypted under {arn}", a.name),
        json!({"table": a.name, "previous_key_arn": before, "key_arn": arn}),
    )
}

/// `rewrap-keys`: re-wraps table keys whose KMS key rotated.
pub fn rewrap(ctx: &Context, f: Format) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let done = db.rewrap_table_keys()?;
    if f.json {
        let v: Vec<_> = done
            .iter()
            .map(|r| {
                json!({"table": r.table, "fromMaterial": r.from_material,
                            "toMaterial": r.to_material})
            })
            .collect();
        return print_json(&json!({"rewrapped": v}));
    }
    let mut out = io::stdout().lock();
    if done.is_empty() {
        return print_line(
            &mut out,
            "every table key is wrapped under its KMS key's newest material",
        );
    }
    for r in &done {
        print_line(
            &mut out,
            &format!(
                "{}\tre-wrapped: key material {} -> {}",
                r.table, r.from_material, r.to_material
            ),
        )?;
    }
    Ok(())
}

/// `rotate-table-key T [--no-wait]`: a new table key; then (unless `--no-wait`) the
/// re-encryption of the files under the older key, with a progress line per step.
pub fn rotate_key(ctx: &Context, a: RotateTableKeyArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let r = db.rotate_table_key(&a.name)?;
    let progress = |db: &sealdb::Db| {
        db.table_key_status()
            .into_iter()
            .find(|s| s.table == a.name)
    };
    let mut out = io::stdout().lock();
    if !a.fmt.json {
        print_line(
            &mut out,
            &format!(
                "table {}: table key rotated, version {} -> {}",
                r.table, r.from_version, r.to_version
            ),
        )?;
    }
    let mut lines = Vec::new();
    if !a.no_wait {
        loop {
            let work = db.continue_table_key_rotations(1)?;
            if let Some(s) = progress(&db) {
                if !a.fmt.json {
                    print_line(&mut out, &format!("  {}", s.summary()))?;
                }
                lines.push(s);
            }
            let mine_pending = progress(&db).is_some_and(|s| s.live_versions > 1);
            if !mine_pending || (work.files_rewritten == 0 && work.retired.is_empty()) {
                break;
            }
        }
    }
    if a.fmt.json {
        return print_json(&json!({"rotation": r, "progress": lines, "status": progress(&db)}));
    }
    Ok(())
}
