//! Caches of decoded (and decrypted) data shared by every table of a database.

mod block_cache;
mod table_cache;

pub(crate) use block_cache::BlockCache;
pub(crate) use table_cache::TableCache;
