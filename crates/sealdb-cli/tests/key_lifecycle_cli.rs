//! The key lifecycle from the command line: `kms create-key` and an alias, `create-table
//! --key-id` by alias, `status`/`inspect` naming the key and its material, key policies,
//! rotation (`kms rotate-key-on-demand`, `list-key-rotations`, rotation status), the
//! re-wrap of table keys, and `update-table` switching a table's key and back.

mod common;

use common::{Fixture, TestResult};
use serde_json::Value;

impl Fixture {
    fn status(&self, table: &str) -> Result<Value, Box<dyn std::error::Error>> {
        let v = self.run(&["status", "--json"])?.ok()?.json()?;
        let tables = v["tables"].as_array().ok_or("no tables")?;
        Ok(tables
            .iter()
            .find(|t| t["table"] == table)
            .cloned()
            .ok_or("table not in status")?)
    }
}

#[test]
fn customer_key_rotation_rewrap_and_switch_from_the_cli() -> TestResult {
    let f = Fixture::new()?;
    // The keystore is made by the first create-table.
    f.run(&["create-table", "Default"])?.ok()?;
    let created = f
        .run(&["kms", "create-key", "--description", "orders"])?
        .ok()?
        .json()?;
    let arn = created["KeyMetadata"]["Arn"]
        .as_str()
        .ok_or("no Arn")?
        .to_owned();
    assert_eq!(created["KeyMetadata"]["KeyManager"], "CUSTOMER");
    f.run(&[
        "kms",
        "create-alias",
        "--alias-name",
        "alias/orders",
        "--target-key-id",
        &arn,
    ])?
    .ok()?;
    let out = f
        .run(&["create-table", "Orders", "--key-id", "alias/orders"])?
        .ok()?;
    assert!(out.stdout.contains(&arn), "{}", out.stdout);
    f.run(&["put", "Orders", "k1", "v1"])?.ok()?;

    // status and inspect name the key (its ARN, not the alias) and its material.
    let text = f.run(&["status"])?.ok()?.stdout;
    assert!(text.contains(&format!("  key          {arn}")), "{text}");
    assert!(text.contains("(current)"), "{text}");
    let inspect = f.run(&["inspect", "Orders"])?.ok()?.stdout;
    assert!(
        inspect.contains(&format!("encrypted under {arn}")),
        "{inspect}"
    );
    let m0 = f.status("Orders")?["key_material"]
        .as_str()
        .ok_or("no material")?
        .to_owned();

    // Policies: the customer key's is replaceable, the default key's is not.
    let policy = f
        .run(&["kms", "get-key-policy", "--key-id", "alias/orders"])?
        .ok()?;
    assert!(policy.stdout.contains("Enable IAM User Permissions"));
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"all","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
    f.run(&["kms", "put-key-policy", "--key-id", &arn, "--policy", doc])?
        .ok()?;
    let r = f.run(&[
        "kms",
        "put-key-policy",
        "--key-id",
        "alias/aws/sealdb",
        "--policy",
        doc,
    ])?;
    assert_eq!(r.code, 3, "the default key's policy is fixed: {}", r.stderr);

    // Rotation: on demand, then the re-wrap.
    let st = f
        .run(&["kms", "get-key-rotation-status", "--key-id", &arn])?
        .ok()?
        .json()?;
    assert_eq!(st["KeyRotationEnabled"], false);
    f.run(&[
        "kms",
        "enable-key-rotation",
        "--key-id",
        &arn,
        "--rotation-period-in-days",
        "180",
    ])?
    .ok()?;
    let st = f
        .run(&["kms", "get-key-rotation-status", "--key-id", &arn])?
        .ok()?
        .json()?;
    assert_eq!(st["RotationPeriodInDays"], 180);
    f.run(&["kms", "rotate-key-on-demand", "--key-id", &arn])?
        .ok()?;
    let rotations = f
        .run(&["kms", "list-key-rotations", "--key-id", &arn])?
        .ok()?
        .json()?;
    assert_eq!(rotations["Rotations"][0]["RotationType"], "ON_DEMAND");
    let m1 = rotations["Rotations"][0]["KeyMaterialId"]
        .as_str()
        .ok_or("no material id")?
        .to_owned();
    assert_ne!(m0, m1);
    let text = f.run(&["status"])?.ok()?.stdout;
    assert!(text.contains("re-wrap pending"), "{text}");
    let rewrap = f.run(&["rewrap-keys", "--json"])?.ok()?.json()?;
    assert_eq!(rewrap["rewrapped"][0]["table"], "Orders");
    assert_eq!(rewrap["rewrapped"][0]["toMaterial"], m1.as_str());
    assert_eq!(f.status("Orders")?["key_material"], m1.as_str());
    assert_eq!(f.run(&["get", "Orders", "k1"])?.ok()?.stdout.trim(), "v1");

    // Key switch to the default key and back.
    let sw = f
        .run(&["update-table", "Orders", "--default-key", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(sw["previous_key_arn"], arn.as_str());
    let default_arn = f.status("Default")?["key_arn"].clone();
    assert_eq!(sw["key_arn"], default_arn);
    assert_eq!(f.status("Orders")?["key_arn"], default_arn);
    f.run(&["update-table", "Orders", "--key-id", "alias/orders"])?
        .ok()?;
    assert_eq!(f.status("Orders")?["key_arn"], arn.as_str());
    assert_eq!(f.run(&["get", "Orders", "k1"])?.ok()?.stdout.trim(), "v1");
    let events = f.run(&["audit"])?.ok()?.stdout;
    for name in ["ReEncrypt", "CreateGrant", "RetireGrant"] {
        assert!(
            events.contains(&format!("\"eventName\":\"{name}\"")),
            "{name}"
        );
    }
    // A plaintext table has no key to switch.
    f.run(&["create-table", "Plain", "--plaintext"])?.ok()?;
    let r = f.run(&["update-table", "Plain", "--key-id", &arn])?;
    assert_ne!(r.code, 0);
    Ok(())
}
