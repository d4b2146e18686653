//! Rotation of key material in `LocalKms` (DESIGN.md section 12, "Key rotation"): the
//! settings calls, on-demand rotation, and the automatic rotations each call performs
//! first when a key's period has passed on the injected clock.

use serde_json::{json, Value};

use super::{check_usable, key_mut, key_ref, Facts, LocalKms};
use crate::kms::audit::EventInput;
use crate::kms::key::{from_secs, to_secs, BackingKey, KeyId, KeyRecord};
use crate::kms::keystore::KeystoreState;
use crate::kms::rotation::{
    material_id, RotationRecord, DEFAULT_ROTATION_PERIOD_DAYS, MAX_ON_DEMAND_ROTATIONS,
    MAX_ROTATION_PERIOD_DAYS, MIN_ROTATION_PERIOD_DAYS,
};
use crate::kms::{
    Caller, KeyManager, KeyRotation, KeyRotationStatus, KeyState, KmsError, RotationType,
};

const DAY_SECS: u64 = 86_400;
/// At most this many automatic rotations are caught up in one call (a clock moved years).
const MAX_CATCH_UP: usize = 64;
/// Who performs automatic rotations in the audit trail (as CloudTrail shows them).
const KMS_SERVICE: &str = "kms.amazonaws.com";

/// Adds a generation of material to `rec`; returns its generation.
fn add_material(rec: &mut KeyRecord) -> Result<u32, KmsError> {
    let gen = u32::try_from(rec.material.len())
        .map_err(|_| KmsError::LimitExceeded(format!("key {} has too many generations", rec.id)))?;
    rec.material.push(BackingKey::generate());
    Ok(gen)
}

/// When `rec`'s next automatic rotation is due, if it rotates automatically. The AWS
/// managed key always does, yearly (from its creation when the keystore never said).
pub(crate) fn next_rotation(rec: &KeyRecord) -> Option<u64> {
    match rec.manager {
        KeyManager::Aws => Some(rec.rotation.next_secs.unwrap_or_else(|| {
            rec.created_secs
                .saturating_add(u64::from(DEFAULT_ROTATION_PERIOD_DAYS) * DAY_SECS)
        })),
        KeyManager::Customer if rec.rotation.enabled => rec.rotation.next_secs,
        KeyManager::Customer => None,
    }
}

fn period_days(rec: &KeyRecord) -> u32 {
    match rec.manager {
        KeyManager::Aws => DEFAULT_ROTATION_PERIOD_DAYS,
        KeyManager::Customer => rec.rotation.period(),
    }
}

fn check_period(days: Option<u32>) -> Result<u32, KmsError> {
    let d = days.unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
    if !(MIN_ROTATION_PERIOD_DAYS..=MAX_ROTATION_PERIOD_DAYS).contains(&d) {
        return Err(KmsError::InvalidArgument(format!(
            "RotationPeriodInDays must be {MIN_ROTATION_PERIOD_DAYS} to \
             {MAX_ROTATION_PERIOD_DAYS}, got {d}"
        )));
    }
    Ok(d)
}

fn customer_only(rec: &KeyRecord, what: &str) -> Result<(), KmsError> {
    match rec.manager {
        KeyManager::Customer => Ok(()),
        KeyManager::Aws => Err(KmsError::UnsupportedOperation(format!(
            "{what}: {} is an AWS managed key; it rotates every year and its rotation \
             cannot be changed",
            rec.arn()
        ))),
    }
}

