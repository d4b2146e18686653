//! Leveled compaction: which files to merge (`picker`), which versions survive a merge
//! (`filter`), the merge itself (`job`) and the numbers' types (`stats`).
//!
//! It sits below the engine: it knows versions, files and iterators, and reaches the
//! engine only through `CompactionHost`. The engine's side (the background thread, manual
//! requests, write stalls, gathering the numbers, the host itself) is in `db/`
//! (`compactor`, `manual_compaction`, `stall`, `stats`).
//!
//! Policy and numbers: DESIGN.md section 10b.

mod filter;
mod job;
mod picker;
mod stats;

pub use stats::{DbStats, LevelStats, TableStats};

pub(crate) use job::{CompactionHost, CompactionJob};
pub(crate) use picker::{
    in_range, pending_compaction_bytes, pick, plan_range, scores, CompactionPlan, LevelTargets,
};

/// Compaction coordination and counters, kept in `DbInner::bg` (under its mutex).
#[derive(Debug, Default)]
pub(crate) struct CompactionState {
    /// One compaction runs at a time (background or manual); set while one does.
    pub(crate) running: bool,
    /// Bytes written by flushes (the data ingested, as stored).
    pub(crate) flush_bytes: u64,
    /// Bytes of input files read by compactions.
    pub(crate) bytes_read: u64,
    /// Bytes of output files written by compactions.
    pub(crate) bytes_written: u64,
    /// Compactions that merged files.
    pub(crate) compactions: u64,
    /// Compactions that moved a file down without rewriting it.
    pub(crate) trivial_moves: u64,
    /// The last background compaction failure and its table, cleared on a success.
    pub(crate) last_error: Option<(crate::types::TableId, String)>,
}
