//! Shared set-up of the KMS integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use sealdb::clock::ManualClock;
use sealdb::kms::{
    via_service_name, Caller, KdfParams, LocalKms, LocalKmsOptions, Principal, RootKeySource,
};
use zeroize::Zeroizing;

pub const ACCOUNT: &str = "111122223333";
pub const OTHER_ACCOUNT: &str = "444455556666";
pub const REGION: &str = "us-west-2";

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn options(clock: &ManualClock, passphrase: &str) -> LocalKmsOptions {
    LocalKmsOptions {
        account: ACCOUNT.into(),
        region: REGION.into(),
        root_key: RootKeySource::Passphrase {
            passphrase: Zeroizing::new(passphrase.into()),
            kdf: KdfParams::insecure_fast_for_tests(),
        },
        clock: Arc::new(clock.clone()),
        audit_max_bytes: 1 << 20,
    }
}

pub fn open(dir: &Path, clock: &ManualClock) -> Result<LocalKms, sealdb::kms::KmsError> {
    LocalKms::open(dir, options(clock, "correct horse battery staple"))
}

/// The seed's user: an assumed-role session of account 111122223333.
pub fn user() -> Principal {
    Principal::assumed_role(ACCOUNT, "Admin", "user01")
}

/// The user calling through the engine.
pub fn via_engine(p: Principal) -> Caller {
    sealdb::kms::testing::engine_via(p, &via_service_name(REGION))
}

/// The engine itself, as grantee of a table grant.
pub fn engine() -> Caller {
    let name = via_service_name(REGION);
    sealdb::kms::testing::engine_service(&name)
}
