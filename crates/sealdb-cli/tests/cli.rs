//! The `sealdb` binary end to end: every command, its exit codes, `--json`, and bad input
//! (unknown table, malformed hex, missing value, a locked database) giving one clear
//! sentence on stderr and never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::{run_command, Fixture, Run, TestResult, OUTSIDER};
use serde_json::Value;

impl Fixture {
    /// An encrypted table `Books` and a plaintext table `Metrics`.
    fn with_tables(self) -> Result<Fixture, String> {
        self.run(&["create-table", "Books"])
            .map_err(|e| e.to_string())?
            .ok()?;
        self.run(&["create-table", "Metrics", "--plaintext"])
            .map_err(|e| e.to_string())?
            .ok()?;
        Ok(self)
    }
}

fn sst_files(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "sst") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

#[test]
fn tables_and_point_operations() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let tables = f.run(&["tables", "--json"])?.ok()?.json()?;
    assert_eq!(
        tables,
        serde_json::json!([{"name": "Books", "encrypted": true, "locked": null, "indexes": []},
                           {"name": "Metrics", "encrypted": false, "locked": null, "indexes": []}])
    );
    assert_eq!(
        f.run(&["tables"])?.ok()?.stdout,
        "Books\tencrypted\nMetrics\tplaintext\n"
    );
    f.run(&["put", "Books", "dune", "Frank Herbert", "--sync"])?
        .ok()?;
    assert_eq!(
        f.run(&["get", "Books", "dune"])?.ok()?.stdout,
        "Frank Herbert\n"
    );
    let j = f.run(&["get", "Books", "dune", "--json"])?.ok()?.json()?;
    assert_eq!(
        j,
        serde_json::json!({"key": "dune", "value": "Frank Herbert"})
    );

    // Absent key: exit 1 and one sentence.
    let r = f.run(&["get", "Books", "solaris"])?;
    assert_eq!(r.code, 1);
    assert!(
        r.error().contains("\"solaris\" is not in table Books"),
        "{}",
        r.stderr
    );

    f.run(&["delete", "Books", "dune"])?.ok()?;
    assert_eq!(f.run(&["get", "Books", "dune"])?.code, 1);

    // Binary data through --hex; non-UTF-8 output without --hex is refused clearly.
    f.run(&["put", "Metrics", "00ff", "deadbeef", "--hex"])?
        .ok()?;
    assert_eq!(
        f.run(&["get", "Metrics", "00ff", "--hex"])?.ok()?.stdout,
        "deadbeef\n"
    );
    let r = f.run(&["scan", "Metrics"])?;
    assert_eq!(r.code, 2);
    assert!(r.error().contains("--hex"), "{}", r.stderr);

    f.run(&["drop-table", "Metrics"])?.ok()?;
    assert_eq!(f.run(&["tables"])?.ok()?.stdout, "Books\tencrypted\n");
    assert_eq!(f.run(&["drop-table", "Metrics"])?.code, 1);
    Ok(())
}

#[test]
fn scan_bounds_limit_reverse() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    for k in ["a", "b", "c", "d", "e"] {
        f.run(&["put", "Books", k, &format!("v{k}")])?.ok()?;
    }
    let keys = |r: Run| -> Vec<String> {
        r.stdout
            .lines()
            .filter_map(|l| l.split('\t').next().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        keys(f.run(&["scan", "Books"])?.ok()?),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(
        keys(
            f.run(&["scan", "Books", "--from", "b", "--to", "e"])?
                .ok()?
        ),
        ["b", "c", "d"]
    );
    assert_eq!(
        keys(
            f.run(&["scan", "Books", "--reverse", "--limit", "2"])?
                .ok()?
        ),
        ["e", "d"]
    );
    let r = f.run(&["scan", "Books", "--limit", "1", "--json"])?.ok()?;
    let line: Value = serde_json::from_str(r.stdout.trim())?;
    assert_eq!(line, serde_json::json!({"key": "a", "value": "va"}));
    Ok(())
}

#[test]
fn import_export_round_trip() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let tsv = "k1\tone\nk2\ttwo words\n\nk3\tthree\n";
    let r = f.run_with_stdin(&["import", "Books"], tsv)?.ok()?;
    assert!(r.stderr.contains("imported 3 records"), "{}", r.stderr);
    assert_eq!(
        f.run(&["export", "Books"])?.ok()?.stdout,
        "k1\tone\nk2\ttwo words\nk3\tthree\n"
    );

    let jsonl = "{\"key\":\"x\",\"value\":\"tab\\there\"}\n{\"key\":\"y\",\"value\":\"2\"}\n";
    f.run_with_stdin(&["import", "Metrics", "--jsonl"], jsonl)?
        .ok()?;
    assert_eq!(
        f.run(&["export", "Metrics", "--jsonl"])?.ok()?.stdout,
        jsonl
    );
    // A tab inside a value cannot go out as TSV: refused, not mangled.
    assert_eq!(f.run(&["export", "Metrics"])?.code, 2);

    let r = f.run_with_stdin(&["import", "Books"], "k9\tnine\nno tab here\n")?;
    assert_eq!(r.code, 2);
    assert!(r.error().contains("line 2"), "{}", r.stderr);
    let r = f.run_with_stdin(&["import", "Books", "--hex"], "zz\t00\n")?;
    assert_eq!(r.code, 2);
    assert!(r.error().contains("not hex"), "{}", r.stderr);
    Ok(())
}

