//! The stress run: worker threads doing random writes and reads on every table while a
//! maintenance thread flushes and compacts, each read judged by the [`Oracle`]; between
//! phases every thread stops, every key is checked for its one settled state, and the
//! database is closed and reopened (a lost write shows there).

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealdb::storage::StdEnv;
use sealdb::{Db, Snapshot, Table, WriteBatch, WriteOptions};

use crate::model::{self, key, key_index, parse_value, value, BATCH_REGION, TABLES};
use crate::oracle::Oracle;
use crate::watchdog::Progress;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub seconds: u64,
    pub threads: usize,
    pub keys: usize,
    /// Seconds between stop-verify-reopen phases.
    pub reopen_every: u64,
    pub write_buffer: usize,
    /// One write in this many is synced (0: none).
    pub sync_every: u32,
}

/// Counters of what was done and verified.
#[derive(Default)]
pub struct Stats {
    pub puts: AtomicU64,
    pub deletes: AtomicU64,
    pub batches: AtomicU64,
    pub lockstep_batches: AtomicU64,
    pub gets: AtomicU64,
    pub scans: AtomicU64,
    pub scanned_keys: AtomicU64,
    pub snapshot_reads: AtomicU64,
    pub lockstep_checks: AtomicU64,
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub unjudged: AtomicU64,
    pub settled_checks: AtomicU64,
    pub reopens: AtomicU64,
}

impl Stats {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "puts={} deletes={} batches={} lockstep_batches={} gets={} scans={} scanned_keys={} snapshot_reads={} lockstep_checks={} flushes={} compactions={} settled_key_checks={} reopens={} unjudged_reads={}",
            g(&self.puts),
            g(&self.deletes),
            g(&self.batches),
            g(&self.lockstep_batches),
            g(&self.gets),
            g(&self.scans),
            g(&self.scanned_keys),
            g(&self.snapshot_reads),
            g(&self.lockstep_checks),
            g(&self.flushes),
            g(&self.compactions),
            g(&self.settled_checks),
            g(&self.reopens),
            g(&self.unjudged),
        )
    }

    /// Operations whose result was checked against the oracle.
    pub fn verified(&self) -> u64 {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        g(&self.puts)
            + g(&self.deletes)
            + g(&self.batches)
            + g(&self.lockstep_batches)
            + g(&self.gets)
            + g(&self.scanned_keys)
            + g(&self.snapshot_reads)
            + g(&self.lockstep_checks)
            + g(&self.settled_checks)
    }
}

/// A wrong read or a failed operation: the first one stops the run.
pub type Failure = String;

struct Shared {
    db: Db,
    tables: Vec<Table>,
    oracle: Arc<Oracle>,
    stats: Arc<Stats>,
    stop: AtomicBool,
    failure: Mutex<Option<Failure>>,
    progress: Arc<Progress>,
    sync_every: u32,
}

impl Shared {
    fn fail(&self, what: String) {
        let mut f = self.failure.lock();
        if f.is_none() {
            eprintln!("FAILURE: {what}");
            *f = Some(what);
        }
        self.stop.store(true, Ordering::SeqCst);
    }

    fn check(&self, t: usize, k: usize, floor: u64, got: Option<&[u8]>, what: &str) {
        let found = match got {
            None => None,
            Some(v) => match parse_value(v) {
                Some((vt, vk, g)) if vt == t && vk == k => Some(g),
                _ => {
                    return self.fail(format!(
                        "{what}: {}/{k}: a value that is not one written for this key: {:?}",
                        TABLES[t].0,
                        String::from_utf8_lossy(&v[..v.len().min(40)])
                    ))
                }
            },
        };
        let allowed = self.oracle.allowed(t, k, floor);
        if !allowed.complete {
            Stats::add(&self.stats.unjudged, 1);
            return;
        }
        if !allowed.admits(found) {
            self.fail(format!(
                "{what}: {}/{k}: read {found:?} (None = absent), allowed {:?}",
                TABLES[t].0, allowed.writes
            ));
        }
    }
}

