//! Process- and directory-level measurements: peak RSS, bytes written by the process, CPU
//! time of the process, the size of a directory tree.

use std::io;
use std::path::Path;

/// The process's peak resident set size in bytes (`VmHWM` of /proc/self/status), where
/// the platform has it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib_field(&status, "VmHWM:")
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
