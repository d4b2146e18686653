//! Numbers about the engine: per table per level file count and bytes, compaction bytes
//! read and written, write amplification, block cache hit ratio (gathered by the engine,
//! `db/stats.rs`).

use serde::Serialize;

/// A snapshot of the engine's numbers (serializable for `--json` output).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DbStats {
    /// Every table, by name.
    pub tables: Vec<TableStats>,
    /// Bytes written by memtable flushes since open: the data ingested, as stored.
    pub flush_bytes_written: u64,
    /// Bytes of input files read by compactions since open.
    pub compaction_bytes_read: u64,
    /// Bytes of output files written by compactions since open.
    pub compaction_bytes_written: u64,
    /// Compactions that merged files, since open.
    pub compactions: u64,
    /// Compactions that moved files down without rewriting them, since open.
    pub trivial_moves: u64,
    /// (flush bytes + compaction bytes written) / flush bytes; 0 before the first flush.
    pub write_amplification: f64,
    /// Block cache lookups that found their block.
    pub block_cache_hits: u64,
    /// Block cache lookups that read the file.
    pub block_cache_misses: u64,
    /// hits / (hits + misses); 0 before the first lookup.
    pub block_cache_hit_ratio: f64,
    /// Bytes the block cache holds now.
    pub block_cache_usage: u64,
}

/// The levels of one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableStats {
    /// The table's name.
    pub name: String,
    /// Per level, from L0 down.
    pub levels: Vec<LevelStats>,
    /// Bytes in all of the table's files.
    pub total_bytes: u64,
    /// Bytes compaction is behind the level targets (the stall estimate).
    pub pending_compaction_bytes: u64,
}

/// One level of one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LevelStats {
    /// The level number (0 is the newest).
    pub level: u8,
    /// SSTables in the level.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The level's byte target; `None` for level 0 (file count) and the last level.
    pub target_bytes: Option<u64>,
    /// >= 1 means the level is due for compaction.
    pub score: f64,
}