/// A snapshot a thread took, with what it read through it then.
struct Held {
    snap: Snapshot,
    t: usize,
    range: Range<usize>,
    seen: Vec<(usize, Vec<u8>)>,
}

fn scan(
    table: &Table,
    range: &Range<usize>,
    reverse: bool,
    snap: Option<&Snapshot>,
) -> sealdb::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (lo, hi) = (key(range.start), key(range.end));
    let it = match snap {
        Some(s) => table.range_at_snapshot(lo..hi, s)?,
        None => table.range(lo..hi)?,
    };
    let it = if reverse { it.rev() } else { it };
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect()
}

impl Shared {
    /// Checks a scan's order and every key of its range against the oracle floors.
    fn judge_scan(
        &self,
        t: usize,
        range: &Range<usize>,
        floors: &[u64],
        rows: &[(Vec<u8>, Vec<u8>)],
        reverse: bool,
        what: &str,
    ) -> Option<Vec<(usize, Vec<u8>)>> {
        let mut seen = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let Some(i) = key_index(k).filter(|i| range.contains(i)) else {
                self.fail(format!(
                    "{what}: {}: key {:?} outside {range:?}",
                    TABLES[t].0,
                    String::from_utf8_lossy(k)
                ));
                return None;
            };
            if let Some(&(prev, _)) = seen.last() {
                let ordered = if reverse { prev > i } else { prev < i };
                if !ordered {
                    self.fail(format!(
                        "{what}: {}: key {i} after {prev} (reverse={reverse})",
                        TABLES[t].0
                    ));
                    return None;
                }
            }
            seen.push((i, v.clone()));
        }
        let mut sorted: Vec<&(usize, Vec<u8>)> = seen.iter().collect();
        sorted.sort_by_key(|e| e.0);
        let mut next = sorted.iter().peekable();
        for k in range.clone() {
            let got = match next.peek() {
                Some(e) if e.0 == k => next.next().map(|e| e.1.as_slice()),
                _ => None,
            };
            self.check(t, k, floors[k - range.start], got, what);
        }
        Stats::add(&self.stats.scanned_keys, range.len() as u64);
        Some(seen)
    }
}

fn worker(sh: &Shared, id: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut held: Vec<Held> = Vec::new();
    while !sh.stop.load(Ordering::Relaxed) {
        sh.progress.tick();
        if let Err(e) = step(sh, &mut rng, &mut held) {
            sh.fail(format!("thread {id}: {e}"));
        }
    }
}