impl LocalKms {
    /// Performs the automatic rotations that are due on enabled keys, one audit event
    /// (`RotateKey`, by the KMS itself) each. Runs at the start of every call.
    pub(super) fn rotate_due(&self, st: &mut KeystoreState) -> Result<(), KmsError> {
        let now = to_secs(self.clock.now());
        let due: Vec<KeyId> = st
            .keys
            .values()
            .filter(|k| k.state == KeyState::Enabled && next_rotation(k).is_some_and(|n| n <= now))
            .map(|k| k.id)
            .collect();
        let kms = Caller::engine_direct_service(KMS_SERVICE);
        for id in due {
            let rec = key_mut(st, &id)?;
            let period = u64::from(period_days(rec)) * DAY_SECS;
            let (arn, account) = (rec.arn(), rec.account.clone());
            let mut next = next_rotation(rec).unwrap_or(now);
            let mut added = 0;
            while next <= now && added < MAX_CATCH_UP {
                let rec = key_mut(st, &id)?;
                let gen = add_material(rec)?;
                rec.rotation.history.push(RotationRecord {
                    generation: gen,
                    date_secs: next,
                    on_demand: false,
                });
                added += 1;
                next = next.saturating_add(period.max(DAY_SECS));
                rec.rotation.next_secs = Some(if next <= now && added >= MAX_CATCH_UP {
                    now.saturating_add(period)
                } else {
                    next
                });
                let recorded = self.audit.record(EventInput {
                    caller: &kms,
                    event_name: "RotateKey",
                    region: &self.region,
                    request_parameters: Value::Null,
                    response_elements: json!({"keyId": arn, "keyMaterialId": material_id(&id, gen),
                                              "rotationType": RotationType::Automatic.as_str()}),
                    read_only: false,
                    keys: vec![(arn.clone(), account.clone())],
                    default_account: &self.account,
                    error: None,
                    time: self.clock.now(),
                });
                // Each generation is written as soon as the trail shows it, and only then:
                // a rotation the trail does not show never happened (undone from the file,
                // which holds every earlier recorded one), and one it shows is never undone
                // (so its material id never comes to name other material).
                if let Err(e) = recorded {
                    match self.store.reload() {
                        Ok(previous) => *st = previous,
                        Err(_) => self
                            .poisoned
                            .store(true, std::sync::atomic::Ordering::SeqCst),
                    }
                    self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
                // As `finish` does: a keystore that could not be written is not trusted again.
                self.store.save(st).inspect_err(|_| {
                    self.poisoned
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                })?;
            }
        }
        Ok(())
    }

    pub(super) fn enable_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        days: Option<u32>,
    ) -> Result<(), KmsError> {
        let mut params = json!({"keyId": key_id});
        if let Some(d) = days {
            params["rotationPeriodInDays"] = json!(d);
        }
        let now = to_secs(self.clock.now());
        self.call(caller, "EnableKeyRotation", false, params, |st, facts| {
            let id = self.resolve(st, caller, key_id)?;
            let rec = key_mut(st, &id)?;
            // The AWS managed key's rotation is not anyone's to change: said before the policy.
            customer_only(rec, "EnableKeyRotation")?;
            self.authorize_on(rec, facts, caller, "kms:EnableKeyRotation", None, None)?;
            check_usable(rec)?;
            let d = check_period(days)?;
            rec.rotation.enabled = true;
            rec.rotation.period_days = d;
            rec.rotation.next_secs = Some(now.saturating_add(u64::from(d) * DAY_SECS));
            self.save(st)
        })
    }

