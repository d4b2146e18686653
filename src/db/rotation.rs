//! Changing the KMS wrap of a table key without touching the table's data (DESIGN.md
//! section 11, "Key lifecycle"):
//!
//! - **Re-wrap** after a master-key rotation: the table key's KMS blob names the key
//!   material that sealed it; once the KMS key has newer material, the engine asks the KMS
//!   to ReEncrypt the blob to the same key under the same encryption context (the table
//!   key never leaves the KMS) and commits the new blob in one `SetTableKey` record.
//! - **Key switch** (`update_table_key`, DynamoDB's UpdateTable with SSESpecification): the
//!   same table key, re-wrapped under another KMS key, with a grant on the new key and the
//!   old grant retired.
//!
//! Both commit with one manifest record (`SetTableKey` for the table and each of its
//! indexes; for a key switch during a table-key rotation, also a `TableKeyVersion` per
//! older version, with its wrapped key re-encrypted to the new KMS key), MACed under the unchanged table key and the database key like every catalogue
//! edit, so a crash leaves the table wrapped under the old blob or the new one, both of
//! which decrypt. A key switch queues both of its grants for retirement (durably) before
//! that record; whichever the catalogue names after a crash stays, the other is retired.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::kms::SERVICE_DEFAULT_ALIAS;
use crate::manifest::{Edit, OldTableKey, TableMeta, VersionEdit};

use super::{Db, DbInner, TableState};

/// How often (on `Options::clock`) the background worker looks for table keys wrapped under
/// older key material.
pub(crate) const REWRAP_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What became of one table in a re-wrap pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RewrapOutcome {
    /// The table.
    pub table: String,
    /// The key material its table key was wrapped under before.
    pub from_material: String,
    /// The key material it is wrapped under now.
    pub to_material: String,
}

impl Db {
    /// Re-wraps, now, every encrypted table's key whose KMS key has newer key material than
    /// the material that wrapped it (ReEncrypt to the same key and context; no data is
    /// rewritten). The background worker does the same every minute on the clock. Tables
    /// that are locked, or whose KMS blobs do not show their material (AWS KMS), are
    /// skipped. Returns the tables re-wrapped.
    pub fn rewrap_table_keys(&self) -> Result<Vec<RewrapOutcome>> {
        self.core().rewrap_stale_keys(true)
    }

    /// Switches `table` to another KMS key (`key_id`: id, ARN or alias; `None`: the
    /// service default key), as DynamoDB's UpdateTable with an SSESpecification does: the
    /// same table key is re-wrapped under the new key (ReEncrypt; no data is rewritten), a
    /// grant for the engine on the new key is created on this principal's behalf, and the
    /// old grant is retired. This principal must be able to use the table's current key
    /// (a fresh KMS check) and to create a grant on the new one. Reads and writes go on
    /// throughout. Returns the ARN of the key the table is under afterwards.
    pub fn update_table_key(&self, table: &str, key_id: Option<&str>) -> Result<String> {
        let t = self.table(table)?;
        if !t.state.is_encrypted() {
            return Err(Error::InvalidArgument(format!(
                "table {table:?} is plaintext; its encryption cannot be switched on"
            )));
        }
        self.core().switch_table_key(
            &self.principal,
            &t.state,
            key_id.unwrap_or(SERVICE_DEFAULT_ALIAS),
        )
    }

    /// The key material the table key of `table` is wrapped under, when the KMS's blobs
    /// show it (the local KMS); `None` for plaintext tables and opaque blobs.
    pub fn table_key_material(&self, table: &str) -> Result<Option<String>> {
        let t = self.table(table)?;
        let Some(keyring) = &self.core().keyring else {
            return Ok(None);
        };
        let meta = t.state.meta.read().clone();
        Ok(meta
            .encrypted
            .then(|| keyring.key_material(table, &meta))
            .flatten())
    }
}

