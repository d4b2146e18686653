//! The service default key's policy, end to end through `LocalKms`.

mod common;

use common::kms::*;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    service_default_policy, Caller, CreateKeyRequest, DataKeySpec, EncryptionContext, KeyManager,
    Kms, KmsError, Principal, SERVICE_DEFAULT_ALIAS, SERVICE_PRINCIPAL,
};

fn books() -> EncryptionContext {
    EncryptionContext::for_table("Books", ACCOUNT)
}

#[test]
fn describing_the_default_alias_creates_the_default_key_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let caller = via_engine(user());
    let a = kms.describe_key(&caller, SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(a.key_manager, KeyManager::Aws);
    assert!(a.arn.starts_with("arn:aws:kms:us-west-2:111122223333:key/"));
    let b = kms.describe_key(&caller, SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(a.key_id, b.key_id);
    // Key id, key ARN and alias ARN all resolve to it.
    assert_eq!(kms.describe_key(&caller, &a.key_id)?.key_id, a.key_id);
    assert_eq!(kms.describe_key(&caller, &a.arn)?.key_id, a.key_id);
    let alias_arn = format!("arn:aws:kms:us-west-2:{ACCOUNT}:{SERVICE_DEFAULT_ALIAS}");
    assert_eq!(kms.describe_key(&caller, &alias_arn)?.key_id, a.key_id);
    // Naming another account's default alias does not create it.
    let foreign = format!("arn:aws:kms:us-west-2:{OTHER_ACCOUNT}:{SERVICE_DEFAULT_ALIAS}");
    assert!(matches!(
        kms.describe_key(&caller, &foreign),
        Err(KmsError::NotFound(_))
    ));
    // Another account gets its own default key.
    let other = via_engine(Principal::user(OTHER_ACCOUNT, "bob"));
    assert_ne!(
        kms.describe_key(&other, SERVICE_DEFAULT_ALIAS)?.key_id,
        a.key_id
    );
    Ok(())
}

#[test]
fn seed_policy_rules_hold_for_the_default_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let via = via_engine(user());
    let dk = kms.generate_data_key(&via, SERVICE_DEFAULT_ALIAS, DataKeySpec::Aes256, &books())?;
    assert_eq!(dk.plaintext.len(), 32);

    // Through the engine: allowed.
    let back = kms.decrypt(&via, &dk.ciphertext_blob, &books(), None)?;
    assert_eq!(back.plaintext, dk.plaintext);

    // The same call made directly: denied, naming principal, action and key.
    match kms.decrypt(&Caller::direct(user()), &dk.ciphertext_blob, &books(), None) {
        Err(KmsError::AccessDenied {
            principal,
            action,
            key,
        }) => {
            assert_eq!(principal, user().arn);
            assert_eq!(action, "kms:Decrypt");
            assert_eq!(key, dk.key_arn);
        }
        other => panic!("expected AccessDenied, got {other:?}"),
    }

    // A principal of another account, even through the engine: denied.
    let stranger = via_engine(Principal::user(OTHER_ACCOUNT, "mallory"));
    assert!(matches!(
        kms.decrypt(&stranger, &dk.ciphertext_blob, &books(), None),
        Err(KmsError::AccessDenied { .. })
    ));

    // The service principal may describe the key, not use it.
    let svc = sealdb::kms::testing::engine_direct_service(SERVICE_PRINCIPAL);
    kms.describe_key(&svc, &dk.key_arn)?;
    assert!(matches!(
        kms.decrypt(&svc, &dk.ciphertext_blob, &books(), None),
        Err(KmsError::AccessDenied { .. })
    ));
    Ok(())
}

