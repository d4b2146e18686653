//! The background worker: flushes frozen memtables to level-0 SSTables.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::{Protection, TableKey};
use crate::error::{Error, Result};
use crate::manifest::{seal_boundary, Boundary, Edit, FileMeta, VersionEdit};
use crate::memtable::MemTable;
use crate::sst::{SstBuildOptions, SstBuilder};
use crate::storage::Env;
use crate::types::{FileNumber, Level, SeqNo};

use super::table::{SuperVersion, TableState};
use super::version::FileHandle;
use super::DbInner;
use crate::filename;

pub(super) fn start_worker(inner: &Arc<DbInner>) -> Result<()> {
    let core = Arc::clone(inner);
    let compactor = super::start_compactor(inner)?;
    let handle = std::thread::Builder::new()
        .name("sealdb-flush".into())
        .spawn(move || {
            worker_loop(&core);
            // The compaction thread sees the same shutdown flag; joined with this one.
            if let Some(c) = compactor {
                let _ = c.join();
            }
        })
        .map_err(|e| Error::io("starting the background worker", e))?;
    *inner.worker.lock() = Some(handle);
    Ok(())
}

fn worker_loop(inner: &Arc<DbInner>) {
    loop {
        {
            let mut bg = inner.bg.lock();
            if !bg.shutdown && !bg.work_pending {
                inner.bg_cv.wait_for(&mut bg, Duration::from_millis(500));
                // Woken or not, a tick also expires cached keys and retries failed upkeep.
            }
            if bg.shutdown {
                return;
            }
            bg.work_pending = false;
        }
        inner.expire_keys();
        inner.bg.lock().flushing = true;
        let progressed = inner.flush_pending();
        let mut bg = inner.bg.lock();
        bg.flushing = false;
        if progressed {
            bg.flushes_done += 1;
        }
        inner.bg_cv.notify_all();
        if !progressed && has_pending_flush(inner) {
            // Maintenance is failing (e.g. the table key is unavailable): retry later.
            inner.bg_cv.wait_for(&mut bg, Duration::from_millis(200));
        }
    }
}

fn has_pending_flush(inner: &DbInner) -> bool {
    inner
        .all_tables()
        .iter()
        .any(|t| !t.super_version().imm.is_empty())
}

