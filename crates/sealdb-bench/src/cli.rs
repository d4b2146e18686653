//! The runner's command-line arguments, shared by `sealdb bench` and `cargo bench --bench db`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{parse_workloads, run, BenchConfig, BenchReport, Workload};
use crate::error::{BenchError, Result};

/// Which kinds of table to run the workloads on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// A table encrypted under a key from a local KMS.
    Encrypted,
    /// A plaintext table (CRC32 only).
    Plaintext,
    /// Encrypted, then plaintext.
    Both,
}

/// db_bench-style options.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Comma-separated workloads (default: all, in db_bench order).
    #[arg(long)]
    pub benchmarks: Option<String>,
    /// Keys in the database.
    #[arg(long, default_value_t = 100_000)]
    pub num: u64,
    /// Operations per read workload (default: num).
    #[arg(long)]
    pub reads: Option<u64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// fsync the WAL on every write.
    #[arg(long)]
    pub sync: bool,
    /// Block cache size in MiB.
    #[arg(long, default_value_t = 32)]
    pub cache_mb: usize,
    /// Data block size in bytes [default: the engine's, 4096].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Compress data blocks with LZ4 (before encryption) [default: no compression].
    #[arg(long)]
    pub lz4: bool,
    /// Threads sharing each workload.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Which kinds of table to run the workloads on.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    pub mode: BenchMode,
    /// Where the databases go (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the reports as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the workloads for each mode, printing a table per mode (and JSON if asked).
pub fn run_args(args: &BenchArgs) -> Result<Vec<BenchReport>> {
    let workloads = match &args.benchmarks {
        Some(list) => parse_workloads(list)?,
        None => Workload::ALL.to_vec(),
    };
    let modes: &[bool] = match args.mode {
        BenchMode::Encrypted => &[true],
        BenchMode::Plaintext => &[false],
        BenchMode::Both => &[true, false],
    };
    let mut reports = Vec::new();
    for &encrypted in modes {
        let cfg = BenchConfig {
            workloads: workloads.clone(),
            num: args.num,
            reads: args.reads,
            value_size: args.value_size,
            sync: args.sync,
            cache_bytes: args.cache_mb << 20,
            threads: args.threads,
            encrypted,
            dir: args.dir.clone(),
            block_size: args.block_size,
            lz4: args.lz4,
            ..BenchConfig::default()
        };
        let report = run(&cfg)?;
        println!("{}", report.to_table());
        reports.push(report);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&reports)
            .map_err(|e| BenchError::Config(format!("encoding the report: {e}")))?;
        std::fs::write(path, json)
            .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(reports)
}
