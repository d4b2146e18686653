//! The one public error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::kms::KmsError;

/// A specialised `Result` for sealdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sealdb.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed; `context` says which one and on what path.
    Io {
        /// What was being done, and on which path.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A plaintext structure on disk is malformed or fails its checksum.
    Corruption {
        /// The file, as named in the database directory.
        file: String,
        /// Where in the file the damaged structure starts.
        offset: u64,
        /// What failed to decode or verify.
        what: String,
    },
    /// An encrypted unit failed authentication: it was modified, moved, truncated or is
    /// from another file or table. Deliberately says nothing about why.
    Integrity {
        /// The file, as named in the database directory.
        file: String,
        /// Where in the file the unit starts.
        offset: u64,
    },
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
    TableUnavailable {
        /// The table's name.
        table: String,
        /// Why, in a sentence.
        reason: String,
    },
    /// An encrypted table is locked: its key cannot be had now (see [`LockReason`]). Its
    /// data is kept; the table unlocks on a later access once the cause is gone.
    ///
    /// [`LockReason`]: crate::LockReason
    TableLocked {
        /// The table's name.
        table: String,
        /// Why.
        reason: crate::db::LockReason,
    },
    /// A failed fsync or write left the database in a state it cannot vouch for; it must be
    /// reopened. Acknowledged synced writes remain on disk. The failure that caused it, when
    /// known, is this error's `source()`.
    Poisoned(Poison),
    /// The database is closed.
    Closed,
    /// A bug in sealdb: an invariant of its own code did not hold (not the caller's input,
    /// not the stored bytes). Worth a report.
    Internal(String),
    /// A write would give two items the same key of a unique index; nothing of it was
    /// applied. (The key itself is not named: it is an attribute value.)
    UniqueViolation {
        /// The table written to.
        table: String,
        /// The unique index.
        index: String,
    },
    /// No index of that name on the table, or it is still being built.
    IndexUnavailable {
        /// The table.
        table: String,
        /// The index.
        index: String,
        /// Why, in a sentence.
        reason: String,
    },
    /// `Db::drop_table_and_delete_key` refused before dropping anything: the table's KMS
    /// key protects more than this table (the shared service default key, or a key other
    /// tables or grants use), or the table has no KMS key.
    KeyNotDeletable {
        /// The table.
        table: String,
        /// The KMS key's ARN (empty for a plaintext table).
        key: String,
        /// Why, in a sentence.
        reason: String,
    },
}

/// Why a database or one of its log writers stopped accepting writes, and the failure that
/// caused it (kept, shared, for every later refusal).
#[derive(Clone, Debug)]
pub struct Poison {
    reason: String,
    cause: Option<Arc<Error>>,
}

impl Poison {
    /// A refusal that names what failed earlier but no longer has its error.
    pub(crate) fn new(reason: impl Into<String>) -> Poison {
        Poison {
            reason: reason.into(),
            cause: None,
        }
    }

    /// The state after `cause` (a failed write or fsync) made the writes unverifiable.
    pub(crate) fn caused_by(reason: impl Into<String>, cause: Error) -> Poison {
        Poison {
            reason: reason.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// What failed, in a few words (`WAL fsync failed`).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The error that poisoned the database, when this refusal still has it.
    pub fn cause(&self) -> Option<&Error> {
        self.cause.as_deref()
    }
}

impl fmt::Display for Poison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
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

    /// The poisoned state, with no cause at hand (a writer refusing after an earlier failure).
    pub(crate) fn poisoned(reason: impl Into<String>) -> Error {
        Error::Poisoned(Poison::new(reason))
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
            Error::TableLocked { table, reason } => {
                write!(f, "table {table:?} is locked: {reason}")
            }
            Error::Poisoned(why) => write!(f, "database is read-only after a failed write: {why}"),
            Error::Closed => write!(f, "database is closed"),
            Error::Internal(what) => write!(f, "internal error (a bug in sealdb): {what}"),
            Error::UniqueViolation { table, index } => write!(
                f,
                "unique index {index:?} of table {table:?} already holds that key for another item"
            ),
            Error::IndexUnavailable {
                table,
                index,
                reason,
            } => write!(
                f,
                "index {index:?} of table {table:?} is unavailable: {reason}"
            ),
            Error::KeyNotDeletable { table, key, reason } => write!(
                f,
                "the KMS key {key} of table {table:?} cannot be scheduled for deletion: {reason}; nothing was dropped"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Kms(e) => Some(e),
            Error::Poisoned(p) => p.cause().map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

impl From<KmsError> for Error {
    fn from(e: KmsError) -> Error {
        Error::Kms(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn poisoned_keeps_the_io_error_as_its_source() {
        let fsync = Error::io("syncing WAL segment 7", io::Error::other("EIO"));
        let e = Error::Poisoned(Poison::caused_by("WAL fsync failed", fsync));
        let cause = e.source().and_then(|c| c.downcast_ref::<Error>());
        assert!(matches!(cause, Some(Error::Io { .. })), "{cause:?}");
        let os = cause.and_then(|c| c.source());
        assert_eq!(os.map(|s| s.to_string()).as_deref(), Some("EIO"));
        assert!(e.to_string().contains("WAL fsync failed"), "{e}");
        // A later refusal without the original error still says why.
        let later = Error::poisoned("an earlier write of WAL segment 7 failed");
        assert!(later.source().is_none());
        assert!(matches!(later, Error::Poisoned(_)));
    }

    #[test]
    fn internal_errors_are_their_own_kind() {
        let e = Error::Internal("empty WAL batch".into());
        assert!(matches!(e, Error::Internal(_)));
        assert!(!e.is_integrity_failure());
        assert!(e.to_string().contains("bug in sealdb"), "{e}");
    }
}
