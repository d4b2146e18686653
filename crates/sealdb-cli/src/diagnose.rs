//! Second sentences for failures whose first sentence does not say what to do: which
//! process holds a lock, and an `--account`/`--region` that is not the one of the keys.

use std::path::Path;

/// The lock file a database directory and a keystore directory each hold while open
/// (the engine's `LOCK` and the local KMS's `LOCK`).
pub const LOCK_FILE: &str = "LOCK";

/// The pid and "process 4242 (sealdb put Books k v)" of the process holding the lock on
/// `dir/LOCK`, when the OS says who holds it (Linux `/proc/locks`); `None` elsewhere or
/// when no process holds it.
pub fn lock_holder(dir: &Path) -> Option<(u32, String)> {
    let path = dir.join(LOCK_FILE);
    let pid = lock_holder_pid(&path)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let shown = match args.as_slice() {
        [] => format!("process {pid}"),
        [prog, rest @ ..] => {
            let name = Path::new(prog)
                .file_name()
                .map_or_else(|| prog.clone(), |n| n.to_string_lossy().into_owned());
            let shown = std::iter::once(name)
                .chain(rest.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            format!("process {pid} ({shown})")
        }
    };
    Some((pid, shown))
}

#[cfg(target_os = "linux")]
fn lock_holder_pid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in_proc_locks(&locks, ino)
}

#[cfg(not(target_os = "linux"))]
fn lock_holder_pid(_path: &Path) -> Option<u32> {
    None
}

/// The pid of the first lock on inode `ino` in a `/proc/locks` listing, e.g.
/// `1: FLOCK  ADVISORY  WRITE 4242 fe:00:10635554 0 EOF` (`->` lines are waiters).
fn holder_in_proc_locks(listing: &str, ino: u64) -> Option<u32> {
    listing.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") {
            return None;
        }
        let pid = fields.get(4)?.parse().ok()?;
        let file_ino = fields.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (file_ino == ino).then_some(pid)
    })
}

/// When `message` names KMS key ARNs of another account or region than the ones the
/// command ran with, the sentence that says so (and what to pass instead).
pub fn account_region_mismatch(message: &str, account: &str, region: &str) -> Option<String> {
    for arn in message
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '"' | '(' | ')'))
        .filter(|w| w.starts_with("arn:aws:kms:"))
    {
        let mut parts = arn.splitn(6, ':').skip(3);
        let (Some(key_region), Some(key_account)) = (parts.next(), parts.next()) else {
            continue;
        };
        let mut wrong = Vec::new();
        if key_account != account {
            wrong.push(format!(
                "--account is {account} but the key belongs to account {key_account}"
            ));
        }
        if key_region != region {
            wrong.push(format!(
                "--region is {region} but the key is in region {key_region}"
            ));
        }
        if !wrong.is_empty() {
            return Some(format!(
                "{}: pass --account {key_account} --region {key_region} (or set SEALDB_ACCOUNT \
                 and SEALDB_REGION)",
                wrong.join(", and ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines() {
        let listing = "1: FLOCK  ADVISORY  WRITE 31437 fe:00:10635554 0 EOF\n\
                       1: -> FLOCK  ADVISORY  WRITE 999 fe:00:77 0 EOF\n\
                       2: POSIX  ADVISORY  WRITE 4242 08:01:77 0 EOF\n";
        assert_eq!(holder_in_proc_locks(listing, 10635554), Some(31437));
        assert_eq!(holder_in_proc_locks(listing, 77), Some(4242));
        assert_eq!(holder_in_proc_locks(listing, 5), None);
        assert_eq!(holder_in_proc_locks("garbage\n\n1: FLOCK", 5), None);
    }

    #[test]
    fn mismatched_account_and_region() {
        let m = "KMS: sealdb.us-west-2.amazonaws.com is not authorized to perform kms:Decrypt \
                 on arn:aws:kms:us-west-2:111122223333:key/7f27";
        let hint = account_region_mismatch(m, "999988887777", "us-west-2");
        assert_eq!(
            hint.as_deref(),
            Some(
                "--account is 999988887777 but the key belongs to account 111122223333: pass \
                 --account 111122223333 --region us-west-2 (or set SEALDB_ACCOUNT and \
                 SEALDB_REGION)"
            )
        );
        let hint = account_region_mismatch(m, "111122223333", "eu-west-1");
        assert!(hint.is_some_and(|h| h.starts_with("--region is eu-west-1 but the key is in")));
        assert_eq!(
            account_region_mismatch(m, "111122223333", "us-west-2"),
            None
        );
        assert_eq!(account_region_mismatch("no arn here", "1", "r"), None);
    }
}
