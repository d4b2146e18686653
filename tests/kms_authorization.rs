//! Who may do what, attacked the way an adversary inside the account would: borrowing the
//! engine's service identity, dropping a table one may not read, creating tables in another
//! account's database, and using one database's grants for another's tables.

mod common;

use std::time::Duration;

use common::{EncryptedFixture, TestResult};
use sealdb::kms::{
    via_service_name, AuditQuery, Caller, CreateKeyRequest, DataKeySpec, EncryptionContext, Kms,
    KmsError, Principal, SERVICE_DEFAULT_ALIAS,
};
use sealdb::{Db, Error, TableOptions};
use serde_json::Value;

const ACCOUNT: &str = sealdb::DEFAULT_ACCOUNT;

fn service() -> String {
    via_service_name(sealdb::DEFAULT_REGION)
}

fn root() -> Caller {
    Caller::direct(Principal::root(ACCOUNT))
}

fn owner() -> Principal {
    Principal::assumed_role(ACCOUNT, "Admin", "user01")
}

fn grant_of(db: &Db, table: &str) -> Result<(String, String), Box<dyn std::error::Error>> {
    let s = db.encryption_status();
    let t = s.iter().find(|s| s.table == table).ok_or("no such table")?;
    Ok((
        t.key_arn.clone().ok_or("no key")?,
        t.grant_id.clone().ok_or("no grant")?,
    ))
}

/// The audit events of `name` whose error code is `code`.
fn refused(
    fx: &EncryptedFixture,
    name: &str,
    code: &str,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    Ok(fx
        .kms
        .audit()
        .query(&AuditQuery {
            event_name: Some(name.into()),
            ..AuditQuery::default()
        })?
        .into_iter()
        .filter(|e| e["errorCode"] == code)
        .collect())
}

/// Fills `table` past one memtable and tries to flush: Ok only if the engine could unwrap
/// the table's key for maintenance.
fn maintain(db: &Db, table: &str) -> sealdb::Result<()> {
    let t = db.table(table)?;
    t.put("maintained", "1")?;
    db.flush()
}

#[test]
fn the_engine_service_identity_cannot_be_borrowed() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted())?;
    t.put("k", "secret")?;
    let svc = Principal::service(&service());

    // Through the public API: as_principal refuses it, and the refusal is audited.
    let err = db
        .as_principal(svc.clone())
        .err()
        .ok_or("as_principal(service) accepted")?;
    assert!(
        matches!(&err, Error::Kms(KmsError::ServicePrincipalRefused { principal }) if *principal == service()),
        "{err}"
    );
    println!("as_principal(service): {err}");
    // ... and so does Db::open with the service as the handle's principal.
    drop((t, db));
    let mut opts = fx.options();
    opts.principal = svc.clone();
    let err = Db::open(fx.db_path(), opts)
        .err()
        .ok_or("open as service accepted")?;
    assert!(
        matches!(err, Error::Kms(KmsError::ServicePrincipalRefused { .. })),
        "{err}"
    );

    // Straight at the KMS: a caller naming the service principal is refused before any
    // policy or grant is looked at, and recorded as refused.
    let before = refused(&fx, "Decrypt", "AccessDenied")?.len();
    let borrowed = Caller::direct(svc);
    let mut ctx = EncryptionContext::for_table("Books", ACCOUNT);
    ctx.insert("sealdb:databaseId", "x");
    let r = fx.kms.decrypt(&borrowed, &[1; 64], &ctx, None);
    assert!(
        matches!(r, Err(KmsError::ServicePrincipalRefused { .. })),
        "{r:?}"
    );
    let events = refused(&fx, "Decrypt", "AccessDenied")?;
    assert_eq!(events.len(), before + 1);
    assert_eq!(
        events.last().map(|e| e["userIdentity"]["type"].clone()),
        Some(Value::from("AWSService"))
    );
    let r = fx
        .kms
        .generate_data_key(&borrowed, SERVICE_DEFAULT_ALIAS, DataKeySpec::Aes256, &ctx);
    assert!(r.is_err());

    // A user calling the KMS directly carries no kms:ViaService (only the engine sets it):
    // the service default key's policy refuses it, and the audit says so.
    let user = Caller::direct(owner());
    let before = refused(&fx, "GenerateDataKey", "AccessDenied")?.len();
    let r = fx
        .kms
        .generate_data_key(&user, SERVICE_DEFAULT_ALIAS, DataKeySpec::Aes256, &ctx);
    assert!(matches!(r, Err(KmsError::AccessDenied { .. })), "{r:?}");
    assert_eq!(
        refused(&fx, "GenerateDataKey", "AccessDenied")?.len(),
        before + 1
    );

    // The data is untouched and the owner still reads it.
    let db = fx.open()?;
    assert_eq!(
        db.table("Books")?.get("k")?.as_deref(),
        Some(&b"secret"[..])
    );
    Ok(())
}

