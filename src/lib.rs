//! sealdb: an embedded, encrypted key-value storage engine with an LSM layout.
//!
//! Tables are encrypted at rest the way Amazon DynamoDB uses AWS KMS: each encrypted table
//! has a 256-bit table key from a KMS (`GenerateDataKey`, bound to the table by its
//! encryption context), every SSTable and WAL segment gets a fresh data key wrapped by the
//! table key, and every use of a table key by a principal is a KMS call in the audit trail.
//! [`kms::LocalKms`] is the embedded KMS; plaintext tables need none.
//!
//! # Quickstart
//!
//! ```
//! use std::sync::Arc;
//!
//! use sealdb::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
//! use sealdb::{Db, Options, TableOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // The KMS keystore lives next to the data, never inside it. Its root key comes from a
//! // passphrase (Argon2id); the cheap KDF parameters here are for examples only.
//! let mut kms_opts = LocalKmsOptions::new("111122223333", "us-west-2");
//! kms_opts.root_key = RootKeySource::Passphrase {
//!     passphrase: "correct horse battery staple".to_string().into(),
//!     kdf: KdfParams::insecure_fast_for_tests(),
//! };
//! let kms = Arc::new(LocalKms::open(&dir.path().join("data.kms"), kms_opts)?);
//!
//! let db = Db::open(
//!     dir.path().join("data"),
//!     Options { kms: Some(kms.clone()), ..Options::default() },
//! )?;
//! let books = db.create_table("Books", TableOptions::encrypted())?;
//! books.put("dune", "Frank Herbert")?;
//! assert_eq!(books.get("dune")?.as_deref(), Some(&b"Frank Herbert"[..]));
//!
//! for item in books.range("a".."z")? {
//!     let (key, value) = item?;
//!     println!("{key:?} = {value:?}");
//! }
//! db.flush()?; // SSTables now hold the data, each block sealed with AES-256-GCM.
//!
//! // Creating the table asked the KMS for a table key, on the caller's behalf, and for
//! // the database key that authenticates the manifest from now on.
//! assert_eq!(kms.call_count("GenerateDataKey"), 2);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod bench;
#[allow(dead_code)]
mod cache;
pub mod clock;
#[allow(dead_code)]
mod coding;
mod compaction;
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

pub use compaction::{DbStats, LevelStats, TableStats};
pub use db::{
    Boundaries, CacheEntryStatus, Db, Encryption, FileLayout, Options, RangeIter, Snapshot, Table,
    TableEncryptionStatus, TableLayout, TableOptions, VerifyReport, WriteBatch, WriteOptions,
    DEFAULT_ACCOUNT, DEFAULT_KEY_MAX_AGE, DEFAULT_KEY_RECHECK_AFTER_IDLE, DEFAULT_REGION,
};
pub use error::{Error, Result};
pub use sst::Compression;
pub use types::{FileNumber, Level, SeqNo, TableId, ValueKind, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Fuzzing entry points (see `fuzz/`).
#[cfg(feature = "fuzzing")]
pub mod fuzz;
#[cfg(feature = "fuzzing")]
pub use manifest::fuzz_manifest;
#[cfg(feature = "fuzzing")]
pub use sst::fuzz_api;
#[cfg(feature = "fuzzing")]
pub use wal::fuzz_wal;
