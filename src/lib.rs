//! sealdb: an embedded, encrypted key-value storage engine with an LSM layout.

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod clock;
pub mod crypto;
mod error;
mod ikey;
mod iter;
pub mod kms;
// The engine (in progress) is their user; until it lands, much is unused.
#[allow(dead_code, unused_imports)]
mod manifest;
pub mod storage;
mod types;
#[allow(dead_code, unused_imports)]
mod wal;

pub use error::{Error, Result};
pub use types::{FileNumber, Level, SeqNo, TableId, ValueKind, MAX_KEY_LEN, MAX_VALUE_LEN};

#[cfg(feature = "fuzzing")]
pub use manifest::fuzz_manifest;
#[cfg(feature = "fuzzing")]
pub use wal::fuzz_wal;
