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
//!     Options::with_kms(kms.clone()),
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
// The lint wall: no panics on the way from bytes or callers to results, and every public item
// documented. Each exception below names its module and its reason.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

/// Handles on internal components for the criterion benches in `benches/` (not API).
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
#[expect(
    clippy::indexing_slicing,
    reason = "shard index is a hash modulo the shard count, which is never zero"
)]
mod cache;
pub mod clock;
mod coding;
#[expect(
    clippy::indexing_slicing,
    reason = "level indexes bounded by the level count (NUM_LEVELS), checked where a level is chosen"
)]
mod compaction;
#[expect(
    clippy::indexing_slicing,
    reason = "fixed-size nonce and AAD layouts written into arrays of exactly their length"
)]
mod crypto;
#[expect(
    clippy::indexing_slicing,
    reason = "merge heap and per-level indexes bounded by construction"
)]
mod db;
mod error;
mod filename;
#[expect(
    clippy::indexing_slicing,
    reason = "fixed-size record and file headers written into buffers of exactly their length"
)]
mod framing;
#[expect(
    clippy::indexing_slicing,
    reason = "the 8-byte trailer split after a length check"
)]
mod ikey;
mod index;
mod iter;
#[expect(
    clippy::indexing_slicing,
    reason = "ARN and policy parsing index split parts whose count was checked first"
)]
pub mod kms;
#[expect(
    clippy::indexing_slicing,
    reason = "boundary subkey layout: fixed offsets into buffers of a checked length"
)]
mod manifest;
mod memtable;
#[expect(
    clippy::indexing_slicing,
    reason = "block, footer and bloom layouts sliced after their length checks, the block cache's shard \
              index (a hash modulo the shard count)"
)]
mod sst;
pub mod storage;
mod types;
#[expect(
    clippy::indexing_slicing,
    reason = "level indexes bounded by the level count (NUM_LEVELS), checked where a level is chosen"
)]
mod version;
mod wal;

pub use compaction::{DbStats, LevelStats, TableStats};
/// The AES-256-GCM implementation behind the sealing seam (`aws-lc-rs`, or RustCrypto
/// `aes-gcm` without the `aws-lc` feature), for reports such as benchmark headers.
pub use crypto::BACKEND as AEAD_BACKEND;
pub use db::{
    Boundaries, CacheEntryStatus, CheckpointReport, Db, Encryption, FileLayout, KeyDeletion,
    LockReason, Options, RangeIter, RestoreReport, RewrapOutcome, Snapshot, Table,
    TableEncryptionStatus, TableLayout, TableOptions, VerifyReport, WriteBatch, WriteOptions,
    DEFAULT_ACCOUNT, DEFAULT_KEY_MAX_AGE, DEFAULT_KEY_RECHECK_AFTER_IDLE, DEFAULT_REGION,
};
pub use db::{
    OldKeyVersionStatus, RotationWork, TableKeyRotation, TableKeyStatus, MAX_LIVE_TABLE_KEYS,
    REWRITE_BYTES_PER_SEC,
};
pub use error::{Error, Poison, Result};
pub use index::{
    ExtractorFn, Index, IndexCheck, IndexEntry, IndexExtractors, IndexIter, IndexSpec, IndexStatus,
};
pub use sst::Compression;
pub use types::{SeqNo, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Fuzzing entry points (see `fuzz/`).
#[cfg(feature = "fuzzing")]
#[expect(
    clippy::indexing_slicing,
    reason = "the engine model indexes its own operation tables, sized by construction"
)]
pub mod fuzz;
#[cfg(feature = "fuzzing")]
pub use manifest::fuzz_manifest;
#[cfg(feature = "fuzzing")]
pub use sst::fuzz_api;
#[cfg(feature = "fuzzing")]
pub use wal::fuzz_wal;
