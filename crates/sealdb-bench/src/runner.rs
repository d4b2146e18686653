//! Runs the workloads of a [`BenchConfig`] on one engine and measures them.
//!
//! Fills start from a fresh, empty database; every other workload runs on the database the
//! previous workloads left (a fillseq is loaded first, untimed, when there is none). After
//! each writing workload the engine is flushed, untimed, so the reads that follow hit the
//! on-disk tables and the amplification figures include the flush.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::config::{BenchConfig, Workload, FILL_BATCH_SIZE, SEEK_NEXTS};
use super::engine::{BenchEngine, EngineError, EngineFactory, EngineResult};
use super::keys::{key, key_of, permutation, share, UniformKeys, ValueSource, KEY_LEN};
use super::latency::LatencyRecorder;
use super::process::{
    dir_size, peak_rss_bytes, process_bytes_written, process_cpu_secs, AnonRssSampler,
};
use super::report::{BenchReport, WorkloadReport};
use crate::error::{BenchError, Result};

/// What one thread did.
#[derive(Default)]
struct ThreadOutcome {
    latency: LatencyRecorder,
    ops: u64,
    found: u64,
    bytes: u64,
    deleted: Vec<u64>,
}

/// The database being benchmarked and what the runner knows of its contents.
struct Current {
    engine: Box<dyn BenchEngine>,
    dir: PathBuf,
    /// `live[i]`: key `i` is present.
    live: Vec<bool>,
}

fn engine_err(what: &str, e: EngineError) -> BenchError {
    BenchError::engine(what, e)
}

/// Runs every workload of `config` on the engines `factory` opens.
pub fn run_with(factory: &dyn EngineFactory, config: &BenchConfig) -> Result<BenchReport> {
    config.validate()?;
    let started = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let tmp;
    let base = match &config.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| BenchError::io("creating the dir", e))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("sealdb-bench-")
                .tempdir()
                .map_err(|e| BenchError::io("creating a temporary dir", e))?;
            tmp.path().to_path_buf()
        }
    };
    let mut current: Option<Current> = None;
    let mut results = Vec::new();
    let mut generation = 0u32;
    let mut source = "engine";
    let mut anon_peak = 0u64;
    for &w in &config.workloads {
        if w.is_fresh_fill() || current.is_none() {
            // Close the old database before removing its files.
            if let Some(old) = current.take() {
                let dir = old.dir.clone();
                drop(old);
                remove_db(&dir)?;
            }
            generation += 1;
            let dir = base.join(format!("db-{generation}"));
            std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("creating the db dir", e))?;
            let engine = factory
                .open(&dir, config)
                .map_err(|e| engine_err("opening the engine", e))?;
            let mut c = Current {
                engine,
                dir,
                live: vec![false; usize::try_from(config.num).unwrap_or(usize::MAX)],
            };
            if !w.is_fresh_fill() {
                run_workload(&mut c, Workload::FillSeq, config, &mut anon_peak)?;
            }
            current = Some(c);
        }
        if w == Workload::ReadReopen {
            if let Some(Current { engine, dir, live }) = current.take() {
                // Closed before it is opened again, as a restarted process would.
                drop(engine);
                let engine = factory
                    .open(&dir, config)
                    .map_err(|e| engine_err("reopening the engine", e))?;
                current = Some(Current { engine, dir, live });
            }
        }
        let Some(c) = current.as_mut() else {
            return Err(BenchError::Config("no database".into()));
        };
        let (r, from_engine) = run_workload(c, w, config, &mut anon_peak)?;
        if !from_engine {
            source = "wchar";
        }
        results.push(r);
    }
    if let Some(old) = current.take() {
        let dir = old.dir.clone();
        drop(old);
        remove_db(&dir)?;
    }
    Ok(BenchReport {
        engine: factory.name(),
        settings: factory.settings(config),
        config: config.clone(),
        started,
        sealdb_version: env!("CARGO_PKG_VERSION").to_string(),
        write_bytes_source: source.to_string(),
        results,
    })
}

fn remove_db(dir: &Path) -> Result<()> {
    let kms = dir.with_extension("kms");
    for d in [dir, kms.as_path()] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| BenchError::io("removing a db", e))?;
        }
    }
    Ok(())
}

