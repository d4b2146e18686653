//! The two-level iterator over a table: the index block chooses a data block, which is
//! loaded (from the cache or the file) only when the cursor reaches it.

use std::sync::Arc;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::sst::block::BlockIter;
use crate::sst::reader::SstReader;

pub(crate) struct SstIter {
    table: Arc<SstReader>,
    index: BlockIter,
    /// The data block under the index cursor, with its file offset.
    data: Option<(u64, BlockIter)>,
}

impl SstIter {
    pub(crate) fn new(table: Arc<SstReader>) -> SstIter {
        let index = table.index.iter();
        SstIter {
            table,
            index,
            data: None,
        }
    }

    /// Loads the data block the index cursor points at (keeps it if already loaded).
    fn load_block(&mut self) -> Result<bool> {
        if !self.index.valid() {
            self.data = None;
            return Ok(false);
        }
        let handle = self.table.data_handle(self.index.value())?;
        if !matches!(&self.data, Some((off, _)) if *off == handle.offset) {
            let block = self.table.data_block(handle)?;
            // The previous block's key buffer serves the next: a scan allocates none.
            let buf = self
                .data
                .take()
                .map(|(_, d)| d.into_buffer())
                .unwrap_or_default();
            self.data = Some((handle.offset, block.iter_with_buffer(buf)));
        }
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
            if !self.load_block()? {
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
            if !self.load_block()? {
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
            if s.load_block()? {
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
            if s.load_block()? {
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
            if s.load_block()? {
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
            if s.load_block()? {
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
