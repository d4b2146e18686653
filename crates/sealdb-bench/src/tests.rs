//! End-to-end runs of every workload on a small database, encrypted and plaintext.

use super::*;
use crate::error::{BenchError, Result};

fn small(encrypted: bool, threads: usize) -> BenchConfig {
    BenchConfig {
        num: 3000,
        reads: Some(1000),
        threads,
        encrypted,
        ..BenchConfig::default()
    }
}

fn by_name<'a>(r: &'a BenchReport, w: &str) -> Result<&'a WorkloadReport> {
    r.results
        .iter()
        .find(|x| x.workload == w)
        .ok_or_else(|| BenchError::Config(format!("no {w} in the report")))
}

fn check_full_run(encrypted: bool, threads: usize) -> Result<()> {
    let cfg = small(encrypted, threads);
    let r = run(&cfg)?;
    assert_eq!(r.results.len(), Workload::ALL.len());
    assert_eq!(r.write_bytes_source, "engine");
    for w in &r.results {
        assert!(w.ops > 0, "{} did nothing", w.workload);
        assert!(w.ops_per_sec > 0.0);
        assert!(w.latency.p50_us <= w.latency.p99_us);
        assert!(w.latency.p99_us <= w.latency.p999_us);
    }
    for fill in ["fillseq", "fillrandom", "fillbatch"] {
        let f = by_name(&r, fill)?;
        assert_eq!(f.ops, 3000);
        // The WAL alone writes every user byte once, and the flush writes them again.
        let wa = f.write_amp.unwrap_or(0.0);
        assert!(wa > 1.5 && wa < 4.0, "{fill}: write amp {wa}");
        let sa = f.space_amp.unwrap_or(0.0);
        assert!(sa > 0.5, "{fill}: space amp {sa}");
    }
    assert_eq!(by_name(&r, "readrandom")?.found, Some(1000));
    // After a close and reopen every key is still found (encrypted: through the KMS again).
    assert_eq!(by_name(&r, "readreopen")?.found, Some(1000));
    assert_eq!(by_name(&r, "readmissing")?.found, Some(0));
    assert_eq!(by_name(&r, "readseq")?.ops, 3000 * threads as u64);
    assert_eq!(by_name(&r, "readreverse")?.ops, 3000 * threads as u64);
    let seek = by_name(&r, "seekrandom")?;
    assert_eq!(seek.found, Some(1000));
    assert!(by_name(&r, "deleterandom")?.write_amp.is_some());
    let table = r.to_table();
    assert!(table.contains("| readrandom"));
    assert!(r.to_json().contains("\"workload\": \"seekrandom\""));
    Ok(())
}

#[test]
fn plaintext_run_measures_every_workload() -> Result<()> {
    check_full_run(false, 1)
}

#[test]
fn encrypted_run_measures_every_workload() -> Result<()> {
    check_full_run(true, 1)
}

#[test]
fn two_threads_share_the_work() -> Result<()> {
    check_full_run(false, 2)
}

#[test]
fn reads_without_a_fill_load_the_database_first() -> Result<()> {
    let cfg = BenchConfig {
        workloads: vec![Workload::ReadRandom],
        ..small(false, 1)
    };
    let r = run(&cfg)?;
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].found, Some(1000));
    Ok(())
}

#[test]
fn encrypted_files_hold_no_plaintext_values() -> Result<()> {
    // The runner's database is encrypted: reuse its engine directly and look at its files.
    let dir = tempfile::tempdir().map_err(|e| BenchError::io("tempdir", e))?;
    let db_dir = dir.path().join("db");
    std::fs::create_dir_all(&db_dir).map_err(|e| BenchError::io("mkdir", e))?;
    let cfg = small(true, 1);
    let engine = SealdbFactory
        .open(&db_dir, &cfg)
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let value = b"a very recognisable plaintext value, repeated".repeat(2);
    for i in 0..100 {
        engine
            .put(&key(i), &value)
            .map_err(|e| BenchError::Config(e.to_string()))?;
    }
    engine
        .flush()
        .map_err(|e| BenchError::Config(e.to_string()))?;
    assert!(engine.bytes_written().unwrap_or(0) > 100 * value.len() as u64);
    drop(engine);
    for e in std::fs::read_dir(&db_dir).map_err(|e| BenchError::io("ls", e))? {
        let p = e.map_err(|e| BenchError::io("ls", e))?.path();
        let bytes = std::fs::read(&p).map_err(|e| BenchError::io("read", e))?;
        assert!(
            !bytes.windows(20).any(|w| w == &value[..20]),
            "{} holds plaintext",
            p.display()
        );
    }
    Ok(())
}

#[test]
fn block_size_reaches_the_engine() -> Result<()> {
    // Smaller blocks: more blocks, each with its own tag and index entry, so more bytes on
    // disk for the same data.
    let space = |block_size: Option<usize>| -> Result<f64> {
        let cfg = BenchConfig {
            workloads: vec![Workload::FillSeq],
            block_size,
            ..small(true, 1)
        };
        let r = run(&cfg)?;
        assert!(r.settings.contains(&format!(
            "block {} B",
            block_size.unwrap_or(sealdb::Options::default().block_size)
        )));
        Ok(by_name(&r, "fillseq")?.space_amp.unwrap_or(0.0))
    };
    let (small_blocks, default_blocks) = (space(Some(512))?, space(None)?);
    assert!(
        small_blocks > default_blocks,
        "512 B blocks: space amp {small_blocks}, default: {default_blocks}"
    );
    Ok(())
}
