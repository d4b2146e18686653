//! The key management service: the root of the key hierarchy.
//!
//! (The `Kms` trait and `LocalKms` are being built; see the KMS issue.)

mod error;

pub use error::KmsError;
