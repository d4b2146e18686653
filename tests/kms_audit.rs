//! The audit trail against the seed's three CloudTrail examples, field by field.

mod common;

use std::time::{Duration, SystemTime};

use common::kms::*;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    via_service_name, AuditQuery, Caller, CreateGrantRequest, DataKeySpec, EncryptionContext,
    GrantConstraints, GrantOperation, Kms, KmsError, LocalKms, SERVICE_DEFAULT_ALIAS,
};
use serde_json::{json, Value};

/// 2018-02-14T00:15:17Z, the seed's GenerateDataKey event time.
fn seed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_518_567_317)
}

const SEED_KEY_ARN: &str =
    "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The seed's events with DynamoDB's names replaced by the engine's.
fn seed_events() -> (Value, Value, Value) {
    let generate = json!({
        "eventVersion": "1.05",
        "userIdentity": {"type": "AWSService", "invokedBy": "sealdb.amazonaws.com"},
        "eventTime": "2018-02-14T00:15:17Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "GenerateDataKey",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "sealdb.amazonaws.com",
        "userAgent": "sealdb.amazonaws.com",
        "requestParameters": {
            "encryptionContext": {"sealdb:tableName": "Services", "sealdb:subscriberId": "111122223333"},
            "keySpec": "AES_256",
            "keyId": SEED_KEY_ARN
        },
        "responseElements": null,
        "requestID": "229386c1-111c-11e8-9e21-c11ed5a52190",
        "eventID": "e3c436e9-ebca-494e-9457-8123a1f5e979",
        "readOnly": true,
        "resources": [{"ARN": SEED_KEY_ARN, "accountId": "111122223333", "type": "AWS::KMS::Key"}],
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "sharedEventID": "bf915fa6-6ceb-4659-8912-e36b69846aad"
    });
    let user_identity = json!({
        "type": "AssumedRole",
        "principalId": "AROAIGDTESTANDEXAMPLE:user01",
        "arn": "arn:aws:sts::111122223333:assumed-role/Admin/user01",
        "accountId": "111122223333",
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "sessionContext": {
            "attributes": {"mfaAuthenticated": "false", "creationDate": "2018-02-14T16:42:15Z"},
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAIGDT3HGFQZX4RY6RU",
                "arn": "arn:aws:iam::111122223333:role/Admin",
                "accountId": "111122223333",
                "userName": "Admin"
            }
        },
        "invokedBy": "sealdb.amazonaws.com"
    });
    let decrypt = json!({
        "eventVersion": "1.05",
        "userIdentity": user_identity,
        "eventTime": "2018-02-14T16:42:39Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "sealdb.amazonaws.com",
        "userAgent": "sealdb.amazonaws.com",
        "requestParameters": {
            "encryptionContext": {"sealdb:tableName": "Books", "sealdb:subscriberId": "111122223333"}
        },
        "responseElements": null,
        "requestID": "11cab293-11a6-11e8-8386-13160d3e5db5",
        "eventID": "b7d16574-e887-4b5b-a064-bf92f8ec9ad3",
        "readOnly": true,
        "resources": [{"ARN": SEED_KEY_ARN, "accountId": "111122223333", "type": "AWS::KMS::Key"}],
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    let create_grant = json!({
        "eventVersion": "1.05",
        "userIdentity": user_identity,
        "eventTime": "2018-02-14T00:15:15Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "CreateGrant",
        "awsRegion": "us-west-2",
        "sourceIPAddress": "sealdb.amazonaws.com",
        "userAgent": "sealdb.amazonaws.com",
        "requestParameters": {
            "keyId": SEED_KEY_ARN,
            "retiringPrincipal": "sealdb.us-west-2.amazonaws.com",
            "constraints": {"encryptionContextSubset": {
                "sealdb:tableName": "Books", "sealdb:subscriberId": "111122223333"}},
            "granteePrincipal": "sealdb.us-west-2.amazonaws.com",
            "operations": ["DescribeKey", "GenerateDataKey", "Decrypt", "Encrypt",
                           "ReEncryptFrom", "ReEncryptTo", "RetireGrant"]
        },
        "responseElements": {"grantId": "5c5cd4a3d68e65e77795f5ccc2516dff057308172b0cd107c85b5215c6e48bde"},
        "requestID": "2192b82a-111c-11e8-a528-f398979205d8",
        "eventID": "a03d65c3-9fee-4111-9816-8bf96b73df01",
        "readOnly": false,
        "resources": [{"ARN": SEED_KEY_ARN, "accountId": "111122223333", "type": "AWS::KMS::Key"}],
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333"
    });
    (generate, decrypt, create_grant)
}

/// Sets aside what differs by nature: ids, times, the random key id and grant id, and the
/// two identity fields the local KMS cannot know (access key id, session attributes).
fn normalize(mut e: Value, key_arn: &str) -> Value {
    let obj = e.as_object_mut().expect("event is an object");
    for f in ["requestID", "eventID", "sharedEventID", "eventTime"] {
        if obj.contains_key(f) {
            obj.insert(f.into(), json!("<id-or-time>"));
        }
    }
    if let Some(id) = obj.get_mut("userIdentity").and_then(Value::as_object_mut) {
        id.remove("accessKeyId");
        if id.contains_key("principalId") {
            id.insert("principalId".into(), json!("<principal-id>"));
        }
        if let Some(sc) = id.get_mut("sessionContext").and_then(Value::as_object_mut) {
            sc.remove("attributes");
            if let Some(issuer) = sc.get_mut("sessionIssuer").and_then(Value::as_object_mut) {
                issuer.insert("principalId".into(), json!("<principal-id>"));
            }
        }
    }
    if let Some(g) = obj
        .get_mut("responseElements")
        .and_then(|r| r.get_mut("grantId"))
    {
        *g = json!("<grant-id>");
    }
    let text = serde_json::to_string(&e).expect("serializable");
    serde_json::from_str(&text.replace(key_arn, "<key-arn>")).expect("valid")
}

fn assert_same_fields(produced: &Value, seed: &Value, key_arn: &str) {
    let p = normalize(produced.clone(), key_arn);
    let s = normalize(seed.clone(), SEED_KEY_ARN);
    let (po, so) = (p.as_object().expect("obj"), s.as_object().expect("obj"));
    for (field, want) in so {
        assert_eq!(po.get(field), Some(want), "field {field}");
    }
    for field in po.keys() {
        assert!(so.contains_key(field), "extra field {field}");
    }
}

fn only(kms: &LocalKms, name: &str) -> Result<Value, KmsError> {
    let mut events = kms.audit().query(&AuditQuery {
        event_name: Some(name.into()),
        ..Default::default()
    })?;
    assert_eq!(events.len(), 1, "{name}");
    Ok(events.remove(0))
}

#[test]
fn events_match_the_seed_examples_field_by_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(seed_time());
    let kms = open(dir.path(), &clock)?;
    let user = via_engine(user());
    let key = kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
    let svc = via_service_name(REGION);
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let services = EncryptionContext::for_table("Services", ACCOUNT);
    for ctx in [&books, &services] {
        kms.create_grant(
            &user,
            CreateGrantRequest::new(
                key.arn.clone(),
                svc.clone(),
                GrantOperation::seed_table_grant(),
            )
            .with_retiring_principal(svc.clone())
            .with_constraints(GrantConstraints::subset(ctx.clone())),
        )?;
    }
    kms.generate_data_key(&engine(), &key.arn, DataKeySpec::Aes256, &services)?;
    let dk = kms.generate_data_key(&user, &key.arn, DataKeySpec::Aes256, &books)?;
    clock.advance(Duration::from_secs(3600));
    kms.decrypt(&user, &dk.ciphertext_blob, &books, None)?;

    let (seed_gen, seed_dec, seed_grant) = seed_events();
    let generated = kms.audit().query(&AuditQuery {
        event_name: Some("GenerateDataKey".into()),
        table: Some("Services".into()),
        ..Default::default()
    })?;
    assert_eq!(generated.len(), 1);
    assert_same_fields(&generated[0], &seed_gen, &key.arn);
    assert_eq!(generated[0]["eventTime"], "2018-02-14T00:15:17Z");
    assert_same_fields(&only(&kms, "Decrypt")?, &seed_dec, &key.arn);
    assert_eq!(only(&kms, "Decrypt")?["eventTime"], "2018-02-14T01:15:17Z");
    let grants = kms.audit().query(&AuditQuery {
        event_name: Some("CreateGrant".into()),
        table: Some("Books".into()),
        ..Default::default()
    })?;
    assert_eq!(grants.len(), 1);
    let grant = grants[0].clone();
    assert_same_fields(&grant, &seed_grant, &key.arn);
    // The role session's ids are consistent, as AWS's are.
    let pid = grant["userIdentity"]["principalId"]
        .as_str()
        .unwrap_or_default();
    let issuer = grant["userIdentity"]["sessionContext"]["sessionIssuer"]["principalId"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(pid, format!("{issuer}:user01"));
    Ok(())
}

#[test]
fn denied_calls_are_recorded_with_error_code() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let key = kms.describe_key(&via_engine(user()), SERVICE_DEFAULT_ALIAS)?;
    let r = kms.generate_data_key(
        &Caller::direct(user()),
        &key.arn,
        DataKeySpec::Aes256,
        &books,
    );
    assert!(matches!(r, Err(KmsError::AccessDenied { .. })));
    let e = only(&kms, "GenerateDataKey")?;
    assert_eq!(e["errorCode"], "AccessDenied");
    assert!(e["errorMessage"]
        .as_str()
        .unwrap_or_default()
        .contains("kms:GenerateDataKey"));
    assert_eq!(e["userIdentity"]["type"], "AssumedRole");
    assert!(e["userIdentity"].get("invokedBy").is_none());
    assert_eq!(e["sourceIPAddress"], "127.0.0.1");
    let ok = kms.audit().query(&AuditQuery {
        event_name: Some("DescribeKey".into()),
        ..Default::default()
    })?;
    assert!(ok[0].get("errorCode").is_none());
    Ok(())
}

