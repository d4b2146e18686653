//! `AwsKms` against a KMS-compatible server on 127.0.0.1 (moto's `moto_server`).
//!
//! `.ci/aws_kms.sh` starts the server and sets `SEALDB_TEST_KMS_ENDPOINT`; without it the
//! tests that need a server print a notice and pass. moto enforces the encryption context on
//! Decrypt but not grants, key policies or key state, which the LocalKms tests cover.
#![cfg(feature = "aws-kms")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Once;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use sealdb::kms::{
    AwsKms, AwsKmsOptions, CreateGrantRequest, CreateKeyRequest, DataKeySpec, EncryptionContext,
    GrantConstraints, GrantOperation, KeyState, Kms, KmsError, Principal, SERVICE_DEFAULT_ALIAS,
};

#[path = "common/moto.rs"]
mod moto;

use moto::{books, caller, fixture, options, TestResult, ACCOUNT};

#[test]
fn generate_data_key_then_decrypt_with_the_context() -> TestResult {
    let Some(f) = fixture("generate_data_key_then_decrypt_with_the_context")? else {
        return Ok(());
    };
    let dk = f.kms.generate_data_key(
        &caller(),
        SERVICE_DEFAULT_ALIAS,
        DataKeySpec::Aes256,
        &books(),
    )?;
    assert_eq!(dk.plaintext.len(), 32);
    assert_eq!(dk.key_arn, f.key_arn);
    assert!(!dk.ciphertext_blob.is_empty());
    let back = f
        .kms
        .decrypt(&caller(), &dk.ciphertext_blob, &books(), None)?;
    assert_eq!(back.plaintext.as_slice(), dk.plaintext.as_slice());
    assert_eq!(back.key_arn, f.key_arn);
    // Naming the key in Decrypt, through the service default alias, works too.
    let named = f.kms.decrypt(
        &caller(),
        &dk.ciphertext_blob,
        &books(),
        Some(SERVICE_DEFAULT_ALIAS),
    )?;
    assert_eq!(named.plaintext.as_slice(), dk.plaintext.as_slice());
    let small = f.kms.generate_data_key(
        &caller(),
        &f.key_arn,
        DataKeySpec::NumberOfBytes(64),
        &books(),
    )?;
    assert_eq!(small.plaintext.len(), 64);
    assert_eq!(f.kms.call_count("GenerateDataKey"), 2);
    assert_eq!(f.kms.call_count("Decrypt"), 2);
    Ok(())
}

#[test]
fn decrypt_with_another_context_is_refused() -> TestResult {
    let Some(f) = fixture("decrypt_with_another_context_is_refused")? else {
        return Ok(());
    };
    let dk = f.kms.generate_data_key(
        &caller(),
        SERVICE_DEFAULT_ALIAS,
        DataKeySpec::Aes256,
        &books(),
    )?;
    let movies = EncryptionContext::for_table("Movies", ACCOUNT);
    for wrong in [
        movies,
        EncryptionContext::new(),
        books().with("extra", "pair"),
    ] {
        let r = f.kms.decrypt(&caller(), &dk.ciphertext_blob, &wrong, None);
        assert!(
            matches!(r, Err(KmsError::InvalidCiphertext)),
            "{wrong:?}: {r:?}"
        );
    }
    // Garbage: refused, with whatever code the server picks.
    assert!(f
        .kms
        .decrypt(&caller(), b"not a ciphertext blob", &books(), None)
        .is_err());
    Ok(())
}

