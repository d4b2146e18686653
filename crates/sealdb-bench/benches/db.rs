//! db_bench-style runner: `cargo bench --bench db -- --num 100000 --mode both`.
//!
//! Runs the workloads on sealdb (encrypted, plaintext or both, one after the other) and
//! prints a table per mode; `--json FILE` also writes every report as a JSON array.
//! The same runner is `sealdb bench`.

use clap::Parser;
use sealdb_bench::{run_args, BenchArgs};

#[derive(Parser, Debug)]
#[command(about = "sealdb db_bench-style workloads")]
struct Args {
    #[command(flatten)]
    bench: BenchArgs,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench_flag: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; drop it before parsing.
    let argv = std::env::args().filter(|a| a != "--bench");
    let args = Args::parse_from(argv);
    run_args(&args.bench)?;
    Ok(())
}
