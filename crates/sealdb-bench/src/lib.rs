//! A db_bench-style benchmark runner: the workloads users compare embedded engines by,
//! with throughput, latency percentiles, write and space amplification and peak RSS.
//!
//! `sealdb bench` and `cargo bench --bench db` call [`run`]; the `bench-compare` crate runs
//! the same workloads on peer engines through [`run_with`] and [`BenchEngine`].
//!
//! ```no_run
//! use sealdb_bench::{run, BenchConfig, Workload};
//! let report = run(&BenchConfig {
//!     workloads: vec![Workload::FillRandom, Workload::ReadRandom],
//!     num: 10_000,
//!     ..BenchConfig::default()
//! })?;
//! println!("{}", report.to_table());
//! # Ok::<(), sealdb_bench::BenchError>(())
//! ```

mod cli;
mod config;
mod counting_env;
mod engine;
mod error;
mod keys;
mod latency;
mod process;
mod report;
mod runner;
mod sealdb_engine;

pub use cli::{run_args, BenchArgs, BenchMode};
pub use config::{parse_workloads, BenchConfig, Workload, FILL_BATCH_SIZE, SEEK_NEXTS};
pub use counting_env::CountingEnv;
pub use engine::{BenchEngine, EngineError, EngineFactory, EngineResult};
pub use error::{BenchError, Result};
pub use keys::{key, KEY_LEN};
pub use latency::{LatencyRecorder, LatencySummary};
pub use process::{
    anon_rss_bytes, dir_size, peak_rss_bytes, process_bytes_written, process_cpu_secs,
    AnonRssSampler, ANON_SAMPLE_INTERVAL,
};
pub use report::{markdown, mib_cell, BenchReport, WorkloadReport};
pub use runner::run_with;
pub use sealdb_engine::{SealdbFactory, BENCH_TABLE};

/// Runs `config`'s workloads on sealdb (encrypted or plaintext, as it says).
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    run_with(&SealdbFactory, config)
}

#[cfg(test)]
mod tests;