#[test]
fn default_key_policy_can_be_read_but_not_changed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let root = Caller::direct(Principal::root(ACCOUNT));
    let md = kms.describe_key(&root, SERVICE_DEFAULT_ALIAS)?;
    let policy = kms.get_key_policy(&root, &md.arn)?;
    assert_eq!(policy, service_default_policy(ACCOUNT, REGION));
    assert!(policy.contains("\"kms:ViaService\" : \"sealdb.us-west-2.amazonaws.com\""));
    assert!(policy.contains("\"Service\" : \"sealdb.amazonaws.com\""));
    let permissive = sealdb::kms::customer_default_policy(ACCOUNT);
    for caller in [
        Caller::direct(Principal::root(ACCOUNT)),
        via_engine(user()),
        Caller::direct(user()),
    ] {
        assert!(matches!(
            kms.put_key_policy(&caller, &md.arn, &permissive),
            Err(KmsError::AccessDenied { .. })
        ));
        assert!(kms.disable_key(&caller, &md.arn).is_err());
        assert!(kms.schedule_key_deletion(&caller, &md.arn, 7).is_err());
    }
    assert_eq!(kms.get_key_policy(&root, &md.arn)?, policy);
    Ok(())
}

#[test]
fn customer_key_policies_are_validated_and_enforced() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let md = kms.create_key(&alice, CreateKeyRequest::new("orders"))?;
    let ctx = books();
    let blob = kms.encrypt(&alice, &md.key_id, b"secret", &ctx)?;
    assert_eq!(
        &kms.decrypt(&alice, &blob, &ctx, Some(&md.arn))?.plaintext[..],
        b"secret"
    );

    // Malformed: rejected with a message naming the problem.
    match kms.put_key_policy(
        &alice,
        &md.key_id,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}"#,
    ) {
        Err(KmsError::MalformedPolicy(m)) => assert!(m.contains("Principal"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Lockout: a policy that would stop alice changing it again is refused.
    let lockout = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/bob"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    assert!(matches!(
        kms.put_key_policy(&alice, &md.key_id, &lockout),
        Err(KmsError::MalformedPolicy(_))
    ));

    // Explicit deny for one table wins over the account-wide allow.
    let deny_movies = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Principal":{{"AWS":"{ACCOUNT}"}},"Action":"kms:*","Resource":"*"}},
          {{"Effect":"Deny","Principal":"*","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
            "Condition":{{"StringEquals":{{"kms:EncryptionContext:sealdb:tableName":"Movies"}}}}}}]}}"#
    );
    kms.put_key_policy(&alice, &md.key_id, &deny_movies)?;
    assert_eq!(kms.get_key_policy(&alice, &md.key_id)?, deny_movies);
    kms.encrypt(&alice, &md.key_id, b"x", &ctx)?;
    let movies = EncryptionContext::for_table("Movies", ACCOUNT);
    assert!(matches!(
        kms.encrypt(&alice, &md.key_id, b"x", &movies),
        Err(KmsError::AccessDenied { .. })
    ));
    // Another account is not in the policy.
    let bob = Caller::direct(Principal::user(OTHER_ACCOUNT, "bob"));
    assert!(matches!(
        kms.encrypt(&bob, &md.arn, b"x", &ctx),
        Err(KmsError::AccessDenied { .. })
    ));
    Ok(())
}

#[test]
fn aliases_resolve_per_account_and_reserved_names_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let md = kms.create_key(&alice, CreateKeyRequest::default())?;
    kms.create_alias(&alice, "alias/orders", &md.key_id)?;
    assert_eq!(kms.describe_key(&alice, "alias/orders")?.key_id, md.key_id);
    assert!(matches!(
        kms.create_alias(&alice, "alias/orders", &md.key_id),
        Err(KmsError::AlreadyExists(_))
    ));
    assert!(matches!(
        kms.create_alias(&alice, "alias/aws/mine", &md.key_id),
        Err(KmsError::InvalidArgument(_))
    ));
    assert!(matches!(
        kms.create_alias(&alice, "orders", &md.key_id),
        Err(KmsError::InvalidArgument(_))
    ));
    let bob = Caller::direct(Principal::user(OTHER_ACCOUNT, "bob"));
    assert!(matches!(
        kms.describe_key(&bob, "alias/orders"),
        Err(KmsError::NotFound(_))
    ));
    Ok(())
}
