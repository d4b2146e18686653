//! Locked tables: an encrypted table whose key cannot be had is shut, not the database.
//!
//! At open, a table whose key the engine cannot unwrap (its grant revoked and the opening
//! principal refused too, its KMS key disabled, pending deletion or deleted, the KMS
//! unreachable) is *locked*: its files stay as they are, the WAL segments holding its
//! unflushed (sealed) records are kept and listed, and every read or write of it returns
//! [`Error::TableLocked`] naming the reason. Every other table works normally. The next
//! access after the cause is gone unlocks it in place (with a backoff between KMS attempts):
//! the key is unwrapped, the table's boundaries opened, its WAL records replayed into its
//! memtable, and it is flushed like any other table.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::crypto::TableKey;
use crate::error::{Error, Result};
use crate::kms::{KmsError, Principal};
use crate::manifest::{open_boundary, Boundary, TableMeta};
use crate::memtable::MemTable;
use crate::types::{FileNumber, TableId};
use crate::wal;

use super::keyring::Keyring;
use super::table::{SuperVersion, TableState};
use super::version::Version;
use super::write_batch::decode_section;
use super::DbInner;
use crate::filename;

/// Why a table is locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockReason {
    /// The engine's grant on the table's KMS key was revoked (or retired), and the principal
    /// asking may not use the key either.
    GrantRevoked,
    /// The table's KMS key is disabled.
    KeyDisabled,
    /// The table's KMS key is scheduled for deletion.
    KeyPendingDeletion,
    /// The table's KMS key no longer exists: the table can never be read again (drop it to
    /// reclaim its space).
    KeyDeleted,
    /// The KMS did not answer.
    KmsUnavailable,
    /// The KMS refused the call for another reason.
    AccessDenied,
}

impl LockReason {
    /// The short label `tables` and `status` print.
    pub fn as_str(self) -> &'static str {
        match self {
            LockReason::GrantRevoked => "grant revoked",
            LockReason::KeyDisabled => "key disabled",
            LockReason::KeyPendingDeletion => "key pending deletion",
            LockReason::KeyDeleted => "key deleted",
            LockReason::KmsUnavailable => "KMS unavailable",
            LockReason::AccessDenied => "access denied",
        }
    }

    /// True when the table can never unlock (its key is gone).
    pub fn is_permanent(self) -> bool {
        self == LockReason::KeyDeleted
    }

    /// The reason a KMS failure to unwrap a table key locks the table for, or `None` when
    /// the failure is not about the key's availability (damage, a bug): then the open fails.
    pub(crate) fn of(e: &Error) -> Option<LockReason> {
        let kms = match e {
            Error::Kms(k) => k,
            Error::TableLocked { reason, .. } => return Some(*reason),
            // The keyring reports an outage with no usable cached key this way.
            Error::TableUnavailable { reason, .. } if reason.contains("KMS is unavailable") => {
                return Some(LockReason::KmsUnavailable)
            }
            _ => return None,
        };
        Some(match kms {
            KmsError::Disabled(_) => LockReason::KeyDisabled,
            KmsError::InvalidState { state, .. } if state == "PendingDeletion" => {
                LockReason::KeyPendingDeletion
            }
            KmsError::InvalidState { .. } => LockReason::AccessDenied,
            KmsError::NotFound(_) => LockReason::KeyDeleted,
            KmsError::Unavailable(_) => LockReason::KmsUnavailable,
            KmsError::AccessDenied { .. } | KmsError::InvalidGrant(_) => LockReason::AccessDenied,
            _ => return None,
        })
    }
}

impl fmt::Display for LockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first wait between two attempts to unlock a table through the KMS.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a locked table needs to come back.
#[derive(Debug)]
pub(crate) struct Lock {
    pub(crate) reason: LockReason,
    /// The KMS's words, for `status`.
    pub(crate) detail: String,
    /// The table's unflushed records are in WAL segments from its log number up to (not
    /// including) this one: the segment the open that locked it started.
    pub(crate) replay_until: FileNumber,
    /// Segments from this one on may end in a torn record (as at that open).
    pub(crate) torn_from: FileNumber,
    /// On the database's clock (`Options::clock`).
    next_attempt: SystemTime,
    backoff: Duration,
}

impl Lock {
    pub(crate) fn new(
        reason: LockReason,
        detail: String,
        replay_until: FileNumber,
        torn_from: FileNumber,
        now: SystemTime,
    ) -> Lock {
        Lock {
            reason,
            detail,
            replay_until,
            torn_from,
            next_attempt: now + FIRST_BACKOFF,
            backoff: FIRST_BACKOFF,
        }
    }

    /// True when an access may try the KMS again now.
    pub(crate) fn may_retry(&self, now: SystemTime) -> bool {
        !self.reason.is_permanent() && now >= self.next_attempt
    }

