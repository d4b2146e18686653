//! Errors of KMS operations, mirroring AWS KMS's exception names.

use std::fmt;
use std::io;

/// A KMS call failed. Variants mirror AWS KMS's exceptions.
#[derive(Debug)]
#[non_exhaustive]
pub enum KmsError {
    /// `NotFoundException`: no such key, alias or grant.
    NotFound(String),
    /// `AccessDeniedException`: the caller is not allowed this action on this key.
    AccessDenied {
        /// The caller's ARN.
        principal: String,
        /// The action refused (`kms:Decrypt`, ...).
        action: String,
        /// The key's ARN.
        key: String,
    },
    /// `InvalidCiphertextException`: the blob is malformed, was modified, or its encryption
    /// context does not match. Deliberately says nothing more.
    InvalidCiphertext,
    /// `DisabledException`: the key is disabled.
    Disabled(String),
    /// `KMSInvalidStateException`: the key's state forbids the call (e.g. pending deletion).
    InvalidState {
        /// The key's ARN.
        key: String,
        /// Its state (`PendingDeletion`, ...).
        state: String,
    },
    /// `ValidationException` / `InvalidArnException` and friends: a malformed request.
    InvalidArgument(String),
    /// `AlreadyExistsException`.
    AlreadyExists(String),
    /// `MalformedPolicyDocumentException`, naming the problem.
    MalformedPolicy(String),
    /// `InvalidGrantIdException` / `InvalidGrantTokenException`.
    InvalidGrant(String),
    /// The KMS did not answer (network, timeout, `KMSInternalException`, throttling).
    Unavailable(String),
    /// The local keystore cannot be read, written or authenticated (wrong passphrase,
    /// damaged file).
    Keystore(String),
    /// `IncorrectKeyException`: Decrypt named a key other than the one the blob is under.
    IncorrectKey(String),
    /// A caller named a service principal (the engine's own identity): only the engine acts
    /// as one, and no caller of the public API or the CLI can assume it.
    ServicePrincipalRefused {
        /// The service principal the caller named.
        principal: String,
    },
    /// The call's audit event could not be written, so the call was refused (fail closed:
    /// the trail must not miss a use of a key). A state change the call would have made
    /// was rolled back (or, if even that failed, the KMS is poisoned and says so).
    AuditFailed(String),
    /// `UnsupportedOperationException`: the key does not support the call (for example
    /// rotation settings of the AWS managed service default key).
    UnsupportedOperation(String),
    /// `LimitExceededException`: a per-key quota (on-demand rotations) is used up.
    LimitExceeded(String),
    /// The local keystore's files could not be read or written (the operating system's
    /// error is the `source()`).
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl KmsError {
    /// The AWS KMS error code this corresponds to (as it appears in audit events).
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::AccessDenied { .. } => "AccessDenied",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState { .. } => "KMSInvalidStateException",
            KmsError::InvalidArgument(_) => "ValidationException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::MalformedPolicy(_) => "MalformedPolicyDocumentException",
            KmsError::InvalidGrant(_) => "InvalidGrantIdException",
            KmsError::Unavailable(_) => "KMSUnavailable",
            KmsError::Keystore(_) | KmsError::Io { .. } => "KeystoreError",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::ServicePrincipalRefused { .. } => "AccessDenied",
            KmsError::AuditFailed(_) => "AuditLogWriteFailed",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
        }
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KmsError::NotFound(what) => write!(f, "not found: {what}"),
            KmsError::AccessDenied {
                principal,
                action,
                key,
            } => write!(
                f,
                "{principal} is not authorized to perform {action} on {key}"
            ),
            KmsError::InvalidCiphertext => f.write_str("invalid ciphertext"),
            KmsError::Disabled(key) => write!(f, "key {key} is disabled"),
            KmsError::InvalidState { key, state } => write!(f, "key {key} is in state {state}"),
            KmsError::InvalidArgument(m) => write!(f, "invalid request: {m}"),
            KmsError::AlreadyExists(m) => write!(f, "already exists: {m}"),
            KmsError::MalformedPolicy(m) => write!(f, "malformed key policy: {m}"),
            KmsError::InvalidGrant(m) => write!(f, "invalid grant: {m}"),
            KmsError::Unavailable(m) => write!(f, "KMS unavailable: {m}"),
            KmsError::Keystore(m) => write!(f, "keystore: {m}"),
            KmsError::IncorrectKey(k) => {
                write!(f, "the ciphertext was not encrypted under the key {k}")
            }
            KmsError::Io { context, source } => write!(f, "keystore: {context}: {source}"),
            KmsError::ServicePrincipalRefused { principal } => write!(
                f,
                "{principal} is a service principal: only the engine acts as it, a caller cannot assume it"
            ),
            KmsError::AuditFailed(m) => {
                write!(f, "the audit event could not be written, so the call was refused: {m}")
            }
            KmsError::UnsupportedOperation(m) => write!(f, "unsupported operation: {m}"),
            KmsError::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
        }
    }
}

impl std::error::Error for KmsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KmsError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_failures_keep_their_source() {
        let e = KmsError::Io {
            context: "cannot read /k/keystore.bin".into(),
            source: io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
        };
        let src = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            src.map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied)
        );
        assert_eq!(e.code(), "KeystoreError");
        assert!(KmsError::InvalidCiphertext.source().is_none());
    }
}
