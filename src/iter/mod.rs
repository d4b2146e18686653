//! The cursor every sorted source implements (memtable, block, SSTable, level, merge).
//!
//! Positioned at one entry or invalid. Keys are internal keys (see `ikey`). Errors from
//! the underlying storage are returned by the moving calls; after an error the cursor is
//! invalid.

#[expect(
    clippy::indexing_slicing,
    reason = "child indexes of the merge come from its own scan of the children"
)]
mod merge;

use crate::error::Result;

pub(crate) use merge::MergingIterator;

pub(crate) trait InternalIterator: Send {
    /// True when positioned at an entry.
    fn valid(&self) -> bool;
    /// Positions at the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Positions at the last entry.
    fn seek_to_last(&mut self) -> Result<()>;
    /// Positions at the first entry whose key is >= `ikey` (internal-key order).
    fn seek(&mut self, ikey: &[u8]) -> Result<()>;
    /// Positions at the last entry whose key is <= `ikey` (internal-key order).
    fn seek_for_prev(&mut self, ikey: &[u8]) -> Result<()>;
    /// Moves to the next entry. Requires `valid()`.
    fn next(&mut self) -> Result<()>;
    /// Moves to the previous entry. Requires `valid()`.
    fn prev(&mut self) -> Result<()>;
    /// The current internal key. Requires `valid()`.
    fn key(&self) -> &[u8];
    /// The current value. Requires `valid()`.
    fn value(&self) -> &[u8];
}