    /// Records a failed attempt: the reason may have changed; the next wait doubles.
    pub(crate) fn failed(&mut self, reason: LockReason, detail: String, now: SystemTime) {
        self.reason = reason;
        self.detail = detail;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.next_attempt = now + self.backoff;
    }

    /// Lets the next access try at once (an operator fixed the cause).
    pub(crate) fn retry_now(&mut self) {
        self.next_attempt = SystemTime::UNIX_EPOCH;
    }
}

/// A table key unwrapped at open or at unlock.
pub(crate) struct Unwrapped {
    pub(crate) key: Arc<TableKey>,
    /// Set when only the principal's own access worked (the engine's grant is gone): the
    /// table is usable, its upkeep stops until `renew_grant`.
    pub(crate) maintenance_stopped: Option<String>,
}

/// Why a table key could not be unwrapped.
pub(crate) enum Unavailable {
    /// The key cannot be had now: the table is locked.
    Locked(LockReason, String),
    /// Anything else (damage, a bug): the caller fails.
    Failed(Error),
}

/// Unwraps `table`'s key: through the engine's grant (`kms:ViaService`, as every upkeep
/// call), else through `principal`'s own access under the key policy, which is how a table
/// whose grant was revoked still opens for its owner (DESIGN.md section 5).
pub(crate) fn unwrap_table_key(
    keyring: &Keyring,
    principal: &Principal,
    table: &str,
    meta: &TableMeta,
) -> std::result::Result<Unwrapped, Unavailable> {
    let engine = match keyring.key_for(&keyring.service_principal(), table, meta) {
        Ok(key) => {
            return Ok(Unwrapped {
                key,
                maintenance_stopped: None,
            })
        }
        Err(e) => e,
    };
    let Some(engine_reason) = LockReason::of(&engine) else {
        return Err(Unavailable::Failed(engine));
    };
    // The key itself is out of reach: asking again as the principal changes nothing.
    if matches!(
        engine_reason,
        LockReason::KeyDisabled | LockReason::KeyPendingDeletion | LockReason::KeyDeleted
    ) || principal.arn == keyring.service_principal().arn
    {
        return Err(Unavailable::Locked(engine_reason, engine.to_string()));
    }
    match keyring.key_for(principal, table, meta) {
        Ok(key) => Ok(Unwrapped {
            key,
            maintenance_stopped: Some(format!(
                "{}: the engine cannot use the table key ({engine}); run renew-grant",
                if engine_reason == LockReason::AccessDenied {
                    LockReason::GrantRevoked
                } else {
                    engine_reason
                }
            )),
        }),
        Err(e) => {
            let Some(reason) = LockReason::of(&e) else {
                return Err(Unavailable::Failed(e));
            };
            // The engine's access is its grant: refused while the key is usable, the grant
            // is what went.
            let reason = match (engine_reason, reason) {
                (LockReason::AccessDenied, LockReason::AccessDenied) => LockReason::GrantRevoked,
                (_, r) => r,
            };
            Err(Unavailable::Locked(
                reason,
                format!("{engine}; as {}: {e}", principal.arn),
            ))
        }
    }
}

fn locked_error(t: &TableState, reason: LockReason) -> Error {
    Error::TableLocked {
        table: t.name.clone(),
        reason,
    }
}

impl DbInner {
    /// Passes when `t` is not locked; else tries to unlock it now (at most once per backoff
    /// interval), as the engine or as `principal`, and says why it stays locked.
    pub(crate) fn check_unlocked(&self, principal: &Principal, t: &Arc<TableState>) -> Result<()> {
        if !t.is_locked() {
            return Ok(());
        }
        // One attempt at a time per table; its other callers wait for the outcome.
        let mut slot = t.lock.lock();
        let Some(lock) = slot.as_mut() else {
            return Ok(());
        };
        let now = self.opts.clock.now();
        if !lock.may_retry(now) {
            return Err(locked_error(t, lock.reason));
        }
        match self.unlock(principal, t, lock) {
            Ok(()) => {
                *slot = None;
                t.locked.store(false, std::sync::atomic::Ordering::Release);
                drop(slot);
                // A table's indexes are under its key: they unlock with it.
                crate::index::unlock_indexes(self, principal, t)
            }
            Err(Unavailable::Locked(reason, detail)) => {
                lock.failed(reason, detail, now);
                Err(locked_error(t, reason))
            }
            Err(Unavailable::Failed(e)) => Err(e),
        }
    }

