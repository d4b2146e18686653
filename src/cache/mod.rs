//! Caches of decoded (and decrypted) data shared by every table of a database.

mod block_cache;
mod sst_cache;

pub(crate) use block_cache::BlockCache;
pub(crate) use sst_cache::SstCache;