    pub(super) fn disable_rotation(&self, caller: &Caller, key_id: &str) -> Result<(), KmsError> {
        self.call(
            caller,
            "DisableKeyRotation",
            false,
            json!({"keyId": key_id}),
            |st, facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_mut(st, &id)?;
                customer_only(rec, "DisableKeyRotation")?;
                self.authorize_on(rec, facts, caller, "kms:DisableKeyRotation", None, None)?;
                check_usable(rec)?;
                rec.rotation.enabled = false;
                rec.rotation.next_secs = None;
                self.save(st)
            },
        )
    }

    pub(super) fn rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KeyRotationStatus, KmsError> {
        self.call(
            caller,
            "GetKeyRotationStatus",
            true,
            json!({"keyId": key_id}),
            |st, facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_ref(st, &id)?;
                self.authorize_on(rec, facts, caller, "kms:GetKeyRotationStatus", None, None)?;
                let next = next_rotation(rec);
                Ok(KeyRotationStatus {
                    key_id: rec.arn(),
                    key_rotation_enabled: next.is_some(),
                    rotation_period_in_days: next.map(|_| period_days(rec)),
                    next_rotation_date: next.map(from_secs),
                    current_key_material_id: rec.metadata().current_key_material_id,
                })
            },
        )
    }

    pub(super) fn rotate_now(&self, caller: &Caller, key_id: &str) -> Result<String, KmsError> {
        let now = to_secs(self.clock.now());
        self.call(
            caller,
            "RotateKeyOnDemand",
            false,
            json!({"keyId": key_id}),
            |st, facts: &mut Facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_mut(st, &id)?;
                customer_only(rec, "RotateKeyOnDemand")?;
                self.authorize_on(rec, facts, caller, "kms:RotateKeyOnDemand", None, None)?;
                check_usable(rec)?;
                if rec.rotation.on_demand_count() >= MAX_ON_DEMAND_ROTATIONS {
                    return Err(KmsError::LimitExceeded(format!(
                        "{} has had the {MAX_ON_DEMAND_ROTATIONS} on-demand rotations a key \
                         may have",
                        rec.arn()
                    )));
                }
                let gen = add_material(rec)?;
                rec.rotation.history.push(RotationRecord {
                    generation: gen,
                    date_secs: now,
                    on_demand: true,
                });
                let arn = rec.arn();
                facts.response = json!({"keyId": arn, "keyMaterialId": material_id(&id, gen)});
                self.save(st)?;
                Ok(arn)
            },
        )
    }

    pub(super) fn rotations(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<Vec<KeyRotation>, KmsError> {
        self.call(
            caller,
            "ListKeyRotations",
            true,
            json!({"keyId": key_id}),
            |st, facts| {
                let id = self.resolve(st, caller, key_id)?;
                let rec = key_ref(st, &id)?;
                self.authorize_on(rec, facts, caller, "kms:ListKeyRotations", None, None)?;
                let arn = rec.arn();
                Ok(rec
                    .rotation
                    .history
                    .iter()
                    .map(|r| KeyRotation {
                        key_id: arn.clone(),
                        key_material_id: material_id(&id, r.generation),
                        rotation_date: from_secs(r.date_secs),
                        rotation_type: if r.on_demand {
                            RotationType::OnDemand
                        } else {
                            RotationType::Automatic
                        },
                    })
                    .collect())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::kms::{
        CreateKeyRequest, EncryptionContext, KdfParams, Kms, LocalKmsOptions, Principal,
        RootKeySource, KEYSTORE_FILE, SERVICE_DEFAULT_ALIAS,
    };

    fn options(clock: &ManualClock) -> LocalKmsOptions {
        LocalKmsOptions {
            account: "111122223333".into(),
            region: "us-west-2".into(),
            root_key: RootKeySource::Passphrase {
                passphrase: zeroize::Zeroizing::new("pw".into()),
                kdf: KdfParams::insecure_fast_for_tests(),
            },
            clock: Arc::new(clock.clone()),
            audit_max_bytes: 0,
            env: crate::storage::default_env(),
        }
    }

    #[test]
    fn a_version_1_keystore_opens_and_is_written_as_version_2(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let clock = ManualClock::default();
        let admin = Caller::direct(Principal::root("111122223333"));
        let ctx = EncryptionContext::for_table("T", "111122223333");
        let kms = LocalKms::open(dir.path(), options(&clock))?;
        let key = kms.create_key(&admin, CreateKeyRequest::default())?.arn;
        let default = kms.describe_key(&admin, SERVICE_DEFAULT_ALIAS)?;
        let blob = kms.encrypt(&admin, &key, b"old", &ctx)?;
        let via = Caller::engine_via(
            Principal::root("111122223333"),
            &crate::kms::via_service_name("us-west-2"),
        );
        let default_blob = kms.encrypt(&via, SERVICE_DEFAULT_ALIAS, b"old default", &ctx)?;
        kms.store.save_as_version_1(&kms.state.lock())?;
        drop(kms);
        let bytes = std::fs::read(dir.path().join(KEYSTORE_FILE))?;
        assert_eq!(bytes[8], 1, "written as version 1");
        assert!(!String::from_utf8_lossy(&bytes).contains("rotation"));

        let kms = LocalKms::open(dir.path(), options(&clock))?;
        assert_eq!(
            &kms.decrypt(&admin, &blob, &ctx, None)?.plaintext[..],
            b"old"
        );
        let st = kms.get_key_rotation_status(&admin, &key)?;
        assert!(
            !st.key_rotation_enabled,
            "version 1 keys read with rotation off"
        );
        // The default key rotates yearly from its creation date.
        let st = kms.get_key_rotation_status(&admin, SERVICE_DEFAULT_ALIAS)?;
        assert!(st.key_rotation_enabled);
        assert_eq!(
            st.next_rotation_date,
            Some(default.creation_date + Duration::from_secs(365 * 86_400))
        );
        kms.rotate_key_on_demand(&admin, &key)?;
        drop(kms);
        let bytes = std::fs::read(dir.path().join(KEYSTORE_FILE))?;
        assert_eq!(bytes[8], 2, "rewritten as version 2 at the first change");

        clock.advance(Duration::from_secs(366 * 86_400));
        let kms = LocalKms::open(dir.path(), options(&clock))?;
        assert_eq!(kms.list_key_rotations(&admin, &key)?.len(), 1);
        assert_eq!(
            &kms.decrypt(&admin, &blob, &ctx, None)?.plaintext[..],
            b"old"
        );
        // The year passed: the default key rotated, and its old blob still decrypts.
        assert_eq!(
            kms.list_key_rotations(&admin, SERVICE_DEFAULT_ALIAS)?.len(),
            1
        );
        assert_eq!(
            &kms.decrypt(&via, &default_blob, &ctx, None)?.plaintext[..],
            b"old default"
        );
        Ok(())
    }
}