    /// Brings a locked table back: its key, its manifest history checked under that key,
    /// its sealed boundaries opened, its WAL records replayed into a memtable that is then
    /// frozen for flushing.
    fn unlock(
        &self,
        principal: &Principal,
        t: &Arc<TableState>,
        lock: &Lock,
    ) -> std::result::Result<(), Unavailable> {
        let failed = Unavailable::Failed;
        let keyring = self
            .keyring
            .as_ref()
            .ok_or_else(|| failed(super::no_kms(&t.name)))?;
        let meta = t.meta.read().clone();
        let unwrapped = unwrap_table_key(keyring, principal, &t.name, &meta)?;
        let key = unwrapped.key;
        {
            // The manifest being appended to: no record goes in while it is read.
            let versions = self.versions.lock();
            let contents = versions.read_back().map_err(failed)?;
            contents.verify_table_chain(t.id, &key).map_err(failed)?;
        }
        let sv = t.super_version();
        let mut version = Version::empty();
        for f in sv.version.files() {
            let open = |b: &Boundary, largest: bool| match b {
                Boundary::Plain(v) => Ok(v.clone()),
                Boundary::Sealed(v) => open_boundary(&key, t.id, f.meta.number, largest, v),
            };
            let smallest = open(&f.meta.smallest, false).map_err(failed)?;
            let largest = open(&f.meta.largest, true).map_err(failed)?;
            version.add(Arc::new(f.with_bounds(smallest, largest)));
        }
        // The keys of older table-key versions, for their files and WAL records.
        self.load_old_keys(t).map_err(failed)?;
        let mem = self.replay_locked(t, &key, lock).map_err(failed)?;
        *t.key.write() = Some(Arc::clone(&key));
        if let Some(why) = unwrapped.maintenance_stopped {
            *t.maintenance_error.lock() = Some(why);
        }
        let has_records = !mem.is_empty();
        *t.sv.write() = Arc::new(SuperVersion {
            mem: Arc::new(mem),
            imm: Vec::new(),
            version: Arc::new(version),
        });
        if has_records {
            let mut ws = self.write.lock();
            self.switch_memtable(&mut ws, t).map_err(failed)?;
        }
        Ok(())
    }

    /// `t`'s records in the segments kept for it, into a fresh memtable.
    fn replay_locked(&self, t: &Arc<TableState>, key: &TableKey, lock: &Lock) -> Result<MemTable> {
        // `range` panics on a reversed range; a log number at or past the locking open's
        // segment means there is nothing to replay.
        let from = t.log_number();
        let segments: Vec<FileNumber> = if from < lock.replay_until {
            self.versions
                .wal_segments()
                .range(from..lock.replay_until)
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        let mem = MemTable::new();
        for seg in segments {
            let mut resolve = |table: TableId, fk: Option<&wal::WalKeyRef<'_>>| {
                if table != t.id {
                    return Ok(wal::ReplayKey::Skip);
                }
                match fk {
                    // A record under an older table-key version (a rotation in progress).
                    Some(fk) if fk.key_version != t.meta.read().key_version => {
                        let old: Arc<TableKey> = t.key_of_version(fk.key_version)?;
                        Ok(wal::ReplayKey::Sealed(fk.unwrap(&old)?))
                    }
                    Some(fk) => Ok(wal::ReplayKey::Sealed(fk.unwrap(key)?)),
                    None => Err(Error::corruption(
                        filename::wal(seg),
                        0,
                        format!("a record of encrypted table {:?} has no data key", t.name),
                    )),
                }
            };
            let mut sink = |first_seq, _table, payload: bytes::Bytes| -> Result<()> {
                decode_section(&payload, first_seq, &filename::wal(seg), |e| {
                    mem.insert(e.key, e.seq, e.kind, e.value)
                })
            };
            wal::replay_segment(
                &*self.env,
                &self.path.join(filename::wal(seg)),
                seg,
                seg >= lock.torn_from,
                &mut resolve,
                &mut sink,
            )?;
        }
        Ok(mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_failures_map_to_lock_reasons() {
        let r = |k: KmsError| LockReason::of(&Error::Kms(k));
        assert_eq!(
            r(KmsError::Disabled("k".into())),
            Some(LockReason::KeyDisabled)
        );
        assert_eq!(
            r(KmsError::InvalidState {
                key: "k".into(),
                state: "PendingDeletion".into()
            }),
            Some(LockReason::KeyPendingDeletion)
        );
        assert_eq!(
            r(KmsError::NotFound("k".into())),
            Some(LockReason::KeyDeleted)
        );
        assert_eq!(
            r(KmsError::Unavailable("down".into())),
            Some(LockReason::KmsUnavailable)
        );
        // A modified wrapped key is damage, not an outage: the open fails.
        assert_eq!(r(KmsError::InvalidCiphertext), None);
        assert_eq!(LockReason::of(&Error::InvalidArgument("x".into())), None);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_a_deleted_key_never_retries() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut l = Lock::new(
            LockReason::KmsUnavailable,
            String::new(),
            FileNumber(9),
            FileNumber(8),
            now,
        );
        assert!(!l.may_retry(now));
        for _ in 0..20 {
            l.failed(LockReason::KmsUnavailable, String::new(), now);
        }
        assert!(!l.may_retry(now + MAX_BACKOFF - Duration::from_millis(1)));
        assert!(l.may_retry(now + MAX_BACKOFF));
        l.failed(LockReason::KeyDeleted, String::new(), now);
        assert!(!l.may_retry(now + Duration::from_secs(3600)));
    }
}