#[test]
fn a_principal_refused_reads_cannot_drop_the_table() -> TestResult {
    let fx = EncryptedFixture::new()?;
    // A customer key only the owner's role session may use.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": owner().arn},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string();
    let key = fx
        .kms
        .create_key(
            &Caller::direct(owner()),
            CreateKeyRequest::new("owner only").with_policy(policy),
        )?
        .arn;
    let db = fx.open()?;
    let t = db.create_table("Books", TableOptions::encrypted_with(&key))?;
    for i in 0..100 {
        t.put(format!("k{i:03}"), "v")?;
    }
    db.flush()?;
    let (_, grant) = grant_of(&db, "Books")?;

    let bob = db.as_principal(Principal::user(ACCOUNT, "bob"))?;
    assert!(bob.table("Books")?.get("k000").is_err(), "bob may not read");
    let before = refused(&fx, "Decrypt", "AccessDenied")?.len();
    let err = bob
        .drop_table("Books")
        .err()
        .ok_or("bob dropped the table")?;
    assert!(
        matches!(err, Error::Kms(KmsError::AccessDenied { .. })),
        "{err}"
    );
    assert!(
        refused(&fx, "Decrypt", "AccessDenied")?.len() > before,
        "audited"
    );
    // Nor may bob renew (or otherwise touch) its grant.
    assert!(bob.renew_grant("Books").is_err());
    // Another account's principal neither.
    let mallory = db.as_principal(Principal::user("444455556666", "mallory"))?;
    assert!(mallory.drop_table("Books").is_err());

    // Intact: every row, the grant, across a reopen.
    drop((t, bob, mallory, db));
    let db = fx.open()?;
    let t = db.table("Books")?;
    assert_eq!(t.range::<&[u8]>(..)?.count(), 100);
    assert_eq!(grant_of(&db, "Books")?.1, grant);
    // The owner may drop it.
    drop(t);
    db.drop_table("Books")?;
    assert!(db.table("Books").is_err());
    Ok(())
}

#[test]
fn another_accounts_principal_cannot_create_a_table() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("Books", TableOptions::encrypted())?;
    let mallory = db.as_principal(Principal::user("444455556666", "mallory"))?;
    for opts in [TableOptions::encrypted(), TableOptions::plaintext()] {
        let err = mallory
            .create_table("Mine", opts)
            .err()
            .ok_or("a foreign account created a table")?;
        assert!(
            matches!(err, Error::Kms(KmsError::AccessDenied { .. })),
            "{err}"
        );
        println!("foreign-account create_table: {err}");
    }
    assert_eq!(db.tables(), vec!["Books".to_owned()]);
    drop((mallory, db));
    assert_eq!(fx.open()?.tables(), vec!["Books".to_owned()]);
    Ok(())
}