#[test]
fn load_flush_status_audit() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let r = f
        .run(&["load", "Books", "--count", "3000", "--value-size", "32"])?
        .ok()?;
    assert!(r.stdout.contains("loaded 3000 keys"), "{}", r.stdout);
    let v = f.run(&["get", "Books", "key000000002999"])?.ok()?.stdout;
    assert_eq!(v.trim_end().len(), 32);
    assert_eq!(f.run(&["flush"])?.ok()?.stdout, "flushed\n");
    assert!(!sst_files(&f.db)?.is_empty());
    assert_eq!(f.run(&["get", "Books", "key000000001500"])?.code, 0);

    let s = f.run(&["status", "--json"])?.ok()?.json()?;
    assert_eq!(s.pointer("/tables/0/status"), Some(&Value::from("ENABLED")));
    assert_eq!(
        s.pointer("/tables/1/status"),
        Some(&Value::from("DISABLED"))
    );
    let s = f
        .run(&["--principal", OUTSIDER, "status", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(
        s.pointer("/tables/0/status"),
        Some(&Value::from("INACCESSIBLE_ENCRYPTION_CREDENTIALS"))
    );

    let r = f.run(&["audit", "--event", "GenerateDataKey"])?.ok()?;
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // The table key, and the database key that came with the first encrypted table.
    assert_eq!(events.len(), 2);
    assert!(events[1]
        .pointer("/requestParameters/encryptionContext/sealdb:databaseId")
        .is_some());
    let events: Vec<Value> = events
        .into_iter()
        .filter(|e| {
            e.pointer("/requestParameters/encryptionContext/sealdb:tableName")
                .is_some()
        })
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].pointer("/requestParameters/encryptionContext/sealdb:tableName"),
        Some(&Value::from("Books"))
    );
    let denied = f
        .run(&["audit", "--event", "Decrypt", "--table", "Books"])?
        .ok()?;
    assert!(denied.stdout.contains("AccessDenied"), "{}", denied.stdout);
    let later = f.run(&["audit", "--since", "2999-01-01T00:00:00Z"])?.ok()?;
    assert_eq!(later.stdout, "");
    assert_eq!(f.run(&["audit", "--since", "yesterday"])?.code, 2);
    Ok(())
}

#[test]
fn access_denied_is_exit_3() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["put", "Books", "k", "v"])?.ok()?;
    f.run(&["put", "Metrics", "k", "v"])?.ok()?;
    let r = f.run(&["--principal", OUTSIDER, "get", "Books", "k"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.error().contains("not authorized to perform kms:Decrypt"),
        "{}",
        r.stderr
    );
    // A plaintext table asks no KMS.
    let r = f
        .run(&["--principal", OUTSIDER, "get", "Metrics", "k"])?
        .ok()?;
    assert_eq!(r.stdout, "v\n");
    let r = f.run(&["--principal", "not-an-arn", "tables"])?;
    assert_eq!(r.code, 2);
    Ok(())
}

