//! Leveled compaction: which files to merge (`picker`), which versions survive a merge
//! (`filter`), the merge itself and its installation (`job`), manual requests (`manual`),
//! the background thread (`worker`), write stalls (`stall`) and the numbers (`stats`).
//!
//! Policy and numbers: DESIGN.md section 10b.

mod filter;
mod job;
mod manual;
mod picker;
mod stall;
mod stats;
mod worker;

#[cfg(test)]
mod tests;

pub use stats::{DbStats, LevelStats, TableStats};

pub(crate) use picker::{plan_range, CompactionPlan};
pub(crate) use worker::start_compactor;

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

/// The right to run the one compaction allowed at a time; released on drop.
pub(crate) struct CompactionSlot<'a> {
    db: &'a crate::db::DbInner,
}

impl Drop for CompactionSlot<'_> {
    fn drop(&mut self) {
        let mut bg = self.db.bg.lock();
        bg.compaction.running = false;
        self.db.bg_cv.notify_all();
    }
}

impl crate::db::DbInner {
    /// Takes the compaction slot: waits for a running compaction when `wait`, else returns
    /// `None` if one runs. `None` too once the database is shutting down.
    pub(crate) fn compaction_slot(&self, wait: bool) -> Option<CompactionSlot<'_>> {
        let mut bg = self.bg.lock();
        loop {
            if bg.shutdown {
                return None;
            }
            if !bg.compaction.running {
                bg.compaction.running = true;
                return Some(CompactionSlot { db: self });
            }
            if !wait {
                return None;
            }
            self.bg_cv
                .wait_for(&mut bg, std::time::Duration::from_millis(50));
        }
    }
}
