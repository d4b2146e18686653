//! Runs the sealdb bench workloads on one engine per process (`--engine X`), prints the
//! report and writes it as JSON; `--combine` merges the JSON of several runs into one
//! table; `--aead` measures the AES-256-GCM crates. See README.md and
//! scripts/bench-compare.sh.

mod aead;
mod engines;

use std::path::PathBuf;

use clap::Parser;
use sealdb_bench::{
    markdown, mib_cell, parse_workloads, run_with, BenchConfig, BenchReport, EngineFactory,
    SealdbFactory, Workload,
};

#[derive(Parser, Debug)]
struct Args {
    /// sealdb-encrypted, sealdb-plaintext, rocksdb, fjall, redb or sled.
    #[arg(long)]
    engine: Option<String>,
    #[arg(long)]
    benchmarks: Option<String>,
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    #[arg(long)]
    reads: Option<u64>,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long)]
    sync: bool,
    #[arg(long, default_value_t = 32)]
    cache_mb: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// LZ4 block compression on every engine that has it (sealdb, RocksDB, fjall).
    #[arg(long)]
    lz4: bool,
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Merge these JSON reports into one table instead of running.
    #[arg(long, num_args = 1..)]
    combine: Vec<PathBuf>,
    /// Measure the AEAD crates instead of running an engine.
    #[arg(long)]
    aead: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.aead {
        let figs = aead::run(200_000);
        let rows: Vec<[String; 6]> = figs
            .iter()
            .map(|f| {
                [
                    f.crate_name.to_string(),
                    f.bytes.to_string(),
                    format!("{:.2}", f.seal_gib_s),
                    format!("{:.2}", f.open_gib_s),
                    format!("{:.2}", f.seal_us_per_block),
                    format!("{:.2}", f.open_us_per_block),
                ]
            })
            .collect();
        println!(
            "{}",
            markdown(
                &[
                    "AES-256-GCM",
                    "bytes",
                    "seal GiB/s",
                    "open GiB/s",
                    "seal us/unit",
                    "open us/unit"
                ],
                &rows
            )
        );
        if let Some(p) = &args.json {
            std::fs::write(p, serde_json::to_string_pretty(&figs)?)?;
        }
        return Ok(());
    }
    if !args.combine.is_empty() {
        let mut reports = Vec::new();
        for p in &args.combine {
            reports.push(serde_json::from_str::<BenchReport>(
                &std::fs::read_to_string(p)?,
            )?);
        }
        print!("{}", combine(&reports));
        return Ok(());
    }
    let engine = args.engine.as_deref().unwrap_or("sealdb-encrypted");
    let (factory, encrypted): (Box<dyn EngineFactory>, bool) = match engine {
        "sealdb-encrypted" => (Box::new(SealdbFactory), true),
        "sealdb-plaintext" => (Box::new(SealdbFactory), false),
        "rocksdb" => (Box::new(engines::RocksFactory), false),
        "fjall" => (Box::new(engines::FjallFactory), false),
        "redb" => (Box::new(engines::RedbFactory), false),
        "sled" => (Box::new(engines::SledFactory), false),
        other => return Err(format!("unknown engine {other}").into()),
    };
    let cfg = BenchConfig {
        workloads: match &args.benchmarks {
            Some(l) => parse_workloads(l)?,
            None => Workload::ALL.to_vec(),
        },
        num: args.num,
        reads: args.reads,
        value_size: args.value_size,
        sync: args.sync,
        cache_bytes: args.cache_mb << 20,
        threads: args.threads,
        encrypted,
        lz4: args.lz4,
        dir: args.dir.clone(),
        ..BenchConfig::default()
    };
    let mut report = run_with(&*factory, &cfg)?;
    report.engine = engine.to_string();
    eprintln!("{}", report.to_table());
    if let Some(p) = &args.json {
        std::fs::write(p, report.to_json())?;
    }
    Ok(())
}

