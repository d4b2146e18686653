//! Keystore persistence: everything survives reopen; any damage fails open clearly.

mod common;

use std::fs;

use common::kms::*;
use sealdb::clock::ManualClock;
use sealdb::kms::{
    via_service_name, Caller, CreateGrantRequest, CreateKeyRequest, DataKeySpec, EncryptionContext,
    GrantConstraints, GrantOperation, KdfParams, Kms, KmsError, LocalKms, Principal, RootKeySource,
    DEV_ROOT_KEY_FILE, KEYSTORE_FILE, SERVICE_DEFAULT_ALIAS,
};
use zeroize::Zeroizing;

#[test]
fn keys_aliases_grants_and_policies_survive_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let alice = Caller::direct(Principal::user(ACCOUNT, "alice"));
    let user = via_engine(user());
    let books = EncryptionContext::for_table("Books", ACCOUNT);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Id":"custom","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ACCOUNT}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let (default_key, custom, grant_id, blob, data_key, disabled) = {
        let kms = open(dir.path(), &clock)?;
        let default_key = kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?;
        let svc = via_service_name(REGION);
        let grant = kms.create_grant(
            &user,
            CreateGrantRequest::new(
                default_key.arn.clone(),
                svc.clone(),
                GrantOperation::seed_table_grant(),
            )
            .with_retiring_principal(svc)
            .with_constraints(GrantConstraints::subset(books.clone()))
            .with_name("books"),
        )?;
        let dk = kms.generate_data_key(&engine(), &default_key.arn, DataKeySpec::Aes256, &books)?;
        let custom = kms.create_key(&alice, CreateKeyRequest::new("c"))?;
        kms.create_alias(&alice, "alias/custom", &custom.key_id)?;
        kms.put_key_policy(&alice, &custom.key_id, &policy)?;
        let disabled = kms.create_key(&alice, CreateKeyRequest::default())?;
        kms.disable_key(&alice, &disabled.key_id)?;
        let blob = kms.encrypt(&alice, "alias/custom", b"persist me", &books)?;
        (default_key, custom, grant.grant_id, blob, dk, disabled)
    };
    let kms = open(dir.path(), &clock)?;
    assert_eq!(kms.describe_key(&user, SERVICE_DEFAULT_ALIAS)?, default_key);
    assert_eq!(kms.describe_key(&alice, "alias/custom")?, custom);
    assert_eq!(kms.get_key_policy(&alice, &custom.arn)?, policy);
    let grants = kms.list_grants(&Caller::direct(Principal::root(ACCOUNT)), &default_key.arn)?;
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant_id, grant_id);
    assert_eq!(grants[0].name.as_deref(), Some("books"));
    assert_eq!(
        grants[0].constraints,
        Some(GrantConstraints::subset(books.clone()))
    );
    // The grant still works, and the material is the same.
    let back = kms.decrypt(&engine(), &data_key.ciphertext_blob, &books, None)?;
    assert_eq!(back.plaintext, data_key.plaintext);
    assert_eq!(
        &kms.decrypt(&alice, &blob, &books, None)?.plaintext[..],
        b"persist me"
    );
    assert!(!kms.describe_key(&alice, &disabled.key_id)?.enabled);
    // The audit trail continues across reopen.
    assert!(kms.audit().query(&Default::default())?.len() >= 9);
    Ok(())
}

#[test]
fn every_flipped_byte_fails_to_open_with_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    {
        let kms = open(dir.path(), &clock)?;
        kms.describe_key(&via_engine(user()), SERVICE_DEFAULT_ALIAS)?;
    }
    let path = dir.path().join(KEYSTORE_FILE);
    let good = fs::read(&path)?;
    assert!(good.len() > 1000, "a keystore with a key and its policy");
    for i in 0..good.len() {
        // Both ends of each header byte (KDF parameters are numbers); one bit of the body.
        let bits: &[u8] = if i < 66 { &[0x01, 0x80] } else { &[0x10] };
        for &bit in bits {
            let mut bad = good.clone();
            bad[i] ^= bit;
            fs::write(&path, &bad)?;
            match open(dir.path(), &clock) {
                Err(KmsError::Keystore(msg)) => assert!(!msg.is_empty()),
                Err(other) => panic!("byte {i}: unexpected error {other:?}"),
                Ok(_) => panic!("byte {i} bit {bit:#x}: damaged keystore opened"),
            }
        }
    }
    for len in [0, 1, 8, 65, 66, 81, good.len() - 1] {
        fs::write(&path, &good[..len])?;
        assert!(
            matches!(open(dir.path(), &clock), Err(KmsError::Keystore(_))),
            "len {len}"
        );
    }
    fs::write(&path, &good)?;
    open(dir.path(), &clock)?;
    Ok(())
}

