//! sealdb: an embedded, encrypted key-value storage engine with an LSM layout.

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;
#[allow(dead_code)]
mod cache;
pub mod clock;
#[allow(dead_code)]
mod coding;
pub mod crypto;
mod db;
mod error;
mod ikey;
mod iter;
pub mod kms;
#[allow(dead_code, unused_imports)]
mod manifest;
#[allow(dead_code)]
mod memtable;
#[allow(dead_code)]
mod sst;
pub mod storage;
mod types;
#[allow(dead_code, unused_imports)]
mod wal;

pub use db::{
    Boundaries, CacheEntryStatus, Db, Encryption, Options, RangeIter, Snapshot, Table,
    TableOptions, WriteBatch, WriteOptions, DEFAULT_ACCOUNT, DEFAULT_KEY_MAX_AGE,
    DEFAULT_KEY_RECHECK_AFTER_IDLE, DEFAULT_REGION,
};
pub use error::{Error, Result};
pub use types::{FileNumber, Level, SeqNo, TableId, ValueKind, MAX_KEY_LEN, MAX_VALUE_LEN};

#[cfg(feature = "fuzzing")]
pub use manifest::fuzz_manifest;
#[cfg(feature = "fuzzing")]
pub use sst::fuzz_api;
#[cfg(feature = "fuzzing")]
pub use wal::fuzz_wal;
