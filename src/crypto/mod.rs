//! Everything cryptographic in the data path: key types, the one place where persisted
//! units (blocks, WAL records) are sealed and opened, and data-key wrapping.
//!
//! AES-256-GCM throughout, on the backend `aead.rs` selects at build time (aws-lc-rs by
//! default, RustCrypto `aes-gcm` for a pure-Rust build). Callers never pick a nonce.

mod aead;
mod keys;
mod protection;
mod unit;
mod wrap;

#[cfg(test)]
mod kat_tests;

pub use aead::BACKEND;
pub(crate) use keys::DataKey;
pub use keys::TableKey;
pub(crate) use protection::Protection;
pub(crate) use unit::{FileKind, UnitContext, UnitKind, UnitOpener, UnitSealer, FORMAT_VERSION};
pub(crate) use wrap::{unwrap_data_key, wrap_data_key, WrapContext, WRAPPED_KEY_LEN};

/// Length of every key in the hierarchy below the KMS: 256 bits.
pub const KEY_LEN: usize = 32;
/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
