//! The seam between the workloads and an engine, so sealdb and its peers (in the
//! `bench-compare` crate) run the very same workload code and measurements.

use std::path::Path;

use super::BenchConfig;

/// Errors of an engine under test, whatever its own error type.
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;
pub type EngineResult<T> = std::result::Result<T, EngineError>;

/// What the workloads ask of an engine. Shared by the threads of a workload.
pub trait BenchEngine: Send + Sync {
    /// Inserts or replaces one key.
    fn put(&self, key: &[u8], value: &[u8]) -> EngineResult<()>;
    /// Applies `entries` atomically, as one batch or transaction.
    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()>;
    /// Looks a key up; returns the value's length when found.
    fn get(&self, key: &[u8]) -> EngineResult<Option<usize>>;
    /// Deletes one key.
    fn delete(&self, key: &[u8]) -> EngineResult<()>;
    /// Walks every entry in key order (or reverse), calling `visit` for each; returns the
    /// number of entries visited.
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64>;
    /// Positions at the first key >= `key` and reads up to `n` entries; returns how many.
    fn seek(&self, key: &[u8], n: usize) -> EngineResult<usize>;
    /// Makes written data reach the engine's on-disk tables (memtable flush, checkpoint).
    fn flush(&self) -> EngineResult<()>;
    /// Bytes the engine has written to its files since it was opened, if it counts them;
    /// `None` makes the runner fall back to the process's write-syscall byte count.
    fn bytes_written(&self) -> Option<u64> {
        None
    }
}

/// Opens fresh engines of one kind.
pub trait EngineFactory {
    /// Short name, as shown in reports (`sealdb-encrypted`, `rocksdb`, ...).
    fn name(&self) -> String;
    /// Settings worth printing next to the figures (cache, WAL, sync, ...).
    fn settings(&self, config: &BenchConfig) -> String;
    /// Opens a new, empty database in `dir` (which exists and is empty).
    fn open(&self, dir: &Path, config: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>>;
}