/// One random operation.
fn step(sh: &Shared, rng: &mut StdRng, held: &mut Vec<Held>) -> Result<(), String> {
    let keys = sh.oracle.keys();
    let nt = TABLES.len();
    {
        let t = rng.gen_range(0..nt);
        let k = rng.gen_range(BATCH_REGION..keys);
        let sync = sh.sync_every > 0 && rng.gen_ratio(1, sh.sync_every);
        let wo = WriteOptions::with_sync(sync);
        match rng.gen_range(0..100) {
            0..=29 => {
                let _l = sh.oracle.lock(&[(t, k)]);
                let g = sh.oracle.begin(t, k, true);
                sh.tables[t]
                    .put_opt(key(k), value(t, k, g), wo)
                    .map_err(|e| format!("put: {e}"))?;
                sh.oracle.commit(t, k);
                Stats::add(&sh.stats.puts, 1);
                Ok(())
            }
            30..=37 => {
                let _l = sh.oracle.lock(&[(t, k)]);
                sh.oracle.begin(t, k, false);
                sh.tables[t]
                    .delete_opt(key(k), wo)
                    .map_err(|e| format!("delete: {e}"))?;
                sh.oracle.commit(t, k);
                Stats::add(&sh.stats.deletes, 1);
                Ok(())
            }
            38..=45 => {
                // A batch over random keys of random tables.
                let n = rng.gen_range(2..8);
                let mut entries: Vec<(usize, usize, bool)> = (0..n)
                    .map(|_| {
                        (
                            rng.gen_range(0..nt),
                            rng.gen_range(BATCH_REGION..keys),
                            rng.gen_ratio(3, 4),
                        )
                    })
                    .collect();
                entries.sort_by_key(|e| (e.0, e.1));
                entries.dedup_by_key(|e| (e.0, e.1));
                write_batch(sh, &entries, wo, &sh.stats.batches)
            }
            46..=49 => {
                // A lockstep batch: one key of the batch region in every table, same generation.
                let k = rng.gen_range(0..BATCH_REGION);
                let entries: Vec<(usize, usize, bool)> =
                    (0..nt).map(|t| (t, k, rng.gen_ratio(4, 5))).collect();
                write_batch(sh, &entries, wo, &sh.stats.lockstep_batches)
            }
            50..=79 => {
                let floor = sh.oracle.floor(t, k);
                match sh.tables[t].get(key(k)) {
                    Ok(v) => {
                        sh.check(t, k, floor, v.as_deref(), "get");
                        Stats::add(&sh.stats.gets, 1);
                        Ok(())
                    }
                    Err(e) => Err(format!("get: {e}")),
                }
            }
            80..=89 => {
                let len = rng.gen_range(1..64);
                let start = rng.gen_range(0..keys - len);
                let range = start..start + len;
                let reverse = rng.gen_bool(0.5);
                let floors: Vec<u64> = range.clone().map(|k| sh.oracle.floor(t, k)).collect();
                match scan(&sh.tables[t], &range, reverse, None) {
                    Ok(rows) => {
                        sh.judge_scan(t, &range, &floors, &rows, reverse, "scan");
                        Stats::add(&sh.stats.scans, 1);
                        Ok(())
                    }
                    Err(e) => Err(format!("scan: {e}")),
                }
            }
            90..=94 => lockstep_check(sh, rng),
            _ => snapshot_op(sh, rng, held),
        }
    }
}

fn write_batch(
    sh: &Shared,
    entries: &[(usize, usize, bool)],
    wo: WriteOptions,
    counter: &AtomicU64,
) -> Result<(), String> {
    let keys: Vec<(usize, usize)> = entries.iter().map(|e| (e.0, e.1)).collect();
    let _l = sh.oracle.lock(&keys);
    let mut b = WriteBatch::new();
    for &(t, k, put) in entries {
        let g = sh.oracle.begin(t, k, put);
        if put {
            b.put(&sh.tables[t], key(k), value(t, k, g));
        } else {
            b.delete(&sh.tables[t], key(k));
        }
    }
    sh.db.write(&b, wo).map_err(|e| format!("batch: {e}"))?;
    for &(t, k, _) in entries {
        sh.oracle.commit(t, k);
    }
    Stats::add(counter, 1);
    Ok(())
}

/// Reads one lockstep key in every table at one snapshot: all must show the same write.
fn lockstep_check(sh: &Shared, rng: &mut StdRng) -> Result<(), String> {
    let k = rng.gen_range(0..BATCH_REGION);
    let floors: Vec<u64> = (0..TABLES.len()).map(|t| sh.oracle.floor(t, k)).collect();
    let snap = sh.db.snapshot();
    let mut found = Vec::new();
    for (t, table) in sh.tables.iter().enumerate() {
        let v = table
            .get_at(key(k), &snap)
            .map_err(|e| format!("lockstep get_at: {e}"))?;
        sh.check(t, k, floors[t], v.as_deref(), "lockstep get_at");
        found.push(v.and_then(|v| parse_value(&v)).map(|p| p.2));
    }
    // Some generation g explains every table: a value of g, or absent where g deleted.
    let candidates: Vec<u64> = match found.iter().flatten().next() {
        Some(&g) => vec![g],
        None => {
            // All absent: some common generation deleted everywhere.
            let a0 = sh.oracle.allowed(0, k, floors[0]);
            a0.writes.iter().filter(|w| !w.put).map(|w| w.gen).collect()
        }
    };
    // Per candidate: Some(true) explains all, Some(false) contradicts, None: history gone.
    let verdicts: Vec<Option<bool>> = candidates
        .iter()
        .map(|&g| {
            let mut all = Some(true);
            for (t, f) in found.iter().enumerate() {
                let ok = match f {
                    Some(x) => Some(*x == g),
                    None => sh.oracle.write_at(t, k, g).map(|w| !w.put),
                };
                all = match (all, ok) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
            }
            all
        })
        .collect();
    if verdicts.contains(&Some(true)) {
        // Consistent.
    } else if candidates.is_empty() || verdicts.contains(&None) {
        Stats::add(&sh.stats.unjudged, 1);
    } else {
        sh.fail(format!(
            "lockstep key {k}: tables disagree at one snapshot (a torn batch): {found:?}"
        ));
    }
    Stats::add(&sh.stats.lockstep_checks, 1);
    Ok(())
}

