//! Principals and the audit trail: the table's owner and a colleague read an encrypted
//! table through sealdb; a user of another account is refused; a direct KMS call that
//! bypasses sealdb is refused by the default key's policy. Every call, allowed or not,
//! is a CloudTrail-shaped event in the local KMS's audit trail.
//!
//! Run with `cargo run --example principals`.

use std::sync::Arc;

use sealdb::kms::{
    AuditQuery, Caller, DataKeySpec, EncryptionContext, KdfParams, Kms, LocalKms, LocalKmsOptions,
    Principal, RootKeySource,
};
use sealdb::{Db, Options, TableOptions};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const ACCOUNT: &str = "111122223333";

fn main() -> Result {
    let dir = tempfile::tempdir()?;
    let mut kms_opts = LocalKmsOptions::new(ACCOUNT, "us-west-2");
    kms_opts.root_key = RootKeySource::Passphrase {
        passphrase: "example passphrase".to_string().into(),
        kdf: KdfParams::insecure_fast_for_tests(),
    };
    let kms = Arc::new(LocalKms::open(&dir.path().join("data.kms"), kms_opts)?);
    let owner = Principal::assumed_role(ACCOUNT, "Admin", "user01");
    let mut opts = Options::with_kms(kms.clone());
    opts.principal = owner.clone();
    let db = Db::open(dir.path().join("data"), opts)?;
    let books = db.create_table("Books", TableOptions::encrypted())?;
    books.put("dune", "Frank Herbert")?;

    // A colleague in the same account: the default key's policy allows any principal of
    // the account to use it through sealdb.
    let bob = db.as_principal(Principal::user(ACCOUNT, "bob"))?;
    println!("bob reads: {:?}", bob.table("Books")?.get("dune")?);

    // A user of another account: refused by the KMS, and the engine says why.
    let mallory = db.as_principal(Principal::user("444455556666", "mallory"))?;
    match mallory.table("Books")?.get("dune") {
        Ok(v) => return Err(format!("unexpected: mallory read {v:?}").into()),
        Err(e) => println!("mallory is refused: {e}"),
    }

    // The owner calling the KMS directly, not through sealdb: kms:ViaService is absent, so
    // the default key's policy does not allow GenerateDataKey.
    let direct = kms.generate_data_key(
        &Caller::direct(owner),
        "alias/aws/sealdb",
        DataKeySpec::Aes256,
        &EncryptionContext::for_table("Books", ACCOUNT),
    );
    match direct {
        Ok(_) => return Err("unexpected: a direct GenerateDataKey was allowed".into()),
        Err(e) => println!("direct call refused: {e}"),
    }

    println!("\nthe audit trail for table Books:");
    let q = AuditQuery {
        table: Some("Books".into()),
        ..AuditQuery::default()
    };
    for e in kms.audit().query(&q)? {
        let who = e
            .pointer("/userIdentity/arn")
            .or(e.pointer("/userIdentity/invokedBy"))
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let outcome = e
            .pointer("/errorCode")
            .and_then(|v| v.as_str())
            .unwrap_or("allowed");
        println!(
            "  {:<16} {:<14} {}",
            e.pointer("/eventName")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            outcome,
            who
        );
    }
    Ok(())
}