#[test]
fn wrong_passphrase_is_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    drop(open(dir.path(), &clock)?);
    match LocalKms::open(dir.path(), options(&clock, "wrong")) {
        Err(KmsError::Keystore(msg)) => assert!(msg.contains("wrong passphrase"), "{msg}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened with the wrong passphrase"),
    }
    Ok(())
}

#[test]
fn dev_default_creates_a_private_root_key_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let opts = || options(&clock, "").with_root_key(RootKeySource::DevDefault);
    let key_id = {
        let kms = LocalKms::open(dir.path(), opts())?;
        kms.describe_key(&via_engine(user()), SERVICE_DEFAULT_ALIAS)?
            .key_id
    };
    let key_file = dir.path().join(DEV_ROOT_KEY_FILE);
    assert_eq!(fs::read(&key_file)?.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&key_file)?.permissions().mode() & 0o777, 0o600);
    }
    let kms = LocalKms::open(dir.path(), opts())?;
    assert_eq!(
        kms.describe_key(&via_engine(user()), SERVICE_DEFAULT_ALIAS)?
            .key_id,
        key_id
    );
    drop(kms);
    // The same keystore cannot be opened with a passphrase instead.
    assert!(matches!(
        LocalKms::open(dir.path(), options(&clock, "pw")),
        Err(KmsError::Keystore(_))
    ));
    // An explicit key file works and a missing one is an error, not a silent new key.
    let other = tempfile::tempdir()?;
    let kf = other.path().join("root.key");
    fs::write(&kf, [7u8; 32])?;
    let with_file = || options(&clock, "").with_root_key(RootKeySource::KeyFile(kf.clone()));
    drop(LocalKms::open(&other.path().join("kms"), with_file())?);
    LocalKms::open(&other.path().join("kms"), with_file())?;
    let missing =
        options(&clock, "").with_root_key(RootKeySource::KeyFile(other.path().join("nope")));
    assert!(matches!(
        LocalKms::open(&other.path().join("kms2"), missing),
        Err(KmsError::Keystore(_))
    ));
    Ok(())
}

#[test]
fn kdf_params_are_stored_in_the_header() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kdf = KdfParams {
        m_cost_kib: 16,
        t_cost: 2,
        p_cost: 1,
    };
    let opts = |p: KdfParams| {
        options(&clock, "").with_root_key(RootKeySource::Passphrase {
            passphrase: Zeroizing::new("pw".into()),
            kdf: p,
        })
    };
    drop(LocalKms::open(dir.path(), opts(kdf))?);
    // Reopening with other requested parameters uses the header's.
    LocalKms::open(dir.path(), opts(KdfParams::insecure_fast_for_tests()))?;
    let bytes = fs::read(dir.path().join(KEYSTORE_FILE))?;
    assert_eq!(&bytes[10..14], &16u32.to_le_bytes());
    assert_eq!(&bytes[14..18], &2u32.to_le_bytes());
    Ok(())
}

#[test]
fn a_second_handle_on_the_same_directory_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let first = open(dir.path(), &clock)?;
    assert!(matches!(
        open(dir.path(), &clock),
        Err(KmsError::Keystore(_))
    ));
    drop(first);
    open(dir.path(), &clock)?;
    Ok(())
}

#[test]
fn local_kms_is_send_and_sync_behind_the_trait() {
    fn assert_kms<T: Kms + Send + Sync + 'static>() {}
    assert_kms::<LocalKms>();
    let _: Option<Box<dyn Kms>> = None;
}