/// Takes a snapshot and reads a range through it, or re-reads through a held one: a
/// snapshot must show the same thing however long it is held and whatever ran since.
fn snapshot_op(sh: &Shared, rng: &mut StdRng, held: &mut Vec<Held>) -> Result<(), String> {
    let keys = sh.oracle.keys();
    if held.len() < 2 && rng.gen_bool(0.5) {
        let t = rng.gen_range(0..TABLES.len());
        let len = rng.gen_range(1..40);
        let start = rng.gen_range(0..keys - len);
        let range = start..start + len;
        let floors: Vec<u64> = range.clone().map(|k| sh.oracle.floor(t, k)).collect();
        let snap = sh.db.snapshot();
        let rows = scan(&sh.tables[t], &range, false, Some(&snap))
            .map_err(|e| format!("snapshot scan: {e}"))?;
        if let Some(seen) = sh.judge_scan(t, &range, &floors, &rows, false, "snapshot scan") {
            held.push(Held {
                snap,
                t,
                range,
                seen,
            });
        }
        return Ok(());
    }
    let Some(h) = (if held.is_empty() {
        None
    } else {
        Some(held.remove(rng.gen_range(0..held.len())))
    }) else {
        return Ok(());
    };
    let reverse = rng.gen_bool(0.5);
    let rows = scan(&sh.tables[h.t], &h.range, reverse, Some(&h.snap))
        .map_err(|e| format!("snapshot rescan: {e}"))?;
    let mut got: Vec<(usize, Vec<u8>)> = rows
        .into_iter()
        .filter_map(|(k, v)| key_index(&k).map(|i| (i, v)))
        .collect();
    if reverse {
        got.reverse();
    }
    if got != h.seen {
        sh.fail(format!(
            "snapshot of {} {:?}: the view changed while held ({} rows then, {} now)",
            TABLES[h.t].0,
            h.range,
            h.seen.len(),
            got.len()
        ));
    }
    if let Some((k, v)) = h.seen.first() {
        let again = sh.tables[h.t]
            .get_at(key(*k), &h.snap)
            .map_err(|e| format!("get_at: {e}"))?;
        if again.as_deref() != Some(v.as_slice()) {
            sh.fail(format!(
                "snapshot get_at {}/{k} differs from its scan",
                TABLES[h.t].0
            ));
        }
    }
    Stats::add(&sh.stats.snapshot_reads, 1);
    if rng.gen_bool(0.5) {
        held.push(h);
    }
    Ok(())
}

/// Flushes and compacts while the workers run.
fn maintenance(sh: &Shared, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00ff_1234);
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        sh.progress.tick();
        let r = if rng.gen_bool(0.7) {
            Stats::add(&sh.stats.flushes, 1);
            sh.db.flush().map_err(|e| format!("flush: {e}"))
        } else {
            let t = rng.gen_range(0..TABLES.len());
            let keys = sh.oracle.keys();
            let a = rng.gen_range(0..keys);
            let b = rng.gen_range(a..keys);
            Stats::add(&sh.stats.compactions, 1);
            sh.db
                .compact_range(TABLES[t].0, key(a)..key(b))
                .map_err(|e| format!("compact_range: {e}"))
        };
        if let Err(e) = r {
            sh.fail(e);
        }
    }
}

