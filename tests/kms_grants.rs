//! Table grants as the engine makes them (the seed's CreateGrant), used and ended.

mod common;

use common::kms::*;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    via_service_name, Caller, CreateGrantRequest, CreateKeyRequest, DataKeySpec, EncryptionContext,
    GrantConstraints, GrantOperation, Kms, KmsError, LocalKms, Principal, SERVICE_DEFAULT_ALIAS,
};

fn table_grant(key: &str, table: &str) -> CreateGrantRequest {
    let svc = via_service_name(REGION);
    CreateGrantRequest::new(key, svc.clone(), GrantOperation::seed_table_grant())
        .with_retiring_principal(svc)
        .with_constraints(GrantConstraints::subset(EncryptionContext::for_table(
            table, ACCOUNT,
        )))
}

/// Creates the default key and a Books grant for the engine; returns (key ARN, grant id, blob).
fn setup(kms: &LocalKms) -> Result<(String, String, Vec<u8>), KmsError> {
    let user = via_engine(user());
    let md = kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
    let grant = kms.create_grant(&user, table_grant(&md.arn, "Books"))?;
    assert_eq!(grant.grant_id.len(), 64);
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let dk = kms.generate_data_key(&engine(), &md.arn, DataKeySpec::Aes256, &books)?;
    Ok((md.arn, grant.grant_id, dk.ciphertext_blob))
}

#[test]
fn books_grant_allows_books_and_denies_movies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let (arn, _, blob) = setup(&kms)?;
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let movies = EncryptionContext::for_table("Movies", ACCOUNT);
    let eng = engine();
    kms.decrypt(&eng, &blob, &books, None)?;
    kms.describe_key(&eng, &arn)?;
    assert!(matches!(
        kms.generate_data_key(&eng, &arn, DataKeySpec::Aes256, &movies),
        Err(KmsError::AccessDenied { .. })
    ));
    let movies_blob = kms
        .generate_data_key(&via_engine(user()), &arn, DataKeySpec::Aes256, &movies)?
        .ciphertext_blob;
    assert!(matches!(
        kms.decrypt(&eng, &movies_blob, &movies, None),
        Err(KmsError::AccessDenied { .. })
    ));
    // Not a granted operation.
    assert!(matches!(
        kms.list_grants(&eng, &arn),
        Err(KmsError::AccessDenied { .. })
    ));
    // The grant is to the engine, not to whoever calls through it from another account.
    let stranger = via_engine(Principal::user(OTHER_ACCOUNT, "m"));
    assert!(kms.decrypt(&stranger, &blob, &books, None).is_err());
    Ok(())
}

#[test]
fn retired_grant_allows_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let (arn, grant_id, blob) = setup(&kms)?;
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    // Only the retiring principal (or grantee) may retire.
    assert!(matches!(
        kms.retire_grant(&Caller::direct(user()), &arn, &grant_id),
        Err(KmsError::AccessDenied { .. })
    ));
    kms.retire_grant(&engine(), &arn, &grant_id)?;
    assert!(matches!(
        kms.decrypt(&engine(), &blob, &books, None),
        Err(KmsError::AccessDenied { .. })
    ));
    assert!(matches!(
        kms.describe_key(&engine(), &arn),
        Err(KmsError::AccessDenied { .. })
    ));
    assert!(matches!(
        kms.retire_grant(&engine(), &arn, &grant_id),
        Err(KmsError::NotFound(_))
    ));
    // The user through the engine still has the key policy's permission.
    kms.decrypt(&via_engine(user()), &blob, &books, None)?;
    Ok(())
}

