//! Targets for small files and sections:
//! - `keystore`: bytes as a LocalKms `keystore.bin` (root key from a key file): the open
//!   succeeds or fails with a typed error, never panics.
//! - `current`: bytes as `CURRENT`: the manifest number it names or a corruption error; a
//!   number that parses is written back by the engine's own writer and read back equal.
//! - `wal_batch`: byte 0 even: the bytes as a WAL batch section (never panics); odd: the
//!   bytes as operations across tables, encoded as a `WriteBatch` and decoded back
//!   section by section, which must give the operations in order with their sequence
//!   numbers (differential).

use crate::db::{decode_section, SectionEntry};
use crate::kms::{LocalKms, LocalKmsOptions, RootKeySource};
use crate::storage::StdEnv;
use crate::types::{SeqNo, TableId, ValueKind};
use crate::WriteBatch;

fn scratch() -> Option<tempfile::TempDir> {
    match std::fs::metadata("/dev/shm") {
        Ok(m) if m.is_dir() => tempfile::tempdir_in("/dev/shm").ok(),
        _ => tempfile::tempdir().ok(),
    }
}

/// The root key file of the `keystore` target (the corpus seeds were made under it).
pub const KEYSTORE_ROOT_KEY: [u8; 32] = [0x5c; 32];

/// Opens a LocalKms keystore made of `data` and uses it; never panics.
pub fn keystore(data: &[u8]) {
    let Some(dir) = scratch() else { return };
    let key_file = dir.path().join("root.key");
    let kms_dir = dir.path().join("kms");
    if std::fs::write(&key_file, KEYSTORE_ROOT_KEY).is_err()
        || std::fs::create_dir_all(&kms_dir).is_err()
    {
        return;
    }
    if std::fs::write(kms_dir.join(crate::kms::KEYSTORE_FILE), data).is_err() {
        return;
    }
    let mut opts = LocalKmsOptions::new("111122223333", "us-west-2");
    opts.root_key = RootKeySource::KeyFile(key_file);
    if let Ok(kms) = LocalKms::open(&kms_dir, opts) {
        // An opened keystore serves its keys' metadata.
        let _ = crate::kms::Kms::describe_key(
            &kms,
            &crate::kms::Caller::direct(crate::kms::Principal::root("111122223333")),
            "alias/aws/sealdb",
        );
    }
}

/// Parses `data` as a CURRENT file, and checks that what parses round-trips.
pub fn current(data: &[u8]) {
    let Some(dir) = scratch() else { return };
    if std::fs::write(dir.path().join("CURRENT"), data).is_err() {
        return;
    }
    // The engine's reader: CURRENT, then the manifest it names (absent here: an error).
    let _ = crate::manifest::read_current(&StdEnv, dir.path());
    let Some(n) = std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(crate::filename::manifest_number)
    else {
        return;
    };
    let Some(again) = scratch() else { return };
    if let Err(e) = crate::manifest::set_current(&StdEnv, again.path(), n) {
        panic!("writing CURRENT for {n:?} failed: {e}");
    }
    let written = std::fs::read(again.path().join("CURRENT")).unwrap_or_default();
    let back = std::str::from_utf8(&written)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(crate::filename::manifest_number);
    assert_eq!(back, Some(n), "CURRENT did not round-trip");
}

/// One decoded entry: (sequence number, table, kind, key, value).
type Decoded = (u64, TableId, ValueKind, Vec<u8>, Vec<u8>);

/// Decodes `data` as WAL batch sections, differentially against the encoder.
pub fn wal_batch(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut n = 0u64;
        let _ = decode_section(rest, SeqNo(u64::from(mode) << 40), "fuzz", |_| n += 1);
        return;
    }
    // Operations: (table % 4, kind, key length % 16, key, value length % 64, value)*.
    let mut ops: Vec<(TableId, ValueKind, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut r = rest;
    let mut take = |n: usize| -> Vec<u8> {
        let n = n.min(r.len());
        let (a, b) = r.split_at(n);
        r = b;
        a.to_vec()
    };
    loop {
        let head = take(3);
        let [t, kind, klen] = head[..] else { break };
        let key = take(usize::from(klen % 16));
        let kind = if kind % 3 == 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let value = match kind {
            ValueKind::Put => {
                let vlen = take(1).first().copied().unwrap_or(0);
                take(usize::from(vlen % 64))
            }
            ValueKind::Delete => Vec::new(),
        };
        ops.push((TableId(u32::from(t % 4) + 1), kind, key, value));
    }
    let mut b = WriteBatch::new();
    for (t, kind, k, v) in &ops {
        b.add(*t, *kind, k, v);
    }
    let first = SeqNo(1000);
    let mut decoded: Vec<Decoded> = Vec::new();
    for (t, s) in b.sections() {
        let ok = decode_section(s.payload(), first, "fuzz", |e: SectionEntry<'_>| {
            decoded.push((e.seq.0, t, e.kind, e.key.to_vec(), e.value.to_vec()));
        });
        assert!(ok.is_ok(), "an encoded section does not decode: {ok:?}");
    }
    decoded.sort_by_key(|e| e.0);
    let want: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(i, (t, kind, k, v))| (first.0 + i as u64, t, kind, k, v))
        .collect();
    assert!(
        decoded == want,
        "a batch did not round-trip through its sections"
    );
}
