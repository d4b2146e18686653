//! What a run measured: one row per workload, as an aligned Markdown table or as JSON.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::latency::LatencySummary;
use super::BenchConfig;

/// The figures of one workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    pub workload: String,
    /// Operations completed (entries visited for scans).
    pub ops: u64,
    pub elapsed_secs: f64,
    pub ops_per_sec: f64,
    /// Key and value bytes moved per second (keys only for misses and deletes), in MiB/s.
    pub mb_per_sec: f64,
    pub latency: LatencySummary,
    /// Reads that found their key (read workloads only).
    pub found: Option<u64>,
    /// Bytes written to the data directory (WAL, tables, manifest; the flush that follows
    /// the workload included) divided by the key and value bytes the workload wrote.
    pub write_amp: Option<f64>,
    /// Data directory size divided by the key and value bytes of the live keys.
    pub space_amp: Option<f64>,
    /// Data directory size after the workload (and its flush).
    pub db_bytes: u64,
    /// Peak resident set size of the process so far (VmHWM): every resident page, the
    /// touched pages of memory-mapped files included.
    pub peak_rss_bytes: Option<u64>,
    /// Peak anonymous resident memory of the process so far (`RssAnon`, sampled every
    /// 10 ms during each workload and its flush): heap and stacks, not mapped files' pages.
    /// Absent from reports of older runs.
    #[serde(default)]
    pub peak_anon_rss_bytes: Option<u64>,
    /// CPU time of the whole process during the workload (every thread; the untimed flush
    /// after it excluded), in seconds. Absent from reports of older runs.
    #[serde(default)]
    pub cpu_secs: Option<f64>,
}

/// Everything one run measured, with what is needed to repeat it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Engine name (`sealdb`, `rocksdb`, ...).
    pub engine: String,
    /// The engine's settings, in words.
    pub settings: String,
    pub config: BenchConfig,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// sealdb's version (the crate that ran the workloads).
    pub sealdb_version: String,
    /// Where write amplification came from: `engine` (exact count of appended bytes) or
    /// `wchar` (the process's write-syscall bytes).
    pub write_bytes_source: String,
    pub results: Vec<WorkloadReport>,
}

impl BenchReport {
    /// The results as an aligned Markdown table, preceded by the engine and its settings.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "engine: {} ({})", self.engine, self.settings);
        let _ = writeln!(
            out,
            "num={} reads={} value={}B threads={} sync={} cache={}MiB started={}",
            self.config.num,
            self.config.reads(),
            self.config.value_size,
            self.config.threads,
            self.config.sync,
            self.config.cache_bytes >> 20,
            self.started
        );
        let header = [
            "workload",
            "ops/s",
            "MiB/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "found",
            "WA",
            "SA",
            "db MiB",
            "RSS MiB",
            "anon MiB",
            "CPU us/op",
        ];
        let rows: Vec<[String; 13]> = self.results.iter().map(row).collect();
        out.push_str(&markdown(&header, &rows));
        out
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// A byte count as a table cell: whole MiB, or `-` when it was not measured.
pub fn mib_cell(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".to_string(),
        |b| format!("{:.0}", b as f64 / (1 << 20) as f64),
    )
}

fn row(r: &WorkloadReport) -> [String; 13] {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    [
        r.workload.clone(),
        format!("{:.0}", r.ops_per_sec),
        format!("{:.1}", r.mb_per_sec),
        format!("{:.2}", r.latency.p50_us),
        format!("{:.2}", r.latency.p99_us),
        format!("{:.2}", r.latency.p999_us),
        r.found.map_or_else(|| "-".to_string(), |f| f.to_string()),
        opt(r.write_amp),
        opt(r.space_amp),
        format!("{:.1}", r.db_bytes as f64 / (1 << 20) as f64),
        mib_cell(r.peak_rss_bytes),
        mib_cell(r.peak_anon_rss_bytes),
        r.cpu_secs.filter(|_| r.ops > 0).map_or_else(
            || "-".to_string(),
            |c| format!("{:.3}", c * 1e6 / r.ops as f64),
        ),
    ]
}

/// An aligned Markdown table: text left-aligned in the first column, numbers right-aligned.
pub fn markdown<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.len().max(3));
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        out.push('|');
        for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
            if i == 0 {
                let _ = write!(out, " {c:<w$} |");
            } else {
                let _ = write!(out, " {c:>w$} |");
            }
        }
        out.push('\n');
    };
    line(&mut out, header.to_vec());
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        let dashes = "-".repeat(*w);
        if i == 0 {
            let _ = write!(out, " {dashes} |");
        } else {
            let _ = write!(out, " {}: |", &dashes[1..]);
        }
    }
    out.push('\n');
    for r in rows {
        line(&mut out, r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchReport {
        BenchReport {
            engine: "sealdb".into(),
            settings: "test".into(),
            config: BenchConfig::default(),
            started: "2026-01-01T00:00:00Z".into(),
            sealdb_version: "0.1.0".into(),
            write_bytes_source: "engine".into(),
            results: vec![WorkloadReport {
                workload: "fillrandom".into(),
                ops: 1000,
                elapsed_secs: 0.5,
                ops_per_sec: 2000.0,
                mb_per_sec: 0.2,
                latency: LatencySummary {
                    p50_us: 1.5,
                    p99_us: 10.0,
                    p999_us: 20.0,
                    max_us: 30.0,
                },
                found: None,
                write_amp: Some(2.25),
                space_amp: Some(1.1),
                db_bytes: 3 << 20,
                peak_rss_bytes: Some(50 << 20),
                peak_anon_rss_bytes: Some(40 << 20),
                cpu_secs: Some(0.25),
            }],
        }
    }

    #[test]
    fn table_has_aligned_rows() {
        let t = sample().to_table();
        let lines: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
        assert!(lines[2].contains("| fillrandom |"));
        assert!(lines[2].contains(" 2000 |"));
        assert!(lines[2].contains(" 2.25 |"));
        assert!(lines[1].starts_with("| ---"));
    }

    #[test]
    fn json_round_trips() -> Result<(), serde_json::Error> {
        let r = sample();
        let back: BenchReport = serde_json::from_str(&r.to_json())?;
        assert_eq!(back, r);
        Ok(())
    }
}
