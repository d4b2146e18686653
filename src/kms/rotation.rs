//! Rotation of a KMS key's backing material, as AWS KMS does it: a rotation adds a new
//! generation of material; ciphertext blobs name the generation that sealed them, so old
//! blobs still decrypt, and new encryptions use the newest.
//!
//! What the keystore records per key (`RotationState`, JSON in the sealed body of keystore
//! version 2; a version-1 keystore has none and reads as "rotation off", except the AWS
//! managed service default key, which always rotates yearly):
//!
//! ```text
//! "rotation": {"enabled": bool, "periodDays": u32, "nextSecs": u64 | null,
//!              "history": [{"generation": u32, "dateSecs": u64, "onDemand": bool}, ...]}
//! ```
//!
//! A key material id is derived, not stored: 64 hex digits of
//! `SHA-256("sealdb-kms-material" || key_id : [u8; 16] || generation : u32 LE)`, the shape of
//! AWS's `KeyMaterialId`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::key::KeyId;

/// AWS KMS's bounds on `RotationPeriodInDays`.
pub const MIN_ROTATION_PERIOD_DAYS: u32 = 90;
/// See [`MIN_ROTATION_PERIOD_DAYS`].
pub const MAX_ROTATION_PERIOD_DAYS: u32 = 2560;
/// The period when none is given (and the AWS managed key's, always).
pub const DEFAULT_ROTATION_PERIOD_DAYS: u32 = 365;
/// On-demand rotations allowed per key over its lifetime (AWS KMS's quota).
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;

const MATERIAL_LABEL: &[u8] = b"sealdb-kms-material";

/// How a rotation happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum RotationType {
    /// On the key's rotation period.
    Automatic,
    /// `RotateKeyOnDemand`.
    OnDemand,
}

impl RotationType {
    /// AWS's spelling (`AUTOMATIC`, `ON_DEMAND`).
    pub fn as_str(self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// What `GetKeyRotationStatus` returns.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct KeyRotationStatus {
    /// The key's ARN.
    pub key_id: String,
    /// Whether automatic rotation is on.
    pub key_rotation_enabled: bool,
    /// The period, when automatic rotation is on.
    pub rotation_period_in_days: Option<u32>,
    /// When the next automatic rotation is due, when it is on.
    pub next_rotation_date: Option<SystemTime>,
    /// The key material new encryptions use.
    pub current_key_material_id: Option<String>,
}

/// One entry of `ListKeyRotations`: a rotation that happened.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct KeyRotation {
    /// The key's ARN.
    pub key_id: String,
    /// The material the rotation added.
    pub key_material_id: String,
    /// When it happened.
    pub rotation_date: SystemTime,
    /// Automatic or on demand.
    pub rotation_type: RotationType,
}

/// One rotation, as the keystore records it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RotationRecord {
    /// The material generation it added.
    pub(crate) generation: u32,
    pub(crate) date_secs: u64,
    pub(crate) on_demand: bool,
}

/// A key's rotation settings and history, as the keystore records them.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RotationState {
    pub(crate) enabled: bool,
    /// 0 in a record that never had rotation enabled: read as the default period.
    pub(crate) period_days: u32,
    /// When the next automatic rotation is due (Unix seconds), while enabled.
    pub(crate) next_secs: Option<u64>,
    pub(crate) history: Vec<RotationRecord>,
}

impl RotationState {
    /// The period in days (the default when none was ever set).
    pub(crate) fn period(&self) -> u32 {
        if self.period_days == 0 {
            DEFAULT_ROTATION_PERIOD_DAYS
        } else {
            self.period_days
        }
    }

    pub(crate) fn on_demand_count(&self) -> usize {
        self.history.iter().filter(|r| r.on_demand).count()
    }
}

/// The id of generation `generation` of key `key`'s material (see the module docs).
pub(crate) fn material_id(key: &KeyId, generation: u32) -> String {
    let mut h = Sha256::new();
    h.update(MATERIAL_LABEL);
    h.update(key.as_bytes());
    h.update(generation.to_le_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_ids_are_pinned_and_distinct() {
        let key = KeyId::from_bytes([0x11; 16]);
        let a = material_id(&key, 0);
        let b = material_id(&key, 1);
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(a, material_id(&KeyId::from_bytes([0x12; 16]), 0));
        // Pinned: the derivation is part of the documented format.
        let mut h = Sha256::new();
        h.update(b"sealdb-kms-material");
        h.update([0x11; 16]);
        h.update([0, 0, 0, 0]);
        assert_eq!(a, hex::encode(h.finalize()));
    }

    #[test]
    fn an_old_record_reads_as_rotation_off() -> Result<(), serde_json::Error> {
        let st: RotationState = serde_json::from_str("{}")?;
        assert!(!st.enabled);
        assert_eq!(st.period(), DEFAULT_ROTATION_PERIOD_DAYS);
        assert!(st.history.is_empty());
        Ok(())
    }
}