impl DbInner {
    /// The worker's tick: a re-wrap pass every `REWRAP_CHECK_INTERVAL`, on the KMS keys'
    /// current material as last described (DescribeKey again only once that answer is
    /// older than the keyring's refresh interval). Failures are left for the next pass (the
    /// table stays under its old, still valid, blob).
    pub(crate) fn rewrap_if_due(&self) {
        let Some(keyring) = &self.keyring else {
            return;
        };
        if keyring.rewrap_check_due(REWRAP_CHECK_INTERVAL) {
            let _ = self.rewrap_stale_keys(false);
        }
    }

    /// Every grant id the catalogue names (tables and indexes).
    pub(crate) fn grants_in_use(&self) -> HashSet<String> {
        self.all_tables()
            .iter()
            .map(|t| t.meta.read().grant_id.clone())
            .filter(|g| !g.is_empty())
            .collect()
    }

    /// `fresh`: ask the KMS for each key's current material now (an explicit call), else
    /// trust the keyring's recent answer (the worker's pass).
    fn rewrap_stale_keys(&self, fresh: bool) -> Result<Vec<RewrapOutcome>> {
        let Some(keyring) = self.keyring.clone() else {
            return Ok(Vec::new());
        };
        let mut current: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        let mut out = Vec::new();
        let mut first_error = None;
        for t in self.all_tables() {
            if t.index.get().is_some() || !t.is_encrypted() || t.is_locked() {
                continue;
            }
            let meta = t.meta.read().clone();
            let Some(have) = keyring.key_material(&t.name, &meta) else {
                continue;
            };
            let newest = match current.get(&meta.key_arn) {
                Some(c) => c.clone(),
                None => {
                    let c = match keyring.current_material(&meta.key_arn, fresh) {
                        Ok(c) => c,
                        Err(e) => {
                            first_error.get_or_insert(e);
                            None
                        }
                    };
                    current.insert(meta.key_arn.clone(), c.clone());
                    c
                }
            };
            let Some(newest) = newest else { continue };
            if newest == have {
                continue;
            }
            let res = keyring
                .re_encrypt_table_key(&t.name, &meta, &meta.key_arn)
                .and_then(|wrapped| {
                    let mut next = meta.clone();
                    next.wrapped_table_key = wrapped;
                    self.commit_table_meta(&t, &meta, next, None)
                });
            match res {
                Ok(true) => out.push(RewrapOutcome {
                    table: t.name.clone(),
                    from_material: have,
                    to_material: keyring
                        .key_material(&t.name, &t.meta.read())
                        .unwrap_or_default(),
                }),
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// Commits `next` as the key material of `t` and its indexes in one `SetTableKey`
    /// record, if `t`'s material is still `expected` (else another change won: false).
    /// `older`: the older table-key versions' wrapped keys re-encrypted to `next`'s KMS key
    /// (a key switch), recorded in the same record as `TableKeyVersion` edits, which
    /// replace the versions' wrapped keys; every live older version must be among them
    /// (one retired meanwhile is left out). `None`: the older versions stay as they are
    /// (a re-wrap under the same KMS key).
    fn commit_table_meta(
        &self,
        t: &Arc<TableState>,
        expected: &TableMeta,
        next: TableMeta,
        older: Option<&BTreeMap<u32, Vec<u8>>>,
    ) -> Result<bool> {
        // The record is MACed under the table key: the engine's copy must be at hand (the
        // indexes share it).
        self.maintenance_key(t)?;
        let indexes = t.indexes.read().clone();
        for i in &indexes {
            self.maintenance_key(i)?;
        }
        let _ws = self.write.lock();
        let mut versions = self.versions.lock();
        if *t.meta.read() != *expected || t.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        let index_meta = crate::index::index_meta(&next);
        let mut edits = vec![Edit::SetTableKey {
            table: t.id,
            meta: next.clone(),
        }];
        edits.extend(indexes.iter().map(|i| Edit::SetTableKey {
            table: i.id,
            meta: index_meta.clone(),
        }));
        // The older versions, re-encrypted: the table's and its indexes' (which share the
        // table's keys). No rotation runs meanwhile (the caller holds the key-change lock)
        // and retirement only removes versions, under the manifest lock held here.
        let mut replaced: Vec<(&Arc<TableState>, OldTableKey)> = Vec::new();
        if let Some(older) = older {
            for s in std::iter::once(t).chain(indexes.iter()) {
                for o in s.key_versions.read().old.values() {
                    let Some(wrapped) = older.get(&o.version) else {
                        return Ok(false);
                    };
                    replaced.push((
                        s,
                        OldTableKey {
                            wrapped_table_key: wrapped.clone(),
                            ..o.clone()
                        },
                    ));
                }
            }
        }
        edits.extend(
            replaced
                .iter()
                .map(|(_, o)| Edit::TableKeyVersion(o.clone())),
        );
        versions.log_and_apply(&VersionEdit { edits }, None, |_| {
            *t.meta.write() = next;
            for i in &indexes {
                *i.meta.write() = index_meta.clone();
            }
            for (s, o) in &replaced {
                if let Some(slot) = s.key_versions.write().old.get_mut(&o.version) {
                    slot.wrapped_table_key = o.wrapped_table_key.clone();
                }
            }
        })?;
        Ok(true)
    }

    fn switch_table_key(
        &self,
        principal: &crate::kms::Principal,
        t: &Arc<TableState>,
        key_id: &str,
    ) -> Result<String> {
        let keyring = self.keyring_for(t)?.clone();
        let name = t.name.clone();
        let meta = t.meta.read().clone();
        // The principal must be able to use the table's key now (as for a drop).
        keyring.confirm_access(principal, &name, &meta, false)?;
        let target = keyring.describe_for(principal, key_id)?;
        if target.arn == meta.key_arn {
            return Ok(target.arn);
        }
        // No grant retirement runs until this change has committed or given up.
        let change = keyring.key_change_lock();
        if *t.meta.read() != meta {
            return Err(Error::InvalidArgument(format!(
                "table {name:?}: its key changed meanwhile; retry"
            )));
        }
        // Older table-key versions (a table-key rotation in progress) are wrapped under the
        // current KMS key too: each is re-encrypted to the new key below and recorded in the
        // same record, so that every file opens under the new key and grant. No new version
        // appears meanwhile (rotations take the key-change lock held here).
        let older: Vec<OldTableKey> = t.key_versions.read().old.values().cloned().collect();
        let new_grant = keyring.create_grant_on(principal, &target.arn, &name, &meta)?;
        // Both grants are queued before anything else: after a crash, the one the
        // catalogue does not name is retired, the other dropped from the queue.
        if let Err(e) = keyring.queue_durably(
            principal,
            &name,
            &[
                (meta.key_arn.as_str(), meta.grant_id.as_str()),
                (target.arn.as_str(), new_grant.as_str()),
            ],
        ) {
            keyring.settle_pending(self.grants_in_use());
            return Err(e);
        }
        let committed = keyring
            .re_encrypt_table_key(&name, &meta, &target.arn)
            .and_then(|wrapped| {
                let mut re_encrypted = BTreeMap::new();
                for o in &older {
                    let version = TableMeta {
                        wrapped_table_key: o.wrapped_table_key.clone(),
                        ..meta.clone()
                    };
                    re_encrypted.insert(
                        o.version,
                        keyring.re_encrypt_table_key(&name, &version, &target.arn)?,
                    );
                }
                let mut next = meta.clone();
                next.key_arn = target.arn.clone();
                next.wrapped_table_key = wrapped;
                next.grant_id = new_grant.clone();
                self.commit_table_meta(t, &meta, next, Some(&re_encrypted))
            });
        // Committed or not, the queue now sorts the two grants out: the catalogue's stays.
        // Unless the database is poisoned: then the record may be on disk or not, and the
        // next open, which knows, settles the queue.
        if self.check_poisoned().is_ok() {
            keyring.settle_pending(self.grants_in_use());
        }
        drop(change);
        match committed {
            Ok(true) => {
                // Every principal's access is checked again, against the new key's policy.
                keyring.forget_table(&name);
                Ok(target.arn)
            }
            Ok(false) => Err(Error::InvalidArgument(format!(
                "table {name:?}: its key changed meanwhile; retry"
            ))),
            Err(e) => Err(e),
        }
    }
}