/// Bytes written so far, and whether the engine counted them itself.
fn written(engine: &dyn BenchEngine) -> (u64, bool) {
    match engine.bytes_written() {
        Some(b) => (b, true),
        None => (process_bytes_written().unwrap_or(0), false),
    }
}

/// Runs workload `w` on `c`; `anon_peak` is the run's highest anonymous RSS so far (the
/// report's figure is a high-water mark of the run, as VmHWM is of the process).
fn run_workload(
    c: &mut Current,
    w: Workload,
    cfg: &BenchConfig,
    anon_peak: &mut u64,
) -> Result<(WorkloadReport, bool)> {
    let engine: &dyn BenchEngine = &*c.engine;
    let order = if w == Workload::FillRandom {
        permutation(cfg.num, cfg.seed)
    } else {
        Vec::new()
    };
    let (written_before, from_engine) = written(engine);
    let sampler = AnonRssSampler::start(*anon_peak);
    let cpu_before = process_cpu_secs();
    let start = Instant::now();
    let outcomes: Vec<EngineResult<ThreadOutcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let order = &order;
                s.spawn(move || run_thread(engine, w, cfg, t, order))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let cpu_secs = cpu_before
        .zip(process_cpu_secs())
        .map(|(before, after)| (after - before).max(0.0));
    let mut total = ThreadOutcome::default();
    for o in outcomes {
        let o = o.map_err(|e| engine_err(w.name(), e))?;
        total.latency.merge(o.latency);
        total.ops += o.ops;
        total.found += o.found;
        total.bytes += o.bytes;
        total.deleted.extend(o.deleted);
    }
    let user_written = match w {
        _ if w.is_fresh_fill() || w == Workload::Overwrite => total.bytes,
        Workload::DeleteRandom => total.ops * KEY_LEN as u64,
        _ => 0,
    };
    if w.is_fresh_fill() {
        c.live.iter_mut().for_each(|l| *l = true);
    }
    for d in &total.deleted {
        if let Some(l) = c.live.get_mut(*d as usize) {
            *l = false;
        }
    }
    if w.writes() {
        engine
            .flush()
            .map_err(|e| engine_err("flushing after the workload", e))?;
    }
    let (written_after, _) = written(engine);
    let peak_anon_rss_bytes = sampler.stop();
    *anon_peak = (*anon_peak).max(peak_anon_rss_bytes.unwrap_or(0));
    let db_bytes = dir_size(&c.dir).map_err(|e| BenchError::io("sizing the db dir", e))?;
    let live = c.live.iter().filter(|l| **l).count() as u64;
    let live_bytes = live * (KEY_LEN + cfg.value_size) as u64;
    let reads = matches!(
        w,
        Workload::ReadRandom | Workload::ReadReopen | Workload::ReadMissing | Workload::SeekRandom
    );
    let report = WorkloadReport {
        workload: w.name().to_string(),
        ops: total.ops,
        elapsed_secs: elapsed,
        ops_per_sec: total.ops as f64 / elapsed,
        mb_per_sec: total.bytes as f64 / (1 << 20) as f64 / elapsed,
        latency: total.latency.summary(),
        found: reads.then_some(total.found),
        write_amp: (user_written > 0)
            .then(|| written_after.saturating_sub(written_before) as f64 / user_written as f64),
        space_amp: (live_bytes > 0).then(|| db_bytes as f64 / live_bytes as f64),
        db_bytes,
        peak_rss_bytes: peak_rss_bytes(),
        peak_anon_rss_bytes,
        cpu_secs,
    };
    Ok((report, from_engine))
}

