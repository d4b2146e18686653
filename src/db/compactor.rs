//! The engine's side of compaction: the one-at-a-time slot, the background compaction
//! thread (after each flush, or every half second, it compacts the table whose most urgent
//! level has the highest score, while any score is >= 1), and the `CompactionHost` of
//! every job (its counters, the table's files and keys, the installation of its result).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::compaction::{self, CompactionHost, CompactionJob, CompactionPlan, LevelTargets};
use crate::error::{Error, Result};
use crate::filename;
use crate::manifest::{Edit, VersionEdit};
use crate::sst::{SstBuilder, SstReader};
use crate::types::{FileNumber, Level};
use crate::version::{FileHandle, OpenFile, Version};

use super::{DbInner, SuperVersion, TableState};

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

/// The level shape the options ask for.
pub(crate) fn level_targets(opts: &super::Options) -> LevelTargets {
    LevelTargets::new(
        opts.level_base_bytes
            .unwrap_or((opts.write_buffer_size as u64).saturating_mul(4)),
        opts.level_size_multiplier,
        opts.l0_compaction_trigger,
    )
}

/// The right to run the one compaction allowed at a time; released on drop.
pub(crate) struct CompactionSlot<'a> {
    db: &'a DbInner,
}

impl Drop for CompactionSlot<'_> {
    fn drop(&mut self) {
        let mut bg = self.db.bg.lock();
        bg.compaction.running = false;
        self.db.bg_cv.notify_all();
    }
}

impl DbInner {
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
        let targets = level_targets(&self.opts);
        let mut best = None;
        let mut best_score = 1.0;
        // A locked table is left as it is until its key is back.
        for t in self.all_tables().into_iter().filter(|t| !t.is_locked()) {
            let v = Arc::clone(&t.super_version().version);
            let s = compaction::scores(&v, &targets);
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
        let Some(plan) = compaction::pick(&v, &targets) else {
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
        let host = TableCompaction { db: self, t };
        let job = CompactionJob {
            host: &host,
            sst_cache: &self.sst_cache,
            env: &*self.env,
            dir: &self.path,
            snapshots: self.snapshots.all(),
            target_file_size: self.opts.target_file_size,
            stopping: &stopping,
        };
        let outcome = job.run(plan)?;
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

/// The engine's side of a compaction job of table `t`: its caches, its keys for the
/// outputs, the version set where the result is logged and applied.
struct TableCompaction<'a> {
    db: &'a DbInner,
    t: &'a Arc<TableState>,
}

impl CompactionHost for TableCompaction<'_> {
    fn version(&self) -> Arc<Version> {
        Arc::clone(&self.t.super_version().version)
    }

    fn reader(&self, f: &FileHandle) -> Result<Arc<SstReader>> {
        self.db.reader(self.t, f)
    }

    fn file_opener(&self) -> OpenFile {
        self.db.file_opener(self.t)
    }

    fn new_file_number(&self) -> FileNumber {
        self.db.versions.new_file_number()
    }

    fn begin_output(&self, n: FileNumber) {
        self.db.versions.begin_output(n);
    }

    fn end_output(&self, n: FileNumber) {
        self.db.versions.end_output(n);
    }

    fn may_hold_failed_record(&self) -> bool {
        self.db.versions.may_hold_failed_record()
    }

    fn new_output(&self, n: FileNumber) -> Result<SstBuilder> {
        let (db, t) = (self.db, self.t);
        let protection = db.table_protection(t, n)?;
        let path = db.path.join(filename::sst(n));
        let file = db
            .env
            .create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        SstBuilder::new(file, protection, db.build_options(t))
    }

    fn finish_output(&self, n: FileNumber, level: Level, b: SstBuilder) -> Result<FileHandle> {
        let (db, t) = (self.db, self.t);
        let summary = b.finish()?;
        let handle = db.file_handle(t, n, level, &summary)?;
        // Read back before the manifest may name it; on failure the inputs stay.
        super::check_new_table_file(&*db.env, t, &handle, db.opts.paranoid_checks)?;
        Ok(handle)
    }

    fn install(&self, plan: &CompactionPlan, outputs: &[Arc<FileHandle>]) -> Result<()> {
        let t = self.t;
        let mut versions = self.db.versions.lock();
        // drop_table marks the table dropped under the manifest lock.
        if t.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::TableNotFound(t.name.clone()));
        }
        let mut edits = Vec::new();
        for f in plan.all_inputs() {
            edits.push(Edit::RemoveFile {
                table: t.id,
                level: f.meta.level,
                file: f.meta.number,
            });
        }
        for f in outputs {
            edits.push(f.add_edit());
        }
        let installing: Vec<FileNumber> = outputs.iter().map(|f| f.meta.number).collect();
        edits.push(Edit::SetNextFileNumber(
            self.db.versions.next_file_to_record(&installing),
        ));
        versions.log_and_apply(&VersionEdit { edits }, None, |_| {
            let mut guard = t.sv.write();
            let old = Arc::clone(&guard);
            let mut version = (*old.version).clone();
            for f in plan.all_inputs() {
                version.remove(f.meta.level, f.meta.number);
            }
            for f in outputs {
                version.add(Arc::clone(f));
            }
            if let Some(slot) = version.compact_pointer.get_mut(plan.level) {
                *slot = plan.largest_input();
            }
            *guard = Arc::new(SuperVersion {
                mem: Arc::clone(&old.mem),
                imm: old.imm.clone(),
                version: Arc::new(version),
            });
        })
    }
}
