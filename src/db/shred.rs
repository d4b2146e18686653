//! Crypto-shredding that holds: a table under its own customer managed key is dropped and
//! that key scheduled for deletion, after which every copy of the table (a backup, an old
//! disk image) is unreadable, because the only thing that unwraps its table key is gone
//! from the KMS (DESIGN.md, "Crypto-shredding").

use std::time::SystemTime;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kms::{Caller, KeyManager};

use super::{no_kms, Db};

/// ScheduleKeyDeletion's pending window, in days (AWS KMS's bounds and default).
pub(crate) const MIN_PENDING_DAYS: u32 = 7;
/// The longest pending window.
pub(crate) const MAX_PENDING_DAYS: u32 = 30;

/// What [`Db::drop_table_and_delete_key`] did.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct KeyDeletion {
    /// The dropped table.
    pub table: String,
    /// The KMS key scheduled for deletion.
    pub key_arn: String,
    /// When the KMS deletes the key (as the KMS reports it).
    pub deletion_date: Option<SystemTime>,
}

impl Db {
    /// Drops `table` (as [`Db::drop_table`]) and schedules its KMS key for deletion in
    /// `pending_days` (7 to 30). Refused with [`Error::KeyNotDeletable`], before anything is
    /// dropped, unless the table is encrypted under a customer managed key that nothing
    /// else this database or the KMS knows of uses: not the shared service default key, no
    /// other table of this database, no grant on the key besides the table's own.
    ///
    /// Once the KMS deletes the key, every copy of the table (backups, old disk images,
    /// restored databases) is unreadable: each read reports the table locked because its
    /// key is deleted (`Error::TableLocked`, `LockReason::KeyDeleted`). Until then the KMS
    /// can cancel the deletion and the copies read again. If the scheduling itself fails
    /// after the drop, the table is dropped and the error says so; schedule the key's
    /// deletion in the KMS directly.
    pub fn drop_table_and_delete_key(&self, table: &str, pending_days: u32) -> Result<KeyDeletion> {
        let t = self.table(table)?;
        let refuse = |key: &str, reason: String| Error::KeyNotDeletable {
            table: table.to_owned(),
            key: key.to_owned(),
            reason,
        };
        if !(MIN_PENDING_DAYS..=MAX_PENDING_DAYS).contains(&pending_days) {
            return Err(Error::InvalidArgument(format!(
                "the pending window is {MIN_PENDING_DAYS} to {MAX_PENDING_DAYS} days, not {pending_days}"
            )));
        }
        if !t.state.is_encrypted() {
            return Err(refuse(
                "",
                "the table is plaintext: it has no KMS key".into(),
            ));
        }
        let kms = self.core().opts.kms.as_ref().ok_or_else(|| no_kms(table))?;
        let meta = t.state.meta.read().clone();
        let key = meta.key_arn.as_str();
        let caller = Caller::direct((*self.principal).clone());
        let described = kms.describe_key(&caller, key)?;
        if described.key_manager != KeyManager::Customer {
            return Err(refuse(
                key,
                "it is the service default key, shared by every table created without a key \
                 id; drop the table without deleting its key"
                    .into(),
            ));
        }
        let others = self.tables_under(table, key);
        if !others.is_empty() {
            return Err(refuse(
                key,
                format!("table(s) {} of this database use it too", others.join(", ")),
            ));
        }
        // Users of the key outside this database (another database's engine, grants made
        // by hand) hold grants on it; the table's own grant (shared by its indexes and by
        // any restored copy of it) is the only one allowed.
        let foreign = kms
            .list_grants(&caller, key)?
            .into_iter()
            .filter(|g| g.grant_id != meta.grant_id)
            .count();
        if foreign > 0 {
            return Err(refuse(
                key,
                format!(
                    "{foreign} other grant(s) on it let another user use it (another database, \
                     or a grant made by hand); retire them first"
                ),
            ));
        }
        self.drop_table(table)?;
        // A table created under the key since the check above keeps it alive.
        let others = self.tables_under(table, key);
        if !others.is_empty() {
            return Err(Error::TableUnavailable {
                table: table.to_owned(),
                reason: format!(
                    "the table was dropped, but its KMS key {key} was not scheduled for \
                     deletion: table(s) {} were created under it meanwhile",
                    others.join(", ")
                ),
            });
        }
        kms.schedule_key_deletion(&caller, key, pending_days)
            .map_err(|e| {
                Error::TableUnavailable {
                    table: table.to_owned(),
                    reason: format!(
                        "the table was dropped, but scheduling the deletion of its KMS key {key} failed ({e}); schedule it in the KMS"
                    ),
                }
            })?;
        let deletion_date = kms
            .describe_key(&caller, key)
            .ok()
            .and_then(|md| md.deletion_date);
        Ok(KeyDeletion {
            table: table.to_owned(),
            key_arn: meta.key_arn.clone(),
            deletion_date,
        })
    }

    /// The tables of this database other than `table` whose KMS key is `key_arn`, sorted.
    fn tables_under(&self, table: &str, key_arn: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .core()
            .versions
            .tables()
            .by_name
            .values()
            .filter(|o| o.name != table && o.meta.read().key_arn == key_arn)
            .map(|o| o.name.clone())
            .collect();
        v.sort();
        v
    }
}