#[test]
fn kms_commands() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let md = f.run(&["kms", "describe-key"])?.ok()?.json()?;
    let arn = md
        .pointer("/KeyMetadata/Arn")
        .and_then(Value::as_str)
        .ok_or("no Arn")?
        .to_owned();
    assert!(
        arn.starts_with("arn:aws:kms:us-west-2:111122223333:key/"),
        "{arn}"
    );
    assert_eq!(
        md.pointer("/KeyMetadata/KeyManager"),
        Some(&Value::from("AWS"))
    );

    let policy = f.run(&["kms", "get-key-policy"])?.ok()?.json()?;
    let statements = policy
        .pointer("/Policy/Statement")
        .and_then(Value::as_array);
    assert_eq!(statements.map(Vec::len), Some(3));

    let grants = f.run(&["kms", "list-grants"])?.ok()?.json()?;
    let table_grant = grants
        .pointer("/Grants/0/GrantId")
        .and_then(Value::as_str)
        .ok_or("no grant")?
        .to_owned();
    assert_eq!(
        grants.pointer("/Grants/0/GranteePrincipal"),
        Some(&Value::from("sealdb.us-west-2.amazonaws.com"))
    );

    // `kms:ViaService` is the engine's to set: the flag that let a caller claim it is gone,
    // and a direct CreateGrant on the service default key is refused (its policy allows
    // CreateGrant only through sealdb), and audited as refused.
    let grant_args = [
        "kms",
        "create-grant",
        "--grantee-principal",
        "arn:aws:iam::111122223333:user/bob",
        "--operations",
        "Decrypt,DescribeKey",
        "--table",
        "Books",
    ];
    let mut claimed = grant_args.to_vec();
    claimed.insert(2, "--via-service");
    assert_eq!(
        f.run(&claimed)?.code,
        2,
        "--via-service is no longer a flag"
    );
    let r = f.run(&grant_args)?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let refused = f
        .run(&["audit", "--event", "CreateGrant"])?
        .ok()?
        .stdout
        .lines()
        .filter(|l| l.contains("AccessDenied"))
        .count();
    assert!(refused >= 1, "the refused CreateGrant is in the trail");
    // The table's grant and the database key's grant.
    let n = |v: Value| v.pointer("/Grants").and_then(Value::as_array).map(Vec::len);
    assert_eq!(n(f.run(&["kms", "list-grants"])?.ok()?.json()?), Some(2));

    // Another account may not touch the key; the key's own account may revoke.
    let r = f.run(&[
        "--principal",
        OUTSIDER,
        "kms",
        "revoke-grant",
        "--key-id",
        &arn,
        &table_grant,
    ])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    f.run(&["kms", "revoke-grant", "--key-id", &arn, &table_grant])?
        .ok()?;
    // The database key's grant remains.
    assert_eq!(n(f.run(&["kms", "list-grants"])?.ok()?.json()?), Some(1));

    let r = f.run(&[
        "kms",
        "create-grant",
        "--grantee",
        "x",
        "--operations",
        "Launch",
    ])?;
    assert_eq!(r.code, 2);
    Ok(())
}

#[test]
fn bad_input_gives_clear_errors() -> TestResult {
    let f = Fixture::new()?;
    // No database yet.
    let r = f.run(&["get", "Books", "k"])?;
    assert_eq!(r.code, 1);
    assert!(r.error().contains("no database"), "{}", r.stderr);

    let f = f.with_tables()?;
    let r = f.run(&["get", "Nope", "k"])?;
    assert_eq!(r.code, 1);
    assert_eq!(r.error(), "sealdb: table \"Nope\" does not exist");
    let r = f.run(&["put", "Books", "k"])?;
    assert_eq!(r.code, 2, "missing value");
    let r = f.run(&["put", "Books", "zz", "00", "--hex"])?;
    assert_eq!(r.code, 2);
    assert!(r.error().contains("is not hex"), "{}", r.stderr);
    let r = f.run(&["create-table", "Books"])?;
    assert_eq!(r.code, 2);
    assert!(r.error().contains("already exists"), "{}", r.stderr);
    assert_eq!(f.run(&["frobnicate"])?.code, 2);
    assert_eq!(f.run(&["load", "Books"])?.code, 2, "missing --count");
    Ok(())
}

#[test]
fn locked_database_is_refused() -> TestResult {
    let f = Fixture::new()?;
    f.run(&["create-table", "Metrics", "--plaintext"])?.ok()?;
    // This test process holds the database open; the CLI is another process.
    let held = sealdb::Db::open(&f.db, sealdb::Options::default())?;
    let r = f.run(&["get", "Metrics", "k"])?;
    assert_eq!(r.code, 6, "{}", r.stderr);
    // The holder is named where the OS tells (Linux /proc/locks): this test process.
    if cfg!(target_os = "linux") {
        let me = format!("is open in process {} (", std::process::id());
        assert!(r.error().contains(&me), "{}", r.stderr);
    } else {
        assert!(r.error().contains("already open"), "{}", r.stderr);
    }
    // Closed while no child of this test binary is between fork and exec: such a child
    // holds a copy of the lock's file descriptor (and so the lock) until its exec.
    common::no_child_starting(|| drop(held));
    assert_eq!(f.run(&["get", "Metrics", "k"])?.code, 1);
    Ok(())
}

