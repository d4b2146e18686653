//! The `CURRENT` file: names the live manifest. Switched atomically.
//!
//! ```text
//! CURRENT = "MANIFEST-" digits{6,} "\n"      (ASCII, nothing else)
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::{join, Env};
use crate::types::FileNumber;

pub(crate) const CURRENT: &str = "CURRENT";
const CURRENT_TMP: &str = "CURRENT.tmp";
const PREFIX: &str = "MANIFEST-";

/// `MANIFEST-NNNNNN`.
pub(crate) fn manifest_file_name(number: FileNumber) -> String {
    format!("{PREFIX}{number}")
}

/// The number of a file name, if it names a manifest.
pub(crate) fn parse_manifest_file_name(name: &str) -> Option<FileNumber> {
    let digits = name.strip_prefix(PREFIX)?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(FileNumber)
}

/// Points `CURRENT` at manifest `number`, atomically: after a crash, `CURRENT` names
/// either the old manifest or the new one, never a mix, never nothing.
pub(crate) fn set_current(env: &dyn Env, dir: &Path, number: FileNumber) -> Result<()> {
    let tmp = join(dir, CURRENT_TMP);
    let cur = join(dir, CURRENT);
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    let staged = (|| {
        let mut f = env.create(&tmp).map_err(|e| io("creating", e))?;
        f.append(format!("{}\n", manifest_file_name(number)).as_bytes())
            .map_err(|e| io("writing", e))?;
        // IMPORTANT: the new contents are durable before the rename can expose them.
        f.sync().map_err(|e| io("syncing", e))?;
        drop(f);
        // IMPORTANT: rename replaces CURRENT atomically (POSIX rename semantics).
        env.rename(&tmp, &cur).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", tmp.display(), cur.display()),
                e,
            )
        })
    })();
    if let Err(e) = staged {
        // CURRENT is unchanged: the temporary goes, so a failure leaves nothing behind.
        let _ = env.remove_file(&tmp);
        return Err(e);
    }
    // IMPORTANT: the rename itself is durable only once the directory is synced.
    env.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))?;
    Ok(())
}

/// The manifest `CURRENT` names, if it can be read and names one.
pub(crate) fn current_manifest_number(env: &dyn Env, dir: &Path) -> Option<FileNumber> {
    read_current_number(env, dir).ok().flatten()
}

/// The manifest `CURRENT` names; `None` when there is no `CURRENT` (a new database).
pub(crate) fn read_current_number(env: &dyn Env, dir: &Path) -> Result<Option<FileNumber>> {
    let cur = join(dir, CURRENT);
    if !env.exists(&cur) {
        return Ok(None);
    }
    let bytes = env
        .read_all(&cur)
        .map_err(|e| Error::io(format!("reading {}", cur.display()), e))?;
    parse_current(&bytes).map(Some)
}

fn parse_current(bytes: &[u8]) -> Result<FileNumber> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(parse_manifest_file_name)
        .ok_or_else(|| Error::corruption(CURRENT, 0, "CURRENT does not name a manifest"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdEnv;

    #[test]
    fn names_and_contents() {
        assert_eq!(manifest_file_name(FileNumber(3)), "MANIFEST-000003");
        assert_eq!(
            parse_manifest_file_name("MANIFEST-000003"),
            Some(FileNumber(3))
        );
        assert_eq!(parse_manifest_file_name("MANIFEST-3"), None);
        assert_eq!(parse_manifest_file_name("MANIFEST-00000x"), None);
        assert!(parse_current(b"MANIFEST-000003\n").is_ok());
        for bad in [
            &b"MANIFEST-000003"[..],
            b"MANIFEST-000003\n\n",
            b"",
            b"\xff\n",
        ] {
            assert!(parse_current(bad).is_err());
        }
    }

    #[test]
    fn switch_replaces_and_leaves_no_temp() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        assert_eq!(read_current_number(&StdEnv, dir.path())?, None);
        set_current(&StdEnv, dir.path(), FileNumber(1))?;
        assert_eq!(
            read_current_number(&StdEnv, dir.path())?,
            Some(FileNumber(1))
        );
        set_current(&StdEnv, dir.path(), FileNumber(2))?;
        assert_eq!(
            read_current_number(&StdEnv, dir.path())?,
            Some(FileNumber(2))
        );
        assert!(!dir.path().join(CURRENT_TMP).exists());
        Ok(())
    }
}
