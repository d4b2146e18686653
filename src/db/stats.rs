//! The engine's numbers (`Db::stats`): per table per level file count and bytes from the
//! current versions, compaction traffic from the background state, the block cache's hits.

use crate::compaction::{self, DbStats, LevelStats, TableStats};

use super::{level_targets, DbInner, NUM_LEVELS};

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl DbInner {
    pub(crate) fn stats(&self) -> DbStats {
        let targets = level_targets(&self.opts);
        let mut tables: Vec<TableStats> = self
            .all_tables()
            .iter()
            .map(|t| {
                let v = std::sync::Arc::clone(&t.super_version().version);
                let scores = compaction::scores(&v, &targets);
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
                    pending_compaction_bytes: compaction::pending_compaction_bytes(&v, &targets),
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