fn run_thread(
    engine: &dyn BenchEngine,
    w: Workload,
    cfg: &BenchConfig,
    t: usize,
    order: &[u64],
) -> EngineResult<ThreadOutcome> {
    let seed = cfg.seed ^ ((t as u64 + 1) << 32) ^ (w as u64);
    let mut values = ValueSource::new(cfg.value_size, seed);
    let kv = (KEY_LEN + cfg.value_size) as u64;
    let (lo, hi) = share(cfg.num, t, cfg.threads);
    let (rlo, rhi) = share(cfg.reads(), t, cfg.threads);
    let mut out = ThreadOutcome {
        latency: LatencyRecorder::with_capacity((hi - lo).max(rhi - rlo) as usize),
        ..ThreadOutcome::default()
    };
    let mut k = [0u8; KEY_LEN];
    let timed = |out: &mut ThreadOutcome, f: &mut dyn FnMut() -> EngineResult<()>| {
        let t0 = Instant::now();
        f()?;
        out.latency.record(t0.elapsed());
        out.ops += 1;
        EngineResult::Ok(())
    };
    match w {
        Workload::FillSeq | Workload::FillRandom => {
            for i in lo..hi {
                let n = if w == Workload::FillRandom {
                    order.get(i as usize).copied().unwrap_or(i)
                } else {
                    i
                };
                key_of(n, &mut k);
                let v = values.next_value();
                timed(&mut out, &mut || engine.put(&k, v))?;
                out.bytes += kv;
            }
        }
        Workload::Overwrite => {
            let mut keys = UniformKeys::new(0, cfg.num, seed);
            for _ in lo..hi {
                key_of(keys.next_key(), &mut k);
                let v = values.next_value();
                timed(&mut out, &mut || engine.put(&k, v))?;
                out.bytes += kv;
            }
        }
        Workload::FillBatch => {
            let mut i = lo;
            while i < hi {
                let end = (i + FILL_BATCH_SIZE as u64).min(hi);
                let ks: Vec<[u8; KEY_LEN]> = (i..end).map(key).collect();
                let vs: Vec<Vec<u8>> = (i..end).map(|_| values.next_value().to_vec()).collect();
                let entries: Vec<(&[u8], &[u8])> = ks
                    .iter()
                    .zip(vs.iter())
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect();
                // One latency sample per batch; ops count entries.
                let t0 = Instant::now();
                engine.put_batch(&entries)?;
                out.latency.record(t0.elapsed());
                out.ops += end - i;
                out.bytes += (end - i) * kv;
                i = end;
            }
        }
        Workload::ReadRandom | Workload::ReadReopen | Workload::ReadMissing => {
            let mut keys = UniformKeys::new(0, cfg.num, seed);
            for _ in rlo..rhi {
                key_of(keys.next_key(), &mut k);
                if w == Workload::ReadMissing {
                    // Sorts just before the written key and is never written itself, so
                    // it falls inside every file's key range: only the filter saves a read.
                    k[KEY_LEN - 1] = b'.';
                }
                let mut got = None;
                timed(&mut out, &mut || {
                    got = engine.get(&k)?;
                    Ok(())
                })?;
                if let Some(len) = got {
                    out.found += 1;
                    out.bytes += (KEY_LEN + len) as u64;
                } else {
                    out.bytes += KEY_LEN as u64;
                }
            }
        }
        Workload::ReadSeq | Workload::ReadReverse => {
            let mut last = Instant::now();
            let mut bytes = 0u64;
            let lat = &mut out.latency;
            let n = engine.scan(w == Workload::ReadReverse, &mut |k, v| {
                let now = Instant::now();
                lat.record(now - last);
                last = now;
                bytes += (k.len() + v.len()) as u64;
            })?;
            out.ops = n;
            out.bytes = bytes;
        }
        Workload::SeekRandom => {
            let mut keys = UniformKeys::new(0, cfg.num, seed);
            for _ in rlo..rhi {
                key_of(keys.next_key(), &mut k);
                let mut got = 0;
                timed(&mut out, &mut || {
                    got = engine.seek(&k, SEEK_NEXTS)?;
                    Ok(())
                })?;
                if got > 0 {
                    out.found += 1;
                }
                out.bytes += got as u64 * kv;
            }
        }
        Workload::DeleteRandom => {
            let mut keys = UniformKeys::new(0, cfg.num, seed);
            for _ in lo..hi {
                let n = keys.next_key();
                key_of(n, &mut k);
                timed(&mut out, &mut || engine.delete(&k))?;
                out.deleted.push(n);
                out.bytes += KEY_LEN as u64;
            }
        }
    }
    Ok(out)
}
