//! The files in the database directory beyond the live ones: writing a fresh manifest
//! (which makes older ones obsolete), deleting what a committed manifest proves obsolete,
//! and reporting (or removing, on request) what no table needs. Nothing is deleted on the
//! strength of a directory listing alone (DESIGN.md section 8).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::filename;
use crate::types::{FileNumber, SeqNo};

use super::recovery::Listing;
use super::table::TableState;
use super::version_set::VersionLock;
use super::{DatabaseKey, DbInner};

impl DbInner {
    /// Writes a fresh manifest holding the current state (plus `extra`, a table being
    /// created; under `database_key`, which replaces the current one if given) and
    /// switches to it. Called with the write lock held, so no WAL segment starts meanwhile.
    pub(crate) fn write_snapshot(
        &self,
        versions: &mut VersionLock<'_>,
        database_key: Option<DatabaseKey>,
        extra: Option<&Arc<TableState>>,
    ) -> Result<()> {
        self.check_poisoned()?;
        let mut tables = self.all_tables();
        if let Some(t) = extra {
            tables.push(Arc::clone(t));
        }
        // Every encrypted table's record is MACed under its key: unwrap the ones not at hand
        // (a locked table's ride under the database MAC alone).
        for t in &tables {
            if t.is_encrypted() && t.table_key().is_none() && !t.is_locked() {
                self.maintenance_key(t)?;
            }
        }
        versions.write_snapshot(
            &tables,
            database_key,
            SeqNo(self.last_seq.load(Ordering::Acquire)),
        )
    }

    /// Writes a fresh manifest holding the current state and switches to it.
    pub(crate) fn rewrite_manifest(&self) -> Result<()> {
        // The table keys the new manifest's MACs need, unwrapped before the write and
        // manifest locks are taken, so writers do not wait on the KMS (a key that expires
        // in between is fetched under the locks).
        for t in self.all_tables() {
            if t.is_encrypted() && t.table_key().is_none() && !t.is_locked() {
                self.maintenance_key(&t)?;
            }
        }
        {
            let _ws = self.write.lock();
            let mut versions = self.versions.lock();
            self.write_snapshot(&mut versions, None, None)?;
        }
        self.delete_obsolete_files();
        Ok(())
    }

    /// Removes what the committed manifest proves obsolete: older manifests, WAL segments
    /// below every table's log number, the temporary `CURRENT.tmp`. SSTables are deleted
    /// only by the edits that remove them (compaction, drop), never by a listing.
    pub(crate) fn delete_obsolete_files(&self) {
        let manifest_number = self.versions.manifest_number();
        self.delete_obsolete_wal();
        let Ok(listing) = self.env.list_dir(&self.path) else {
            return;
        };
        for name in listing {
            let obsolete = if let Some(n) = filename::manifest_number(&name) {
                n < manifest_number
            } else {
                name == filename::CURRENT_TMP
            };
            if obsolete {
                let _ = self.env.remove_file(&self.path.join(&name));
            }
        }
    }

    /// The oldest WAL segment some table still needs (the current one if none does).
    fn oldest_needed_segment(&self) -> FileNumber {
        let current = self.write.lock().wal.segment();
        self.all_tables()
            .iter()
            .map(|t| t.log_number())
            .min()
            .unwrap_or(current)
            .min(current)
    }

    /// Removes WAL segments that every table has flushed past.
    pub(crate) fn delete_obsolete_wal(&self) {
        let min_log = self.oldest_needed_segment();
        self.versions.retire_wal_below(min_log);
        if let Ok(listing) = self.env.list_dir(&self.path) {
            for name in listing {
                if let Some(n) = filename::wal_number(&name) {
                    if n < min_log
                        && !self.versions.retained_wal().contains(&n)
                        && !self.versions.wal_pins.holds(n)
                    {
                        let _ = self.env.remove_file(&self.path.join(&name));
                    }
                }
            }
        }
    }

    /// Removes the unreferenced SSTables found at open that the manifest read accounts
    /// for: those an `AddFile` named and a later committed edit removed (compaction inputs,
    /// a dropped table's files: the crash came before their deletion), and those numbered
    /// at or past its file counter (allocated after its last committed edit: a flush or
    /// compaction that never installed, whose entries are still in the WAL replayed or in
    /// the compaction's inputs).
    pub(super) fn delete_redundant_tables(
        &self,
        listing: &Listing,
        manifest_next_file: FileNumber,
        removed_by_edits: &HashSet<FileNumber>,
    ) {
        let live = self.versions.live_table_files();
        for n in &listing.tables {
            let accounted = *n >= manifest_next_file || removed_by_edits.contains(n);
            if accounted && !live.contains(n) {
                let _ = self.env.remove_file(&self.path.join(filename::sst(*n)));
            }
        }
    }

    /// SSTables and WAL segments in the directory that no table needs and the engine is not
    /// writing: left by a crash or a failed install, or copied in. Open never deletes them.
    pub(crate) fn unreferenced_files(&self) -> Result<Vec<String>> {
        let live = self.versions.live_table_files();
        let listing = Listing::read(&*self.env, &self.path)?;
        let current_wal = self.write.lock().wal.segment();
        let min_log = self.oldest_needed_segment();
        let mut out: Vec<(FileNumber, String)> = Vec::new();
        for n in &listing.tables {
            if !live.contains(n) && !self.versions.is_pending_output(*n) {
                out.push((*n, filename::sst(*n)));
            }
        }
        let recorded = self.versions.wal_segments();
        for s in &listing.segments {
            let unlisted = *s >= min_log && !recorded.contains(s) && *s != current_wal;
            if unlisted || self.versions.retained_wal().contains(s) {
                out.push((*s, filename::wal(*s)));
            }
        }
        out.sort();
        Ok(out.into_iter().map(|(_, n)| n).collect())
    }

    /// Deletes the files `unreferenced_files` reports: on purpose, by the application.
    pub(crate) fn remove_unreferenced_files(&self) -> Result<Vec<String>> {
        let files = self.unreferenced_files()?;
        for name in &files {
            let p = self.path.join(name);
            self.env
                .remove_file(&p)
                .map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
        }
        Ok(files)
    }
}
