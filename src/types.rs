//! Newtypes for the ids and positions the engine passes around.

use std::fmt;

/// A sequence number: every write gets the next one; snapshots read "at" one.
/// Only the low 56 bits are usable (the internal key packs a kind byte beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// The largest sequence number the internal key trailer can hold.
    pub const MAX: SeqNo = SeqNo((1 << 56) - 1);
}

/// The number of a file in the data directory (WAL segment, SSTable, manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FileNumber(pub u64);

impl fmt::Display for FileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// A table's id inside one database: assigned once at `create_table`, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TableId(pub u32);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An LSM level: 0 holds freshly flushed, possibly overlapping files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Level(pub u8);

/// What an entry in the LSM says about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    // on disk: never renumber
    Delete = 0,
    Put = 1,
}

impl TryFrom<u8> for ValueKind {
    type Error = u8;
    fn try_from(v: u8) -> Result<Self, u8> {
        match v {
            0 => Ok(ValueKind::Delete),
            1 => Ok(ValueKind::Put),
            other => Err(other),
        }
    }
}

/// The largest user key accepted.
pub const MAX_KEY_LEN: usize = 64 * 1024;
/// The largest value accepted.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// Checks the name of a table or an index (`what`): 1-255 characters of `A-Z a-z 0-9 _ -
/// .`, which fit in a file name and an encryption context. One rule for both, so an index
/// named like a table is always printable as `table/index`.
pub(crate) fn check_name(what: &str, name: &str) -> crate::error::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(crate::error::Error::InvalidArgument(format!(
            "{what} name {name:?} must be 1-255 characters of A-Z a-z 0-9 _ - ."
        )))
    }
}
