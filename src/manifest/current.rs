//! The `CURRENT` file: names the live manifest. Switched atomically.
//!
//! ```text
//! CURRENT = filename::manifest(number) "\n"      (ASCII, nothing else: "MANIFEST-000003\n")
//! ```

use std::path::Path;

use crate::error::{Error, Result};
use crate::filename::{self, CURRENT, CURRENT_TMP};
use crate::storage::{join, Env};
use crate::types::FileNumber;

/// Points `CURRENT` at manifest `number`, atomically: after a crash, `CURRENT` names
/// either the old manifest or the new one, never a mix, never nothing.
pub(crate) fn set_current(env: &dyn Env, dir: &Path, number: FileNumber) -> Result<()> {
    let tmp = join(dir, CURRENT_TMP);
    let cur = join(dir, CURRENT);
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    let staged = (|| {
        let mut f = env.create(&tmp).map_err(|e| io("creating", e))?;
        f.append(format!("{}\n", filename::manifest(number)).as_bytes())
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
        .and_then(filename::manifest_number)
        .ok_or_else(|| Error::corruption(CURRENT, 0, "CURRENT does not name a manifest"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdEnv;

    #[test]
    fn contents() -> Result<()> {
        assert_eq!(parse_current(b"MANIFEST-000003\n")?, FileNumber(3));
        for bad in [
            &b"MANIFEST-000003"[..],
            b"MANIFEST-000003\n\n",
            b"",
            b"\xff\n",
            b"MANIFEST-3\n",
            b"MANIFEST-0000003\n",
            b"000003.log\n",
        ] {
            assert!(parse_current(bad).is_err());
        }
        Ok(())
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