#[test]
fn inspect_and_verify() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["create-table", "Sealed", "--sealed-boundaries"])?
        .ok()?;
    for t in ["Books", "Metrics", "Sealed"] {
        f.run(&["put", t, "alpha", "1"])?.ok()?;
        f.run(&["put", t, "omega", "2"])?.ok()?;
    }
    f.run(&["flush"])?.ok()?;
    let layouts = f.run(&["inspect", "--json"])?.ok()?.json()?;
    let by_name = |name: &str| {
        layouts
            .as_array()
            .and_then(|v| v.iter().find(|t| t["table"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let books = by_name("Books");
    assert_eq!(
        books.pointer("/files/0/smallest"),
        Some(&Value::from(hex::encode("alpha")))
    );
    assert_eq!(
        books.pointer("/files/0/largest"),
        Some(&Value::from(hex::encode("omega")))
    );
    let text = f.run(&["inspect", "Books"])?.ok()?.stdout;
    assert!(text.contains("[\"alpha\" .. \"omega\"]"), "{text}");
    assert!(!text.contains("Metrics"), "{text}");
    assert_eq!(f.run(&["inspect", "Nope"])?.code, 1);

    let v = f.run(&["verify", "--json"])?.ok()?.json()?;
    assert_eq!(v.pointer("/tables"), Some(&Value::from(3)));
    // Each `put` is its own process; an open re-logs what the WAL held into its new
    // segment, so only the final flush writes files: one per table.
    assert_eq!(v.pointer("/sstables"), Some(&Value::from(3)));
    let s = f.run(&["status"])?.ok()?.stdout;
    assert!(s.contains("boundaries   sealed"), "{s}");
    Ok(())
}

#[test]
fn tampered_table_file_is_exit_4() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["load", "Books", "--count", "2000"])?.ok()?;
    f.run(&["flush"])?.ok()?;
    let sst = sst_files(&f.db)?.into_iter().next().ok_or("no sst")?;
    let mut bytes = std::fs::read(&sst)?;
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x01;
    std::fs::write(&sst, bytes)?;
    let r = f.run(&["verify"])?;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.error().contains(".sst at offset"), "{}", r.stderr);
    let r = f.run(&["scan", "Books"])?;
    assert_eq!(r.code, 4, "{}", r.stderr);
    Ok(())
}

#[test]
fn compact_merges_files_and_keeps_the_data() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    for i in 0..3 {
        f.run(&["put", "Books", &format!("k{i}"), "v"])?.ok()?;
        f.run(&["flush"])?.ok()?;
    }
    let r = f.run(&["compact", "Books"])?.ok()?;
    assert!(r.stdout.contains("compacted Books"), "{}", r.stdout);
    let r = f.run(&["compact"])?.ok()?;
    assert!(r.stdout.contains("compacted every table"), "{}", r.stdout);
    let r = f.run(&["get", "Books", "k2"])?.ok()?;
    assert_eq!(r.stdout.trim(), "v");
    let r = f.run(&["compact", "NoSuchTable"])?;
    assert_eq!(r.code, 1, "{}", r.stderr);
    Ok(())
}

