//! Builds one block (data or index): prefix-compressed entries and restart points.
//!
//! ```text
//! block   = entry* || restart : u32 LE * num_restarts || num_restarts : u32 LE
//! entry   = shared : varint32 || unshared : varint32 || value_len : varint32
//!           || key_delta : [u8; unshared] || value : [u8; value_len]
//! restart = offset in the block of an entry stored with shared = 0
//! ```
//!
//! Every `restart_interval`-th entry is stored whole, so a reader binary-searches the
//! restart array and then scans at most `restart_interval` entries.

use crate::coding::put_varint32;
use crate::error::{Error, Result};

pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    /// Entries since the last restart point.
    counter: usize,
    restart_interval: usize,
    last_key: Vec<u8>,
    entries: usize,
}

impl BlockBuilder {
    pub(crate) fn new(restart_interval: usize) -> BlockBuilder {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            restart_interval: restart_interval.max(1),
            last_key: Vec::new(),
            entries: 0,
        }
    }

    /// Appends an entry. Keys must arrive in increasing order (the table builder checks).
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let too_big = || Error::InvalidArgument("block entry exceeds 4 GiB limits".into());
        let mut shared = 0;
        if self.counter < self.restart_interval {
            shared = self
                .last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count();
        } else {
            self.restarts
                .push(u32::try_from(self.buf.len()).map_err(|_| too_big())?);
            self.counter = 0;
        }
        let unshared = key.len() - shared;
        put_varint32(&mut self.buf, u32::try_from(shared).map_err(|_| too_big())?);
        put_varint32(
            &mut self.buf,
            u32::try_from(unshared).map_err(|_| too_big())?,
        );
        put_varint32(
            &mut self.buf,
            u32::try_from(value.len()).map_err(|_| too_big())?,
        );
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.entries += 1;
        Ok(())
    }

    /// Bytes the finished block will have.
    pub(crate) fn estimated_size(&self) -> usize {
        self.buf.len() + (self.restarts.len() + 1) * std::mem::size_of::<u32>()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Appends the restart array, returns the block's bytes; `reset` before reuse.
    pub(crate) fn finish(&mut self) -> Result<&[u8]> {
        for r in &self.restarts {
            self.buf.extend_from_slice(&r.to_le_bytes());
        }
        let n = u32::try_from(self.restarts.len())
            .map_err(|_| Error::InvalidArgument("too many restarts in a block".into()))?;
        self.buf.extend_from_slice(&n.to_le_bytes());
        Ok(&self.buf)
    }

    /// Empties the builder, keeping its allocations.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.last_key.clear();
        self.entries = 0;
    }
}