#[test]
fn no_key_material_plaintext_or_blob_is_ever_logged() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let user = via_engine(user());
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let dk = kms.generate_data_key(&user, SERVICE_DEFAULT_ALIAS, DataKeySpec::Aes256, &books)?;
    let secret = b"attack at dawn, bring the keys!";
    let blob = kms.encrypt(&user, SERVICE_DEFAULT_ALIAS, secret, &books)?;
    kms.decrypt(&user, &blob, &books, None)?;
    kms.decrypt(&user, &dk.ciphertext_blob, &books, None)?;
    let _ = kms.decrypt(&user, &blob, &EncryptionContext::new(), None);
    let moved = kms.re_encrypt(&user, &blob, &books, SERVICE_DEFAULT_ALIAS, &books)?;

    let mut log = Vec::new();
    for entry in std::fs::read_dir(kms.audit().dir())? {
        log.extend(std::fs::read(entry?.path())?);
    }
    let text = String::from_utf8_lossy(&log).to_string();
    assert!(text.contains("GenerateDataKey") && text.contains("ReEncrypt"));
    let secrets: [&[u8]; 4] = [&dk.plaintext, &dk.ciphertext_blob, &blob, &moved];
    for s in secrets.iter().chain([&secret[..]].iter()) {
        let hex = hex::encode(s);
        assert!(!text.contains(&hex) && !text.contains(&hex.to_uppercase()));
        assert!(!log.windows(16).any(|w| w == &s[..16]), "raw bytes");
        let as_numbers: Vec<String> = s[..8].iter().map(|b| b.to_string()).collect();
        assert!(!text.contains(&as_numbers.join(",")), "byte array");
    }
    assert!(!text.contains("attack at dawn"));
    assert!(!text.contains("correct horse"));
    Ok(())
}

