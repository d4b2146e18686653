//! Write stalls driven by compaction debt: a writer is slowed once level 0 holds
//! `l0_slowdown_writes_trigger` files or compaction is `soft_pending_compaction_bytes`
//! behind, and waits for compaction from `l0_stop_writes_trigger` files or
//! `hard_pending_compaction_bytes`. Slowing early spreads the wait over many writes
//! instead of stopping them all at once.

use std::sync::Arc;
use std::time::Duration;

use crate::compaction;
use crate::error::{Error, Result};

use super::{level_targets, DbInner, TableState};

/// The delay of a slowed write.
const SLOWDOWN: Duration = Duration::from_millis(1);
/// How long a stopped writer waits before looking again (compactions wake it sooner).
const STOP_RECHECK: Duration = Duration::from_millis(50);

impl DbInner {
    /// Slows or stops a writer of `t` while its compaction debt is too high.
    pub(crate) fn l0_stall_check(&self, t: &Arc<TableState>) -> Result<()> {
        if self.opts.disable_auto_compactions {
            // Nothing would ever pay the debt down: stopping would be forever.
            return Ok(());
        }
        let targets = level_targets(&self.opts);
        let mut slowed = false;
        loop {
            let v = Arc::clone(&t.super_version().version);
            let l0 = v.levels.first().map_or(0, Vec::len);
            let pending = compaction::pending_compaction_bytes(&v, &targets);
            let stop = l0 >= self.opts.l0_stop_writes_trigger.max(1)
                || pending >= self.opts.hard_pending_compaction_bytes;
            if !stop {
                let slow = l0 >= self.opts.l0_slowdown_writes_trigger.max(1)
                    || pending >= self.opts.soft_pending_compaction_bytes;
                if slow && !slowed {
                    std::thread::sleep(SLOWDOWN);
                }
                return Ok(());
            }
            self.check_poisoned()?;
            let mut bg = self.bg.lock();
            if let Some((id, why)) = &bg.compaction.last_error {
                if *id == t.id {
                    return Err(Error::TableUnavailable {
                        table: t.name.clone(),
                        reason: format!("writes stalled: cannot compact table: {why}"),
                    });
                }
            }
            if bg.shutdown {
                return Err(Error::Closed);
            }
            self.bg_cv.notify_all();
            self.bg_cv.wait_for(&mut bg, STOP_RECHECK);
            slowed = true;
        }
    }
}
