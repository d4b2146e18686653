//! Set-up of the KMS integration tests (`kms_*.rs`): the seed's principals and a keystore.

use std::path::Path;
use std::sync::Arc;

use sealdb::clock::ManualClock;
use sealdb::kms::{via_service_name, Caller, LocalKms, LocalKmsOptions, Principal};

pub use super::{TestResult, ACCOUNT, REGION};
pub const OTHER_ACCOUNT: &str = "444455556666";

pub fn options(clock: &ManualClock, passphrase: &str) -> LocalKmsOptions {
    super::local_kms_options(passphrase, Arc::new(clock.clone()), 1 << 20)
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
