//! The files of one table at one moment: a `Version` is immutable; flushes and compactions
//! install a new one. Files no longer in any version are deleted when their last reader
//! lets go of them.

mod level_iter;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::ikey;
use crate::manifest::{Edit, FileMeta};
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
/// up are sorted by key and do not overlap.
#[derive(Clone, Default)]
pub(crate) struct Version {
    pub(crate) levels: Vec<Vec<Arc<FileHandle>>>,
    /// Per level, the largest internal key of the last file compacted out of it: the next
    /// pick starts after it (round robin over the key space). In memory only.
    pub(crate) compact_pointer: [Option<Vec<u8>>; NUM_LEVELS],
}

impl Version {
    pub(crate) fn empty() -> Version {
        Version {
            levels: vec![Vec::new(); NUM_LEVELS],
            compact_pointer: Default::default(),
        }
    }

    pub(crate) fn files(&self) -> impl Iterator<Item = &Arc<FileHandle>> {
        self.levels.iter().flatten()
    }

    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map(|l| l.iter().map(|f| f.meta.size).sum())
            .unwrap_or(0)
    }

    /// Adds a file, keeping each level's order.
    pub(crate) fn add(&mut self, f: Arc<FileHandle>) {
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
        let files = self.levels.get_mut(usize::from(level.0))?;
        let pos = files.iter().position(|f| f.meta.number == number)?;
        Some(files.remove(pos))
    }
}