#[test]
fn two_databases_on_one_kms_do_not_share_grants() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let a = fx.open()?;
    let b_dir = fx.root.path().join("db-b");
    let b = Db::open(&b_dir, fx.options())?;
    a.create_table("Books", TableOptions::encrypted())?
        .put("a", "1")?;
    b.create_table("Books", TableOptions::encrypted())?
        .put("b", "1")?;
    a.flush()?;
    b.flush()?;
    // Database B's owner revokes B's Books grant: B's engine must lose the table's
    // maintenance, even though database A's engine (the same service principal) holds a
    // grant for a table of the same name in the same account.
    let (key, b_grant) = grant_of(&b, "Books")?;
    fx.kms.revoke_grant(&root(), &key, &b_grant)?;
    fx.clock.advance(Duration::from_secs(6 * 60));
    let err = maintain(&b, "Books")
        .err()
        .ok_or("B's engine used A's grant")?;
    assert!(err.to_string().contains("grant revoked"), "{err}");
    maintain(&a, "Books")?;
    // The grants' constraints name different contexts.
    let grants = fx.kms.list_grants(&root(), &key)?;
    let a_grant = grant_of(&a, "Books")?.1;
    let a_ctx = grants
        .iter()
        .find(|g| g.grant_id == a_grant)
        .and_then(|g| g.constraints.clone())
        .and_then(|c| c.encryption_context_subset)
        .ok_or("A's grant has no constraint")?;
    assert_eq!(a_ctx.len(), 4, "{a_ctx:?}");
    assert!(a_ctx.get("sealdb:tableDatabaseId").is_some());
    // Not the database key's context key: the engine's database-key grant (constrained to
    // {sealdb:databaseId, sealdb:subscriberId}) must not cover table keys.
    assert!(a_ctx.get("sealdb:databaseId").is_none());
    assert!(a_ctx.get("sealdb:tableIncarnation").is_some());
    b.renew_grant("Books")?;
    maintain(&b, "Books")?;
    Ok(())
}

#[test]
fn a_recreated_table_does_not_inherit_the_dropped_ones_grants() -> TestResult {
    let fx = EncryptedFixture::new()?;
    // A customer key whose (default) policy lets the account make grants by hand.
    let key = fx.kms.create_key(&root(), CreateKeyRequest::default())?.arn;
    let db = fx.open()?;
    db.create_table("Books", TableOptions::encrypted_with(&key))?
        .put("k", "v")?;
    let (_, old) = grant_of(&db, "Books")?;
    // A grant made by hand for bob on the table's context also goes with the drop.
    let me = owner();
    let ctx = fx
        .kms
        .list_grants(&root(), &key)?
        .into_iter()
        .find(|g| g.grant_id == old)
        .and_then(|g| g.constraints)
        .ok_or("no constraint")?;
    let bob_grant = fx
        .kms
        .create_grant(
            &root(),
            sealdb::kms::CreateGrantRequest::new(
                key.clone(),
                Principal::user(ACCOUNT, "bob").arn,
                vec![sealdb::kms::GrantOperation::Decrypt],
            )
            .with_retiring_principal(me.arn.clone())
            .with_constraints(ctx),
        )?
        .grant_id;
    db.drop_table("Books")?;
    let left: Vec<String> = fx
        .kms
        .list_grants(&root(), &key)?
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert!(!left.contains(&old), "the table's grant is retired");
    assert!(!left.contains(&bob_grant), "the hand-made grant is retired");
    assert!(db.grants_to_retire().is_empty());
    // Re-created under the same name: a new context, a new grant, and nothing of the old.
    db.create_table("Books", TableOptions::encrypted_with(&key))?
        .put("k2", "v")?;
    let (_, new) = grant_of(&db, "Books")?;
    assert_ne!(new, old);
    assert!(db.table("Books")?.get("k")?.is_none());
    Ok(())
}

#[test]
fn renew_grant_retires_the_grant_it_replaces() -> TestResult {
    let fx = EncryptedFixture::new()?;
    let db = fx.open()?;
    db.create_table("Books", TableOptions::encrypted())?;
    let (key, first) = grant_of(&db, "Books")?;
    let second = db.renew_grant("Books")?;
    let third = db.renew_grant("Books")?;
    let ids: Vec<String> = fx
        .kms
        .list_grants(&root(), &key)?
        .into_iter()
        .filter(|g| g.name.as_deref() == Some("sealdb-table-Books"))
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(ids, vec![third.clone()], "{first} and {second} retired");
    drop(db);
    let db = fx.open()?;
    assert_eq!(grant_of(&db, "Books")?.1, third);
    maintain(&db, "Books")?;
    Ok(())
}
