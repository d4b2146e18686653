//! Runs one compaction: merge the inputs, keep what the filter keeps, cut outputs at the
//! target file size (only between user keys, so each deeper level stays one sorted run),
//! each output under a fresh data key; then install the result with one manifest record.

use std::sync::Arc;

use crate::db::{
    DbInner, FileHandle, LevelIterator, MergingIterator, SuperVersion, TableState, NUM_LEVELS,
};
use crate::error::{Error, Result};
use crate::filename;
use crate::ikey;
use crate::iter::InternalIterator;
use crate::manifest::{Edit, VersionEdit};
use crate::sst::SstBuilder;
use crate::types::{FileNumber, Level};

use super::filter::VersionFilter;
use super::picker::CompactionPlan;

/// How often (in entries) a running compaction looks for a shutdown request.
const SHUTDOWN_CHECK_EVERY: u64 = 4096;

/// Output files not yet installed: removed from disk if the job does not finish.
struct PendingOutputs<'a> {
    db: &'a DbInner,
    numbers: Vec<FileNumber>,
    installed: bool,
}

impl PendingOutputs<'_> {
    fn add(&mut self, n: FileNumber) {
        self.db.pending_outputs.lock().insert(n);
        self.numbers.push(n);
    }
}

impl Drop for PendingOutputs<'_> {
    fn drop(&mut self) {
        // After a failed manifest write the record may name the outputs: keep them.
        let named = self.installed || self.db.manifest.lock().may_hold_failed_record();
        let mut pending = self.db.pending_outputs.lock();
        for n in &self.numbers {
            pending.remove(n);
            if !named {
                // Best effort: the next open removes a leftover numbered past the
                // manifest's file counter.
                let _ = self
                    .db
                    .env
                    .remove_file(&self.db.path.join(filename::sst(*n)));
            }
        }
    }
}

impl DbInner {
    /// Runs `plan` on table `t` and installs its result; returns the output files.
    pub(crate) fn run_compaction(
        &self,
        t: &Arc<TableState>,
        plan: &CompactionPlan,
    ) -> Result<Vec<FileNumber>> {
        if plan.trivial {
            self.run_trivial_move(t, plan)?;
            return Ok(plan.inputs.iter().map(|f| f.number).collect());
        }
        let mut outputs = PendingOutputs {
            db: self,
            numbers: Vec::new(),
            installed: false,
        };
        let files = self.write_outputs(t, plan, &mut outputs)?;
        let written: u64 = files.iter().map(|f| f.size).sum();
        self.install_compaction(t, plan, &files, false)?;
        outputs.installed = true;
        let mut bg = self.bg.lock();
        bg.compaction.bytes_read += plan.input_bytes();
        bg.compaction.bytes_written += written;
        bg.compaction.compactions += 1;
        self.bg_cv.notify_all();
        Ok(files.iter().map(|f| f.number).collect())
    }

    /// Moves the inputs one level down, unchanged (same file, same data key).
    fn run_trivial_move(&self, t: &Arc<TableState>, plan: &CompactionPlan) -> Result<()> {
        let level = Level(u8::try_from(plan.output_level).unwrap_or(u8::MAX));
        let mut moved = Vec::with_capacity(plan.inputs.len());
        for f in &plan.inputs {
            // The old and new handles share one open reader, so a reader pinned to the old
            // version still reads the file after the new handle deletes it (unlinked files
            // stay readable while open).
            self.reader(t, f)?;
            moved.push(Arc::new(f.moved_to(level)));
        }
        self.install_compaction(t, plan, &moved, true)?;
        let mut bg = self.bg.lock();
        bg.compaction.trivial_moves += 1;
        self.bg_cv.notify_all();
        Ok(())
    }

