//! Process- and directory-level measurements: peak RSS (all of it, and the anonymous part),
//! bytes written by the process, CPU time of the process, the size of a directory tree.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The process's peak resident set size in bytes (`VmHWM` of /proc/self/status), where
/// the platform has it.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib_field(&status, field)
}

/// The process's anonymous resident memory now, in bytes (`RssAnon` of /proc/self/status:
/// heap, stacks, anonymous maps; not the pages of mapped files, which are the kernel's page
/// cache and which it reclaims without writing anything), where the platform has it.
pub fn anon_rss_bytes() -> Option<u64> {
    status_bytes("RssAnon:")
}

/// How often [`AnonRssSampler`] reads [`anon_rss_bytes`].
pub const ANON_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// The highest [`anon_rss_bytes`] seen while it runs: a thread reads it every
/// [`ANON_SAMPLE_INTERVAL`] (Linux keeps a high-water mark only of the whole RSS, `VmHWM`,
/// which counts every touched page of a memory-mapped file). A peak shorter than the
/// interval can be missed.
pub struct AnonRssSampler {
    done: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl AnonRssSampler {
    /// Starts sampling, from `floor` (a peak measured before, so the figure never goes
    /// down from one workload to the next, as `VmHWM` does not).
    pub fn start(floor: u64) -> AnonRssSampler {
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(floor.max(anon_rss_bytes().unwrap_or(0))));
        let thread = {
            let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
            std::thread::Builder::new()
                .name("anon-rss-sampler".into())
                .spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        if let Some(b) = anon_rss_bytes() {
                            peak.fetch_max(b, Ordering::Relaxed);
                        }
                        std::thread::park_timeout(ANON_SAMPLE_INTERVAL);
                    }
                })
                .ok()
        };
        AnonRssSampler { done, peak, thread }
    }

    /// Stops sampling (one last reading included) and returns the peak, or `None` where
    /// the platform has no `RssAnon`.
    pub fn stop(mut self) -> Option<u64> {
        self.finish();
        let last = anon_rss_bytes()?;
        Some(self.peak.fetch_max(last, Ordering::Relaxed).max(last))
    }

    fn finish(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for AnonRssSampler {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Bytes this process passed to write-family syscalls (`wchar` of /proc/self/io): the
/// engine-agnostic way to measure what a peer engine writes, where the platform has it.
pub fn process_bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time the process has used so far (user + system, every thread: background flushes
/// and compactions included), in seconds: `utime` + `stime` of /proc/self/stat, which Linux
/// counts in ticks of 1/100 s. On a machine shared with other work this moves much less
/// than wall time does, so per-operation CPU compares runs that ops/s cannot.
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / 100.0)
}

/// `utime` + `stime` (fields 14 and 15) of a /proc/PID/stat line. The command name (field
/// 2) is parenthesised and may contain spaces, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn parse_kib_field(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .strip_prefix(field)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Total size of the regular files under `dir`, recursively (apparent sizes).
///
/// The engine's background threads delete obsolete files while it runs: a file (or a
/// directory) that vanishes between the listing and its `stat` no longer takes space and
/// is skipped, not an error.
pub fn dir_size(dir: &Path) -> io::Result<u64> {
    fn gone(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::NotFound
    }
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Err(e) if gone(&e) && d != dir => continue,
            other => other?,
        };
        for e in entries {
            let e = match e {
                Err(e) if gone(&e) => continue,
                other => other?,
            };
            let meta = match e.metadata() {
                Err(e) if gone(&e) => continue,
                other => other?,
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_the_command_name() {
        let s = "123 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(s), Some(290));
        assert_eq!(parse_cpu_ticks("123 (x) S 1 2"), None);
        assert!(process_cpu_secs().is_some_and(|c| c >= 0.0));
    }

    #[test]
    fn parses_vmhwm() {
        let s = "Name:\tx\nVmPeak:\t  2000 kB\nVmHWM:\t    1234 kB\n";
        assert_eq!(parse_kib_field(s, "VmHWM:"), Some(1234 * 1024));
        assert_eq!(parse_kib_field(s, "VmRSS:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn anon_sampler_sees_an_allocation_made_while_it_runs() {
        let before = anon_rss_bytes().unwrap_or(0);
        let sampler = AnonRssSampler::start(0);
        // 64 MiB, every page written (so resident), held past a few sampling intervals.
        let big = vec![1u8; 64 << 20];
        std::thread::sleep(ANON_SAMPLE_INTERVAL * 5);
        assert_eq!(
            big.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>(),
            16384
        );
        drop(big);
        let peak = sampler.stop().unwrap_or(0);
        assert!(peak >= before + (60 << 20), "peak {peak}, before {before}");
        // The floor carries a peak from before.
        assert!(AnonRssSampler::start(u64::MAX / 2).stop() >= Some(u64::MAX / 2));
    }

    #[test]
    fn dir_size_sums_nested_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), [0u8; 100])?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 23])?;
        assert_eq!(dir_size(dir.path())?, 123);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_counters_are_read() {
        assert!(peak_rss_bytes().is_some_and(|b| b > 0));
        assert!(process_bytes_written().is_some());
    }
}
