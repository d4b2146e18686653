//! The files of one table at one moment: a `Version` is immutable; flushes and compactions
//! install a new one. Files no longer in any version are deleted when their last reader
//! lets go of them.

mod level_iter;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::ikey;
use crate::manifest::{Edit, FileMeta};
use crate::sst::{BloomFilter, SstReader};
use crate::storage::Env;
use crate::types::{FileNumber, Level, TableId};

pub(crate) use level_iter::{LevelIterator, OpenFile};

/// Levels per table.
pub(crate) const NUM_LEVELS: usize = 7;

/// One SSTable of a table: its manifest record, its boundaries opened, its path.
pub(crate) struct FileHandle {
    pub(crate) table: TableId,
    /// The file as the manifest records it (boundaries as stored).
    pub(crate) meta: FileMeta,
    /// Smallest and largest internal keys (opened, if the table seals its boundaries).
    pub(crate) smallest: Vec<u8>,
    pub(crate) largest: Vec<u8>,
    pub(crate) path: PathBuf,
    /// Shared by this handle and its copies at other levels (trivial moves): the file is
    /// deleted when the last of them is dropped, if it was marked obsolete.
    life: Arc<FileLife>,
}

/// The file on disk behind one or more handles.
struct FileLife {
    path: PathBuf,
    obsolete: AtomicBool,
    env: Arc<dyn Env>,
    /// A copy of the file's bloom filter, taken the first time a point read opens it:
    /// from then on a read the filter rejects needs no reader (no table-cache lookup:
    /// its lock, its recency update, its reference count). Lives as long as the file.
    filter: OnceLock<BloomFilter>,
}

impl Drop for FileLife {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // Best effort: a file left behind is an orphan that the next open removes.
            let _ = self.env.remove_file(&self.path);
        }
    }
}

impl FileHandle {
    /// The handle for file `meta` of `table`, with its boundaries opened as `bounds`.
    pub(crate) fn new(
        table: TableId,
        meta: FileMeta,
        bounds: (Vec<u8>, Vec<u8>),
        path: PathBuf,
        env: Arc<dyn Env>,
    ) -> FileHandle {
        FileHandle {
            table,
            meta,
            smallest: bounds.0,
            largest: bounds.1,
            life: Arc::new(FileLife {
                path: path.clone(),
                obsolete: AtomicBool::new(false),
                env,
                filter: OnceLock::new(),
            }),
            path,
        }
    }

    /// Marks the file for deletion once no version or reader holds it.
    pub(crate) fn mark_obsolete(&self) {
        self.life.obsolete.store(true, Ordering::Release);
    }

    /// The same file with its boundaries opened (a table that was locked at open holds
    /// placeholders for sealed ones until its key is back).
    pub(crate) fn with_bounds(&self, smallest: Vec<u8>, largest: Vec<u8>) -> FileHandle {
        FileHandle {
            table: self.table,
            meta: self.meta.clone(),
            smallest,
            largest,
            path: self.path.clone(),
            life: Arc::clone(&self.life),
        }
    }

    /// The manifest edit that records this file.
    pub(crate) fn add_edit(&self) -> Edit {
        Edit::AddFile {
            table: self.table,
            file: self.meta.clone(),
        }
    }

    /// True when the file's filter, if a read has kept it (`keep_filter`), says `user_key`
    /// is certainly not in the file.
    pub(crate) fn filter_excludes(&self, user_key: &[u8]) -> bool {
        self.life
            .filter
            .get()
            .is_some_and(|f| !f.may_contain(user_key))
    }

    /// Keeps a copy of `reader`'s filter (this file's) for `filter_excludes`, once.
    pub(crate) fn keep_filter(&self, reader: &SstReader) {
        self.life.filter.get_or_init(|| reader.filter().detached());
    }

    /// True when `user_key` falls inside the file's key range.
    pub(crate) fn covers(&self, user_key: &[u8]) -> bool {
        ikey::user_key(&self.smallest) <= user_key && user_key <= ikey::user_key(&self.largest)
    }

    /// A copy of this file's metadata at another level (a trivial move); both handles
    /// share the file's life.
    pub(crate) fn moved_to(&self, level: Level) -> FileHandle {
        FileHandle {
            table: self.table,
            meta: FileMeta {
                level,
                ..self.meta.clone()
            },
            smallest: self.smallest.clone(),
            largest: self.largest.clone(),
            path: self.path.clone(),
            life: Arc::clone(&self.life),
        }
    }
}