    /// The merged cursor over a plan's inputs.
    fn compaction_input(
        &self,
        t: &Arc<TableState>,
        plan: &CompactionPlan,
    ) -> Result<MergingIterator> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        if plan.level == 0 {
            for f in &plan.inputs {
                children.push(Box::new(self.reader(t, f)?.iter()));
            }
        } else {
            children.push(Box::new(LevelIterator::new(
                plan.inputs.clone(),
                self.file_opener(t),
            )));
        }
        if !plan.below.is_empty() {
            children.push(Box::new(LevelIterator::new(
                plan.below.clone(),
                self.file_opener(t),
            )));
        }
        Ok(MergingIterator::new(children))
    }

    fn write_outputs(
        &self,
        t: &Arc<TableState>,
        plan: &CompactionPlan,
        pending: &mut PendingOutputs<'_>,
    ) -> Result<Vec<Arc<FileHandle>>> {
        let version = Arc::clone(&t.super_version().version);
        let deeper = plan.output_level + 1..NUM_LEVELS;
        // No file of a deeper level covers the key: nothing older can hide below.
        let is_base_level = |user_key: &[u8]| {
            deeper.clone().all(|level| {
                let files = &version.levels[level];
                let i = files.partition_point(|f| ikey::user_key(&f.largest) < user_key);
                !files.get(i).is_some_and(|f| f.covers(user_key))
            })
        };
        let mut filter = VersionFilter::new(self.snapshots.all(), is_base_level);
        let mut input = self.compaction_input(t, plan)?;
        input.seek_to_first()?;
        let target = self.opts.target_file_size.max(1);
        let level = Level(u8::try_from(plan.output_level).unwrap_or(u8::MAX));
        let mut outputs = Vec::new();
        let mut current: Option<(FileNumber, SstBuilder)> = None;
        let mut last_user_key: Vec<u8> = Vec::new();
        let mut seen = 0u64;
        while input.valid() {
            seen += 1;
            if seen.is_multiple_of(SHUTDOWN_CHECK_EVERY) && self.bg.lock().shutdown {
                return Err(Error::Closed);
            }
            let key = input.key();
            if !filter.keep(key)? {
                input.next()?;
                continue;
            }
            let user_key = ikey::user_key(key);
            let new_user_key = current.is_none() || last_user_key.as_slice() != user_key;
            if new_user_key {
                if let Some((_, b)) = &current {
                    if b.estimated_size() >= target {
                        if let Some((n, b)) = current.take() {
                            outputs.push(self.finish_output(t, n, level, b)?);
                        }
                    }
                }
                last_user_key.clear();
                last_user_key.extend_from_slice(user_key);
            }
            if current.is_none() {
                let n = self.new_file_number();
                pending.add(n);
                current = Some((n, self.new_output(t, n)?));
            }
            if let Some((_, b)) = &mut current {
                b.add(key, input.value())?;
            }
            input.next()?;
        }
        if let Some((n, b)) = current.take() {
            outputs.push(self.finish_output(t, n, level, b)?);
        }
        // IMPORTANT: the outputs' directory entries are made durable before the manifest
        // refers to them.
        self.env
            .sync_dir(&self.path)
            .map_err(|e| Error::io("syncing the data directory", e))?;
        Ok(outputs)
    }

    /// A builder for output file `n`, under a fresh data key wrapped by the table key.
    fn new_output(&self, t: &Arc<TableState>, n: FileNumber) -> Result<SstBuilder> {
        let protection = self.table_protection(t, n)?;
        let path = self.path.join(filename::sst(n));
        let file = self
            .env
            .create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(SstBuilder::new(file, protection, self.build_options(t)))
    }

    fn finish_output(
        &self,
        t: &Arc<TableState>,
        n: FileNumber,
        level: Level,
        b: SstBuilder,
    ) -> Result<Arc<FileHandle>> {
        let summary = b.finish()?;
        let handle = self.file_handle(t, n, level, &summary)?;
        // Read back before the manifest may name it; on failure the inputs stay.
        crate::db::check_new_table_file(&*self.env, t, &handle, self.opts.paranoid_checks)?;
        Ok(Arc::new(handle))
    }

    /// Records the result in the manifest (one record: the inputs removed, the outputs
    /// added) and swaps in the new version. `moved`: the outputs are the inputs, moved.
    pub(crate) fn install_compaction(
        &self,
        t: &Arc<TableState>,
        plan: &CompactionPlan,
        outputs: &[Arc<FileHandle>],
        moved: bool,
    ) -> Result<()> {
        let mut manifest = self.manifest.lock();
        // drop_table marks the table dropped under the manifest lock.
        if t.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::TableNotFound(t.name.clone()));
        }
        let mut edits = Vec::new();
        for f in plan.all_inputs() {
            edits.push(Edit::RemoveFile {
                table: t.id,
                level: f.level,
                file: f.number,
            });
        }
        for f in outputs {
            edits.push(f.add_edit());
        }
        let installing: Vec<FileNumber> = outputs.iter().map(|f| f.number).collect();
        edits.push(Edit::SetNextFileNumber(
            self.next_file_to_record(&installing),
        ));
        self.append_edit(&mut manifest, &VersionEdit { edits }, None)?;
        {
            let mut guard = t.sv.write();
            let old = Arc::clone(&guard);
            let mut version = (*old.version).clone();
            for f in plan.all_inputs() {
                version.remove(f.level, f.number);
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
        }
        drop(manifest);
        if !moved {
            // Deleted when the last version or reader holding them lets go.
            for f in plan.all_inputs() {
                f.mark_obsolete();
                self.sst_cache.evict(f.table, f.number);
            }
        }
        Ok(())
    }
}