#[test]
fn renew_grant_gives_the_engine_a_new_grant() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let r = f.run(&["renew-grant", "Books"])?.ok()?;
    assert!(r.stdout.contains("new grant"), "{}", r.stdout);
    let r = f.run(&["renew-grant", "Metrics"])?;
    assert_eq!(r.code, 2, "plaintext tables have no grant: {}", r.stderr);

    // With the engine's grant revoked, the table's upkeep fails and the error says how
    // to mend it; after renew-grant it works again.
    let status = f.run(&["status", "--json"])?.ok()?.json()?;
    let books = status["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "Books"))
        .ok_or("no Books in status")?;
    let (arn, grant) = (
        books["key_arn"].as_str().ok_or("key_arn")?,
        books["grant_id"].as_str().ok_or("grant_id")?,
    );
    // The AWS CLI's spelling, --grant-id, is the positional id's twin; both at once is refused.
    let r = f.run(&[
        "kms",
        "revoke-grant",
        "--key-id",
        arn,
        grant,
        "--grant-id",
        grant,
    ])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    f.run(&["kms", "revoke-grant", "--key-id", arn, "--grant-id", grant])?
        .ok()?;
    f.run(&["put", "Books", "after-revoke", "v"])?.ok()?;
    let r = f.run(&["compact", "Books"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.error().contains("run `sealdb renew-grant Books`"),
        "{}",
        r.stderr
    );
    f.run(&["renew-grant", "Books"])?.ok()?;
    f.run(&["compact", "Books"])?.ok()?;
    Ok(())
}

#[test]
fn demo_runs_and_shows_the_story() -> TestResult {
    let f = Fixture::new()?;
    let dir = f.db.with_file_name("demo");
    let dir_s = dir.to_string_lossy().into_owned();
    let r = f.run(&["demo", "--count", "3000", "--dir", &dir_s])?.ok()?;
    for needle in [
        "ENABLED",
        "DISABLED",
        "INACCESSIBLE_ENCRYPTION_CREDENTIALS",
        "MANIFEST",
        "\"eventName\":\"GenerateDataKey\"",
        "\"errorCode\":\"AccessDenied\"",
        "Summary",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing:\n{}", r.stdout);
    }
    // The demo's database is usable afterwards with the same KMS.
    let db = dir.join("data");
    let kms = dir.join("data.kms");
    let mut c = f.command(&["get", "Books", "key000000000007"]);
    c.env("SEALDB_DB", &db).env("SEALDB_KMS", &kms);
    assert_eq!(run_command(c)?.code, 0);
    Ok(())
}

#[cfg(not(feature = "aws-kms"))]
#[test]
fn aws_kms_without_the_feature_is_a_usage_error() -> TestResult {
    let f = Fixture::new()?;
    let r = f.run(&["--kms", "aws:alias/x", "create-table", "T"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error().contains("aws-kms feature"), "{}", r.stderr);
    Ok(())
}

#[test]
fn bench_runs_the_db_bench_workloads() -> TestResult {
    let f = Fixture::new()?;
    let r = f
        .run(&[
            "bench",
            "--num",
            "2000",
            "--benchmarks",
            "fillrandom,readrandom",
            "--mode",
            "both",
        ])?
        .ok()?;
    assert!(
        r.stdout.contains("fillrandom") && r.stdout.contains("readrandom"),
        "{}",
        r.stdout
    );
    let r = f.run(&["bench", "--benchmarks", "nosuchload"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    Ok(())
}

#[test]
fn lz4_tables_store_and_read_back() -> TestResult {
    let f = Fixture::new()?;
    f.run(&["create-table", "Logs", "--lz4"])?.ok()?;
    f.run(&["load", "Logs", "--count", "2000"])?.ok()?;
    f.run(&["flush"])?.ok()?;
    let r = f.run(&["scan", "Logs", "--limit", "3"])?.ok()?;
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    f.run(&["verify"])?.ok()?;
    Ok(())
}

/// The lines of `text` parsed as JSON values.
fn json_lines(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    text.lines().map(serde_json::from_str).collect()
}

#[test]
fn a_wrong_passphrase_is_exit_7_and_says_what_to_set() -> TestResult {
    let f = Fixture::new()?;
    let run = |pass: &str, args: &[&str]| -> Result<Run, std::io::Error> {
        let mut c = f.command(args);
        c.env("SEALDB_KMS_PASSPHRASE", pass);
        run_command(c)
    };
    run("right horse", &["create-table", "Books"])?.ok()?;
    let r = run("wrong horse", &["tables"])?;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.error().contains("wrong passphrase"), "{}", r.stderr);
    assert!(r.error().contains("SEALDB_KMS_PASSPHRASE"), "{}", r.stderr);
    run("right horse", &["tables"])?.ok()?;
    Ok(())
}

#[test]
fn a_mistyped_kms_directory_is_refused_not_created() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["put", "Books", "k", "v"])?.ok()?;
    let typo = f.kms.with_file_name("data.ksm");
    let typo_s = typo.to_string_lossy().into_owned();
    for args in [
        &["--kms", &typo_s, "get", "Books", "k"][..],
        &["--kms", &typo_s, "audit"],
        &["--kms", &typo_s, "kms", "describe-key"],
    ] {
        let r = f.run(args)?;
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.error().contains("no KMS keystore at"), "{}", r.stderr);
        assert!(r.error().contains("--kms"), "{}", r.stderr);
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    Ok(())
}

#[test]
fn a_failed_import_says_how_many_records_went_in() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    // 2,500 good lines with a bad one at line 2,101: two batches of 1,000 are in by then.
    let mut input = String::new();
    for i in 0..2500 {
        if i == 2100 {
            input.push_str("no tab on this line\n");
        } else {
            input.push_str(&format!("k{i:05}\tv{i}\n"));
        }
    }
    let r = f.run_with_stdin(&["import", "Books"], &input)?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error().contains("line 2101"), "{}", r.stderr);
    assert!(
        r.error().contains("the first 2000 records were written"),
        "{}",
        r.stderr
    );
    assert_eq!(
        f.run(&["export", "Books"])?.ok()?.stdout.lines().count(),
        2000
    );

    // --atomic: one batch, so the same failure leaves the other table untouched.
    let r = f.run_with_stdin(&["import", "Metrics", "--atomic"], &input)?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error().contains("nothing was written"), "{}", r.stderr);
    assert_eq!(f.run(&["export", "Metrics"])?.ok()?.stdout, "");
    let good: String = input.lines().take(2100).map(|l| format!("{l}\n")).collect();
    let j = f
        .run_with_stdin(&["import", "Metrics", "--atomic", "--json"], &good)?
        .ok()?
        .json()?;
    assert_eq!(
        j,
        serde_json::json!({"table": "Metrics", "imported": 2100, "atomic": true})
    );
    Ok(())
}

