//! The shape of the data the harness writes: tables, keys and self-describing values.
//!
//! Every value names the table, the key and the generation (write number) it was written
//! for, and its filler follows from those three, so a read can be checked byte for byte
//! and a stale, foreign or torn value is told apart from the right one.

use std::path::Path;
use std::sync::Arc;

use sealdb::clock::ManualClock;
use sealdb::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
use sealdb::storage::Env;
use sealdb::{Compression, Db, Options, Table, TableOptions};
use zeroize::Zeroizing;

/// The tables: every combination of encryption and LZ4.
pub const TABLES: [(&str, bool, bool); 4] = [
    ("plain", false, false),
    ("plain_lz4", false, true),
    ("enc", true, false),
    ("enc_lz4", true, true),
];

/// Keys `0..BATCH_REGION` are only ever written by batches that write the same key in
/// every table with the same generation, so any consistent view shows them in lockstep.
pub const BATCH_REGION: usize = 64;

pub fn key(i: usize) -> Vec<u8> {
    // Fixed-width number first, so key order is index order; a variable tail varies lengths.
    let mut k = format!("key{i:07}").into_bytes();
    k.extend(std::iter::repeat_n(b'~', i % 5));
    k
}

/// The index of a key written by [`key`].
pub fn key_index(k: &[u8]) -> Option<usize> {
    let digits = k.get(3..10)?;
    if k.get(..3)? != b"key" {
        return None;
    }
    let i: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (key(i) == k).then_some(i)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of generation `gen` of key `k` in table `t`.
pub fn value(t: usize, k: usize, gen: u64) -> Vec<u8> {
    let h = mix((t as u64) << 56 ^ (k as u64) << 32 ^ gen);
    // Mostly small, sometimes larger than a block (several KiB), sometimes empty filler.
    let len = match h % 16 {
        0 => 0,
        1 => 3000 + (h >> 8) as usize % 3000,
        _ => (h >> 8) as usize % 200,
    };
    let mut v = format!("v{t}:{k}:{gen}:").into_bytes();
    // Compressible filler (LZ4 has something to do) that still depends on the generation.
    let pattern = [b'a' + (h % 26) as u8, b'a' + (gen % 26) as u8, b'-'];
    v.extend((0..len).map(|i| pattern[i % 3]));
    v
}

/// The (table, key, generation) a value claims, if it is exactly the value written for them.
pub fn parse_value(v: &[u8]) -> Option<(usize, usize, u64)> {
    let head_end = v.iter().enumerate().filter(|(_, b)| **b == b':').nth(2)?.0;
    let head = std::str::from_utf8(v.get(1..head_end)?).ok()?;
    let mut parts = head.split(':');
    let t: usize = parts.next()?.parse().ok()?;
    let k: usize = parts.next()?.parse().ok()?;
    let gen: u64 = parts.next()?.parse().ok()?;
    (v.first() == Some(&b'v') && value(t, k, gen) == v).then_some((t, k, gen))
}

/// A LocalKms in `dir` under a fixed passphrase and a fast KDF.
pub fn local_kms(dir: &Path) -> sealdb::Result<Arc<LocalKms>> {
    let kms = LocalKms::open(
        dir,
        LocalKmsOptions::new(sealdb::DEFAULT_ACCOUNT, sealdb::DEFAULT_REGION)
            .with_root_key(RootKeySource::Passphrase {
                passphrase: Zeroizing::new("sealdb stress".into()),
                kdf: KdfParams::insecure_fast_for_tests(),
            })
            .with_clock(Arc::new(ManualClock::default()))
            .with_audit_max_bytes(4 << 20),
    )
    .map_err(sealdb::Error::from)?;
    Ok(Arc::new(kms))
}

/// Small buffers and files, so flushes, compactions and WAL rotations happen every few
/// hundred writes.
pub fn options(env: Arc<dyn Env>, kms: Arc<LocalKms>, write_buffer: usize) -> Options {
    let mut o = Options::default();
    o.write_buffer_size = write_buffer;
    o.block_size = 512;
    o.block_cache_bytes = 256 << 10;
    o.max_open_files = 64;
    o.l0_compaction_trigger = 3;
    o.level_base_bytes = Some(4 * write_buffer as u64);
    o.target_file_size = write_buffer as u64;
    o.env = env;
    o.kms = Some(kms);
    o
}

/// Opens the database under `root` (`root/db`, KMS in `root/kms`), creating the tables.
pub fn open(
    root: &Path,
    env: Arc<dyn Env>,
    write_buffer: usize,
) -> sealdb::Result<(Db, Vec<Table>)> {
    let kms = local_kms(&root.join("kms"))?;
    let db = Db::open(root.join("db"), options(env, kms, write_buffer))?;
    let mut tables = Vec::new();
    for (name, encrypted, lz4) in TABLES {
        let t = match db.table(name) {
            Ok(t) => t,
            Err(_) => {
                let mut o = if encrypted {
                    TableOptions::encrypted()
                } else {
                    TableOptions::plaintext()
                };
                if lz4 {
                    o = o.with_compression(Compression::Lz4);
                }
                db.create_table(name, o)?
            }
        };
        tables.push(t);
    }
    Ok((db, tables))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_keys_round_trip() {
        for (t, k, g) in [(0, 0, 0), (3, 1234, 99), (1, 63, u64::from(u32::MAX) + 7)] {
            let v = value(t, k, g);
            assert_eq!(parse_value(&v), Some((t, k, g)));
            let mut torn = v.clone();
            torn.pop();
            if !torn.is_empty() && v.len() > format!("v{t}:{k}:{g}:").len() {
                assert_eq!(parse_value(&torn), None);
            }
            assert_eq!(key_index(&key(k)), Some(k));
        }
        assert!(key(9) < key(10));
        assert_eq!(key_index(b"key0000001"), None);
    }
}
