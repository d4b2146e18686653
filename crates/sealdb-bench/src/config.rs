//! What a benchmark run does: the workloads, in order, and the knobs every engine shares.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// One db_bench-style workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Fresh database; `num` puts in key order.
    FillSeq,
    /// Fresh database; `num` puts of distinct keys in a random order (a permutation, so
    /// every key exists afterwards and `readrandom` always finds what it asks for).
    FillRandom,
    /// `num` puts of keys drawn uniformly from the existing `[0, num)`.
    Overwrite,
    /// Fresh database; `num` puts in key order, 1000 to a write batch.
    FillBatch,
    /// `reads` gets of keys drawn uniformly from the existing `[0, num)`.
    ReadRandom,
    /// `readrandom` right after closing and reopening the database (untimed): the engine's
    /// caches start cold (the OS page cache does not).
    ReadReopen,
    /// `reads` gets of keys that were never written (same length, outside the key range).
    ReadMissing,
    /// One forward scan of the whole database per thread.
    ReadSeq,
    /// One reverse scan of the whole database per thread.
    ReadReverse,
    /// `reads` seeks to a random existing key, each followed by reading 10 entries.
    SeekRandom,
    /// `num` deletes of keys drawn uniformly from `[0, num)` (some twice).
    DeleteRandom,
}

/// Entries read after each seek of `seekrandom`.
pub const SEEK_NEXTS: usize = 10;
/// Entries per batch of `fillbatch`.
pub const FILL_BATCH_SIZE: usize = 1000;

impl Workload {
    pub const ALL: [Workload; 11] = [
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::FillBatch,
        Workload::ReadRandom,
        Workload::ReadReopen,
        Workload::ReadMissing,
        Workload::ReadSeq,
        Workload::ReadReverse,
        Workload::SeekRandom,
        Workload::DeleteRandom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::FillBatch => "fillbatch",
            Workload::ReadRandom => "readrandom",
            Workload::ReadReopen => "readreopen",
            Workload::ReadMissing => "readmissing",
            Workload::ReadSeq => "readseq",
            Workload::ReadReverse => "readreverse",
            Workload::SeekRandom => "seekrandom",
            Workload::DeleteRandom => "deleterandom",
        }
    }

    /// Starts from an empty database.
    pub fn is_fresh_fill(self) -> bool {
        matches!(
            self,
            Workload::FillSeq | Workload::FillRandom | Workload::FillBatch
        )
    }

    /// Writes (puts or deletes): write amplification is measured for these.
    pub fn writes(self) -> bool {
        self.is_fresh_fill() || matches!(self, Workload::Overwrite | Workload::DeleteRandom)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                BenchError::Config(format!(
                    "unknown workload {s:?}; known: {}",
                    known.join(",")
                ))
            })
    }
}

/// Parses a comma-separated workload list such as `fillrandom,readrandom`.
pub fn parse_workloads(list: &str) -> Result<Vec<Workload>> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Workload::from_str)
        .collect()
}

/// The knobs of a run. Defaults follow db_bench: 16-byte keys, 100-byte values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Workloads, run in order on one database (fills start a fresh one).
    pub workloads: Vec<Workload>,
    /// Keys in the database (and writes per write workload).
    pub num: u64,
    /// Operations per read workload (`None`: `num`).
    pub reads: Option<u64>,
    /// Value length in bytes (keys are always 16 bytes).
    pub value_size: usize,
    /// Every write fsyncs the WAL before returning.
    pub sync: bool,
    /// Block cache capacity in bytes.
    pub cache_bytes: usize,
    /// Threads issuing operations; each gets `num / threads` of them.
    pub threads: usize,
    /// Encrypted table (AES-256-GCM under a key from a local KMS) or plaintext (CRC32).
    pub encrypted: bool,
    /// Seed of every random choice, so runs are repeatable.
    pub seed: u64,
    /// Directory for the database (and its KMS); `None`: a fresh temporary directory.
    pub dir: Option<std::path::PathBuf>,
    /// Data block size in bytes (`None`: the engine's default, `Options::block_size`).
    pub block_size: Option<usize>,
    /// Data blocks compressed with LZ4 (sealdb: before sealing; the peers: their own LZ4
    /// block compression); otherwise none. Absent from reports of older runs.
    #[serde(default)]
    pub lz4: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            workloads: Workload::ALL.to_vec(),
            num: 100_000,
            reads: None,
            value_size: 100,
            sync: false,
            cache_bytes: 32 << 20,
            threads: 1,
            encrypted: true,
            seed: 0x5ea1_db00,
            dir: None,
            block_size: None,
            lz4: false,
        }
    }
}

impl BenchConfig {
    /// The data-block compression every engine is set to, in words (for settings lines).
    pub fn compression_name(&self) -> &'static str {
        if self.lz4 {
            "LZ4 block compression"
        } else {
            "no compression"
        }
    }

    /// Operations per read workload.
    pub fn reads(&self) -> u64 {
        self.reads.unwrap_or(self.num)
    }

    /// Rejects settings that cannot run.
    pub fn validate(&self) -> Result<()> {
        if self.num == 0 {
            return Err(BenchError::Config("num must be > 0".into()));
        }
        if self.threads == 0 || self.threads > 1024 {
            return Err(BenchError::Config("threads must be in 1..=1024".into()));
        }
        if self.value_size > sealdb::MAX_VALUE_LEN {
            return Err(BenchError::Config(format!(
                "value size {} is over the limit {}",
                self.value_size,
                sealdb::MAX_VALUE_LEN
            )));
        }
        if self
            .block_size
            .is_some_and(|b| !(256..=(1 << 20)).contains(&b))
        {
            return Err(BenchError::Config(
                "block size must be in 256..=1048576 bytes".into(),
            ));
        }
        if self.workloads.is_empty() {
            return Err(BenchError::Config("no workloads".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() -> Result<()> {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>()?, w);
        }
        assert_eq!(
            parse_workloads("fillseq, readrandom,")?,
            vec![Workload::FillSeq, Workload::ReadRandom]
        );
        assert!(parse_workloads("fillseq,nope").is_err());
        Ok(())
    }

    #[test]
    fn validate_rejects_zero_and_oversize() {
        let ok = BenchConfig::default();
        assert!(ok.validate().is_ok());
        assert!(BenchConfig {
            num: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(BenchConfig {
            threads: 0,
            ..ok.clone()
        }
        .validate()
        .is_err());
        assert!(BenchConfig {
            value_size: sealdb::MAX_VALUE_LEN + 1,
            ..ok.clone()
        }
        .validate()
        .is_err());
        for (block_size, valid) in [
            (Some(255), false),
            (Some(1024), true),
            (Some(2 << 20), false),
        ] {
            let c = BenchConfig {
                block_size,
                ..ok.clone()
            };
            assert_eq!(c.validate().is_ok(), valid, "{block_size:?}");
        }
    }
}
