//! The two-level iterator over a table: the index block chooses a data block, which is
//! loaded (from the cache or the file) only when the cursor reaches it.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::sst::block::BlockIter;
use crate::sst::reader::SstReader;

/// Blocks a cursor reaches by stepping (`next`/`prev` across a block boundary) since its
/// last seek that still go through the block cache like the seek's own block (a short range
/// read usually ends within them). From the next one on the cursor is scanning: a block
/// missing from the cache is opened into the cursor's own recycled buffer and not cached.
const CACHED_STEPS: u32 = 1;

pub(crate) struct SstIter {
    table: Arc<SstReader>,
    index: BlockIter,
    /// The data block under the index cursor, with its file offset.
    data: Option<(u64, BlockIter)>,
    /// Blocks loaded by stepping since the last seek.
    stepped: u32,
}

impl SstIter {
    pub(crate) fn new(table: Arc<SstReader>) -> SstIter {
        let index = table.index.iter();
        SstIter {
            table,
            index,
            data: None,
            stepped: 0,
        }
    }

    /// Loads the data block the index cursor points at (keeps it if already loaded).
    /// `stepping`: the cursor reached it by `next`/`prev`, not by a seek.
    fn load_block(&mut self, stepping: bool) -> Result<bool> {
        if !self.index.valid() {
            self.data = None;
            return Ok(false);
        }
        let handle = self.table.data_handle(self.index.value())?;
        if matches!(&self.data, Some((off, _)) if *off == handle.offset) {
            return Ok(true);
        }
        self.stepped = if stepping {
            self.stepped.saturating_add(1)
        } else {
            0
        };
        // The previous block's key buffer serves the next: a scan allocates none.
        let (previous, buf) = match self.data.take() {
            Some((_, d)) => {
                let (block, buf) = d.into_parts();
                (Some(block), buf)
            }
            None => (None, Vec::new()),
        };
        let block = if self.stepped > CACHED_STEPS {
            self.table.data_block_uncached(handle, previous)?
        } else {
            drop(previous);
            self.table.data_block(handle)?
        };
        self.data = Some((handle.offset, block.iter_with_buffer(buf)));
        Ok(true)
    }

    fn data_valid(&self) -> bool {
        self.data.as_ref().is_some_and(|(_, d)| d.valid())
    }

    /// Moves forward past blocks with no (remaining) entries.
    fn skip_forward(&mut self) -> Result<()> {
        while !self.data_valid() {
            if !self.index.valid() {
                self.data = None;
                return Ok(());
            }
            self.index.next()?;
            if !self.load_block(true)? {
                return Ok(());
            }
            if let Some((_, d)) = &mut self.data {
                d.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// Moves backward past blocks with no (remaining) entries.
    fn skip_backward(&mut self) -> Result<()> {
        while !self.data_valid() {
            if !self.index.valid() {
                self.data = None;
                return Ok(());
            }
            self.index.prev()?;
            if !self.load_block(true)? {
                return Ok(());
            }
            if let Some((_, d)) = &mut self.data {
                d.seek_to_last()?;
            }
        }
        Ok(())
    }

    /// Runs a positioning step; any error leaves the cursor invalid.
    fn guard(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = step(self);
        if r.is_err() {
            self.data = None;
        }
        r
    }
}

impl InternalIterator for SstIter {
    fn valid(&self) -> bool {
        self.data_valid()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.guard(|s| {
            s.index.seek_to_first()?;
            if s.load_block(false)? {
                if let Some((_, d)) = &mut s.data {
                    d.seek_to_first()?;
                }
            }
            s.skip_forward()
        })
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.guard(|s| {
            s.index.seek_to_last()?;
            if s.load_block(false)? {
                if let Some((_, d)) = &mut s.data {
                    d.seek_to_last()?;
                }
            }
            s.skip_backward()
        })
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.guard(|s| {
            // The first block whose last key is >= target holds the first entry >= target.
            s.index.seek(target)?;
            if s.load_block(false)? {
                if let Some((_, d)) = &mut s.data {
                    d.seek(target)?;
                }
            }
            s.skip_forward()
        })
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.guard(|s| {
            // The last entry <= target is in the first block whose last key is >= target,
            // or (if that block starts above target) in the block before; with no such
            // block, it is the table's last entry.
            s.index.seek(target)?;
            if !s.index.valid() {
                s.index.seek_to_last()?;
            }
            if s.load_block(false)? {
                if let Some((_, d)) = &mut s.data {
                    d.seek_for_prev(target)?;
                }
            }
            s.skip_backward()
        })
    }

    fn next(&mut self) -> Result<()> {
        self.guard(|s| {
            if let Some((_, d)) = &mut s.data {
                d.next()?;
            }
            s.skip_forward()
        })
    }

    fn prev(&mut self) -> Result<()> {
        self.guard(|s| {
            if let Some((_, d)) = &mut s.data {
                d.prev()?;
            }
            s.skip_backward()
        })
    }

    fn key(&self) -> &[u8] {
        self.data.as_ref().map(|(_, d)| d.key()).unwrap_or_default()
    }

    fn value(&self) -> &[u8] {
        self.data
            .as_ref()
            .map(|(_, d)| d.value())
            .unwrap_or_default()
    }
}
