//! Grants the engine still has to retire: those of dropped tables (and replaced grants)
//! whose `RetireGrant` failed. Kept in `GRANTS-TO-RETIRE` in the data directory so that a
//! later tick of the worker, in this process or after a restart, retries them.
//!
//! ```text
//! GRANTS-TO-RETIRE (JSON, written whole: GRANTS-TO-RETIRE.tmp, fsync, rename, dir fsync)
//!   {"version": 1, "grants": [{"keyArn": str, "grantId": str, "table": str,
//!                              "principal": str}, ...]}
//! ```
//!
//! No secret is in it (key ARNs and grant ids are in the manifest and the audit trail). The
//! file is advisory: deleting it leaves grants in the KMS that are constrained to a context
//! no table will have again (section 11 of DESIGN.md), never a table without its key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::Env;

/// The file's name in the data directory.
pub(crate) const PENDING_RETIRES_FILE: &str = "GRANTS-TO-RETIRE";
const TEMP_FILE: &str = "GRANTS-TO-RETIRE.tmp";
const VERSION: u32 = 1;

/// One grant to retire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingRetire {
    pub(crate) key_arn: String,
    pub(crate) grant_id: String,
    /// The table whose grant it was (for the record).
    pub(crate) table: String,
    /// The principal whose drop (or renewal) retired it: a grant the engine cannot retire
    /// itself is revoked on that principal's behalf.
    pub(crate) principal: String,
}

#[derive(Serialize, Deserialize)]
struct FileBody {
    version: u32,
    grants: Vec<PendingRetire>,
}

/// The pending list and its file.
pub(crate) struct PendingRetires {
    env: Arc<dyn Env>,
    dir: PathBuf,
    /// `None` until the file was read.
    entries: Mutex<Option<Vec<PendingRetire>>>,
}

impl PendingRetires {
    pub(crate) fn new(env: Arc<dyn Env>, dir: &Path) -> PendingRetires {
        PendingRetires {
            env,
            dir: dir.to_path_buf(),
            entries: Mutex::new(None),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(PENDING_RETIRES_FILE)
    }

    fn load(&self) -> Result<Vec<PendingRetire>> {
        let path = self.path();
        if !self.env.exists(&path) {
            return Ok(Vec::new());
        }
        let bytes = self
            .env
            .read_all(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| {
            Error::corruption(PENDING_RETIRES_FILE, 0, format!("not a grant list: {e}"))
        })?;
        if body.version != VERSION {
            return Err(Error::corruption(
                PENDING_RETIRES_FILE,
                0,
                format!("unknown version {}", body.version),
            ));
        }
        Ok(body.grants)
    }

    fn store(&self, grants: &[PendingRetire]) -> Result<()> {
        let path = self.path();
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        if grants.is_empty() {
            if self.env.exists(&path) {
                self.env.remove_file(&path).map_err(|e| io("removing", e))?;
                // IMPORTANT: the removal must be durable, or a crash brings retired grants back
                // (harmless: retiring one again finds it gone).
                self.env.sync_dir(&self.dir).map_err(|e| io("syncing", e))?;
            }
            return Ok(());
        }
        let body = serde_json::to_vec(&FileBody {
            version: VERSION,
            grants: grants.to_vec(),
        })
        .map_err(|e| Error::Internal(format!("encoding the grant list: {e}")))?;
        let tmp = self.dir.join(TEMP_FILE);
        let mut f = self.env.create(&tmp).map_err(|e| io("creating", e))?;
        f.append(&body).map_err(|e| io("writing", e))?;
        // IMPORTANT: the contents are durable before the rename publishes them.
        f.sync().map_err(|e| io("syncing", e))?;
        drop(f);
        // IMPORTANT: atomic replace: a crash leaves the old list or the new one.
        self.env
            .rename(&tmp, &path)
            .map_err(|e| io("renaming", e))?;
        // IMPORTANT: makes the rename durable.
        self.env.sync_dir(&self.dir).map_err(|e| io("syncing", e))
    }

    /// Adds `grants` and writes the list.
    pub(crate) fn add(&self, grants: Vec<PendingRetire>) -> Result<()> {
        if grants.is_empty() {
            return Ok(());
        }
        let mut entries = self.entries.lock();
        // An unreadable list is an error, never replaced by the new entries alone (the
        // grants it queued would be forgotten).
        let mut all = match entries.take() {
            Some(v) => v,
            None => self.load()?,
        };
        for g in grants {
            if !all.iter().any(|p| p.grant_id == g.grant_id) {
                all.push(g);
            }
        }
        let res = self.store(&all);
        *entries = Some(all);
        res
    }

    /// How many grants are queued (read from the file on first use), without copying
    /// them: the worker asks this on every tick before it does any work.
    pub(crate) fn len(&self) -> Result<usize> {
        let mut entries = self.entries.lock();
        if let Some(v) = entries.as_ref() {
            return Ok(v.len());
        }
        let loaded = self.load()?;
        let n = loaded.len();
        *entries = Some(loaded);
        Ok(n)
    }

    /// The pending grants (read from the file on first use).
    pub(crate) fn list(&self) -> Result<Vec<PendingRetire>> {
        let mut entries = self.entries.lock();
        if entries.is_none() {
            *entries = Some(self.load()?);
        }
        Ok(entries.clone().unwrap_or_default())
    }

    /// Removes the grants `done` names and writes the list.
    pub(crate) fn remove(&self, done: &[String]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut entries = self.entries.lock();
        let mut all = match entries.take() {
            Some(v) => v,
            None => self.load()?,
        };
        all.retain(|p| !done.contains(&p.grant_id));
        let res = self.store(&all);
        *entries = Some(all);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StdEnv;

    fn grant(id: &str) -> PendingRetire {
        PendingRetire {
            key_arn: "arn:aws:kms:us-west-2:111122223333:key/k".into(),
            grant_id: id.into(),
            table: "T".into(),
            principal: "p".into(),
        }
    }

    #[test]
    fn len_counts_the_file_and_refuses_an_unreadable_one() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let env: Arc<dyn Env> = Arc::new(StdEnv);
        let p = PendingRetires::new(Arc::clone(&env), dir.path());
        assert_eq!(p.len()?, 0);
        p.add(vec![grant("a"), grant("b"), grant("a")])?;
        assert_eq!(p.len()?, 2);
        // A new process reads the count from the file.
        let again = PendingRetires::new(Arc::clone(&env), dir.path());
        assert_eq!(again.len()?, 2);
        again.remove(&["a".to_string()])?;
        assert_eq!(again.len()?, 1);
        assert_eq!(PendingRetires::new(Arc::clone(&env), dir.path()).len()?, 1);
        std::fs::write(dir.path().join(PENDING_RETIRES_FILE), b"{not json")
            .map_err(|e| Error::io("write", e))?;
        assert!(PendingRetires::new(env, dir.path()).len().is_err());
        Ok(())
    }
}
