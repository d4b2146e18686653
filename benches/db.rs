//! db_bench-style runner: `cargo bench --bench db -- --num 100000 --mode both`.
//!
//! Runs the workloads on sealdb (encrypted, plaintext or both, one after the other) and
//! prints a table per mode; `--json FILE` also writes every report as a JSON array.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use sealdb::bench::{parse_workloads, run, BenchConfig, BenchReport, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Encrypted,
    Plaintext,
    Both,
}

#[derive(Parser, Debug)]
#[command(about = "sealdb db_bench-style workloads")]
struct Args {
    /// Comma-separated workloads (default: all, in db_bench order).
    #[arg(long)]
    benchmarks: Option<String>,
    /// Keys in the database.
    #[arg(long, default_value_t = 100_000)]
    num: u64,
    /// Operations per read workload (default: num).
    #[arg(long)]
    reads: Option<u64>,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// fsync the WAL on every write.
    #[arg(long)]
    sync: bool,
    /// Block cache size in MiB.
    #[arg(long, default_value_t = 32)]
    cache_mb: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Where the databases go (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the reports as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let workloads = match &args.benchmarks {
        Some(list) => parse_workloads(list)?,
        None => Workload::ALL.to_vec(),
    };
    let modes: &[bool] = match args.mode {
        Mode::Encrypted => &[true],
        Mode::Plaintext => &[false],
        Mode::Both => &[true, false],
    };
    let mut reports: Vec<BenchReport> = Vec::new();
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
            ..BenchConfig::default()
        };
        let report = run(&cfg)?;
        println!("{}", report.to_table());
        reports.push(report);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}