#[test]
fn revoked_grant_allows_nothing_and_only_the_policy_may_revoke() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let (arn, grant_id, blob) = setup(&kms)?;
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    assert!(matches!(
        kms.revoke_grant(&engine(), &arn, &grant_id),
        Err(KmsError::AccessDenied { .. })
    ));
    let outsider = Caller::direct(Principal::root(OTHER_ACCOUNT));
    assert!(matches!(
        kms.revoke_grant(&outsider, &arn, &grant_id),
        Err(KmsError::AccessDenied { .. })
    ));
    let root = Caller::direct(Principal::root(ACCOUNT));
    let listed = kms.list_grants(&root, &arn)?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].grant_id, grant_id);
    assert_eq!(listed[0].operations, GrantOperation::seed_table_grant());
    kms.revoke_grant(&root, &arn, &grant_id)?;
    assert!(kms.list_grants(&root, &arn)?.is_empty());
    assert!(matches!(
        kms.decrypt(&engine(), &blob, &books, None),
        Err(KmsError::AccessDenied { .. })
    ));
    assert!(matches!(
        kms.revoke_grant(&root, &arn, &grant_id),
        Err(KmsError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn grant_creation_requires_the_engine_and_grants_only_narrow() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let md = kms.describe_key(&via_engine(user()), SERVICE_DEFAULT_ALIAS)?;
    // Directly, the user may not create grants on the default key.
    assert!(matches!(
        kms.create_grant(&Caller::direct(user()), table_grant(&md.arn, "Books")),
        Err(KmsError::AccessDenied { .. })
    ));
    // A customer key: alice grants bob Decrypt+CreateGrant for Books; bob may re-grant only narrower.
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let key = kms.create_key(&alice, CreateKeyRequest::default())?;
    let bob = Principal::user(OTHER_ACCOUNT, "bob");
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    kms.create_grant(
        &alice,
        CreateGrantRequest::new(
            key.arn.clone(),
            bob.arn.clone(),
            vec![GrantOperation::Decrypt, GrantOperation::CreateGrant],
        )
        .with_constraints(GrantConstraints::subset(books.clone()))
        .with_name("bob-books"),
    )?;
    let bob_c = Caller::direct(bob);
    let wider = CreateGrantRequest::new(
        key.arn.clone(),
        "arn:aws:iam::444455556666:user/carol",
        vec![GrantOperation::Decrypt, GrantOperation::Encrypt],
    )
    .with_constraints(GrantConstraints::subset(books.clone()));
    assert!(matches!(
        kms.create_grant(&bob_c, wider.clone()),
        Err(KmsError::AccessDenied { .. })
    ));
    let mut unconstrained = wider.clone();
    unconstrained.operations = vec![GrantOperation::Decrypt];
    unconstrained.constraints = None;
    assert!(matches!(
        kms.create_grant(&bob_c, unconstrained),
        Err(KmsError::AccessDenied { .. })
    ));
    let mut narrower = wider;
    narrower.operations = vec![GrantOperation::Decrypt];
    kms.create_grant(&bob_c, narrower)?;
    // Bob may decrypt Books blobs with the grant, across accounts.
    let blob = kms.encrypt(&alice, &key.arn, b"k", &books)?;
    kms.decrypt(&bob_c, &blob, &books, None)?;
    // Invalid requests.
    let mut empty_ops = table_grant(&key.arn, "Books");
    empty_ops.operations = vec![];
    assert!(matches!(
        kms.create_grant(&alice, empty_ops),
        Err(KmsError::InvalidArgument(_))
    ));
    Ok(())
}

#[test]
fn disabled_and_deleted_keys() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms = open(dir.path(), &clock)?;
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let key = kms.create_key(&alice, CreateKeyRequest::default())?;
    let ctx = EncryptionContext::for_table("Books", ACCOUNT);
    let blob = kms.encrypt(&alice, &key.key_id, b"k", &ctx)?;
    kms.disable_key(&alice, &key.key_id)?;
    assert!(matches!(
        kms.decrypt(&alice, &blob, &ctx, None),
        Err(KmsError::Disabled(_))
    ));
    kms.enable_key(&alice, &key.key_id)?;
    kms.decrypt(&alice, &blob, &ctx, None)?;
    assert!(matches!(
        kms.schedule_key_deletion(&alice, &key.key_id, 3),
        Err(KmsError::InvalidArgument(_))
    ));
    kms.schedule_key_deletion(&alice, &key.key_id, 7)?;
    assert!(matches!(
        kms.decrypt(&alice, &blob, &ctx, None),
        Err(KmsError::InvalidState { .. })
    ));
    kms.cancel_key_deletion(&alice, &key.key_id)?;
    assert!(matches!(
        kms.decrypt(&alice, &blob, &ctx, None),
        Err(KmsError::Disabled(_))
    ));
    kms.enable_key(&alice, &key.key_id)?;
    kms.schedule_key_deletion(&alice, &key.key_id, 7)?;
    clock.advance(std::time::Duration::from_secs(7 * 86_400 - 1));
    assert!(matches!(
        kms.describe_key(&alice, &key.key_id)?.key_state,
        sealdb::kms::KeyState::PendingDeletion
    ));
    clock.advance(std::time::Duration::from_secs(1));
    assert!(matches!(
        kms.describe_key(&alice, &key.key_id),
        Err(KmsError::NotFound(_))
    ));
    assert!(matches!(
        kms.decrypt(&alice, &blob, &ctx, None),
        Err(KmsError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn blobs_are_bound_to_key_and_context() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms = open(dir.path(), &ManualClock::default())?;
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let k1 = kms.create_key(&alice, CreateKeyRequest::default())?;
    let k2 = kms.create_key(&alice, CreateKeyRequest::default())?;
    let ctx = EncryptionContext::for_table("Books", ACCOUNT);
    let blob = kms.encrypt(&alice, &k1.key_id, b"0123456789abcdef", &ctx)?;
    let wrong = [
        EncryptionContext::for_table("Movies", ACCOUNT),
        EncryptionContext::new().with("sealdb:tableName", "Books"),
        ctx.clone().with("extra", "x"),
        EncryptionContext::new(),
    ];
    for w in &wrong {
        assert!(
            matches!(
                kms.decrypt(&alice, &blob, w, None),
                Err(KmsError::InvalidCiphertext)
            ),
            "{w:?}"
        );
    }
    assert!(matches!(
        kms.decrypt(&alice, &blob, &ctx, Some(&k2.key_id)),
        Err(KmsError::IncorrectKey(_))
    ));
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 1;
        assert!(kms.decrypt(&alice, &bad, &ctx, None).is_err(), "byte {i}");
    }
    // ReEncrypt moves it to k2 under a new context without exposing it.
    let movies = EncryptionContext::for_table("Movies", ACCOUNT);
    let moved = kms.re_encrypt(&alice, &blob, &ctx, &k2.arn, &movies)?;
    let back = kms.decrypt(&alice, &moved, &movies, Some(&k2.key_id))?;
    assert_eq!(&back.plaintext[..], b"0123456789abcdef");
    assert_eq!(back.key_arn, k2.arn);
    Ok(())
}
