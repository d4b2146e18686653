//! A decoded (opened) block and its iterator. Layout: see `block_builder.rs`.
//!
//! The block's bytes are never copied: for a plaintext table they are a slice of the
//! memory map. The iterator decodes entries in place and keeps one reusable key buffer;
//! values are borrowed (or sliced as `Bytes`) from the block.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::coding::get_varint32;
use crate::error::{Error, Result};
use crate::ikey;
use crate::iter::InternalIterator;

const U32_LEN: usize = std::mem::size_of::<u32>();

/// An opened block: entries followed by the restart array.
pub(crate) struct Block {
    data: Bytes,
    /// Where the restart array begins (= end of the entries).
    restarts_offset: usize,
    num_restarts: usize,
    /// File and offset of the block, for error messages.
    label: Arc<str>,
    offset: u64,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Block({} @ {}, {} bytes)",
            self.label,
            self.offset,
            self.data.len()
        )
    }
}

/// One decoded entry header: where its key delta and value are.
struct EntryHeader {
    shared: usize,
    key_start: usize,
    key_end: usize,
    value_end: usize,
}

impl Block {
    /// Checks the restart array; entries are checked as they are decoded.
    pub(crate) fn new(data: Bytes, label: Arc<str>, offset: u64) -> Result<Block> {
        let bad = |what: &str| Error::corruption(&*label, offset, format!("block: {what}"));
        let len = data.len();
        let n_at = len
            .checked_sub(U32_LEN)
            .ok_or_else(|| bad("shorter than its restart count"))?;
        let num_restarts = read_u32(&data, n_at).ok_or_else(|| bad("restart count"))? as usize;
        if num_restarts == 0 {
            return Err(bad("no restart points"));
        }
        let restarts_offset = num_restarts
            .checked_mul(U32_LEN)
            .and_then(|r| n_at.checked_sub(r))
            .ok_or_else(|| bad("restart array larger than the block"))?;
        let mut prev: Option<u32> = None;
        for i in 0..num_restarts {
            let r = read_u32(&data, restarts_offset + i * U32_LEN)
                .ok_or_else(|| bad("restart array"))?;
            let in_order = match prev {
                None => r == 0,
                Some(p) => r > p,
            };
            if !in_order || r as usize > restarts_offset {
                return Err(bad("restart point out of order or range"));
            }
            prev = Some(r);
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts,
            label,
            offset,
        })
    }

    /// Bytes this block holds (what a cache charges for it).
    pub(crate) fn size(&self) -> usize {
        self.data.len()
    }

    /// The block's bytes, for reuse of their buffer once the block is dropped.
    pub(crate) fn into_data(self) -> Bytes {
        self.data
    }

    pub(crate) fn iter(self: &Arc<Self>) -> BlockIter {
        self.iter_with_buffer(Vec::new())
    }

    /// An iterator that reconstructs prefix-compressed keys in `key_buf` (a recycled
    /// buffer, see [`BlockIter::into_buffer`]), so a point read allocates nothing.
    pub(crate) fn iter_with_buffer(self: &Arc<Self>, mut key_buf: Vec<u8>) -> BlockIter {
        key_buf.clear();
        BlockIter {
            block: Arc::clone(self),
            current: self.restarts_offset,
            next: self.restarts_offset,
            restart_index: 0,
            key: key_buf,
            key_in_block: None,
            value: (0, 0),
            valid: false,
            behind: Vec::new(),
            behind_keys: Vec::new(),
        }
    }

    fn corrupt(&self, at: usize, what: &str) -> Error {
        Error::corruption(
            &*self.label,
            self.offset,
            format!("block entry at byte {at}: {what}"),
        )
    }

    fn restart_point(&self, i: usize) -> usize {
        // Validated in `new`; `i < num_restarts` by every caller.
        read_u32(&self.data, self.restarts_offset + i * U32_LEN).unwrap_or(0) as usize
    }

    #[inline]
    fn decode_header(&self, at: usize) -> Result<EntryHeader> {
        let entries = self
            .data
            .get(at..self.restarts_offset)
            .ok_or_else(|| self.corrupt(at, "offset past the entries"))?;
        let (shared, a) = get_varint32(entries).ok_or_else(|| self.corrupt(at, "shared"))?;
        let (unshared, b) = entries
            .get(a..)
            .and_then(get_varint32)
            .ok_or_else(|| self.corrupt(at, "unshared"))?;
        let (value_len, c) = entries
            .get(a + b..)
            .and_then(get_varint32)
            .ok_or_else(|| self.corrupt(at, "value length"))?;
        let key_start = at + a + b + c;
        let key_end = key_start
            .checked_add(unshared as usize)
            .ok_or_else(|| self.corrupt(at, "key length"))?;
        let value_end = key_end
            .checked_add(value_len as usize)
            .ok_or_else(|| self.corrupt(at, "value length"))?;
        if value_end > self.restarts_offset {
            return Err(self.corrupt(at, "entry runs past the entries"));
        }
        Ok(EntryHeader {
            shared: shared as usize,
            key_start,
            key_end,
            value_end,
        })
    }

    /// The whole key stored at restart point `i` (restart entries share nothing).
    fn key_at_restart(&self, i: usize) -> Result<&[u8]> {
        let at = self.restart_point(i);
        let h = self.decode_header(at)?;
        if h.shared != 0 {
            return Err(self.corrupt(at, "restart entry shares a prefix"));
        }
        Ok(&self.data[h.key_start..h.key_end])
    }
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(U32_LEN)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// A cursor over one block, ordered by `ikey::compare`.
pub(crate) struct BlockIter {
    block: Arc<Block>,
    /// Offset of the current entry (`restarts_offset` when invalid).
    current: usize,
    /// Offset of the entry after the current one.
    next: usize,
    /// A restart point at or before `current`.
    restart_index: usize,
    /// The current key when it had to be reconstructed (shared > 0).
    key: Vec<u8>,
    /// The current key's range in the block when it is stored whole (shared = 0, e.g.
    /// every restart entry and every index entry): then `key` is stale and unused.
    key_in_block: Option<(usize, usize)>,
    value: (usize, usize),
    valid: bool,
    /// The entries before `current` in its restart interval, decoded by the forward scan
    /// the last `prev` made, nearest last: the next `prev` pops one instead of scanning the
    /// interval again (a backward walk decoded each interval's entries about 8 times).
    /// An entry is used only if it ends where the cursor stands (`next == current`): the
    /// block never changes, so such an entry is exactly the one before.
    behind: Vec<Behind>,
    /// The keys of `behind` that were reconstructed (shared a prefix), end to end.
    behind_keys: Vec<u8>,
}

