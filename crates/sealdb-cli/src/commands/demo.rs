//! `demo`: the tour a newcomer runs first. In a temporary (or given) directory it opens a
//! local KMS next to a database, creates an encrypted and a plaintext table, loads both,
//! reads, flushes, shows the encryption status (including a principal that is refused),
//! shows what a reader of the raw files can and cannot see, and prints the KMS audit events
//! it caused.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use sealdb::kms::{AuditQuery, LocalKms, Principal};
use sealdb::{Db, TableOptions, WriteOptions};

use super::maintenance::{layout_lines, status_lines, table_statuses};
use super::transfer::{load_key, load_table};
use super::{open_db_at, open_kms_at, Context};
use crate::args::DemoArgs;
use crate::output::CliError;

const ENCRYPTED: &str = "Books";
const PLAINTEXT: &str = "Metrics";
/// Another account's user: the default key's policy refuses it.
const OUTSIDER: (&str, &str) = ("444455556666", "mallory");
const VALUE_SIZE: usize = 100;
/// A key only the encrypted table has; it sorts first, so it is one of its boundaries.
const NAMED_KEY: &str = "book:dune";

fn step(n: u32, title: &str) {
    println!("\n== {n}. {title}");
}

pub fn run(ctx: &Context, a: DemoArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let temp;
    let root: PathBuf = match &a.dir {
        Some(d) => {
            // Refused before anything is printed: the demo never writes into existing data.
            if d.exists() {
                return Err(CliError::usage(format!(
                    "--dir {} already exists; the demo needs a new directory (or none, for \
                     a temporary one)",
                    d.display()
                )));
            }
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("sealdb-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let db_dir = root.join("data");
    let kms_dir = root.join("data.kms");
    println!("sealdb demo: an embedded, encrypted key-value store with KMS-rooted keys");
    println!("  database  {}", db_dir.display());
    println!(
        "  KMS       {} (a sibling, never inside the data)",
        kms_dir.display()
    );
    println!("  principal {}", ctx.principal.arn);

    let kms = open_kms_at(&kms_dir, &ctx.account, &ctx.region)?;
    {
        let db = open_db_at(
            &db_dir,
            &(std::sync::Arc::clone(&kms) as std::sync::Arc<dyn sealdb::kms::Kms>),
            ctx,
            true,
        )?;
        tour(&db, &kms, &db_dir, a.count)?;
    }

    step(9, "Summary");
    println!(
        "  2 tables, {} keys each, {:.1}s in all. The encrypted table's keys, values, index",
        a.count,
        started.elapsed().as_secs_f64()
    );
    println!("  and filters are AES-256-GCM under per-file data keys, wrapped by a table key");
    println!("  that only the KMS can unwrap; every use of that key is in the audit trail.");
    match &a.dir {
        Some(d) => println!(
            "  Kept in {}; try: sealdb --db {} tables",
            d.display(),
            db_dir.display()
        ),
        None => println!("  The temporary directory is removed now; pass --dir DIR to keep it."),
    }
    Ok(())
}

fn tour(db: &Db, kms: &LocalKms, db_dir: &Path, count: u64) -> Result<(), CliError> {
    step(1, "Create an encrypted and a plaintext table");
    let books = db.create_table(ENCRYPTED, TableOptions::encrypted())?;
    let metrics = db.create_table(PLAINTEXT, TableOptions::plaintext())?;
    println!("  {ENCRYPTED}: encrypted under the service default key alias/aws/sealdb");
    println!("  {PLAINTEXT}: plaintext, a CRC32 on every block and record");
    println!(
        "  KMS calls so far: DescribeKey {}, CreateGrant {}, GenerateDataKey {}",
        kms.call_count("DescribeKey"),
        kms.call_count("CreateGrant"),
        kms.call_count("GenerateDataKey")
    );

    step(
        2,
        &format!("Load {count} keys of {VALUE_SIZE} bytes into each"),
    );
    for t in [&books, &metrics] {
        let took = load_table(db, t, count, VALUE_SIZE, WriteOptions::default())?;
        let secs = took.as_secs_f64().max(1e-9);
        println!(
            "  {:<8} {:>8} writes in {:.2}s ({:.0}/s)",
            t.name(),
            count,
            secs,
            count as f64 / secs
        );
    }

    books.put(NAMED_KEY, "Frank Herbert, 1965")?;
    println!("  and {ENCRYPTED} put {NAMED_KEY} -> Frank Herbert, 1965");

    step(3, "Read back");
    let probe = load_key(count / 2);
    let mut samples = BTreeMap::new();
    for t in [&books, &metrics] {
        let v = t.get(&probe)?.unwrap_or_default();
        let shown = String::from_utf8_lossy(v.get(..24).unwrap_or(&v)).into_owned();
        println!("  {} get {probe} -> {shown}...", t.name());
        samples.insert(t.name().to_owned(), v.to_vec());
    }
    let named = books.get(NAMED_KEY)?.unwrap_or_default();
    println!(
        "  {ENCRYPTED} get {NAMED_KEY} -> {}",
        String::from_utf8_lossy(&named)
    );
    let first: Vec<String> = books
        .range(load_key(0)..load_key(3))?
        .map(|r| r.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
        .collect::<Result<_, _>>()?;
    println!(
        "  {ENCRYPTED} scan [{}, {}) -> {first:?}",
        load_key(0),
        load_key(3)
    );

    step(4, "Flush the memtables to SSTables");
    let t = Instant::now();
    db.flush()?;
    println!("  flushed in {:.2}s", t.elapsed().as_secs_f64());

    step(
        5,
        "Encryption status, for us and for another account's user",
    );
    for line in status_lines(&table_statuses(db)?) {
        println!("  {line}");
    }
    let outsider = db.as_principal(Principal::user(OUTSIDER.0, OUTSIDER.1))?;
    println!("  as {}:", outsider.principal().arn);
    for line in status_lines(&table_statuses(&outsider)?) {
        println!("  {line}");
    }

    step(
        6,
        "The range boundaries that stay plaintext (sealdb inspect)",
    );
    for t in db.inspect() {
        for line in layout_lines(&t) {
            println!("  {line}");
        }
    }

    step(7, "What the files on disk show");
    disk_view(db_dir, &samples)?;

    step(8, "The KMS audit events this caused (one of each kind)");
    audit_view(kms)?;
    Ok(())
}

/// Searches every file of the data directory for a sample value of each table and for a
/// key of the encrypted table (its smallest): what someone holding only the disk finds.
fn disk_view(db_dir: &Path, samples: &BTreeMap<String, Vec<u8>>) -> Result<(), CliError> {
    let mut names: Vec<PathBuf> = fs::read_dir(db_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    println!(
        "  {:<16} {:>10}  {:<14} {:<14} key {NAMED_KEY}",
        "file", "bytes", "Books value", "Metrics value"
    );
    for path in names {
        let bytes = fs::read(&path)?;
        let found =
            |needle: &[u8]| !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle);
        let yes_no = |b: bool| if b { "visible" } else { "-" };
        let books_value = samples.get(ENCRYPTED).is_some_and(|v| found(v));
        let metrics_value = samples.get(PLAINTEXT).is_some_and(|v| found(v));
        let key = found(NAMED_KEY.as_bytes());
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        println!(
            "  {:<16} {:>10}  {:<14} {:<14} {}",
            name.unwrap_or_default(),
            bytes.len(),
            yes_no(books_value),
            yes_no(metrics_value),
            yes_no(key)
        );
    }
    println!("  The Books key is visible only where the manifest keeps each file's smallest and");
    println!("  largest key in plaintext (the range boundaries; --sealed-boundaries hides them).");
    println!("  Books values never appear; Metrics values do: it is a plaintext table.");
    Ok(())
}

/// The first event of each (event name, outcome), compacted to who, what, why.
fn audit_view(kms: &LocalKms) -> Result<(), CliError> {
    let events = kms.audit().query(&AuditQuery::default())?;
    let mut seen = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let name = text(e, "/eventName");
        let error = text(e, "/errorCode");
        *counts.entry(name.clone()).or_default() += 1;
        seen.entry((name, error)).or_insert(e);
    }
    let mut shown: Vec<&Value> = seen.into_values().collect();
    shown.sort_by_key(|e| text(e, "/eventTime"));
    for e in shown {
        let mut line = json!({
            "eventTime": e.pointer("/eventTime"),
            "eventName": e.pointer("/eventName"),
            "user": e.pointer("/userIdentity/arn").or(e.pointer("/userIdentity/invokedBy")),
            "invokedBy": e.pointer("/userIdentity/invokedBy"),
            "encryptionContext": e.pointer("/requestParameters/encryptionContext"),
        });
        if let (Some(code), Some(obj)) = (e.pointer("/errorCode"), line.as_object_mut()) {
            obj.insert("errorCode".into(), code.clone());
        }
        println!("  {}", serde_json::to_string(&line)?);
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  {} events in all: {}", events.len(), summary.join(", "));
    println!("  (sealdb --kms <dir> audit prints them in full)");
    Ok(())
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