#[test]
fn export_refuses_tabs_before_printing_anything() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["put", "Metrics", "a", "first"])?.ok()?;
    f.run(&["put", "Metrics", "z", "tab\there"])?.ok()?;
    let r = f.run(&["export", "Metrics"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stdout, "", "half an export was printed");
    assert!(r.error().contains("--jsonl"), "{}", r.stderr);
    assert_eq!(
        f.run(&["export", "Metrics", "--jsonl"])?
            .ok()?
            .stdout
            .lines()
            .count(),
        2
    );
    Ok(())
}

#[test]
fn every_reporting_command_speaks_json() -> TestResult {
    let f = Fixture::new()?;
    let j = f.run(&["create-table", "Books", "--json"])?.ok()?.json()?;
    let arn = j["key_arn"].as_str().unwrap_or_default().to_owned();
    assert!(
        arn.starts_with("arn:aws:kms:us-west-2:111122223333:key/"),
        "{j}"
    );
    assert_eq!(
        j,
        serde_json::json!({"table": "Books", "encrypted": true, "key_arn": arn, "created": true, "local_indexes": []})
    );
    let j = f
        .run(&["put", "Books", "dune", "Frank Herbert", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(j["put"], true);
    let j = f
        .run(&["delete", "Books", "dune", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(j["deleted"], true);
    let j = f
        .run(&["load", "Books", "--count", "2000", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(j["keys"], 2000);
    // Durations are seconds, as numbers.
    assert!(j["seconds"].as_f64().is_some_and(|s| s > 0.0), "{j}");
    assert!(j["writes_per_second"].as_f64().is_some(), "{j}");
    assert_eq!(f.run(&["flush", "--json"])?.ok()?.json()?["flushed"], true);
    let j = f.run(&["compact", "Books", "--json"])?.ok()?.json()?;
    assert_eq!(j["compacted"], "Books");
    assert!(j.pointer("/tables/0/levels/0/files").is_some(), "{j}");
    let j = f.run(&["renew-grant", "Books", "--json"])?.ok()?.json()?;
    assert_eq!(j["grant_id"].as_str().map(str::len), Some(64), "{j}");
    let j = f.run(&["drop-table", "Books", "--json"])?.ok()?.json()?;
    assert_eq!(j, serde_json::json!({"table": "Books", "dropped": true}));
    Ok(())
}

#[test]
fn get_json_of_a_missing_key_is_a_null_object_and_exit_1() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let r = f.run(&["get", "Books", "nope", "--json"])?;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.json()?, serde_json::json!({"key": "nope", "value": null}));
    assert_eq!(r.error(), "");
    Ok(())
}

#[test]
fn audit_until_limit_and_any_case_event_names() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    for k in ["a", "b", "c"] {
        f.run(&["put", "Books", k, "v"])?.ok()?;
    }
    let all = json_lines(&f.run(&["audit"])?.ok()?.stdout)?;
    assert!(all.len() >= 3, "{all:?}");
    let two = json_lines(&f.run(&["audit", "--limit", "2"])?.ok()?.stdout)?;
    assert_eq!(two, all[..2].to_vec());
    let before = json_lines(
        &f.run(&["audit", "--until", "2000-01-01T00:00:00Z"])?
            .ok()?
            .stdout,
    )?;
    assert!(before.is_empty(), "{before:?}");
    let lower = f.run(&["audit", "--event", "generatedatakey"])?.ok()?;
    let exact = f.run(&["audit", "--event", "GenerateDataKey"])?.ok()?;
    assert_eq!(lower.stdout, exact.stdout);
    let named = json_lines(&lower.stdout)?;
    assert!(!named.is_empty());
    assert!(
        named.iter().all(|e| e["eventName"] == "GenerateDataKey"),
        "{named:?}"
    );
    let r = f.run(&["audit", "--event", "Decrpyt"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error().contains("Decrypt"), "{}", r.stderr);
    assert_eq!(f.run(&["audit", "--until", "tomorrow"])?.code, 2);
    Ok(())
}

#[test]
fn load_reports_a_formatted_rate() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    let r = f.run(&["load", "Metrics", "--count", "5000"])?.ok()?;
    // "(267,336 writes/s)": digits in groups of three.
    let rate = r
        .stdout
        .split('(')
        .nth(1)
        .and_then(|s| s.split(" writes/s)").next())
        .ok_or_else(|| format!("no rate in {:?}", r.stdout))?;
    let groups: Vec<&str> = rate.split(',').collect();
    assert!(
        groups.iter().all(|g| g.chars().all(|c| c.is_ascii_digit()))
            && groups.iter().skip(1).all(|g| g.len() == 3)
            && groups.first().is_some_and(|g| (1..=3).contains(&g.len())),
        "{:?}",
        r.stdout
    );
    Ok(())
}

#[test]
fn bench_help_shows_only_what_bench_uses() -> TestResult {
    let f = Fixture::new()?;
    let r = f.run(&["bench", "--help"])?.ok()?;
    for own in ["--num", "--benchmarks", "--mode", "--json"] {
        assert!(r.stdout.contains(own), "{own} missing:\n{}", r.stdout);
    }
    for global in ["--db", "--kms", "--principal", "--account", "--region"] {
        assert!(!r.stdout.contains(global), "{global} shown:\n{}", r.stdout);
    }
    // Other commands still show the global options.
    assert!(f.run(&["get", "--help"])?.ok()?.stdout.contains("--db"));
    Ok(())
}

#[test]
fn demo_refuses_an_existing_dir_before_printing() -> TestResult {
    let f = Fixture::new()?;
    let dir = f.db.with_file_name("kept");
    std::fs::create_dir_all(&dir)?;
    let r = f.run(&["demo", "--dir", &dir.to_string_lossy(), "--count", "10"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert!(r.error().contains("already exists"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(&dir)?.count(),
        0,
        "the demo wrote into it"
    );
    Ok(())
}

#[test]
fn completions_and_man_page_come_from_the_command_line() -> TestResult {
    let f = Fixture::new()?;
    for shell in ["bash", "zsh", "fish"] {
        let r = f.run(&["completions", shell])?.ok()?;
        for word in ["sealdb", "create-table", "sealed-boundaries"] {
            assert!(r.stdout.contains(word), "{shell}: {word} missing");
        }
    }
    assert_eq!(f.run(&["completions", "powershell"])?.code, 2);
    let man = f.run(&["man"])?.ok()?.stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH sealdb"),
        "{man}"
    );
    // roff escapes hyphens (`create\-table`); compare without the escapes.
    let plain = man.replace("\\-", "-");
    for word in ["create-table", "renew-grant", "completions", "SEALDB_DB"] {
        assert!(
            plain.contains(word),
            "{word} missing from the man page:\n{man}"
        );
    }
    // None of these needs a database.
    assert!(!f.db.exists() && !f.kms.exists());
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn a_locked_keystore_names_the_process_holding_it() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    // This test process takes the keystore's lock (an flock on <kms>/LOCK, as LocalKms does).
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(f.kms.join("LOCK"))?;
    lock.try_lock()?;
    let r = f.run(&["get", "Books", "k"])?;
    assert_eq!(r.code, 7, "{}", r.stderr);
    let me = format!("is in use by process {} (", std::process::id());
    assert!(r.error().contains(&me), "{}", r.stderr);
    assert!(r.error().contains("retry"), "{}", r.stderr);
    drop(lock);
    assert_eq!(f.run(&["get", "Books", "k"])?.code, 1);
    Ok(())
}

#[test]
fn a_wrong_account_or_region_says_which_the_keys_belong_to() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["put", "Books", "k", "v"])?.ok()?;
    let r = f.run(&["--account", "999988887777", "get", "Books", "k"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.error()
            .contains("--account is 999988887777 but the key belongs to account 111122223333"),
        "{}",
        r.stderr
    );
    let r = f.run(&["--region", "eu-west-1", "get", "Books", "k"])?;
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.error()
            .contains("--region is eu-west-1 but the key is in region us-west-2"),
        "{}",
        r.stderr
    );
    assert!(r
        .error()
        .contains("pass --account 111122223333 --region us-west-2"));
    // The right ones work.
    assert_eq!(f.run(&["get", "Books", "k"])?.ok()?.stdout, "v\n");
    Ok(())
}

#[test]
fn the_dev_key_file_is_written_and_warned_about_only_at_creation() -> TestResult {
    let f = Fixture::new()?;
    let r = f.run(&["create-table", "Books"])?.ok()?;
    assert_eq!(
        r.stderr.matches("sealdb: warning").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(f.kms.join("dev-root.key").exists());
    let r = f.run(&["put", "Books", "k", "v"])?.ok()?;
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);

    // A keystore created under a key file: without SEALDB_KMS_KEY_FILE it does not open,
    // and no dev-root.key appears beside it.
    let g = Fixture::new()?;
    let key_file = g.db.with_file_name("root.key");
    std::fs::write(&key_file, [7u8; 32])?;
    let mut c = g.command(&["create-table", "Books"]);
    c.env("SEALDB_KMS_KEY_FILE", &key_file);
    let created = run_command(c)?.ok()?;
    assert!(!created.stderr.contains("warning"), "{}", created.stderr);
    let r = g.run(&["get", "Books", "k"])?;
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.error().contains("SEALDB_KMS_KEY_FILE"), "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert!(!g.kms.join("dev-root.key").exists());
    Ok(())
}

#[test]
fn status_text_shows_grant_key_cache_and_compaction() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    f.run(&["put", "Books", "k", "v"])?.ok()?;
    let s = f.run(&["status", "--json"])?.ok()?.json()?;
    let grant = s
        .pointer("/tables/0/grant_id")
        .and_then(Value::as_str)
        .ok_or("no grant id")?
        .to_owned();
    // Durations are seconds.
    let age = s.pointer("/tables/0/cached_keys/0/age_secs");
    assert!(age.is_some_and(Value::is_f64), "{s}");
    assert_eq!(s.pointer("/tables/0/compaction_error"), Some(&Value::Null));

    let text = f.run(&["status"])?.ok()?.stdout;
    assert!(
        text.contains(&format!("  grant        {grant}\n")),
        "{text}"
    );
    assert!(
        text.contains(
            "  key cache    arn:aws:sts::111122223333:assumed-role/Admin/user01 (confirmed "
        ),
        "{text}"
    );
    assert_eq!(text.matches("  compaction   ok\n").count(), 2, "{text}");
    // A plaintext table has no grant and no key cache line.
    let metrics = text.split("Metrics\t").nth(1).ok_or("no Metrics")?;
    assert!(
        !metrics.contains("grant") && !metrics.contains("key cache"),
        "{text}"
    );
    Ok(())
}

#[test]
fn audit_table_finds_its_grant_and_key_events() -> TestResult {
    let f = Fixture::new()?.with_tables()?;
    // Another table on the same (service default) key.
    f.run(&["create-table", "Other"])?.ok()?;
    f.run(&["put", "Books", "k", "v"])?.ok()?;
    f.run(&["drop-table", "Books"])?.ok()?;
    let names = |args: &[&str]| -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let out = f.run(args)?.ok()?;
        Ok(json_lines(&out.stdout)?
            .iter()
            .map(|e| e["eventName"].as_str().unwrap_or("?").to_owned())
            .collect())
    };
    let books = names(&["audit", "--table", "Books"])?;
    for expected in [
        "DescribeKey",
        "CreateGrant",
        "GenerateDataKey",
        "RetireGrant",
    ] {
        assert!(books.iter().any(|n| n == expected), "{expected}: {books:?}");
    }
    // Books's grant retirement, and no other table's grant events.
    let retired = json_lines(
        &f.run(&["audit", "--table", "Books", "--event", "retiregrant"])?
            .ok()?
            .stdout,
    )?;
    assert_eq!(retired.len(), 1, "{retired:?}");
    let created = json_lines(
        &f.run(&["audit", "--table", "Books", "--event", "CreateGrant"])?
            .ok()?
            .stdout,
    )?;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0].pointer("/responseElements/grantId"),
        retired[0].pointer("/requestParameters/grantId")
    );
    let limited = names(&["audit", "--table", "Books", "--limit", "2"])?;
    assert_eq!(limited, books[..2].to_vec());
    assert!(names(&["audit", "--table", "Nope"])?.is_empty());
    Ok(())
}
