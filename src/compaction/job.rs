//! Runs one compaction: merge the inputs, keep what the filter keeps, cut outputs at the
//! target file size (only between user keys, so each deeper level stays one sorted run),
//! each output under a fresh data key; then install the result with one manifest record.
//!
//! A job sees the engine through one narrow door, `CompactionHost` (the engine implements
//! it for the table being compacted): the table's current version, its files opened and
//! sealed under its keys, the file numbers, and the installation of the result in the
//! manifest and the table's version. It never touches the write path, the WAL or the
//! background state.

use std::path::Path;
use std::sync::Arc;

use crate::cache::SstCache;
use crate::error::{Error, Result};
use crate::filename;
use crate::ikey;
use crate::iter::{InternalIterator, MergingIterator};
use crate::sst::{SstBuilder, SstReader};
use crate::storage::Env;
use crate::types::{FileNumber, Level, SeqNo};
use crate::version::{FileHandle, LevelIterator, OpenFile, Version, NUM_LEVELS};

use super::filter::VersionFilter;
use super::picker::CompactionPlan;

/// How often (in entries) a running compaction looks for a shutdown request.
const SHUTDOWN_CHECK_EVERY: u64 = 4096;

/// The engine's side of a compaction of one table.
pub(crate) trait CompactionHost {
    /// The table's current version.
    fn version(&self) -> Arc<Version>;
    /// The shared open reader of one of the table's files.
    fn reader(&self, f: &FileHandle) -> Result<Arc<SstReader>>;
    /// Opens the table's files for a level cursor.
    fn file_opener(&self) -> OpenFile;
    /// A fresh file number.
    fn new_file_number(&self) -> FileNumber;
    /// Marks `n` an output in progress (not an orphan to delete) until `end_output`.
    fn begin_output(&self, n: FileNumber);
    /// Ends what `begin_output` began.
    fn end_output(&self, n: FileNumber);
    /// True after a failed manifest write whose record may still name the outputs.
    fn may_hold_failed_record(&self) -> bool;
    /// A builder for new file `n`, under a fresh data key wrapped by the table key.
    fn new_output(&self, n: FileNumber) -> Result<SstBuilder>;
    /// Finishes `b` as file `n` at `level` and reads it back before anything names it.
    fn finish_output(&self, n: FileNumber, level: Level, b: SstBuilder) -> Result<FileHandle>;
    /// Logs the result in the manifest (one record: the plan's inputs removed, `outputs`
    /// added) and swaps in the table's new version. `TableNotFound` once the table is
    /// dropped.
    fn install(&self, plan: &CompactionPlan, outputs: &[Arc<FileHandle>]) -> Result<()>;
}

/// One compaction of one table, and what it needs.
pub(crate) struct CompactionJob<'a> {
    pub(crate) host: &'a dyn CompactionHost,
    pub(crate) sst_cache: &'a SstCache,
    pub(crate) env: &'a dyn Env,
    pub(crate) dir: &'a Path,
    /// The sequence numbers of the live snapshots: the versions they see survive.
    pub(crate) snapshots: Vec<SeqNo>,
    pub(crate) target_file_size: u64,
    /// True once the database is shutting down: the job stops with `Closed`.
    pub(crate) stopping: &'a dyn Fn() -> bool,
}

/// What a finished job did.
pub(crate) struct JobOutcome {
    /// The files the plan's range is in now (the moved inputs, for a trivial move).
    pub(crate) outputs: Vec<FileNumber>,
    pub(crate) bytes_written: u64,
}

/// Output files not yet installed: removed from disk if the job does not finish.
struct PendingOutputs<'a> {
    host: &'a dyn CompactionHost,
    env: &'a dyn Env,
    dir: &'a Path,
    numbers: Vec<FileNumber>,
    installed: bool,
}

impl PendingOutputs<'_> {
    fn add(&mut self, n: FileNumber) {
        self.host.begin_output(n);
        self.numbers.push(n);
    }
}

impl Drop for PendingOutputs<'_> {
    fn drop(&mut self) {
        // After a failed manifest write the record may name the outputs: keep them.
        let named = self.installed || self.host.may_hold_failed_record();
        for n in &self.numbers {
            self.host.end_output(*n);
            if !named {
                // Best effort: the next open removes a leftover numbered past the
                // manifest's file counter.
                let _ = self.env.remove_file(&self.dir.join(filename::sst(*n)));
            }
        }
    }
}

