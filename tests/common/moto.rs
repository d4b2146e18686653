//! The moto server fixture of the AWS KMS tests (`.ci/aws_kms.sh` starts the server and
//! sets `SEALDB_TEST_KMS_ENDPOINT`), shared by `tests/aws_kms.rs` and the CLI's
//! `crates/sealdb-cli/tests/aws_kms_cli.rs`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use sealdb::kms::{
    AwsKms, AwsKmsOptions, Caller, CreateKeyRequest, EncryptionContext, Kms, Principal,
};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const ENDPOINT_ENV: &str = "SEALDB_TEST_KMS_ENDPOINT";
pub const ACCOUNT: &str = "123456789012";

/// moto's state is global: one test at a time, each from a reset server.
static SERVER: Mutex<()> = Mutex::new(());

pub fn caller() -> Caller {
    Caller::direct(Principal::root(ACCOUNT))
}

pub fn books() -> EncryptionContext {
    EncryptionContext::for_table("Books", ACCOUNT)
}

/// Options for a test server, with dummy credentials if the environment has none.
pub fn options(endpoint: &str, key_id: &str) -> AwsKmsOptions {
    // Once, before the first client of this process reads the environment.
    static CREDENTIALS: Once = Once::new();
    CREDENTIALS.call_once(|| {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        }
    });
    let mut o = AwsKmsOptions::new(key_id);
    o.region = Some("us-east-1".into());
    o.endpoint_url = Some(endpoint.to_string());
    o.timeout = Duration::from_secs(10);
    o.max_attempts = 2;
    o
}

/// `POST /moto-api/reset` over a bare HTTP/1.1 connection.
pub fn reset(endpoint: &str) -> TestResult {
    let host = endpoint
        .strip_prefix("http://")
        .ok_or("endpoint must be http://host:port")?
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST /moto-api/reset HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.1 200") && !answer.starts_with("HTTP/1.0 200") {
        return Err(format!("reset failed: {}", answer.lines().next().unwrap_or("")).into());
    }
    Ok(())
}

/// A reset server, its lock, and an `AwsKms` whose configured key is a fresh customer
/// managed key; `None` (after a notice) when no server is configured.
pub struct Fixture {
    pub kms: AwsKms,
    pub key_arn: String,
    pub endpoint: String,
    _guard: MutexGuard<'static, ()>,
}

pub fn fixture(test: &str) -> Result<Option<Fixture>, Box<dyn std::error::Error>> {
    let Ok(endpoint) = std::env::var(ENDPOINT_ENV) else {
        if std::env::var_os("CI").is_some() {
            // In CI the server is always started: a missing endpoint is a broken setup.
            return Err(format!("{test}: {ENDPOINT_ENV} is not set in CI").into());
        }
        eprintln!("skipping {test}: {ENDPOINT_ENV} is not set (see .ci/aws_kms.sh)");
        return Ok(None);
    };
    let guard = SERVER.lock();
    reset(&endpoint)?;
    // Create the key through a client configured with a placeholder, then configure it.
    let bootstrap = AwsKms::new(options(&endpoint, "alias/placeholder"))?;
    let meta = bootstrap.create_key(&caller(), CreateKeyRequest::new("sealdb test key"))?;
    let kms = AwsKms::new(options(&endpoint, &meta.key_id))?;
    Ok(Some(Fixture {
        kms,
        key_arn: meta.arn,
        endpoint,
        _guard: guard,
    }))
}
