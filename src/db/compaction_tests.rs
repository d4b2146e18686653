//! Compaction inside the engine: unit tests that need the engine's internals.

use std::collections::HashSet;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Db, Options, TableOptions, DEFAULT_ACCOUNT, DEFAULT_REGION};
use crate::crypto::{unwrap_data_key, FileKind, WrapContext};
use crate::error::Result;
use crate::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
use crate::types::FileNumber;

/// The raw data keys of every file of table `name`, by file number.
fn data_keys(db: &Db, name: &str) -> Result<Vec<(FileNumber, [u8; 32])>> {
    let t = db.table(name)?;
    let state = &t.state;
    let key = state.table_key().ok_or(crate::Error::Closed)?;
    let v = Arc::clone(&state.super_version().version);
    let mut out = Vec::new();
    for f in v.files() {
        let reader = db.core().reader(state, f)?;
        let fk = reader.footer_key().ok_or(crate::Error::Closed)?;
        let dek = unwrap_data_key(
            &key,
            &fk.wrapped_dek,
            &WrapContext {
                table: state.id,
                file_kind: FileKind::Sst,
                file: f.meta.number,
                key_version: fk.key_version,
            },
        )
        .ok_or(crate::Error::Closed)?;
        out.push((f.meta.number, *dek.expose_secret_bytes()));
    }
    Ok(out)
}

#[test]
fn compaction_outputs_never_reuse_a_data_key_of_a_removed_file() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
    let kms = LocalKms::open(
        &dir.path().join("kms"),
        LocalKmsOptions {
            root_key: RootKeySource::Passphrase {
                passphrase: Zeroizing::new("compaction test".into()),
                kdf: KdfParams::insecure_fast_for_tests(),
            },
            ..LocalKmsOptions::new(DEFAULT_ACCOUNT, DEFAULT_REGION)
        },
    )?;
    let opts = Options {
        kms: Some(Arc::new(kms)),
        write_buffer_size: 8 << 10,
        target_file_size: 8 << 10,
        disable_auto_compactions: true,
        ..Options::default()
    };
    let db = Db::open(dir.path().join("db"), opts)?;
    let t = db.create_table("secret", TableOptions::encrypted())?;
    for round in 0..4u32 {
        for i in 0..500u32 {
            t.put(format!("k{i:05}"), format!("round {round} value {i}"))?;
        }
        db.flush()?;
    }
    let before = data_keys(&db, "secret")?;
    assert!(before.len() >= 4);
    let old_keys: HashSet<[u8; 32]> = before.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        old_keys.len(),
        before.len(),
        "every flushed file has its own key"
    );
    db.compact_table("secret")?;
    let after = data_keys(&db, "secret")?;
    assert!(!after.is_empty());
    let old_numbers: HashSet<FileNumber> = before.iter().map(|(n, _)| *n).collect();
    let mut new_keys = HashSet::new();
    for (n, k) in &after {
        assert!(!old_numbers.contains(n), "compaction rewrote every file");
        assert!(
            !old_keys.contains(k),
            "output {n} reuses a removed file's key"
        );
        assert!(new_keys.insert(*k), "two outputs share a key");
    }
    assert_eq!(t.get("k00042")?.as_deref(), Some(&b"round 3 value 42"[..]));
    Ok(())
}