impl CompactionJob<'_> {
    /// Runs `plan` on the host's table and installs its result.
    pub(crate) fn run(&self, plan: &CompactionPlan) -> Result<JobOutcome> {
        if plan.trivial {
            self.run_trivial_move(plan)?;
            return Ok(JobOutcome {
                outputs: plan.inputs.iter().map(|f| f.meta.number).collect(),
                bytes_written: 0,
            });
        }
        let mut pending = PendingOutputs {
            host: self.host,
            env: self.env,
            dir: self.dir,
            numbers: Vec::new(),
            installed: false,
        };
        let files = self.write_outputs(plan, &mut pending)?;
        self.install(plan, &files, false)?;
        pending.installed = true;
        Ok(JobOutcome {
            outputs: files.iter().map(|f| f.meta.number).collect(),
            bytes_written: files.iter().map(|f| f.meta.size).sum(),
        })
    }

    /// Moves the inputs one level down, unchanged (same file, same data key).
    fn run_trivial_move(&self, plan: &CompactionPlan) -> Result<()> {
        let level = Level(u8::try_from(plan.output_level).unwrap_or(u8::MAX));
        let mut moved = Vec::with_capacity(plan.inputs.len());
        for f in &plan.inputs {
            // The old and new handles share one open reader, so a reader pinned to the old
            // version still reads the file after the new handle deletes it (unlinked files
            // stay readable while open).
            self.host.reader(f)?;
            moved.push(Arc::new(f.moved_to(level)));
        }
        self.install(plan, &moved, true)
    }

    /// The merged cursor over a plan's inputs.
    fn input(&self, plan: &CompactionPlan) -> Result<MergingIterator> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        if plan.level == 0 {
            for f in &plan.inputs {
                children.push(Box::new(self.host.reader(f)?.iter()));
            }
        } else {
            children.push(Box::new(LevelIterator::new(
                plan.inputs.clone(),
                self.host.file_opener(),
            )));
        }
        if !plan.below.is_empty() {
            children.push(Box::new(LevelIterator::new(
                plan.below.clone(),
                self.host.file_opener(),
            )));
        }
        Ok(MergingIterator::new(children))
    }

    fn write_outputs(
        &self,
        plan: &CompactionPlan,
        pending: &mut PendingOutputs<'_>,
    ) -> Result<Vec<Arc<FileHandle>>> {
        let version = self.host.version();
        let deeper = plan.output_level + 1..NUM_LEVELS;
        // No file of a deeper level covers the key: nothing older can hide below.
        let is_base_level = |user_key: &[u8]| {
            deeper.clone().all(|level| {
                let files = &version.levels[level];
                let i = files.partition_point(|f| ikey::user_key(&f.largest) < user_key);
                !files.get(i).is_some_and(|f| f.covers(user_key))
            })
        };
        let mut filter = VersionFilter::new(self.snapshots.clone(), is_base_level);
        let mut input = self.input(plan)?;
        input.seek_to_first()?;
        let target = self.target_file_size.max(1);
        let level = Level(u8::try_from(plan.output_level).unwrap_or(u8::MAX));
        let mut outputs = Vec::new();
        let mut current: Option<(FileNumber, SstBuilder)> = None;
        let mut last_user_key: Vec<u8> = Vec::new();
        let mut seen = 0u64;
        while input.valid() {
            seen += 1;
            if seen.is_multiple_of(SHUTDOWN_CHECK_EVERY) && (self.stopping)() {
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
                            outputs.push(Arc::new(self.host.finish_output(n, level, b)?));
                        }
                    }
                }
                last_user_key.clear();
                last_user_key.extend_from_slice(user_key);
            }
            if current.is_none() {
                let n = self.host.new_file_number();
                pending.add(n);
                current = Some((n, self.host.new_output(n)?));
            }
            if let Some((_, b)) = &mut current {
                b.add(key, input.value())?;
            }
            input.next()?;
        }
        if let Some((n, b)) = current.take() {
            outputs.push(Arc::new(self.host.finish_output(n, level, b)?));
        }
        // IMPORTANT: the outputs' directory entries are made durable before the manifest
        // refers to them.
        self.env
            .sync_dir(self.dir)
            .map_err(|e| Error::io("syncing the data directory", e))?;
        Ok(outputs)
    }

    /// Installs the result through the host; unless the outputs are the inputs moved, the
    /// inputs become obsolete.
    fn install(
        &self,
        plan: &CompactionPlan,
        outputs: &[Arc<FileHandle>],
        moved: bool,
    ) -> Result<()> {
        self.host.install(plan, outputs)?;
        if !moved {
            // Deleted when the last version or reader holding them lets go.
            for f in plan.all_inputs() {
                f.mark_obsolete();
                self.sst_cache.evict(f.table, f.meta.number);
            }
        }
        Ok(())
    }
}
