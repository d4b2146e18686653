//! Customer managed keys end to end: CreateKey, then a table under it named by key id,
//! key ARN or alias; its policy readable and replaceable, the service default key's
//! readable only; `encryption_status` and `inspect` name the key of each table, and the
//! key's policy, not only the grant, decides who reads the table.

mod common;

use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use sealdb::kms::{Caller, CreateKeyRequest, KeyManager, Kms, KmsError, Principal};
use sealdb::{Db, Error, TableOptions};

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;

fn admin() -> Caller {
    Caller::direct(Principal::assumed_role(ACCOUNT, "Admin", "user01"))
}

fn key_of(db: &Db, table: &str) -> Result<String, Box<dyn std::error::Error>> {
    let s = db.encryption_status();
    let t = s.iter().find(|s| s.table == table).ok_or("no such table")?;
    Ok(t.key_arn.clone().ok_or("not encrypted")?)
}

fn new_key(fx: &EncryptedFixture, description: &str) -> Result<String, KmsError> {
    let md = fx
        .kms
        .create_key(&admin(), CreateKeyRequest::new(description))?;
    assert_eq!(md.key_manager, KeyManager::Customer);
    Ok(md.arn)
}

#[test]
fn a_table_under_a_customer_key_named_by_id_arn_or_alias() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let by_id = new_key(&fx, "by id")?;
    let by_arn = new_key(&fx, "by arn")?;
    let by_alias = new_key(&fx, "by alias")?;
    fx.kms
        .create_alias(&admin(), "alias/orders-key", &by_alias)?;
    let id = by_id.rsplit('/').next().ok_or("arn without id")?.to_owned();

    let db = fx.open()?;
    for (table, key) in [
        ("ById", id.as_str()),
        ("ByArn", by_arn.as_str()),
        ("ByAlias", "alias/orders-key"),
    ] {
        let t = db.create_table(table, TableOptions::encrypted_with(key))?;
        t.put("k", table)?;
    }
    db.create_table("Default", TableOptions::encrypted())?;
    let default_arn = fx
        .kms
        .describe_key(&admin(), sealdb::kms::SERVICE_DEFAULT_ALIAS)?
        .arn;

    // The status and the layout name the resolved key ARN, never the alias.
    for (table, arn) in [
        ("ById", &by_id),
        ("ByArn", &by_arn),
        ("ByAlias", &by_alias),
        ("Default", &default_arn),
    ] {
        assert_eq!(&key_of(&db, table)?, arn, "{table}");
        let layout = db.inspect();
        let l = layout
            .iter()
            .find(|l| l.table == table)
            .ok_or("not in inspect")?;
        assert_eq!(l.key_arn.as_ref(), Some(arn), "{table}");
    }
    // The KMS saw the table keys made under the named keys, through the engine's grants.
    for arn in [&by_id, &by_arn, &by_alias] {
        let grants = fx.kms.list_grants(&admin(), arn)?;
        assert_eq!(grants.len(), 1, "one engine grant on {arn}");
    }
    drop(db);
    let db = fx.open()?;
    for table in ["ById", "ByArn", "ByAlias"] {
        assert_eq!(
            db.table(table)?.get("k")?.as_deref(),
            Some(table.as_bytes())
        );
    }
    assert_eq!(key_of(&db, "ByAlias")?, by_alias, "after reopen");
    Ok(())
}

#[test]
fn an_unknown_or_disabled_key_creates_no_table() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let err = db
        .create_table("T", TableOptions::encrypted_with("alias/nope"))
        .err()
        .ok_or("created under a missing key")?;
    assert!(matches!(err, Error::Kms(KmsError::NotFound(_))), "{err:?}");
    let key = new_key(&fx, "disabled")?;
    fx.kms.disable_key(&admin(), &key)?;
    let err = db
        .create_table("T", TableOptions::encrypted_with(&key))
        .err()
        .ok_or("created under a disabled key")?;
    assert!(matches!(err, Error::Kms(KmsError::Disabled(_))), "{err:?}");
    assert!(db.tables().is_empty());
    Ok(())
}

#[test]
fn customer_key_policy_is_replaceable_the_default_keys_is_not() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let key = new_key(&fx, "policy")?;
    let policy = fx.kms.get_key_policy(&admin(), &key)?;
    assert!(policy.contains("Enable IAM User Permissions"), "{policy}");

    // Admin keeps everything; bob may not decrypt.
    let bob = Principal::user(ACCOUNT, "bob");
    let new_policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "admins", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/Admin")},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "no bob", "Effect": "Deny",
             "Principal": {"AWS": bob.arn.clone()},
             "Action": "kms:Decrypt", "Resource": "*"},
            {"Sid": "everyone else reads", "Effect": "Allow",
             "Principal": {"AWS": ACCOUNT},
             "Action": ["kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
        ]
    })
    .to_string();
    fx.kms.put_key_policy(&admin(), &key, &new_policy)?;
    assert_eq!(fx.kms.get_key_policy(&admin(), &key)?, new_policy);

    let db = fx.open()?;
    let t = db.create_table("T", TableOptions::encrypted_with(&key))?;
    t.put("k", "v")?;
    let carol = db.as_principal(Principal::user(ACCOUNT, "carol"))?;
    assert_eq!(carol.table("T")?.get("k")?.as_deref(), Some(&b"v"[..]));
    let bob_db = db.as_principal(bob)?;
    let err = bob_db
        .table("T")?
        .get("k")
        .err()
        .ok_or("bob read past the policy")?;
    assert!(
        matches!(
            err,
            Error::Kms(KmsError::AccessDenied { .. }) | Error::TableUnavailable { .. }
        ),
        "{err:?}"
    );

    // The service default key: readable, never replaced.
    let default = sealdb::kms::SERVICE_DEFAULT_ALIAS;
    let before = fx.kms.get_key_policy(&admin(), default)?;
    let err = fx
        .kms
        .put_key_policy(&admin(), default, &new_policy)
        .err()
        .ok_or("the default key's policy was replaced")?;
    assert!(matches!(err, KmsError::AccessDenied { .. }), "{err:?}");
    assert_eq!(fx.kms.get_key_policy(&admin(), default)?, before);
    fx.clock.advance(Duration::from_secs(1));
    let events = fx.kms.audit().query(&sealdb::kms::AuditQuery {
        event_name: Some("PutKeyPolicy".into()),
        ..Default::default()
    })?;
    assert_eq!(events.len(), 2, "both PutKeyPolicy calls are in the trail");
    assert!(events.iter().any(|e| e.get("errorCode").is_some()));
    Ok(())
}
