//! The one public error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::kms::KmsError;

/// A specialised `Result` for sealdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sealdb.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed; `context` says which one and on what path.
    Io { context: String, source: io::Error },
    /// A plaintext structure on disk is malformed or fails its checksum.
    Corruption {
        file: String,
        offset: u64,
        what: String,
    },
    /// An encrypted unit failed authentication: it was modified, moved, truncated or is
    /// from another file or table. Deliberately says nothing about why.
    Integrity { file: String, offset: u64 },
    /// The caller passed something unusable (too-large key, bad option, bad name).
    InvalidArgument(String),
    /// No table of that name.
    TableNotFound(String),
    /// A table of that name already exists.
    TableExists(String),
    /// Another process (or `Db` in this process) holds the database directory's lock.
    AlreadyOpen(PathBuf),
    /// The key management service refused or failed a call.
    Kms(KmsError),
    /// A table cannot be used now (its key is unavailable, its grant was revoked, ...).
    TableUnavailable { table: String, reason: String },
    /// A failed fsync or write left the database in a state it cannot vouch for; it must be
    /// reopened. Acknowledged synced writes remain on disk.
    Poisoned(String),
    /// The database is closed.
    Closed,
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<String>,
        offset: u64,
        what: impl Into<String>,
    ) -> Error {
        Error::Corruption {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }

    /// True for errors that mean stored bytes are damaged or were tampered with.
    pub fn is_integrity_failure(&self) -> bool {
        matches!(self, Error::Corruption { .. } | Error::Integrity { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "I/O error while {context}: {source}"),
            Error::Corruption { file, offset, what } => {
                write!(f, "corruption in {file} at offset {offset}: {what}")
            }
            Error::Integrity { file, offset } => {
                write!(f, "integrity check failed in {file} at offset {offset}")
            }
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::TableNotFound(name) => write!(f, "table {name:?} does not exist"),
            Error::TableExists(name) => write!(f, "table {name:?} already exists"),
            Error::AlreadyOpen(path) => write!(
                f,
                "database {} is already open in another process or handle",
                path.display()
            ),
            Error::Kms(e) => write!(f, "KMS: {e}"),
            Error::TableUnavailable { table, reason } => {
                write!(f, "table {table:?} is unavailable: {reason}")
            }
            Error::Poisoned(why) => write!(f, "database is read-only after a failed write: {why}"),
            Error::Closed => write!(f, "database is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Kms(e) => Some(e),
            _ => None,
        }
    }
}

impl From<KmsError> for Error {
    fn from(e: KmsError) -> Error {
        Error::Kms(e)
    }
}
