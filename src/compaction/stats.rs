//! Numbers about the engine: per table per level file count and bytes, compaction bytes
//! read and written, write amplification, block cache hit ratio.

use serde::Serialize;

use crate::db::{DbInner, NUM_LEVELS};

use super::picker::{self, LevelTargets};

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

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl DbInner {
    pub(crate) fn stats(&self) -> DbStats {
        let targets = LevelTargets::new(&self.opts);
        let mut tables: Vec<TableStats> = self
            .all_tables()
            .iter()
            .map(|t| {
                let v = std::sync::Arc::clone(&t.super_version().version);
                let scores = picker::scores(&v, &self.opts);
                let levels: Vec<LevelStats> = (0..NUM_LEVELS)
                    .map(|level| LevelStats {
                        level: u8::try_from(level).unwrap_or(u8::MAX),
                        files: v.levels.get(level).map_or(0, Vec::len),
                        bytes: v.level_bytes(level),
                        target_bytes: targets.target(level),
                        score: scores.get(level).copied().unwrap_or(0.0),
                    })
                    .collect();
                TableStats {
                    name: t.display_name(),
                    total_bytes: levels.iter().map(|l| l.bytes).sum(),
                    pending_compaction_bytes: picker::pending_compaction_bytes(&v, &self.opts),
                    levels,
                }
            })
            .collect();
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let c = {
            let bg = self.bg.lock();
            (
                bg.compaction.flush_bytes,
                bg.compaction.bytes_read,
                bg.compaction.bytes_written,
                bg.compaction.compactions,
                bg.compaction.trivial_moves,
            )
        };
        let (hits, misses) = (self.cache.hits(), self.cache.misses());
        DbStats {
            tables,
            flush_bytes_written: c.0,
            compaction_bytes_read: c.1,
            compaction_bytes_written: c.2,
            compactions: c.3,
            trivial_moves: c.4,
            write_amplification: if c.0 == 0 { 0.0 } else { ratio(c.0 + c.2, c.0) },
            block_cache_hits: hits,
            block_cache_misses: misses,
            block_cache_hit_ratio: ratio(hits, hits + misses),
            block_cache_usage: self.cache.usage() as u64,
        }
    }
}