/// One decoded entry of `BlockIter::behind`.
struct Behind {
    current: usize,
    next: usize,
    restart_index: usize,
    key: KeptKey,
    value: (usize, usize),
}

/// Where a `Behind` entry's key is (byte ranges).
#[derive(Clone, Copy)]
enum KeptKey {
    /// In the block: stored whole.
    InBlock(usize, usize),
    /// In `BlockIter::behind_keys`: reconstructed.
    Kept(usize, usize),
}

impl BlockIter {
    /// The current value as a zero-copy slice of the block. Requires `valid()`.
    pub(crate) fn value_bytes(&self) -> Bytes {
        self.block.data.slice(self.value.0..self.value.1)
    }

    /// The file offset of the block, for errors.
    pub(crate) fn block_offset(&self) -> u64 {
        self.block.offset
    }

    /// Gives back the key buffer for reuse.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.key
    }

    /// Gives back the block and the key buffer.
    pub(crate) fn into_parts(self) -> (Arc<Block>, Vec<u8>) {
        (self.block, self.key)
    }

    fn invalidate(&mut self) {
        self.valid = false;
        self.current = self.block.restarts_offset;
        self.next = self.block.restarts_offset;
    }

    fn seek_to_restart(&mut self, i: usize) {
        self.key.clear();
        self.key_in_block = None;
        self.restart_index = i;
        self.next = self.block.restart_point(i);
    }

    /// Decodes the entry at `next`; invalid at the end of the entries.
    fn parse_next(&mut self) -> Result<()> {
        self.current = self.next;
        if self.current >= self.block.restarts_offset {
            self.invalidate();
            return Ok(());
        }
        let h = match self.block.decode_header(self.current) {
            Ok(h) => h,
            Err(e) => {
                self.invalidate();
                return Err(e);
            }
        };
        if h.shared == 0 {
            self.key_in_block = Some((h.key_start, h.key_end));
        } else {
            if let Some((s, e)) = self.key_in_block.take() {
                self.key.clear();
                self.key.extend_from_slice(&self.block.data[s..e]);
            }
            if h.shared > self.key.len() {
                let e = self
                    .block
                    .corrupt(self.current, "shared prefix longer than key");
                self.invalidate();
                return Err(e);
            }
            self.key.truncate(h.shared);
            self.key
                .extend_from_slice(&self.block.data[h.key_start..h.key_end]);
        }
        self.value = (h.key_end, h.value_end);
        self.next = h.value_end;
        while self.restart_index + 1 < self.block.num_restarts
            && self.block.restart_point(self.restart_index + 1) < self.current
        {
            self.restart_index += 1;
        }
        self.valid = true;
        Ok(())
    }

    /// Keeps the current entry in `behind` (a backward scan passing it).
    fn remember_behind(&mut self) {
        let key = match self.key_in_block {
            Some((s, e)) => KeptKey::InBlock(s, e),
            None => {
                let s = self.behind_keys.len();
                self.behind_keys.extend_from_slice(&self.key);
                KeptKey::Kept(s, self.behind_keys.len())
            }
        };
        self.behind.push(Behind {
            current: self.current,
            next: self.next,
            restart_index: self.restart_index,
            key,
            value: self.value,
        });
    }

    /// Moves to `b`, the entry just before the current one, as `parse_next` left it.
    fn step_back_to(&mut self, b: &Behind) {
        self.current = b.current;
        self.next = b.next;
        self.restart_index = b.restart_index;
        self.value = b.value;
        match b.key {
            KeptKey::InBlock(s, e) => self.key_in_block = Some((s, e)),
            KeptKey::Kept(s, e) => {
                self.key_in_block = None;
                self.key.clear();
                self.key
                    .extend_from_slice(self.behind_keys.get(s..e).unwrap_or_default());
            }
        }
        self.valid = true;
    }

    /// The last restart point whose key is < `target`, or 0.
    fn find_restart(&self, target: &[u8]) -> Result<usize> {
        let (mut left, mut right) = (0, self.block.num_restarts - 1);
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            let k = self.block.key_at_restart(mid)?;
            if ikey::compare(k, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        Ok(left)
    }
}

