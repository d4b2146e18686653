//! The background compaction thread: after each flush (or every half second), compacts
//! the table whose most urgent level has the highest score, while any score is >= 1; and
//! the engine's side of every compaction job (its counters, its files and keys).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::db::{DbInner, FileHandle, OpenFile, TableState};
use crate::error::{Error, Result};
use crate::filename;
use crate::sst::{SstBuilder, SstReader};
use crate::types::{FileNumber, Level};

use super::job::{CompactionJob, TableFiles};
use super::picker::{self, CompactionPlan};

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
            // Nothing to compact: the re-encryption after a table-key rotation, if any.
            Ok(false) if inner.table_key_rotation_tick() => continue,
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

impl DbInner {
    /// Runs `plan` on table `t` as a `CompactionJob` and counts it; returns the files the
    /// plan's range is in now.
    pub(crate) fn run_compaction(
        &self,
        t: &Arc<TableState>,
        plan: &CompactionPlan,
    ) -> Result<Vec<FileNumber>> {
        let stopping = || self.bg.lock().shutdown;
        let job = CompactionJob {
            versions: &self.versions,
            files: self,
            sst_cache: &self.sst_cache,
            env: &*self.env,
            dir: &self.path,
            snapshots: self.snapshots.all(),
            target_file_size: self.opts.target_file_size,
            stopping: &stopping,
        };
        let outcome = job.run(t, plan)?;
        let mut bg = self.bg.lock();
        if plan.trivial {
            bg.compaction.trivial_moves += 1;
        } else {
            bg.compaction.bytes_read += plan.input_bytes();
            bg.compaction.bytes_written += outcome.bytes_written;
            bg.compaction.compactions += 1;
        }
        self.bg_cv.notify_all();
        Ok(outcome.outputs)
    }
}

/// The engine's side of a compaction job: its caches, and its keys for the outputs.
impl TableFiles for DbInner {
    fn reader(&self, t: &TableState, f: &FileHandle) -> Result<Arc<SstReader>> {
        DbInner::reader(self, t, f)
    }

    fn file_opener(&self, t: &Arc<TableState>) -> OpenFile {
        DbInner::file_opener(self, t)
    }

    fn new_output(&self, t: &TableState, n: FileNumber) -> Result<SstBuilder> {
        let protection = self.table_protection(t, n)?;
        let path = self.path.join(filename::sst(n));
        let file = self
            .env
            .create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        SstBuilder::new(file, protection, self.build_options(t))
    }

    fn finish_output(
        &self,
        t: &TableState,
        n: FileNumber,
        level: Level,
        b: SstBuilder,
    ) -> Result<FileHandle> {
        let summary = b.finish()?;
        let handle = self.file_handle(t, n, level, &summary)?;
        // Read back before the manifest may name it; on failure the inputs stay.
        crate::db::check_new_table_file(&*self.env, t, &handle, self.opts.paranoid_checks)?;
        Ok(handle)
    }
}
