//! sealdb: an embedded, encrypted key-value storage engine with an LSM layout.

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // the engine's read path uses it
mod cache;
pub mod clock;
pub mod crypto;
mod error;
mod ikey;
mod iter;
pub mod kms;
#[allow(dead_code)] // the engine's flush, compaction and read paths use it
mod sst;
pub mod storage;
mod types;

#[cfg(feature = "fuzzing")]
pub use sst::fuzz_api;

pub use error::{Error, Result};
pub use types::{FileNumber, Level, SeqNo, TableId, ValueKind, MAX_KEY_LEN, MAX_VALUE_LEN};