impl InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        self.valid
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.seek_to_restart(0);
        self.parse_next()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.seek_to_restart(self.block.num_restarts - 1);
        self.parse_next()?;
        while self.valid && self.next < self.block.restarts_offset {
            self.parse_next()?;
        }
        Ok(())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = match self.find_restart(target) {
            Ok(r) => r,
            Err(e) => {
                self.invalidate();
                return Err(e);
            }
        };
        self.seek_to_restart(r);
        loop {
            self.parse_next()?;
            if !self.valid || ikey::compare(self.key(), target) != Ordering::Less {
                return Ok(());
            }
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.seek(target)?;
        if !self.valid {
            return self.seek_to_last();
        }
        if ikey::compare(self.key(), target) == Ordering::Greater {
            self.prev()?;
        }
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        self.parse_next()
    }

    fn prev(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        let original = self.current;
        if let Some(b) = self.behind.pop() {
            if b.next == original {
                self.step_back_to(&b);
                return Ok(());
            }
        }
        while self.block.restart_point(self.restart_index) >= original {
            if self.restart_index == 0 {
                self.invalidate();
                return Ok(());
            }
            self.restart_index -= 1;
        }
        self.seek_to_restart(self.restart_index);
        self.behind.clear();
        self.behind_keys.clear();
        loop {
            self.parse_next()?;
            if !self.valid {
                break;
            }
            if self.next >= original {
                break;
            }
            self.remember_behind();
        }
        if !self.valid || self.next != original {
            let e = self.block.corrupt(original, "entries do not chain");
            self.invalidate();
            return Err(e);
        }
        Ok(())
    }

    fn key(&self) -> &[u8] {
        match self.key_in_block {
            Some((s, e)) => self.block.data.get(s..e).unwrap_or_default(),
            None => &self.key,
        }
    }

    fn value(&self) -> &[u8] {
        self.block
            .data
            .get(self.value.0..self.value.1)
            .unwrap_or_default()
    }
}
