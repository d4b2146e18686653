//! `sealdb-stress`: RocksDB db_stress's method applied to sealdb.
//!
//! - `sealdb-stress run --seconds N`: threads of random writes and reads on four tables
//!   (plaintext and encrypted, with and without LZ4) while flushes and compactions run, each
//!   read checked against the expected-state oracle; stop-verify-reopen phases catch lost
//!   writes. Exit status 0 only if nothing was wrong, no panic and no hang.
//! - `sealdb-stress crash --iterations N`: the crash loop (see `crash.rs`).
//!
//! Every run prints its seed; `--seed` replays the same operation streams.

mod crash;
mod model;
mod oracle;
mod stress;
mod watchdog;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sealdb-stress",
    about = "Stress and crash tests for sealdb with an expected-state oracle"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Concurrent random operations checked against the oracle.
    Run {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Keys per table.
        #[arg(long, default_value_t = 2000)]
        keys: usize,
        /// Seconds between stop-verify-reopen phases.
        #[arg(long, default_value_t = 15)]
        reopen_every: u64,
        #[arg(long, default_value_t = 64 << 10)]
        write_buffer: usize,
        /// Default: from the clock (printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Default: a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// One write in this many is synced (0: none).
        #[arg(long, default_value_t = 8)]
        sync_every: u32,
        /// No progress for this long is a hang.
        #[arg(long, default_value_t = 60)]
        hang_secs: u64,
    },
    /// Kill a writing child (SIGKILL or kill points) and verify after each.
    Crash {
        #[arg(long, default_value_t = 200)]
        iterations: u64,
        #[arg(long, default_value_t = 400)]
        keys: usize,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        verbose: bool,
        /// Children do not create and drop tables (by default they do, so kill points also
        /// land mid create_table and drop_table).
        #[arg(long)]
        no_table_churn: bool,
        /// Power losses may also tear a 4 KiB page mid-write (a torn WAL or MANIFEST tail
        /// must open as its prefix; off by default so earlier seeds replay the same draws).
        #[arg(long)]
        torn_pages: bool,
    },
    /// The crash loop's child (internal).
    #[command(hide = true)]
    Child {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        gen_base: u64,
        #[arg(long)]
        keys: usize,
        #[arg(long)]
        sync_only: bool,
        #[arg(long)]
        kill: Option<String>,
        #[arg(long)]
        table_churn: bool,
    },
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn main() -> ExitCode {
    watchdog::install_panic_exit();
    match Cli::parse().cmd {
        Cmd::Run {
            seconds,
            threads,
            keys,
            reopen_every,
            write_buffer,
            seed,
            dir,
            hang_secs,
            sync_every,
        } => {
            let seed = seed.unwrap_or_else(clock_seed);
            let cfg = stress::Config {
                seed,
                seconds,
                threads,
                keys: keys.max(model::BATCH_REGION + 64),
                reopen_every,
                write_buffer,
                sync_every,
            };
            println!("sealdb-stress run: seed {seed} ({cfg:?}); replay with --seed {seed}");
            let tmp;
            let root = match dir {
                Some(d) => d,
                None => match tempfile::Builder::new().prefix("sealdb-stress-").tempdir() {
                    Ok(t) => {
                        tmp = t;
                        tmp.path().to_path_buf()
                    }
                    Err(e) => {
                        eprintln!("FAILURE: tempdir: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let progress = watchdog::Progress::new();
            progress.tick_main();
            watchdog::start(
                progress.clone(),
                Duration::from_secs(hang_secs),
                format!("stress seed {seed}"),
            );
            let t0 = Instant::now();
            match stress::run(&cfg, &root, progress) {
                Ok(stats) => {
                    println!(
                        "stress: OK seed {seed}, {:.0} s, {threads} threads, {} operations verified: {}",
                        t0.elapsed().as_secs_f64(),
                        stats.verified(),
                        stats.summary()
                    );
                    ExitCode::SUCCESS
                }
                Err(f) => {
                    eprintln!("stress: FAILED (seed {seed}; replay with --seed {seed}): {f}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Crash {
            iterations,
            keys,
            seed,
            dir,
            verbose,
            no_table_churn,
            torn_pages,
        } => {
            let seed = seed.unwrap_or_else(clock_seed);
            println!("sealdb-stress crash: seed {seed}, {iterations} iterations; replay with --seed {seed}");
            let t0 = Instant::now();
            let cfg = crash::CrashConfig {
                seed,
                iterations,
                keys: keys.max(model::BATCH_REGION + 16),
                root: dir,
                verbose,
                table_churn: !no_table_churn,
                torn_pages,
            };
            match crash::run(&cfg) {
                Ok(st) => {
                    println!(
                        "crash: OK seed {seed}, {:.0} s: {} crashes ({} SIGKILL, {} kill points set, {} reached, {} with power loss), {} acknowledged writes, {} key checks, in-flight writes: {} landed whole, {} absent whole; lost: {}",
                        t0.elapsed().as_secs_f64(),
                        st.iterations,
                        st.sigkills,
                        st.kill_points,
                        st.kill_points_reached,
                        st.power_losses,
                        st.acked_writes,
                        st.key_checks,
                        st.inflight_applied,
                        st.inflight_absent,
                        st.lost
                    );
                    ExitCode::SUCCESS
                }
                Err(f) => {
                    eprintln!("crash: FAILED (seed {seed}): {f}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Child {
            root,
            seed,
            gen_base,
            keys,
            sync_only,
            kill,
            table_churn,
        } => {
            let kill = match kill.as_deref().map(crash::ChildPlan::parse_kill) {
                Some(None) => {
                    eprintln!("bad --kill");
                    return ExitCode::FAILURE;
                }
                Some(Some(k)) => Some(k),
                None => None,
            };
            let plan = crash::ChildPlan {
                seed,
                gen_base,
                keys,
                sync_only,
                kill,
                table_churn,
            };
            match crash::child(&root, &plan) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("child: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
