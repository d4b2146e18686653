//! Fuzzing entry points: one function per cargo-fuzz target (`fuzz/fuzz_targets/`), each
//! taking arbitrary bytes. They never panic on bad input; a panic is a finding (except in
//! the checking targets, whose assertions compare the engine with a model or a round trip).
//!
//! `tests/fuzz_corpus.rs` runs every file of `fuzz/corpus/<target>/` through [`run`], so
//! the corpora run under plain `cargo test` on the stable toolchain too.

mod engine_model;
mod files;
mod index_key;
mod sstable;

use crate::crypto::{
    unwrap_data_key, wrap_data_key, DataKey, FileKind, TableKey, WrapContext, KEY_LEN,
};
use crate::kms::{Caller, EncryptionContext, KeyPolicy, Principal};
use crate::types::{FileNumber, TableId};

pub use engine_model::engine_model;
pub use files::{current, keystore, wal_batch, KEYSTORE_ROOT_KEY};
pub use index_key::index_key;
pub use sstable::{sstable_roundtrip, sstable_tamper};

/// The fuzz targets, by the name of their directory under `fuzz/corpus/`.
pub const TARGETS: [&str; 15] = [
    "data_block",
    "sstable",
    "wal_replay",
    "manifest_replay",
    "kms_blob",
    "wrapped_key",
    "key_policy",
    "audit_query",
    "engine_model",
    "sstable_roundtrip",
    "sstable_tamper",
    "keystore",
    "current",
    "wal_batch",
    "index_key",
];

/// Runs target `name` on `data`; false for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "data_block" => crate::sst::fuzz_api::fuzz_block(data),
        "sstable" => crate::sst::fuzz_api::fuzz_table(data),
        "wal_replay" => crate::wal::fuzz_wal(data),
        "manifest_replay" => crate::manifest::fuzz_manifest(data),
        "kms_blob" => {
            let _ = crate::kms::fuzz_parse_blob(data);
        }
        "wrapped_key" => wrapped_key(data),
        "key_policy" => key_policy(data),
        "audit_query" => audit_query(data),
        "engine_model" => engine_model(data),
        "sstable_roundtrip" => sstable_roundtrip(data),
        "sstable_tamper" => sstable_tamper(data),
        "keystore" => keystore(data),
        "current" => current(data),
        "wal_batch" => wal_batch(data),
        "index_key" => index_key(data),
        _ => return false,
    }
    true
}

/// A wrapped data key: arbitrary bytes never unwrap (under a fixed table key), and a real
/// wrapped key changed in any bit, or presented for another file, never unwraps either.
pub fn wrapped_key(data: &[u8]) {
    let table_key = TableKey::from_bytes([7; KEY_LEN]);
    let ctx = WrapContext {
        table: TableId(1),
        file_kind: FileKind::Sst,
        file: FileNumber(9),
        key_version: 1,
    };
    assert!(
        unwrap_data_key(&table_key, data, &ctx).is_none(),
        "arbitrary bytes unwrapped as a data key"
    );
    let dek = DataKey::from_bytes([3; KEY_LEN]);
    let mut wrapped = wrap_data_key(&table_key, &dek, &ctx);
    let mut changed = false;
    for (w, d) in wrapped.iter_mut().zip(data) {
        *w ^= d;
        changed |= *d != 0;
    }
    let other_file = WrapContext {
        file: FileNumber(u64::from(data.first().copied().unwrap_or(0)) + 10),
        ..ctx
    };
    assert!(unwrap_data_key(&table_key, &wrapped, &other_file).is_none());
    let back = unwrap_data_key(&table_key, &wrapped, &ctx);
    assert_eq!(back.is_some(), !changed, "a modified wrapped key unwrapped");
    if let Some(k) = back {
        assert_eq!(k.expose_secret_bytes(), dek.expose_secret_bytes());
    }
}

/// A key policy document: parses or is refused; a parsed one evaluates any request.
pub fn key_policy(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = KeyPolicy::parse(json) else {
        return;
    };
    let arn = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let user = Caller::engine_via(
        Principal::assumed_role("111122223333", "Admin", "user01"),
        "sealdb.us-west-2.amazonaws.com",
    );
    let root = Caller::direct(Principal::root("111122223333"));
    let mut ctx = EncryptionContext::new();
    ctx.insert("sealdb:tableName", "Services");
    ctx.insert("sealdb:subscriberId", "111122223333");
    for caller in [&user, &root] {
        for action in [
            "kms:Decrypt",
            "kms:CreateGrant",
            "kms:ReEncryptFrom",
            "kms:PutKeyPolicy",
        ] {
            let _ = policy.evaluate(&crate::kms::PolicyRequest::new(caller, action, arn));
            let _ = policy
                .evaluate(&crate::kms::PolicyRequest::new(caller, action, arn).with_context(&ctx));
        }
    }
}

/// An audit log file: the query reads it (a torn last line is skipped, other damage is an
/// error) with a filter chosen by the first byte.
pub fn audit_query(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(log) = crate::kms::AuditLog::open(dir.path(), 0) else {
        return;
    };
    if std::fs::write(log.dir().join("audit-000001.jsonl"), data).is_err() {
        return;
    }
    let sel = data.first().copied().unwrap_or(0);
    let q = crate::kms::AuditQuery {
        event_name: (sel & 1 != 0).then(|| "Decrypt".to_owned()),
        key_id: (sel & 2 != 0).then(|| "1234abcd-12ab-34cd-56ef-1234567890ab".to_owned()),
        table: (sel & 4 != 0).then(|| "Services".to_owned()),
        since: (sel & 8 != 0).then_some(std::time::UNIX_EPOCH),
        until: (sel & 16 != 0).then(std::time::SystemTime::now),
    };
    let _ = log.query(&q);
}