/// One table: a row per workload, ops/s per engine; then WA, SA, peak RSS and peak
/// anonymous RSS per engine.
fn combine(reports: &[BenchReport]) -> String {
    let mut workloads: Vec<String> = Vec::new();
    for r in reports {
        for w in &r.results {
            if !workloads.contains(&w.workload) {
                workloads.push(w.workload.clone());
            }
        }
    }
    let mut out = String::new();
    let names: Vec<String> = reports.iter().map(|r| r.engine.clone()).collect();
    let header: Vec<String> = std::iter::once("ops/s".to_string())
        .chain(names.iter().cloned())
        .collect();
    let cell = |r: &BenchReport, w: &str, f: &dyn Fn(&sealdb_bench::WorkloadReport) -> String| {
        r.results
            .iter()
            .find(|x| x.workload == w)
            .map_or_else(|| "-".to_string(), f)
    };
    let table =
        |title: &str, f: &dyn Fn(&sealdb_bench::WorkloadReport) -> String, only_writes: bool| {
            let mut rows = Vec::new();
            for w in &workloads {
                if only_writes
                    && ![
                        "fillseq",
                        "fillrandom",
                        "overwrite",
                        "fillbatch",
                        "deleterandom",
                    ]
                    .contains(&w.as_str())
                {
                    continue;
                }
                let mut row = vec![w.clone()];
                row.extend(reports.iter().map(|r| cell(r, w, f)));
                rows.push(row);
            }
            let mut h = header.clone();
            h[0] = title.to_string();
            render(&h, &rows)
        };
    out.push_str(&table("ops/s", &|x| format!("{:.0}", x.ops_per_sec), false));
    out.push('\n');
    if let Some(r) = ratios(reports, &workloads) {
        out.push_str(&r);
        out.push('\n');
    }
    out.push_str(&table(
        "p99 us",
        &|x| format!("{:.1}", x.latency.p99_us),
        false,
    ));
    out.push('\n');
    out.push_str(&table(
        "write amp",
        &|x| x.write_amp.map_or("-".into(), |v| format!("{v:.2}")),
        true,
    ));
    out.push('\n');
    out.push_str(&table(
        "space amp",
        &|x| x.space_amp.map_or("-".into(), |v| format!("{v:.2}")),
        true,
    ));
    out.push('\n');
    out.push_str(&table(
        "peak RSS MiB",
        &|x| mib_cell(x.peak_rss_bytes),
        false,
    ));
    out.push('\n');
    out.push_str(&table(
        "peak anon RSS MiB",
        &|x| mib_cell(x.peak_anon_rss_bytes),
        false,
    ));
    out
}

/// The ratio table: encrypted sealdb's ops/s over plaintext sealdb's, and over the
/// better of RocksDB and fjall, per workload (of the engines present in `reports`); then the
/// same two ratios of CPU time per operation (plaintext's or the peer's over encrypted's, so
/// above 1 still means encrypted sealdb is ahead), which the other work on a shared machine
/// moves much less than ops/s.
fn ratios(reports: &[BenchReport], workloads: &[String]) -> Option<String> {
    let result = |engine: &str, w: &str| {
        reports
            .iter()
            .find(|r| r.engine == engine)?
            .results
            .iter()
            .find(|x| x.workload == w)
            .cloned()
    };
    let ops = |engine: &str, w: &str| result(engine, w).map(|x| x.ops_per_sec);
    let cpu_per_op = |engine: &str, w: &str| {
        result(engine, w).and_then(|x| x.cpu_secs.filter(|_| x.ops > 0).map(|c| c / x.ops as f64))
    };
    reports.iter().find(|r| r.engine == "sealdb-encrypted")?;
    let header: Vec<String> = [
        "ratio",
        "enc/plain",
        "enc/best peer",
        "best peer",
        "CPU plain/enc",
        "CPU best peer/enc",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_string(),
    };
    let rows: Vec<Vec<String>> = workloads
        .iter()
        .map(|w| {
            let enc = ops("sealdb-encrypted", w);
            let best = ["rocksdb", "fjall"]
                .iter()
                .filter_map(|p| ops(p, w).map(|o| (*p, o)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let enc_cpu = cpu_per_op("sealdb-encrypted", w);
            vec![
                w.clone(),
                ratio(enc, ops("sealdb-plaintext", w)),
                ratio(enc, best.map(|b| b.1)),
                best.map_or("-".to_string(), |b| b.0.to_string()),
                ratio(cpu_per_op("sealdb-plaintext", w), enc_cpu),
                ratio(best.and_then(|b| cpu_per_op(b.0, w)), enc_cpu),
            ]
        })
        .collect();
    Some(render(&header, &rows))
}

fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len().max(3)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(3);
            if i == 0 {
                s.push_str(&format!(" {c:<width$} |"));
            } else {
                s.push_str(&format!(" {c:>width$} |"));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    out.push('|');
    for (i, x) in w.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!(" {} |", "-".repeat(*x)));
        } else {
            out.push_str(&format!(" {}: |", "-".repeat(x - 1)));
        }
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}