#[test]
fn encrypt_and_re_encrypt_under_another_key() -> TestResult {
    let Some(f) = fixture("encrypt_and_re_encrypt_under_another_key")? else {
        return Ok(());
    };
    let blob = f
        .kms
        .encrypt(&caller(), SERVICE_DEFAULT_ALIAS, b"secret", &books())?;
    assert_eq!(
        f.kms
            .decrypt(&caller(), &blob, &books(), None)?
            .plaintext
            .as_slice(),
        b"secret"
    );
    let other = f.kms.create_key(&caller(), CreateKeyRequest::default())?;
    let movies = EncryptionContext::for_table("Movies", ACCOUNT);
    let moved = f
        .kms
        .re_encrypt(&caller(), &blob, &books(), &other.key_id, &movies)?;
    let back = f.kms.decrypt(&caller(), &moved, &movies, None)?;
    assert_eq!(back.plaintext.as_slice(), b"secret");
    assert_eq!(back.key_arn, other.arn);
    assert!(f.kms.decrypt(&caller(), &moved, &books(), None).is_err());
    // The source context is checked too.
    assert!(f
        .kms
        .re_encrypt(&caller(), &blob, &movies, &other.key_id, &movies)
        .is_err());
    // Local checks, before any call.
    assert!(matches!(
        f.kms.encrypt(&caller(), &f.key_arn, &[0; 4097], &books()),
        Err(KmsError::InvalidArgument(_))
    ));
    Ok(())
}

