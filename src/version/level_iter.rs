//! A cursor over one sorted level (1 and up): its files concatenated, each opened only
//! when the cursor reaches it, so a scan touches one file of the level at a time instead
//! of positioning a child per file.
//!
//! Invariant: the files are sorted by smallest key and their user-key ranges do not
//! overlap (compaction cuts outputs only between user keys), so the level is one sorted run.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::error::Result;
use crate::ikey;
use crate::iter::InternalIterator;
use crate::sst;

use super::FileHandle;

/// Opens the reader of a file of the level (through the table cache of open files).
pub(crate) type OpenFile = Arc<dyn Fn(&FileHandle) -> Result<Arc<sst::SstReader>> + Send + Sync>;

pub(crate) struct LevelIterator {
    files: Vec<Arc<FileHandle>>,
    open: OpenFile,
    /// The file under the cursor and its cursor.
    current: Option<(usize, sst::SstIter)>,
}

impl LevelIterator {
    pub(crate) fn new(files: Vec<Arc<FileHandle>>, open: OpenFile) -> LevelIterator {
        LevelIterator {
            files,
            open,
            current: None,
        }
    }

    /// Positions on file `i` (opening it), leaving its cursor unpositioned.
    fn enter(&mut self, i: usize) -> Result<bool> {
        if matches!(&self.current, Some((cur, _)) if *cur == i) {
            return Ok(true);
        }
        let Some(f) = self.files.get(i) else {
            self.current = None;
            return Ok(false);
        };
        let table = (self.open)(f)?;
        self.current = Some((i, table.iter()));
        Ok(true)
    }

    fn inner_valid(&self) -> bool {
        self.current.as_ref().is_some_and(|(_, it)| it.valid())
    }

    /// Moves to the first entry of later files while the current file is exhausted.
    fn skip_forward(&mut self) -> Result<()> {
        while !self.inner_valid() {
            let Some((i, _)) = self.current else {
                return Ok(());
            };
            if !self.enter(i + 1)? {
                return Ok(());
            }
            if let Some((_, it)) = &mut self.current {
                it.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// Moves to the last entry of earlier files while the current file is exhausted.
    fn skip_backward(&mut self) -> Result<()> {
        while !self.inner_valid() {
            let Some((i, _)) = self.current else {
                return Ok(());
            };
            let Some(prev) = i.checked_sub(1) else {
                self.current = None;
                return Ok(());
            };
            self.enter(prev)?;
            if let Some((_, it)) = &mut self.current {
                it.seek_to_last()?;
            }
        }
        Ok(())
    }

    /// Runs a positioning step; any error leaves the cursor invalid.
    fn guard(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = step(self);
        if r.is_err() {
            self.current = None;
        }
        r
    }
}

impl InternalIterator for LevelIterator {
    fn valid(&self) -> bool {
        self.inner_valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.guard(|s| {
            if s.enter(0)? {
                if let Some((_, it)) = &mut s.current {
                    it.seek_to_first()?;
                }
            }
            s.skip_forward()
        })
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.guard(|s| {
            let Some(last) = s.files.len().checked_sub(1) else {
                s.current = None;
                return Ok(());
            };
            s.enter(last)?;
            if let Some((_, it)) = &mut s.current {
                it.seek_to_last()?;
            }
            s.skip_backward()
        })
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.guard(|s| {
            // The first file whose largest key is >= target holds the first entry >= target.
            let i = s
                .files
                .partition_point(|f| ikey::compare(&f.largest, target) == Ordering::Less);
            if s.enter(i)? {
                if let Some((_, it)) = &mut s.current {
                    it.seek(target)?;
                }
            }
            s.skip_forward()
        })
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.guard(|s| {
            // The last file whose smallest key is <= target holds the last entry <= target.
            let n = s
                .files
                .partition_point(|f| ikey::compare(&f.smallest, target) != Ordering::Greater);
            let Some(i) = n.checked_sub(1) else {
                s.current = None;
                return Ok(());
            };
            s.enter(i)?;
            if let Some((_, it)) = &mut s.current {
                it.seek_for_prev(target)?;
            }
            s.skip_backward()
        })
    }

    fn next(&mut self) -> Result<()> {
        self.guard(|s| {
            if let Some((_, it)) = &mut s.current {
                it.next()?;
            }
            s.skip_forward()
        })
    }

    fn prev(&mut self) -> Result<()> {
        self.guard(|s| {
            if let Some((_, it)) = &mut s.current {
                it.prev()?;
            }
            s.skip_backward()
        })
    }

    fn key(&self) -> &[u8] {
        match &self.current {
            Some((_, it)) => it.key(),
            None => &[],
        }
    }

    fn value(&self) -> &[u8] {
        match &self.current {
            Some((_, it)) => it.value(),
            None => &[],
        }
    }
}
