//! The read path: point lookups and range iterators over one consistent view.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::{unwrap_data_key, FileKind, UnitContext, UnitOpener, WrapContext};
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::memtable::MemTableIter;
use crate::sst;
use crate::types::{SeqNo, ValueKind};

use crate::cache::SstCache;
use crate::sst::BlockCache;
use crate::storage::Env;

use super::range_iter::RangeIter;
use super::table::{SuperVersion, TableState};
use super::version::FileHandle;
use super::DbInner;
use crate::filename;
use crate::iter::MergingIterator;
use crate::version::{LevelIterator, OpenFile};

impl DbInner {
    pub(crate) fn get(
        &self,
        t: &Arc<TableState>,
        key: &[u8],
        seq: Option<SeqNo>,
    ) -> Result<Option<Bytes>> {
        let seq = seq.unwrap_or_else(|| SeqNo(self.last_seq.load(Ordering::Acquire)));
        self.check_readable(t)?;
        let sv = t.super_version();
        if let Some((kind, v)) = sv.mem.get(key, seq) {
            return Ok(live(kind, v));
        }
        for m in &sv.imm {
            if let Some((kind, v)) = m.get(key, seq) {
                return Ok(live(kind, v));
            }
        }
        for (level, files) in sv.version.levels.iter().enumerate() {
            if level == 0 {
                for f in files {
                    if f.covers(key) && f.meta.min_seq <= seq {
                        if let Some((kind, v)) = self.get_in_file(t, f, key, seq)? {
                            return Ok(live(kind, v));
                        }
                    }
                }
            } else {
                let idx = files.partition_point(|f| crate::ikey::user_key(&f.largest) < key);
                if let Some(f) = files.get(idx) {
                    if f.covers(key) {
                        if let Some((kind, v)) = self.get_in_file(t, f, key, seq)? {
                            return Ok(live(kind, v));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// `key`'s newest entry at or below `seq` in file `f`. The file's kept filter answers
    /// first; only a key it may hold costs a reader (opened and its filter kept, if new).
    fn get_in_file(
        &self,
        t: &TableState,
        f: &FileHandle,
        key: &[u8],
        seq: SeqNo,
    ) -> Result<Option<(ValueKind, Bytes)>> {
        if f.filter_excludes(key) {
            return Ok(None);
        }
        let reader = self.reader(t, f)?;
        f.keep_filter(&reader);
        reader.get(key, seq)
    }

    pub(crate) fn range(
        &self,
        t: &Arc<TableState>,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        seq: Option<SeqNo>,
    ) -> Result<RangeIter> {
        let seq = seq.unwrap_or_else(|| SeqNo(self.last_seq.load(Ordering::Acquire)));
        self.check_readable(t)?;
        let sv = t.super_version();
        let merged = self.merged_view(t, &sv)?;
        Ok(RangeIter::new(
            merged,
            Box::new(sv),
            seq,
            lower,
            upper,
            false,
        ))
    }

    /// A merging cursor over every memtable and file of one view.
    pub(crate) fn merged_view(
        &self,
        t: &Arc<TableState>,
        sv: &Arc<SuperVersion>,
    ) -> Result<MergingIterator> {
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        children.push(Box::new(MemTableIter::new(Arc::clone(&sv.mem))));
        for m in &sv.imm {
            children.push(Box::new(MemTableIter::new(Arc::clone(m))));
        }
        // Level 0 files overlap: one child each. Each deeper level is one sorted run: one
        // child that opens its files as the cursor reaches them.
        for (level, files) in sv.version.levels.iter().enumerate() {
            if level == 0 {
                for f in files {
                    children.push(Box::new(self.reader(t, f)?.iter()));
                }
            } else if !files.is_empty() {
                children.push(Box::new(LevelIterator::new(
                    files.clone(),
                    self.file_opener(t),
                )));
            }
        }
        Ok(MergingIterator::new(children))
    }

    fn check_readable(&self, t: &TableState) -> Result<()> {
        if t.dropped.load(Ordering::Acquire) {
            return Err(Error::TableNotFound(t.name.clone()));
        }
        // Whether the key is there is `Db::authorize`'s question, asked just before (every
        // read and range of a `Db` goes through it first): not asked twice per read.
        Ok(())
    }

    /// The open reader of a file, opening it (and unwrapping its data key) on first use.
    pub(crate) fn reader(&self, t: &TableState, f: &FileHandle) -> Result<Arc<sst::SstReader>> {
        open_reader(&*self.env, &self.cache, &self.sst_cache, t, f)
    }

    /// Opens a file's reader afresh (not the shared one), with or without the block cache.
    pub(crate) fn open_reader(
        &self,
        t: &TableState,
        f: &FileHandle,
        cache: Option<Arc<BlockCache>>,
    ) -> Result<Arc<sst::SstReader>> {
        open_table_file(&*self.env, cache, t, f)
    }

    /// Opens files of `t` for a cursor that outlives this call (level iterators).
    pub(crate) fn file_opener(&self, t: &Arc<TableState>) -> OpenFile {
        let env = Arc::clone(&self.env);
        let cache = Arc::clone(&self.cache);
        let tables = Arc::clone(&self.sst_cache);
        let t = Arc::clone(t);
        Arc::new(move |f: &FileHandle| open_reader(&*env, &cache, &tables, &t, f))
    }
}

/// The open reader of a file from the table cache, opening it (and unwrapping its data
/// key) on a miss.
fn open_reader(
    env: &dyn Env,
    cache: &Arc<BlockCache>,
    tables: &SstCache,
    t: &TableState,
    f: &FileHandle,
) -> Result<Arc<sst::SstReader>> {
    tables.get_or_open(t.id, f.meta.number, || {
        open_table_file(env, Some(Arc::clone(cache)), t, f)
    })
}

/// Checks a freshly written SSTable before a manifest edit may name it (as LevelDB reads
/// back every table it builds): its size on disk is what the builder wrote, and its footer,
/// index, filter and data key open from the disk, not from any cache; with `paranoid`,
/// every data block is read back and checked too. A file the storage silently dropped or
/// cut is caught here, while its inputs (memtable, compaction inputs) are still there.
pub(crate) fn check_new_table_file(
    env: &dyn Env,
    t: &TableState,
    f: &FileHandle,
    paranoid: bool,
) -> Result<()> {
    let on_disk = env
        .open_read(&f.path)
        .map_err(|e| Error::io(format!("reading back {}", f.path.display()), e))?
        .len();
    if on_disk != f.meta.size {
        return Err(Error::corruption(
            filename::sst(f.meta.number),
            on_disk,
            format!(
                "new file reads back {on_disk} bytes, {} were written: not installed",
                f.meta.size
            ),
        ));
    }
    let reader = open_table_file(env, None, t, f)?;
    if paranoid {
        reader.verify()?;
    }
    Ok(())
}

/// Reads a file's footer and unwraps its data key with the table key.
fn open_table_file(
    env: &dyn Env,
    cache: Option<Arc<BlockCache>>,
    t: &TableState,
    f: &FileHandle,
) -> Result<Arc<sst::SstReader>> {
    let file = env
        .open_read(&f.path)
        .map_err(|e| Error::io(format!("opening {}", f.path.display()), e))?;
    let label: Arc<str> = Arc::from(filename::sst(f.meta.number).as_str());
    let encrypted = t.is_encrypted();
    let opener_label = Arc::clone(&label);
    let reader = sst::SstReader::open(
        file,
        Arc::clone(&label),
        f.meta.number.0,
        |footer_key: Option<&sst::FooterKey>| match (encrypted, footer_key) {
            (false, None) => Ok(UnitOpener::plain(opener_label)),
            (true, Some(fk)) => {
                // The table-key version the footer names (bound into the wrap's AAD).
                let key = t.key_of_version(fk.key_version)?;
                let dek = unwrap_data_key(
                    &key,
                    &fk.wrapped_dek,
                    &WrapContext {
                        table: t.id,
                        file_kind: FileKind::Sst,
                        file: f.meta.number,
                        key_version: fk.key_version,
                    },
                )
                .ok_or_else(|| Error::Integrity {
                    file: opener_label.to_string(),
                    offset: 0,
                })?;
                Ok(UnitOpener::sealed(
                    UnitContext {
                        table: t.id,
                        file: f.meta.number,
                        file_kind: FileKind::Sst,
                        label: opener_label,
                    },
                    &dek,
                ))
            }
            // A plaintext footer on an encrypted table's file (or the reverse) is
            // tampering or damage, never a reason to read the file another way.
            _ => Err(Error::corruption(
                opener_label.to_string(),
                0,
                "file protection does not match the table's",
            )),
        },
        cache,
    )?;
    check_matches_manifest(&reader, f)?;
    Ok(reader)
}

/// A file must be the one the manifest describes. Internal keys carry unique sequence
/// numbers, so no two files share a smallest or largest key: a plaintext file swapped in
/// for another (whose CRCs are all valid) is caught here. (An encrypted file is already
/// bound to its table and number by its blocks' associated data.)
fn check_matches_manifest(reader: &sst::SstReader, f: &FileHandle) -> Result<()> {
    let p = reader.properties();
    if p.smallest != f.smallest || p.largest != f.largest || p.entries != f.meta.entries {
        return Err(Error::corruption(
            filename::sst(f.meta.number),
            0,
            "the file's key range or entry count differs from the manifest's \
             (a swapped, replaced or misplaced file)",
        ));
    }
    Ok(())
}

fn live(kind: ValueKind, v: Bytes) -> Option<Bytes> {
    match kind {
        ValueKind::Put => Some(v),
        ValueKind::Delete => None,
    }
}
