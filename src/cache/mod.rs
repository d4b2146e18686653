//! The table cache: open SSTable readers shared by every table of a database.
//!
//! It sits above `sst` (it holds `SstReader`s); the block cache those readers read through
//! is `sst::BlockCache`, part of the SSTable read path, so nothing in `sst` imports this.

mod sst_cache;

pub(crate) use sst_cache::SstCache;