/// With every writer stopped: each key holds exactly its last acknowledged write, by
/// point read and by a full scan of each table.
fn verify_settled(
    db_tables: &[Table],
    oracle: &Oracle,
    stats: &Stats,
    what: &str,
) -> Result<(), Failure> {
    for (t, table) in db_tables.iter().enumerate() {
        let mut want = Vec::new();
        for k in 0..oracle.keys() {
            let w = oracle.settled(t, k);
            let expect = w.put.then(|| value(t, k, w.gen));
            let got = table.get(key(k)).map_err(|e| format!("{what}: get: {e}"))?;
            if got.as_deref() != expect.as_deref() {
                return Err(format!(
                    "{what}: {}/{k}: {:?}, expected generation {} ({}) -- a lost or resurrected write",
                    TABLES[t].0,
                    got.as_deref().and_then(parse_value),
                    w.gen,
                    if w.put { "put" } else { "delete" }
                ));
            }
            if let Some(v) = expect {
                want.push((key(k), v));
            }
        }
        let all: Vec<(Vec<u8>, Vec<u8>)> = table
            .iter()
            .map_err(|e| format!("{what}: iter: {e}"))?
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<sealdb::Result<_>>()
            .map_err(|e| format!("{what}: iter: {e}"))?;
        if all != want {
            return Err(format!(
                "{what}: {}: a full scan differs from the settled state ({} rows, {} expected)",
                TABLES[t].0,
                all.len(),
                want.len()
            ));
        }
        Stats::add(&stats.settled_checks, oracle.keys() as u64);
    }
    Ok(())
}

/// Runs the stress test in `root`; the first failure ends it.
pub fn run(cfg: &Config, root: &Path, progress: Arc<Progress>) -> Result<Arc<Stats>, Failure> {
    let oracle = Arc::new(Oracle::new(TABLES.len(), cfg.keys));
    let stats = Arc::new(Stats::default());
    let end = Instant::now() + Duration::from_secs(cfg.seconds);
    let mut phase = 0u64;
    loop {
        let (db, tables) = model::open(root, Arc::new(StdEnv), cfg.write_buffer)
            .map_err(|e| format!("open (phase {phase}): {e}"))?;
        verify_settled(&tables, &oracle, &stats, &format!("after reopen {phase}"))?;
        let sh = Arc::new(Shared {
            db,
            tables,
            oracle: Arc::clone(&oracle),
            stats: Arc::clone(&stats),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            progress: Arc::clone(&progress),
            sync_every: cfg.sync_every,
        });
        let phase_end = end.min(Instant::now() + Duration::from_secs(cfg.reopen_every.max(1)));
        let phase_seed = cfg.seed.wrapping_add(phase.wrapping_mul(0x1000_0000_01b3));
        let mut handles = Vec::new();
        for id in 0..cfg.threads {
            let sh = Arc::clone(&sh);
            handles.push(std::thread::spawn(move || worker(&sh, id, phase_seed)));
        }
        {
            let sh = Arc::clone(&sh);
            handles.push(std::thread::spawn(move || maintenance(&sh, phase_seed)));
        }
        while Instant::now() < phase_end && !sh.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            progress.tick_main();
        }
        sh.stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join()
                .map_err(|_| "a worker thread panicked".to_string())?;
        }
        if let Some(f) = sh.failure.lock().take() {
            return Err(format!("phase {phase}: {f}"));
        }
        verify_settled(
            &sh.tables,
            &oracle,
            &stats,
            &format!("end of phase {phase}"),
        )?;
        let sh = Arc::into_inner(sh).ok_or("a thread still holds the database")?;
        drop(sh);
        Stats::add(&stats.reopens, 1);
        phase += 1;
        if Instant::now() >= end {
            // A last reopen: everything acknowledged survives a clean close.
            let (_db, tables) = model::open(root, Arc::new(StdEnv), cfg.write_buffer)
                .map_err(|e| format!("final open: {e}"))?;
            verify_settled(&tables, &oracle, &stats, "after the final reopen")?;
            return Ok(stats);
        }
    }
}