impl DbInner {
    /// Flushes every frozen memtable it can; true if it flushed at least one.
    pub(crate) fn flush_pending(&self) -> bool {
        let mut progressed = false;
        if self.check_poisoned().is_err() {
            // Read-only after a failed WAL or manifest write: no new files.
            return false;
        }
        for t in self.all_tables() {
            loop {
                let sv = t.super_version();
                let Some(oldest) = sv.imm.last().cloned() else {
                    break;
                };
                match self.flush_memtable(&t, &oldest) {
                    Ok(()) => {
                        *t.maintenance_error.lock() = None;
                        progressed = true;
                    }
                    Err(e) => {
                        *t.maintenance_error.lock() = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        progressed
    }

    /// Writes one frozen memtable to a level-0 file, records it, and drops the memtable.
    fn flush_memtable(&self, t: &Arc<TableState>, mem: &Arc<MemTable>) -> Result<()> {
        // A synced write appended to the frozen memtable's segment goes into it only after
        // its fsync: wait for those, so the file misses none of them.
        self.wait_for_inflight_writes();
        // Numbered under the write lock: `flush_all` switches every table's memtable in one
        // hold of it, so no SSTable's number falls between the new segments' (a pass of
        // this thread started before the switches could otherwise reach a switched table
        // mid-way), and a deterministic workload numbers its files the same every run.
        let number = {
            let _write = self.write.lock();
            self.new_file_number()
        };
        self.versions.begin_output(number);
        let result = self.write_level0(t, mem, number);
        self.versions.end_output(number);
        result
    }

    fn write_level0(
        &self,
        t: &Arc<TableState>,
        mem: &Arc<MemTable>,
        number: FileNumber,
    ) -> Result<()> {
        let handle = if mem.is_empty() {
            None
        } else {
            let protection = self.table_protection(t, number)?;
            let file = build_table_file(
                &self.env,
                &self.path,
                t,
                protection,
                self.build_options(t),
                number,
                mem,
                self.opts.paranoid_checks,
            )?;
            self.bg.lock().compaction.flush_bytes += file.meta.size;
            Some(Arc::new(file))
        };
        let result = self.install_flush(t, mem, handle);
        if result.is_err() && !self.versions.may_hold_failed_record() {
            // The manifest never saw the edit: nothing names the new file.
            let _ = self.env.remove_file(&self.path.join(filename::sst(number)));
        }
        result
    }

    /// Records a flushed file in the manifest and swaps it in for the memtable.
    fn install_flush(
        &self,
        t: &Arc<TableState>,
        mem: &Arc<MemTable>,
        file: Option<Arc<FileHandle>>,
    ) -> Result<()> {
        // Lock order: write, then manifest. The segment read here may be older than the
        // current one by the time the edit is written, which is only more conservative.
        let current_wal = self.write.lock().wal.segment();
        let mut versions = self.versions.lock();
        let mut edits = Vec::new();
        if let Some(f) = &file {
            edits.push(f.add_edit());
        }
        let log = mem.next_log();
        edits.push(Edit::SetLogNumber { table: t.id, log });
        // Idle tables (nothing in memory) need no old WAL segment: advance their log number
        // so they do not pin segments forever.
        let idle: Vec<Arc<TableState>> = self
            .all_tables()
            .into_iter()
            .filter(|o| o.id != t.id && o.log_number() < current_wal)
            // An encrypted table's edit needs its key for the MAC; without one at hand it
            // keeps its log number (and pins its segments) until it is next used.
            .filter(|o| !o.is_encrypted() || o.table_key().is_some())
            .filter(|o| {
                let sv = o.super_version();
                sv.mem.is_empty() && sv.imm.is_empty()
            })
            .collect();
        for o in &idle {
            edits.push(Edit::SetLogNumber {
                table: o.id,
                log: current_wal,
            });
        }
        let installing: Vec<FileNumber> = file.iter().map(|f| f.meta.number).collect();
        edits.push(Edit::SetNextFileNumber(
            self.versions.next_file_to_record(&installing),
        ));
        edits.push(Edit::SetLastSeq(SeqNo(
            self.last_seq.load(std::sync::atomic::Ordering::Acquire),
        )));
        versions.log_and_apply(&VersionEdit { edits }, None, |_| {
            {
                let mut guard = t.sv.write();
                let old = Arc::clone(&guard);
                let mut version = (*old.version).clone();
                if let Some(f) = file {
                    version.add(f);
                }
                let imm = old
                    .imm
                    .iter()
                    .filter(|m| !Arc::ptr_eq(m, mem))
                    .cloned()
                    .collect();
                *guard = Arc::new(SuperVersion {
                    mem: Arc::clone(&old.mem),
                    imm,
                    version: Arc::new(version),
                });
            }
            t.set_log_number(log);
            for o in &idle {
                o.set_log_number(current_wal);
            }
        })?;
        drop(versions);
        self.delete_obsolete_wal();
        Ok(())
    }

    pub(crate) fn build_options(&self, t: &TableState) -> SstBuildOptions {
        super::build_options_for(&t.meta.read())
    }

    /// A fresh data key for a new SSTable of an encrypted table, wrapped by the table key
    /// (the engine's own copy, refreshed through the table's grant).
    pub(crate) fn table_protection(
        &self,
        t: &TableState,
        number: FileNumber,
    ) -> Result<Protection> {
        if !t.is_encrypted() {
            return Ok(Protection::Plain);
        }
        // The version and its key from one read: a rotation may commit meanwhile.
        let (version, key) = self.current_maintenance_key(t)?;
        Ok(Protection::fresh_sst(&key, version, t.id, number))
    }

    /// The handle for a freshly written file, with boundaries sealed if the table says so.
    pub(crate) fn file_handle(
        &self,
        t: &TableState,
        number: FileNumber,
        level: Level,
        summary: &crate::sst::SstSummary,
    ) -> Result<FileHandle> {
        file_handle_for(&self.env, &self.path, t, number, level, summary)
    }

    /// Freezes every non-empty memtable and waits until all are flushed.
    pub(crate) fn flush_all(&self) -> Result<()> {
        self.check_poisoned()?;
        {
            let mut ws = self.write.lock();
            // Under one hold of the write lock: the flush thread takes its SSTables'
            // numbers under it too, so they all follow the new segments'.
            for t in self.all_tables() {
                // A failure from before this call is retried, not reported again.
                *t.maintenance_error.lock() = None;
                if !t.super_version().mem.is_empty() {
                    self.switch_memtable(&mut ws, &t)?;
                }
            }
        }
        loop {
            let pending: Vec<Arc<TableState>> = self
                .all_tables()
                .into_iter()
                .filter(|t| !t.super_version().imm.is_empty())
                .collect();
            if pending.is_empty() {
                // The worker deletes the WAL segments a flush made obsolete after installing
                // its file: wait for that too, so no deletion of this flush's is still to
                // come when it returns.
                self.wait_for_flush_pass();
                return Ok(());
            }
            for t in &pending {
                if let Some(why) = t.maintenance_error.lock().clone() {
                    return Err(Error::TableUnavailable {
                        table: t.name.clone(),
                        reason: format!("cannot flush: {why}"),
                    });
                }
            }
            self.check_poisoned()?;
            self.nudge_worker_and_wait();
        }
    }
}

/// How a new SSTable of encrypted table `t` is sealed: a fresh data key wrapped by `key`.
pub(super) fn protection_with_key(
    t: &TableState,
    key: &TableKey,
    number: FileNumber,
) -> Protection {
    Protection::fresh_sst(key, t.meta.read().key_version, t.id, number)
}

/// Writes memtable `mem` of table `t` to level-0 SSTable `number` in `dir` (synced, with
/// its directory entry synced), reads it back (`check_new_table_file`) and returns its
/// handle. The file is removed on error.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_table_file(
    env: &Arc<dyn Env>,
    dir: &Path,
    t: &TableState,
    protection: Protection,
    options: SstBuildOptions,
    number: FileNumber,
    mem: &Arc<MemTable>,
    paranoid: bool,
) -> Result<FileHandle> {
    let path = dir.join(filename::sst(number));
    let built = (|| {
        let file = env
            .create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let mut builder = SstBuilder::new(file, protection, options)?;
        // The skip list's own cursor steps along its bottom level, O(1) a step; a
        // `MemTableIter` re-seeks from the top at every step (it owns no borrow).
        for e in mem.map().iter() {
            builder.add(e.key().ikey(), e.key().value())?;
        }
        let summary = builder.finish()?;
        // IMPORTANT: the new file's directory entry is made durable before the manifest
        // refers to it.
        env.sync_dir(dir)
            .map_err(|e| Error::io("syncing the data directory", e))?;
        let handle = file_handle_for(env, dir, t, number, Level(0), &summary)?;
        super::read::check_new_table_file(&**env, t, &handle, paranoid)?;
        Ok(handle)
    })();
    if built.is_err() {
        let _ = env.remove_file(&path);
    }
    built
}

/// The handle for a freshly written file, with boundaries sealed if the table says so.
pub(super) fn file_handle_for(
    env: &Arc<dyn Env>,
    dir: &Path,
    t: &TableState,
    number: FileNumber,
    level: Level,
    summary: &crate::sst::SstSummary,
) -> Result<FileHandle> {
    let sealed = t.meta.read().sealed_boundaries;
    let (s, l) = if sealed {
        let key = t.require_key()?;
        (
            Boundary::Sealed(seal_boundary(&key, t.id, number, false, &summary.smallest)?),
            Boundary::Sealed(seal_boundary(&key, t.id, number, true, &summary.largest)?),
        )
    } else {
        (
            Boundary::Plain(summary.smallest.clone()),
            Boundary::Plain(summary.largest.clone()),
        )
    };
    let meta = FileMeta {
        number,
        level,
        size: summary.size,
        entries: summary.entries,
        min_seq: summary.min_seq,
        max_seq: summary.max_seq,
        smallest: s,
        largest: l,
    };
    Ok(FileHandle::new(
        t.id,
        meta,
        (summary.smallest.clone(), summary.largest.clone()),
        dir.join(filename::sst(number)),
        Arc::clone(env),
    ))
}
