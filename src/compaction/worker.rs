//! The background compaction thread: after each flush (or every half second), compacts
//! the table whose most urgent level has the highest score, while any score is >= 1.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::db::DbInner;
use crate::error::{Error, Result};

use super::picker;

/// How long the thread sleeps when nothing needs compaction (flushes wake it sooner).
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long it backs off after a failed compaction.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the compaction thread, unless the options turn background compaction off.
/// The thread ends at shutdown; the caller joins it.
pub(crate) fn start_compactor(inner: &Arc<DbInner>) -> Result<Option<JoinHandle<()>>> {
    if inner.opts.disable_auto_compactions {
        return Ok(None);
    }
    let core = Arc::clone(inner);
    std::thread::Builder::new()
        .name("sealdb-compact".into())
        .spawn(move || compactor_loop(&core))
        .map(Some)
        .map_err(|e| Error::io("starting the compaction thread", e))
}

fn compactor_loop(inner: &Arc<DbInner>) {
    loop {
        let wait = match inner.maybe_compact() {
            Ok(true) => continue,
            Ok(false) => IDLE_WAIT,
            Err(_) => ERROR_BACKOFF,
        };
        let mut bg = inner.bg.lock();
        if bg.shutdown {
            return;
        }
        inner.bg_cv.wait_for(&mut bg, wait);
        if bg.shutdown {
            return;
        }
    }
}

impl DbInner {
    /// Runs one compaction if any table needs one; true if it did.
    pub(crate) fn maybe_compact(&self) -> Result<bool> {
        let Some(_slot) = self.compaction_slot(false) else {
            return Ok(false);
        };
        let mut best = None;
        let mut best_score = 1.0;
        // A locked table is left as it is until its key is back.
        for t in self.all_tables().into_iter().filter(|t| !t.is_locked()) {
            let v = Arc::clone(&t.super_version().version);
            let s = picker::scores(&v, &self.opts);
            let top = s.iter().take(s.len() - 1).cloned().fold(0.0, f64::max);
            if top >= best_score {
                best_score = top;
                best = Some(t);
            }
        }
        let Some(t) = best else {
            return Ok(false);
        };
        let v = Arc::clone(&t.super_version().version);
        let Some(plan) = picker::pick(&v, &self.opts) else {
            return Ok(false);
        };
        match self.run_compaction(&t, &plan) {
            Ok(_) => {
                self.bg.lock().compaction.last_error = None;
                Ok(true)
            }
            Err(e) => {
                self.bg.lock().compaction.last_error = Some((t.id, e.to_string()));
                Err(e)
            }
        }
    }
}
