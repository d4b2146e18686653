//! Compactions users ask for: a key range of one table, a whole table, every table.
//! Each pushes the range down level by level to the table's last non-empty level and
//! finally rewrites that level's files in the range, so every version no snapshot can
//! see and every tombstone is gone from the range afterwards.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use crate::compaction::{self, CompactionPlan};
use crate::error::{Error, Result};
use crate::types::FileNumber;

use super::{DbInner, TableState};

impl DbInner {
    /// Compacts `[lower, upper]` (user keys) of `t` into its last level.
    pub(crate) fn compact_range(
        &self,
        t: &Arc<TableState>,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Result<()> {
        self.check_poisoned()?;
        // What is still in memory is part of the range too.
        self.flush_all()?;
        let _slot = self.compaction_slot(true).ok_or(Error::Closed)?;
        let v = Arc::clone(&t.super_version().version);
        let Some(deepest) = v.deepest_nonempty() else {
            return Ok(());
        };
        let bottom = deepest.max(1);
        let mut last_merged: HashSet<FileNumber> = HashSet::new();
        for level in 0..bottom {
            let v = Arc::clone(&t.super_version().version);
            // The step into the last level merges, so that it drops what it can.
            let allow_trivial = level + 1 < bottom;
            if let Some(plan) =
                compaction::plan_range(&v, level, level + 1, &lower, &upper, allow_trivial)
            {
                let outputs = self.run_compaction(t, &plan)?;
                if level + 1 == bottom {
                    last_merged = outputs.into_iter().collect();
                }
            }
        }
        // Files of the last level the last step did not rewrite (trivially moved there
        // earlier, or outside the step's inputs) still hold what could be dropped.
        let v = Arc::clone(&t.super_version().version);
        let stale = v.levels[bottom].iter().any(|f| {
            compaction::in_range(f, &lower, &upper) && !last_merged.contains(&f.meta.number)
        });
        if stale {
            let inputs = v.levels[bottom]
                .iter()
                .filter(|f| compaction::in_range(f, &lower, &upper))
                .cloned()
                .collect();
            if let Some(plan) = CompactionPlan::new(&v, bottom, bottom, inputs, false) {
                self.run_compaction(t, &plan)?;
            }
        }
        Ok(())
    }

    /// Compacts every table whole.
    pub(crate) fn compact_all(&self) -> Result<()> {
        // A locked table is left as it is until its key is back.
        for t in self.all_tables().into_iter().filter(|t| !t.is_locked()) {
            self.compact_range(&t, Bound::Unbounded, Bound::Unbounded)?;
        }
        Ok(())
    }
}