#[test]
fn describe_key_by_id_alias_and_service_default() -> TestResult {
    let Some(f) = fixture("describe_key_by_id_alias_and_service_default")? else {
        return Ok(());
    };
    let by_default = f.kms.describe_key(&caller(), SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(by_default.arn, f.key_arn);
    assert!(by_default.enabled);
    assert_eq!(by_default.key_state, KeyState::Enabled);
    assert_eq!(by_default.aws_account_id, ACCOUNT);
    assert_eq!(by_default.description, "sealdb test key");
    f.kms
        .create_alias(&caller(), "alias/books", &by_default.key_id)?;
    assert_eq!(f.kms.describe_key(&caller(), "alias/books")?.arn, f.key_arn);
    assert_eq!(
        f.kms.describe_key(&caller(), &f.key_arn)?.key_id,
        by_default.key_id
    );
    let r = f
        .kms
        .describe_key(&caller(), "0b7e6f42-4cf7-4d7c-9a4e-2a3b5c6d7e8f");
    assert!(matches!(r, Err(KmsError::NotFound(_))), "{r:?}");
    let r = f.kms.describe_key(&caller(), "alias/nonesuch");
    assert!(matches!(r, Err(KmsError::NotFound(_))), "{r:?}");
    // A client whose configured key is an alias resolves it where AWS wants a key id.
    let via_alias = AwsKms::new(options(&f.endpoint, "alias/books"))?;
    assert_eq!(
        via_alias
            .describe_key(&caller(), SERVICE_DEFAULT_ALIAS)?
            .arn,
        f.key_arn
    );
    assert!(via_alias
        .get_key_policy(&caller(), SERVICE_DEFAULT_ALIAS)?
        .contains("Statement"));
    Ok(())
}

#[test]
fn grants_create_list_retire_revoke() -> TestResult {
    let Some(f) = fixture("grants_create_list_retire_revoke")? else {
        return Ok(());
    };
    let request = |name: &str| {
        CreateGrantRequest::new(
            SERVICE_DEFAULT_ALIAS,
            format!("arn:aws:iam::{ACCOUNT}:role/sealdb"),
            GrantOperation::seed_table_grant(),
        )
        .with_retiring_principal(format!("arn:aws:iam::{ACCOUNT}:role/sealdb"))
        .with_constraints(GrantConstraints::subset(books()))
        .with_name(name)
    };
    let first = f.kms.create_grant(&caller(), request("books-1"))?;
    let second = f.kms.create_grant(&caller(), request("books-2"))?;
    assert_ne!(first.grant_id, second.grant_id);
    let grants = f.kms.list_grants(&caller(), SERVICE_DEFAULT_ALIAS)?;
    assert_eq!(grants.len(), 2);
    let g = grants
        .iter()
        .find(|g| g.grant_id == first.grant_id)
        .ok_or("first grant not listed")?;
    assert_eq!(g.name.as_deref(), Some("books-1"));
    assert_eq!(
        g.grantee_principal,
        format!("arn:aws:iam::{ACCOUNT}:role/sealdb")
    );
    let mut ops = g.operations.clone();
    ops.sort();
    let mut want = GrantOperation::seed_table_grant();
    want.sort();
    assert_eq!(ops, want);
    assert_eq!(g.constraints, Some(GrantConstraints::subset(books())));

    f.kms
        .retire_grant(&caller(), SERVICE_DEFAULT_ALIAS, &first.grant_id)?;
    f.kms
        .revoke_grant(&caller(), &f.key_arn, &second.grant_id)?;
    assert!(f.kms.list_grants(&caller(), &f.key_arn)?.is_empty());
    Ok(())
}

#[test]
fn key_policy_and_key_state() -> TestResult {
    let Some(f) = fixture("key_policy_and_key_state")? else {
        return Ok(());
    };
    let policy = f.kms.get_key_policy(&caller(), SERVICE_DEFAULT_ALIAS)?;
    let parsed: serde_json::Value = serde_json::from_str(&policy)?;
    assert!(parsed.get("Statement").is_some(), "{policy}");
    let custom = sealdb::kms::customer_default_policy(ACCOUNT);
    f.kms.put_key_policy(&caller(), &f.key_arn, &custom)?;
    let stored: serde_json::Value =
        serde_json::from_str(&f.kms.get_key_policy(&caller(), &f.key_arn)?)?;
    assert_eq!(stored, serde_json::from_str::<serde_json::Value>(&custom)?);

    // moto's EnableKey, ScheduleKeyDeletion and CancelKeyDeletion do not resolve key ARNs
    // (real AWS does): those calls name the key id.
    let id = f.kms.describe_key(&caller(), &f.key_arn)?.key_id;
    f.kms.disable_key(&caller(), SERVICE_DEFAULT_ALIAS)?;
    let m = f.kms.describe_key(&caller(), &f.key_arn)?;
    assert_eq!((m.enabled, m.key_state), (false, KeyState::Disabled));
    f.kms.enable_key(&caller(), &id)?;
    assert!(f.kms.describe_key(&caller(), &f.key_arn)?.enabled);
    f.kms.schedule_key_deletion(&caller(), &id, 7)?;
    let m = f.kms.describe_key(&caller(), &f.key_arn)?;
    assert_eq!(m.key_state, KeyState::PendingDeletion);
    assert!(m.deletion_date.is_some());
    f.kms.cancel_key_deletion(&caller(), &id)?;
    assert_ne!(
        f.kms.describe_key(&caller(), &f.key_arn)?.key_state,
        KeyState::PendingDeletion
    );
    assert!(matches!(
        f.kms.schedule_key_deletion(&caller(), &f.key_arn, 3),
        Err(KmsError::InvalidArgument(_))
    ));
    Ok(())
}

#[test]
fn key_rotation_calls_reach_the_server() -> TestResult {
    let Some(f) = fixture("key_rotation_calls_reach_the_server")? else {
        return Ok(());
    };
    // As for EnableKey above, moto resolves key ids, not ARNs, in these calls.
    let id = f.kms.describe_key(&caller(), &f.key_arn)?.key_id;
    let ctx = books();
    let before = f.kms.encrypt(&caller(), &f.key_arn, b"before", &ctx)?;
    assert!(
        !f.kms
            .get_key_rotation_status(&caller(), &id)?
            .key_rotation_enabled
    );
    f.kms.enable_key_rotation(&caller(), &id, Some(180))?;
    let describes = f.kms.call_count("DescribeKey");
    let st = f.kms.get_key_rotation_status(&caller(), &id)?;
    assert!(st.key_rotation_enabled);
    assert_eq!(
        f.kms.call_count("DescribeKey"),
        describes,
        "the current material came from the DescribeKey above, not a second call"
    );
    f.kms.rotate_key_on_demand(&caller(), &id)?;
    // New material: the next status asks DescribeKey again.
    f.kms.get_key_rotation_status(&caller(), &id)?;
    assert_eq!(f.kms.call_count("DescribeKey"), describes + 1);
    let rotations = f.kms.list_key_rotations(&caller(), &id)?;
    assert_eq!(rotations.len(), 1, "{rotations:?}");
    assert_eq!(
        rotations[0].rotation_type,
        sealdb::kms::RotationType::OnDemand
    );
    // Blobs from before the rotation still decrypt.
    let back = f.kms.decrypt(&caller(), &before, &ctx, None)?;
    assert_eq!(back.plaintext.as_slice(), b"before");
    f.kms.disable_key_rotation(&caller(), &id)?;
    assert!(
        !f.kms
            .get_key_rotation_status(&caller(), &id)?
            .key_rotation_enabled
    );
    // AWS KMS blobs are opaque: the engine cannot tell their material.
    assert_eq!(f.kms.key_material_of(&before), None);
    Ok(())
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> Result<u16, std::io::Error> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    drop(l);
    Ok(port)
}

fn unreachable_options(endpoint: String) -> AwsKmsOptions {
    let mut o = options(&endpoint, "alias/sealdb");
    o.timeout = Duration::from_millis(500);
    o.max_attempts = 2;
    o
}

#[test]
fn refused_connections_are_unavailable_within_the_timeouts() -> TestResult {
    let port = closed_port()?;
    let kms = AwsKms::new(unreachable_options(format!("http://127.0.0.1:{port}")))?;
    let start = Instant::now();
    let r = kms.generate_data_key(
        &caller(),
        SERVICE_DEFAULT_ALIAS,
        DataKeySpec::Aes256,
        &books(),
    );
    assert!(matches!(r, Err(KmsError::Unavailable(_))), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let r = kms.decrypt(&caller(), b"blob", &books(), None);
    assert!(matches!(r, Err(KmsError::Unavailable(_))), "{r:?}");
    Ok(())
}

#[test]
fn a_server_that_never_answers_is_unavailable_within_the_timeouts() -> TestResult {
    // Accepts connections (the kernel completes the handshake) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", silent.local_addr()?);
    let kms = AwsKms::new(unreachable_options(endpoint))?;
    let start = Instant::now();
    let r = kms.describe_key(&caller(), SERVICE_DEFAULT_ALIAS);
    assert!(matches!(r, Err(KmsError::Unavailable(_))), "{r:?}");
    // Two attempts of 0.5 s and one backoff of at most 5 s.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(kms.call_count("DescribeKey"), 1);
    Ok(())
}

#[test]
fn threads_share_one_client() -> TestResult {
    let Some(f) = fixture("threads_share_one_client")? else {
        return Ok(());
    };
    let kms = &f.kms;
    std::thread::scope(|s| -> TestResult {
        let workers: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || -> Result<(), KmsError> {
                    let ctx = EncryptionContext::for_table(&format!("T{i}"), ACCOUNT);
                    for _ in 0..5 {
                        let dk = kms.generate_data_key(
                            &caller(),
                            SERVICE_DEFAULT_ALIAS,
                            DataKeySpec::Aes256,
                            &ctx,
                        )?;
                        let back = kms.decrypt(&caller(), &dk.ciphertext_blob, &ctx, None)?;
                        assert_eq!(back.plaintext.as_slice(), dk.plaintext.as_slice());
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "worker panicked")??;
        }
        Ok(())
    })?;
    assert_eq!(f.kms.call_count("Decrypt"), 20);
    Ok(())
}

#[test]
fn the_local_audit_trail_names_the_caller() -> TestResult {
    let Some(f) = fixture("the_local_audit_trail_names_the_caller")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut opts = options(&f.endpoint, &f.key_arn);
    opts.audit_dir = Some(dir.path().to_path_buf());
    let kms = AwsKms::new(opts)?;
    let bob = sealdb::kms::testing::engine_via(
        Principal::user(ACCOUNT, "bob"),
        "sealdb.us-east-1.amazonaws.com",
    );
    let dk = kms.generate_data_key(&bob, SERVICE_DEFAULT_ALIAS, DataKeySpec::Aes256, &books())?;
    let wrong = EncryptionContext::for_table("Movies", ACCOUNT);
    assert!(kms
        .decrypt(&bob, &dk.ciphertext_blob, &wrong, None)
        .is_err());
    let audit = kms.audit().ok_or("no audit trail")?;
    let events = audit.query(&sealdb::kms::AuditQuery::default())?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventName"], "GenerateDataKey");
    assert_eq!(
        events[0]["userIdentity"]["arn"],
        Principal::user(ACCOUNT, "bob").arn
    );
    assert_eq!(
        events[0]["requestParameters"]["encryptionContext"]["sealdb:tableName"],
        "Books"
    );
    assert_eq!(events[0]["resources"][0]["ARN"], f.key_arn.as_str());
    assert_eq!(events[1]["eventName"], "Decrypt");
    assert_eq!(events[1]["errorCode"], "InvalidCiphertextException");
    Ok(())
}

/// A loopback TCP proxy in front of the KMS server, so a test can make the KMS vanish
/// mid-run: `stop` refuses new connections and cuts the open ones.
struct Proxy {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Result<Proxy, Box<dyn std::error::Error>> {
        use std::sync::atomic::Ordering;
        let upstream = upstream
            .strip_prefix("http://")
            .ok_or("endpoint must be http://host:port")?
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: std::sync::Arc<Mutex<Vec<TcpStream>>> = Default::default();
        let (st, cs) = (stopped.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if st.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pairs = [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                {
                    let mut c = cs.lock();
                    c.extend(client.try_clone().ok());
                    c.extend(server.try_clone().ok());
                }
                for (from, to) in pairs {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            }
        });
        Ok(Proxy {
            port,
            stopped,
            conns,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The whole engine over `AwsKms`: an encrypted table is created (DescribeKey, CreateGrant,
/// GenerateDataKey against the server), written, flushed, compacted, closed, reopened and
/// read; then the KMS disappears: reads and writes go on within the cache grace, and past
/// it the table fails closed saying the KMS is unavailable.
#[test]
fn the_engine_runs_over_aws_kms_and_survives_an_outage_within_the_grace() -> TestResult {
    use sealdb::clock::ManualClock;
    use sealdb::{Db, Error, Options, TableOptions};
    use std::sync::Arc;

    let Some(f) = fixture("the_engine_runs_over_aws_kms_and_survives_an_outage_within_the_grace")?
    else {
        return Ok(());
    };
    let proxy = Proxy::start(&f.endpoint)?;
    let kms = Arc::new(AwsKms::new(options(&proxy.url(), &f.key_arn))?);
    let clock = ManualClock::default();
    let dir = tempfile::tempdir()?;
    let mut opts = Options::default();
    opts.kms = Some(kms.clone() as Arc<dyn Kms>);
    opts.clock = Arc::new(clock.clone());
    opts.account = ACCOUNT.into();
    opts.region = "us-east-1".into();
    opts.principal = Principal::user(ACCOUNT, "app");
    opts.write_buffer_size = 64 << 10;
    {
        let db = Db::open(dir.path(), opts.clone())?;
        let t = db.create_table("Books", TableOptions::encrypted())?;
        for i in 0..3000 {
            t.put(format!("k{i:05}"), format!("v{i}"))?;
        }
        db.flush()?;
        db.compact_table("Books")?;
        assert_eq!(
            db.encryption_status()[0].key_arn.as_deref(),
            Some(f.key_arn.as_str())
        );
    }
    assert!(kms.call_count("GenerateDataKey") >= 1);
    let db = Db::open(dir.path(), opts.clone())?;
    let t = db.table("Books")?;
    for i in (0..3000).step_by(7) {
        assert_eq!(
            t.get(format!("k{i:05}"))?.as_deref(),
            Some(format!("v{i}").as_bytes())
        );
    }
    db.verify()?;

    proxy.stop();
    clock.advance(Duration::from_secs(6 * 60));
    assert!(t.get("k00001")?.is_some(), "cached key within the grace");
    t.put("during-outage", "ok")?;
    clock.advance(Duration::from_secs(12 * 3600));
    match t.get("k00001") {
        Err(e @ Error::TableUnavailable { .. }) => {
            assert!(e.to_string().contains("unavailable"), "{e}")
        }
        other => panic!("past the grace the table must fail closed, got {other:?}"),
    }
    // A reopen while the endpoint is down cannot verify the manifest (its database key is
    // under the KMS): the open fails, typed, and leaves the directory as it was.
    drop(t);
    drop(db);
    let names = || -> std::io::Result<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        v.sort();
        Ok(v)
    };
    let before = names()?;
    match Db::open(dir.path(), opts) {
        Err(e @ Error::TableUnavailable { .. }) => {
            assert!(e.to_string().contains("KMS is unavailable"), "{e}");
        }
        other => panic!("an open with the KMS down must fail as unavailable, got {other:?}"),
    }
    assert_eq!(names()?, before);
    Ok(())
}