#[test]
fn unavailable_kms_records_nothing_and_counts_calls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let user = via_engine(user());
    kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(kms.call_count("DescribeKey"), 1);
    kms.set_available(false);
    assert!(matches!(
        kms.describe_key(&user, SERVICE_DEFAULT_ALIAS),
        Err(KmsError::Unavailable(_))
    ));
    assert_eq!(kms.call_count("DescribeKey"), 1);
    assert_eq!(kms.audit().query(&AuditQuery::default())?.len(), 1);
    kms.set_available(true);
    kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(kms.call_count("DescribeKey"), 2);
    Ok(())
}

#[test]
fn query_by_key_table_and_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(seed_time());
    let kms = open(dir.path(), &clock)?;
    let user = via_engine(user());
    let key = kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
    for table in ["Books", "Movies", "Books"] {
        clock.advance(Duration::from_secs(60));
        kms.generate_data_key(
            &user,
            SERVICE_DEFAULT_ALIAS,
            DataKeySpec::Aes256,
            &EncryptionContext::for_table(table, ACCOUNT),
        )?;
    }
    let q = |q: AuditQuery| kms.audit().query(&q).map(|v| v.len());
    assert_eq!(
        q(AuditQuery {
            key_id: Some(key.key_id.clone()),
            ..Default::default()
        })?,
        4
    );
    assert_eq!(
        q(AuditQuery {
            key_id: Some(key.arn.clone()),
            table: Some("Books".into()),
            ..Default::default()
        })?,
        2
    );
    assert_eq!(
        q(AuditQuery {
            key_id: Some("nope".into()),
            ..Default::default()
        })?,
        0
    );
    let since = seed_time() + Duration::from_secs(120);
    assert_eq!(
        q(AuditQuery {
            since: Some(since),
            ..Default::default()
        })?,
        2
    );
    assert_eq!(
        q(AuditQuery {
            until: Some(since),
            ..Default::default()
        })?,
        3
    );
    Ok(())
}
