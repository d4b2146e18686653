//! The KMS from the command line, the way `aws kms` is used (flag names and JSON shapes),
//! and the identities a user of the CLI cannot take: the engine's service principal, a
//! principal of another account creating tables, a principal refused reads dropping one.

mod common;

use common::{Fixture, TestResult, OUTSIDER};
use serde_json::Value;

const SERVICE: &str = "sealdb.us-west-2.amazonaws.com";

/// A fixture with the encrypted table `Books` holding `k1`.
fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let f = Fixture::new()?;
    f.run(&["create-table", "Books"])?.ok()?;
    f.run(&["put", "Books", "k1", "v1"])?.ok()?;
    Ok(f)
}

impl Fixture {
    /// The audit events of `event` refused with `AccessDenied`.
    fn refused(&self, event: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let out = self.run(&["audit", "--event", event])?.ok()?;
        Ok(out
            .stdout
            .lines()
            .map(serde_json::from_str::<Value>)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|e| e["errorCode"] == "AccessDenied")
            .collect())
    }
}

#[test]
fn the_service_principal_cannot_be_assumed_from_the_cli() -> TestResult {
    let f = fixture()?;
    let before = f.refused("DescribeKey")?.len();
    let r = f.run(&["--principal", SERVICE, "get", "Books", "k1"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(!r.stdout.contains("v1"));
    println!("--principal {SERVICE} get: {}", r.error());
    assert!(r.error().contains("service principal"), "{}", r.stderr);
    let events = f.refused("DescribeKey")?;
    assert_eq!(events.len(), before + 1, "the attempt is in the trail");
    assert_eq!(
        events.last().map(|e| e["userIdentity"]["type"].clone()),
        Some(Value::from("AWSService"))
    );
    // Nor straight at the KMS, nor by the global service name.
    for p in [SERVICE, "sealdb.amazonaws.com"] {
        let r = f.run(&["--principal", p, "kms", "list-grants"])?;
        assert_eq!(r.code, 3, "{p}: {}", r.stderr);
    }
    // Nothing changed: the owner reads as before.
    assert_eq!(f.run(&["get", "Books", "k1"])?.ok()?.stdout.trim(), "v1");
    Ok(())
}

#[test]
fn another_account_cannot_create_or_drop_tables() -> TestResult {
    let f = fixture()?;
    let r = f.run(&["--principal", OUTSIDER, "create-table", "Mine"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    println!("foreign-account create-table: {}", r.error());
    assert!(r.error().contains("sealdb:CreateTable"), "{}", r.stderr);
    let r = f.run(&["--principal", OUTSIDER, "drop-table", "Books"])?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    println!("foreign-account drop-table: {}", r.error());
    let tables = f.run(&["tables", "--json"])?.ok()?.stdout;
    assert!(
        tables.contains("Books") && !tables.contains("Mine"),
        "{tables}"
    );
    assert_eq!(f.run(&["get", "Books", "k1"])?.ok()?.stdout.trim(), "v1");
    Ok(())
}

#[test]
fn create_table_prints_the_key_arn() -> TestResult {
    let f = fixture()?;
    let out = f.run(&["create-table", "Movies", "--json"])?.ok()?.json()?;
    let arn = out["key_arn"].as_str().ok_or("no key_arn")?.to_owned();
    let md = f.run(&["kms", "describe-key"])?.ok()?.json()?;
    assert_eq!(md["KeyMetadata"]["Arn"], Value::from(arn.clone()));
    let text = f.run(&["create-table", "Shows"])?.ok()?.stdout;
    assert!(text.contains(&arn), "{text}");
    let plain = f
        .run(&["create-table", "Logs", "--plaintext", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(plain["key_arn"], Value::Null);
    Ok(())
}

#[test]
fn kms_commands_take_the_aws_cli_flags_and_print_its_shapes() -> TestResult {
    let f = fixture()?;
    let md = f
        .run(&["kms", "create-key", "--description", "orders"])?
        .ok()?
        .json()?;
    let km = &md["KeyMetadata"];
    assert_eq!(km["KeyManager"], "CUSTOMER");
    assert_eq!(km["KeyState"], "Enabled");
    assert_eq!(km["Description"], "orders");
    let key_id = km["KeyId"].as_str().ok_or("KeyId")?.to_owned();
    let arn = km["Arn"].as_str().ok_or("Arn")?.to_owned();

    let keys = f.run(&["kms", "list-keys"])?.ok()?.json()?;
    let listed = keys["Keys"].as_array().ok_or("Keys")?;
    assert!(listed
        .iter()
        .any(|k| k["KeyId"] == key_id.as_str() && k["KeyArn"] == arn.as_str()));
    assert_eq!(
        listed.len(),
        2,
        "the service default key and ours: {listed:?}"
    );

    f.run(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &key_id,
    ])?
    .ok()?;
    let aliases = f.run(&["kms", "list-aliases"])?.ok()?.json()?;
    let names: Vec<&str> = aliases["Aliases"]
        .as_array()
        .ok_or("Aliases")?
        .iter()
        .filter_map(|a| a["AliasName"].as_str())
        .collect();
    assert_eq!(names, vec!["alias/aws/sealdb", "alias/orders"]);
    let ours = f
        .run(&["kms", "list-aliases", "--key-id", &arn])?
        .ok()?
        .json()?;
    assert_eq!(
        ours["Aliases"][0]["TargetKeyId"],
        Value::from(key_id.clone())
    );
    assert!(ours["Aliases"][0]["AliasArn"]
        .as_str()
        .is_some_and(|a| a.ends_with(":alias/orders")));

    // Key states, by alias like the AWS CLI allows.
    let state = |f: &Fixture| -> Result<Value, Box<dyn std::error::Error>> {
        Ok(f.run(&["kms", "describe-key", "--key-id", "alias/orders"])?
            .ok()?
            .json()?["KeyMetadata"]["KeyState"]
            .clone())
    };
    assert!(f
        .run(&["kms", "disable-key", "--key-id", "alias/orders"])?
        .ok()?
        .stdout
        .is_empty());
    assert_eq!(state(&f)?, "Disabled");
    f.run(&["kms", "enable-key", "--key-id", &key_id])?.ok()?;
    assert_eq!(state(&f)?, "Enabled");
    let s = f
        .run(&[
            "kms",
            "schedule-key-deletion",
            "--key-id",
            &key_id,
            "--pending-window-in-days",
            "7",
        ])?
        .ok()?
        .json()?;
    assert_eq!(s["KeyId"], Value::from(arn.clone()));
    assert_eq!(s["KeyState"], "PendingDeletion");
    assert_eq!(s["PendingWindowInDays"], 7);
    assert!(s["DeletionDate"].is_string());
    let r = f.run(&[
        "kms",
        "schedule-key-deletion",
        "--key-id",
        &key_id,
        "--pending-window-in-days",
        "3",
    ])?;
    assert_eq!(r.code, 2, "3 days is out of range: {}", r.stderr);
    let c = f
        .run(&["kms", "cancel-key-deletion", "--key-id", &key_id])?
        .ok()?
        .json()?;
    assert_eq!(c["KeyId"], Value::from(arn.clone()));
    assert_eq!(
        state(&f)?,
        "Disabled",
        "cancelling leaves the key disabled, as AWS does"
    );

    // PutKeyPolicy: on our key (from a file, as file://), never on the service default key.
    let me = "arn:aws:sts::111122223333:assumed-role/Admin/user01";
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": me},
                       "Action": "kms:*", "Resource": "*"}]
    });
    let file = f.dir.path().join("policy.json");
    std::fs::write(&file, policy.to_string())?;
    let spec = format!("file://{}", file.display());
    f.run(&[
        "kms",
        "put-key-policy",
        "--key-id",
        &key_id,
        "--policy-name",
        "default",
        "--policy",
        &spec,
    ])?
    .ok()?;
    let got = f
        .run(&["kms", "get-key-policy", "--key-id", &key_id])?
        .ok()?
        .json()?;
    assert_eq!(got["Policy"], policy);
    let r = f.run(&[
        "kms",
        "put-key-policy",
        "--key-id",
        "alias/aws/sealdb",
        "--policy",
        &policy.to_string(),
    ])?;
    assert_eq!(
        r.code, 3,
        "the service default key's policy is fixed: {}",
        r.stderr
    );
    // Every one of these calls is in the trail.
    for event in [
        "CreateKey",
        "ListKeys",
        "ListAliases",
        "CreateAlias",
        "DisableKey",
        "EnableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "PutKeyPolicy",
    ] {
        let n = f
            .run(&["audit", "--event", event])?
            .ok()?
            .stdout
            .lines()
            .count();
        assert!(n >= 1, "no {event} event");
    }
    Ok(())
}