/// The levels of one table. Level 0 is ordered newest first and may overlap; levels 1 and
/// up are sorted by key and do not overlap. Changed only through `add` and `remove` (which
/// keep `level_sizes` true), and only before it is installed.
#[derive(Clone, Default)]
pub(crate) struct Version {
    pub(crate) levels: Vec<Vec<Arc<FileHandle>>>,
    /// Bytes per level, summed once per version: every write's stall check reads them
    /// (`DbInner::l0_stall_check`), and summing the files' sizes there cost each write a
    /// walk over every file of the table.
    level_sizes: OnceLock<[u64; NUM_LEVELS]>,
    /// Per level, the largest internal key of the last file compacted out of it: the next
    /// pick starts after it (round robin over the key space). In memory only.
    pub(crate) compact_pointer: [Option<Vec<u8>>; NUM_LEVELS],
}

impl Version {
    pub(crate) fn empty() -> Version {
        Version {
            levels: vec![Vec::new(); NUM_LEVELS],
            level_sizes: OnceLock::new(),
            compact_pointer: Default::default(),
        }
    }

    pub(crate) fn files(&self) -> impl Iterator<Item = &Arc<FileHandle>> {
        self.levels.iter().flatten()
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        let sizes = self.level_sizes.get_or_init(|| {
            let mut sizes = [0u64; NUM_LEVELS];
            for (size, files) in sizes.iter_mut().zip(&self.levels) {
                *size = files.iter().map(|f| f.meta.size).sum();
            }
            sizes
        });
        sizes.get(level).copied().unwrap_or(0)
    }

    /// Adds a file, keeping each level's order.
    pub(crate) fn add(&mut self, f: Arc<FileHandle>) {
        self.level_sizes = OnceLock::new();
        let level = usize::from(f.meta.level.0).min(NUM_LEVELS - 1);
        let files = &mut self.levels[level];
        if level == 0 {
            files.push(f);
            files.sort_by(|a, b| {
                b.meta
                    .max_seq
                    .cmp(&a.meta.max_seq)
                    .then(b.meta.number.cmp(&a.meta.number))
            });
        } else {
            files.push(f);
            files.sort_by(|a, b| ikey::compare(&a.smallest, &b.smallest));
        }
    }

    /// Files of `level` whose user-key range meets `[lo, hi]` (user keys), in level order.
    pub(crate) fn overlapping(&self, level: usize, lo: &[u8], hi: &[u8]) -> Vec<Arc<FileHandle>> {
        self.levels
            .get(level)
            .map(|files| {
                files
                    .iter()
                    .filter(|f| {
                        ikey::user_key(&f.smallest) <= hi && lo <= ikey::user_key(&f.largest)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The deepest level holding a file, if any.
    pub(crate) fn deepest_nonempty(&self) -> Option<usize> {
        self.levels.iter().rposition(|l| !l.is_empty())
    }

    /// Removes a file; returns it if it was present.
    pub(crate) fn remove(&mut self, level: Level, number: FileNumber) -> Option<Arc<FileHandle>> {
        self.level_sizes = OnceLock::new();
        let files = self.levels.get_mut(usize::from(level.0))?;
        let pos = files.iter().position(|f| f.meta.number == number)?;
        Some(files.remove(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Boundary;
    use crate::storage::StdEnv;
    use crate::types::SeqNo;

    fn file(number: u64, level: u8, size: u64) -> Arc<FileHandle> {
        let key = ikey::encode(
            format!("k{number:04}").as_bytes(),
            SeqNo(number),
            crate::types::ValueKind::Put,
        );
        let meta = FileMeta {
            number: FileNumber(number),
            level: Level(level),
            size,
            entries: 1,
            min_seq: SeqNo(number),
            max_seq: SeqNo(number),
            smallest: Boundary::Plain(key.clone()),
            largest: Boundary::Plain(key.clone()),
        };
        let env: Arc<dyn Env> = Arc::new(StdEnv);
        Arc::new(FileHandle::new(
            TableId(1),
            meta,
            (key.clone(), key),
            PathBuf::from(format!("/nonexistent/{number}.sst")),
            env,
        ))
    }

    #[test]
    fn level_bytes_follow_adds_and_removes_of_a_copy() {
        let mut v = Version::empty();
        v.add(file(1, 0, 100));
        v.add(file(2, 1, 1000));
        v.add(file(3, 1, 500));
        assert_eq!(
            (v.level_bytes(0), v.level_bytes(1), v.level_bytes(2)),
            (100, 1500, 0)
        );
        // A copy of a version whose sizes are summed already, changed as a flush or a
        // compaction changes its copy: the copy's sizes are its own, the original's stay.
        let mut next = v.clone();
        next.remove(Level(1), FileNumber(2));
        next.add(file(4, 2, 7));
        assert_eq!((next.level_bytes(1), next.level_bytes(2)), (500, 7));
        assert_eq!((v.level_bytes(1), v.level_bytes(2)), (1500, 0));
        assert_eq!(v.level_bytes(NUM_LEVELS), 0);
    }
}
