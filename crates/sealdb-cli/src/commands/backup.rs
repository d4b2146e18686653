//! `backup`, `restore`, and `drop-table` (with `--delete-key`, crypto-shredding).

use serde_json::json;

use sealdb::Db;

use super::{engine_options, Context};
use crate::args::{BackupArgs, DropTableArgs, RestoreArgs};
use crate::output::{report, rfc3339, CliError};

pub fn backup(ctx: &Context, a: BackupArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let r = db.checkpoint(&a.dir)?;
    report(
        a.fmt.json,
        &format!(
            "backup {}: {} SSTables ({} hard-linked), {} WAL segments, {} bytes copied, up to \
             sequence {}; restore it with the same KMS keystore ({})",
            r.dir.display(),
            r.sstables,
            r.hard_linked,
            r.wal_segments,
            r.bytes_copied,
            r.last_seq,
            ctx.kms_dir.display()
        ),
        serde_json::to_value(&r)?,
    )
}

pub fn restore(ctx: &Context, a: RestoreArgs) -> Result<(), CliError> {
    let kms = ctx.open_engine_kms(false)?;
    let r = Db::restore_checkpoint(&a.backup, &a.dir, engine_options(&kms, ctx, false))?;
    let mut text = format!(
        "restored {} into {}: {} files, {} bytes; verified {} tables, {} SSTables, {} WAL \
         segments",
        a.backup.display(),
        r.dir.display(),
        r.files,
        r.bytes,
        r.verify.tables,
        r.verify.sstables,
        r.verify.wal_segments
    );
    if !r.verify.locked.is_empty() {
        text.push_str(&format!(
            "\nlocked (key unavailable; not readable): {}",
            r.verify.locked.join(", ")
        ));
    }
    report(a.fmt.json, &text, serde_json::to_value(&r)?)
}

pub fn drop_table(ctx: &Context, a: DropTableArgs) -> Result<(), CliError> {
    let (db, _kms) = ctx.open_db(false)?;
    let name = &a.name;
    if !a.delete_key {
        db.drop_table(name)?;
        return report(
            a.fmt.json,
            &format!("dropped table {name}"),
            json!({"table": name, "dropped": true}),
        );
    }
    let d = db.drop_table_and_delete_key(name, a.pending_days)?;
    let when = d
        .deletion_date
        .map(rfc3339)
        .unwrap_or_else(|| "a date the KMS did not report".into());
    report(
        a.fmt.json,
        &format!(
            "dropped table {name}; its KMS key {} is scheduled for deletion on {when}: from \
             then on every copy of the table, backups included, is unreadable",
            d.key_arn
        ),
        json!({
            "table": name,
            "dropped": true,
            "key_arn": d.key_arn,
            "deletion_date": d.deletion_date.map(rfc3339),
        }),
    )
}
