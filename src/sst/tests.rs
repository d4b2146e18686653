//! Table-level tests: a model test against an ordered map, tamper tests, golden bytes.

use std::cmp::Ordering;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use proptest::prelude::*;

use super::block_builder::BlockBuilder;
use super::footer::FOOTER_LEN;
use super::*;
use crate::crypto::{
    unwrap_data_key, DataKey, FileKind, Protection, TableKey, UnitContext, UnitOpener, WrapContext,
};
use crate::error::{Error, Result};
use crate::ikey;
use crate::iter::InternalIterator;
use crate::sst::BlockCache;
use crate::storage::{FileSyncer, WritableFile};
use crate::types::{FileNumber, SeqNo, TableId, ValueKind};

#[path = "compression_tests.rs"]
mod compression_tests;

/// An in-memory file being written; the buffer is shared with the test.
#[derive(Clone, Default)]
struct MemWritable(Arc<Mutex<Vec<u8>>>);

struct NoopSyncer;

impl FileSyncer for NoopSyncer {
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl WritableFile for MemWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.lock().len() as u64
    }
    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(NoopSyncer))
    }
}

const TABLE: TableId = TableId(9);

fn table_key() -> TableKey {
    TableKey::from_bytes([0x42; 32])
}

fn unit_ctx(file: u64) -> UnitContext {
    UnitContext {
        table: TABLE,
        file: FileNumber(file),
        file_kind: FileKind::Sst,
        label: Arc::from(format!("{:06}.sst", file)),
    }
}

fn wrap_ctx(file: u64) -> WrapContext {
    WrapContext {
        table: TABLE,
        file_kind: FileKind::Sst,
        file: FileNumber(file),
        key_version: 1,
    }
}

/// Protection for file `file`: plain, or sealed under a fresh DEK wrapped by the test key.
fn protection(sealed: bool, file: u64) -> Protection {
    if !sealed {
        return Protection::Plain;
    }
    Protection::with_key(DataKey::generate(), &table_key(), wrap_ctx(file))
}

fn build(
    entries: &[(Vec<u8>, Vec<u8>)],
    sealed: bool,
    file: u64,
    opts: SstBuildOptions,
) -> Result<(Bytes, SstSummary)> {
    let w = MemWritable::default();
    let mut b = SstBuilder::new(Box::new(w.clone()), protection(sealed, file), opts)?;
    for (k, v) in entries {
        b.add(k, v)?;
    }
    let summary = b.finish()?;
    let bytes = Bytes::from(w.0.lock().clone());
    Ok((bytes, summary))
}

/// Opens a table the way the engine would: it knows whether the table is encrypted.
fn open(
    bytes: Bytes,
    sealed: bool,
    file: u64,
    cache: Option<Arc<BlockCache>>,
) -> Result<Arc<SstReader>> {
    let label: Arc<str> = Arc::from(format!("{:06}.sst", file));
    let l2 = Arc::clone(&label);
    SstReader::open(
        Arc::new(MemFile(bytes)),
        Arc::clone(&label),
        file,
        move |key| match (sealed, key) {
            (false, None) => Ok(UnitOpener::plain(l2)),
            (true, Some(k)) => {
                let mut w = wrap_ctx(file);
                w.key_version = k.key_version;
                let dek =
                    unwrap_data_key(&table_key(), &k.wrapped_dek, &w).ok_or(Error::Integrity {
                        file: l2.to_string(),
                        offset: 0,
                    })?;
                Ok(UnitOpener::sealed(unit_ctx(file), &dek))
            }
            _ => Err(Error::corruption(
                &*l2,
                0,
                "protection differs from table's",
            )),
        },
        cache,
    )
}

fn ik(user: &[u8], seq: u64, kind: ValueKind) -> Vec<u8> {
    ikey::encode(user, SeqNo(seq), kind)
}

fn sample_entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let kind = if i % 7 == 3 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let value = if kind == ValueKind::Put {
                format!("value-{i}").into_bytes()
            } else {
                Vec::new()
            };
            (
                ik(format!("key{i:04}").as_bytes(), 100 + i as u64, kind),
                value,
            )
        })
        .collect()
}

fn small_opts() -> SstBuildOptions {
    SstBuildOptions {
        block_size: 128,
        restart_interval: 3,
        bloom_bits_per_key: 10,
        compression: Compression::None,
    }
}

fn collect_forward(t: &Arc<SstReader>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = t.iter();
    it.seek_to_first()?;
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next()?;
    }
    Ok(out)
}

fn collect_backward(t: &Arc<SstReader>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = t.iter();
    it.seek_to_last()?;
    let mut out = Vec::new();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.prev()?;
    }
    out.reverse();
    Ok(out)
}

#[test]
fn golden_block_bytes() -> Result<()> {
    let mut b = BlockBuilder::new(2);
    b.add(b"abc", b"1")?;
    b.add(b"abd", b"2")?;
    b.add(b"b", b"3")?;
    let want: &[u8] = &[
        0, 3, 1, b'a', b'b', b'c', b'1', // restart 0: whole key
        2, 1, 1, b'd', b'2', // shares "ab"
        0, 1, 1, b'b', b'3', // restart 1 at byte 12
        0, 0, 0, 0, 12, 0, 0, 0, // restart array
        2, 0, 0, 0, // num_restarts
    ];
    assert_eq!(b.finish()?, want);
    Ok(())
}

#[test]
fn round_trip_plain_and_sealed() -> Result<()> {
    for sealed in [false, true] {
        let entries = sample_entries(300);
        let (bytes, summary) = build(&entries, sealed, 5, small_opts())?;
        assert_eq!(summary.size, bytes.len() as u64);
        assert_eq!(summary.entries, 300);
        assert_eq!(summary.smallest, entries[0].0);
        assert_eq!(summary.largest, entries[299].0);
        assert_eq!((summary.min_seq, summary.max_seq), (SeqNo(100), SeqNo(399)));
        let t = open(bytes.clone(), sealed, 5, None)?;
        assert_eq!(t.is_sealed(), sealed);
        t.verify()?;
        assert_eq!(t.properties().deletions, 43);
        assert_eq!(collect_forward(&t)?, entries);
        assert_eq!(collect_backward(&t)?, entries);
        let got = t.get(b"key0011", SeqNo::MAX)?;
        assert_eq!(got, Some((ValueKind::Put, Bytes::from_static(b"value-11"))));
        assert_eq!(t.get(b"key0011", SeqNo(110))?, None);
        assert_eq!(
            t.get(b"key0003", SeqNo::MAX)?,
            Some((ValueKind::Delete, Bytes::new()))
        );
        assert_eq!(t.get(b"key9999", SeqNo::MAX)?, None);
        // The plaintext of a sealed table never shows up in the file.
        let shows = bytes.windows(8).any(|w| w == b"value-11");
        assert_eq!(shows, !sealed);
    }
    Ok(())
}

#[test]
fn empty_table_opens() -> Result<()> {
    let (bytes, summary) = build(&[], false, 1, SstBuildOptions::default())?;
    assert_eq!(summary.entries, 0);
    let t = open(bytes, false, 1, None)?;
    t.verify()?;
    assert!(collect_forward(&t)?.is_empty());
    assert_eq!(t.get(b"x", SeqNo::MAX)?, None);
    Ok(())
}

#[test]
fn out_of_order_and_malformed_keys_are_refused() -> Result<()> {
    let mut b = SstBuilder::new(
        Box::new(MemWritable::default()),
        Protection::Plain,
        SstBuildOptions::default(),
    )?;
    b.add(&ik(b"b", 5, ValueKind::Put), b"v")?;
    assert!(b.add(&ik(b"a", 5, ValueKind::Put), b"v").is_err());
    assert!(b.add(&ik(b"b", 5, ValueKind::Put), b"v").is_err());
    assert!(b.add(&ik(b"b", 6, ValueKind::Put), b"v").is_err());
    assert!(b.add(b"short", b"v").is_err());
    b.add(&ik(b"b", 4, ValueKind::Put), b"v")?;
    assert_eq!(b.entries(), 2);
    Ok(())
}

#[test]
fn a_missing_key_reads_no_data_block() -> Result<()> {
    let (bytes, _) = build(&sample_entries(500), false, 2, small_opts())?;
    let cache = Arc::new(BlockCache::new(1 << 20));
    let t = open(bytes, false, 2, Some(Arc::clone(&cache)))?;
    for i in 0..1000 {
        assert_eq!(t.get(format!("absent{i}").as_bytes(), SeqNo::MAX)?, None);
    }
    let touched = cache.hits() + cache.misses();
    assert!(touched < 30, "{touched} data block reads for absent keys");
    assert!(t.get(b"key0042", SeqNo::MAX)?.is_some());
    assert!(t.get(b"key0042", SeqNo::MAX)?.is_some());
    assert_eq!(cache.hits() + cache.misses(), touched + 2);
    assert!(cache.hits() >= 1);
    Ok(())
}

/// A steady point-read load over more blocks than the cache holds decrypts each miss into
/// an evicted block's buffer: once the cache is full, misses allocate (almost) nothing.
#[test]
fn point_read_misses_reuse_evicted_buffers() -> Result<()> {
    let entries = sample_entries(4000);
    let (bytes, _) = build(&entries, true, 9, small_opts())?;
    // Room for about a quarter of the table's blocks.
    let cache = Arc::new(BlockCache::new(bytes.len() / 4));
    let t = open(bytes, true, 9, Some(Arc::clone(&cache)))?;
    let mut x: u64 = 15;
    let mut read = |n: usize| -> Result<()> {
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, v) = &entries[(x % entries.len() as u64) as usize];
            let got = t.get(ikey::user_key(k), SeqNo::MAX)?;
            assert_eq!(got.map(|(_, v)| v.to_vec()).as_ref(), Some(v));
        }
        Ok(())
    };
    read(4000)?;
    let (misses, fresh) = (cache.misses(), cache.new_buffers());
    read(4000)?;
    let (misses, fresh) = (cache.misses() - misses, cache.new_buffers() - fresh);
    assert!(
        misses > 1000,
        "{misses} misses: the cache is too large for the test"
    );
    assert!(
        fresh * 20 < misses,
        "{fresh} new buffers for {misses} misses: evicted blocks' buffers are not reused"
    );
    Ok(())
}

/// Everything a reader can do with a table; the first error is returned.
fn read_everything(bytes: Bytes, sealed: bool, file: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let t = open(bytes, sealed, file, None)?;
    t.verify()?;
    let all = collect_forward(&t)?;
    for (k, _) in &all {
        t.get(ikey::user_key(k), SeqNo::MAX)?;
    }
    Ok(all)
}

#[test]
fn every_flipped_byte_is_detected() -> Result<()> {
    for sealed in [false, true] {
        let entries = sample_entries(12);
        let opts = SstBuildOptions {
            block_size: 64,
            ..small_opts()
        };
        let (bytes, _) = build(&entries, sealed, 3, opts)?;
        assert_eq!(read_everything(bytes.clone(), sealed, 3)?, entries);
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            match read_everything(Bytes::from(bad), sealed, 3) {
                Err(e) => assert!(
                    e.is_integrity_failure(),
                    "sealed={sealed} byte {i}: unexpected error {e}"
                ),
                Ok(_) => panic!("sealed={sealed}: flip at byte {i} went unnoticed"),
            }
        }
    }
    Ok(())
}

#[test]
fn bad_magic_names_file_and_offset() -> Result<()> {
    let (bytes, _) = build(&sample_entries(3), false, 4, small_opts())?;
    let mut bad = bytes.to_vec();
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    match open(Bytes::from(bad), false, 4, None) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!(file, "000004.sst");
            assert_eq!(offset, (n - FOOTER_LEN) as u64);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(open(bytes.slice(..10), false, 4, None).is_err());
    // A plaintext file where the engine expects a sealed one is refused.
    assert!(open(bytes, true, 4, None).is_err());
    Ok(())
}

#[test]
fn a_block_moved_between_sealed_files_fails() -> Result<()> {
    // Same keys, same layout: the first data block has the same size and offset in both.
    let entries = sample_entries(40);
    let (a, _) = build(&entries, true, 10, small_opts())?;
    let (b, _) = build(&entries, true, 11, small_opts())?;
    assert_eq!(a.len(), b.len());
    let t = open(b.clone(), true, 11, None)?;
    let mut idx = t.index.iter();
    idx.seek_to_first()?;
    let h = t.data_handle(idx.value())?;
    let (start, end) = (h.offset as usize, h.end().unwrap_or(0) as usize);
    let mut spliced = b.to_vec();
    spliced[start..end].copy_from_slice(&a[start..end]);
    let t = open(Bytes::from(spliced), true, 11, None)?;
    match t.get(ikey::user_key(&entries[0].0), SeqNo::MAX) {
        Err(Error::Integrity { offset, .. }) => assert_eq!(offset, h.offset),
        other => panic!("expected an integrity failure, got {other:?}"),
    }
    assert!(t.verify().is_err());
    // A footer (and so a wrapped key) from another file does not unwrap.
    let mut swapped = b.to_vec();
    let n = swapped.len();
    swapped[n - FOOTER_LEN..].copy_from_slice(&a[n - FOOTER_LEN..]);
    assert!(open(Bytes::from(swapped), true, 11, None).is_err());
    Ok(())
}

#[test]
fn real_files_through_std_env() -> Result<()> {
    use crate::storage::{Env, StdEnv};
    let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
    let path = dir.path().join("000007.sst");
    let f = StdEnv.create(&path).map_err(|e| Error::io("create", e))?;
    let mut b = SstBuilder::new(f, Protection::Plain, SstBuildOptions::default())?;
    let entries = sample_entries(2000);
    for (k, v) in &entries {
        b.add(k, v)?;
    }
    let est = b.estimated_size();
    let s = b.finish()?;
    assert!(
        s.size >= est / 2 && s.size <= est * 2,
        "{est} vs {}",
        s.size
    );
    let file = StdEnv.open_read(&path).map_err(|e| Error::io("open", e))?;
    let t = SstReader::open(
        file,
        Arc::from("000007.sst"),
        7,
        |k| match k {
            None => Ok(UnitOpener::plain(Arc::from("000007.sst"))),
            Some(_) => Err(Error::corruption("000007.sst", 0, "expected plaintext")),
        },
        None,
    )?;
    t.verify()?;
    assert_eq!(collect_forward(&t)?, entries);
    Ok(())
}

// ---- model test ----

/// Random entries: (user key, seq) -> (kind, value), small alphabet so versions collide.
fn entries_strategy() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    proptest::collection::btree_map(
        (proptest::collection::vec(0u8..4, 0..5), 0u64..50),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
        0..300,
    )
    .prop_map(|m| {
        let mut v: Vec<(Vec<u8>, Vec<u8>)> = m
            .into_iter()
            .map(|((uk, seq), (put, val))| {
                let kind = if put {
                    ValueKind::Put
                } else {
                    ValueKind::Delete
                };
                (ik(&uk, seq, kind), val)
            })
            .collect();
        v.sort_by(|a, b| ikey::compare(&a.0, &b.0));
        v
    })
}

fn model_get(model: &[(Vec<u8>, Vec<u8>)], uk: &[u8], seq: u64) -> Option<(ValueKind, Vec<u8>)> {
    model.iter().find_map(|(k, v)| {
        let p = ikey::parse(k)?;
        (p.user_key == uk && p.seq.0 <= seq).then(|| (p.kind, v.clone()))
    })
}

fn check_model(
    model: &[(Vec<u8>, Vec<u8>)],
    sealed: bool,
    opts: SstBuildOptions,
    probes: &[(Vec<u8>, u64)],
) -> Result<()> {
    let (bytes, _) = build(model, sealed, 21, opts)?;
    let cache = Arc::new(BlockCache::new(64 << 10));
    let t = open(bytes, sealed, 21, Some(cache))?;
    t.verify()?;
    assert_eq!(collect_forward(&t)?, model);
    assert_eq!(collect_backward(&t)?, model);
    let mut it = t.iter();
    for (uk, seq) in probes {
        let got = t.get(uk, SeqNo(*seq))?.map(|(k, v)| (k, v.to_vec()));
        assert_eq!(got, model_get(model, uk, *seq), "get {uk:?}@{seq}");
        let target = ikey::seek_key(uk, SeqNo(*seq));
        it.seek(&target)?;
        let want = model
            .iter()
            .find(|(k, _)| ikey::compare(k, &target) != Ordering::Less);
        assert_eq!(
            it.valid().then(|| it.key().to_vec()),
            want.map(|e| e.0.clone())
        );
        if let Some(pos) = want.and_then(|w| model.iter().position(|e| e.0 == w.0)) {
            // Step both ways from the seek position.
            it.prev()?;
            let before = pos.checked_sub(1).and_then(|p| model.get(p));
            assert_eq!(
                it.valid().then(|| it.key().to_vec()),
                before.map(|e| e.0.clone())
            );
        }
        it.seek_for_prev(&target)?;
        let want = model
            .iter()
            .rev()
            .find(|(k, _)| ikey::compare(k, &target) != Ordering::Greater);
        assert_eq!(
            it.valid().then(|| it.key().to_vec()),
            want.map(|e| e.0.clone())
        );
        if it.valid() {
            it.next()?;
            let pos = want.and_then(|w| model.iter().position(|e| e.0 == w.0));
            let after = pos.and_then(|p| model.get(p + 1));
            assert_eq!(
                it.valid().then(|| it.key().to_vec()),
                after.map(|e| e.0.clone())
            );
        }
    }
    Ok(())
}

/// Mutates a valid table `flips` times at random positions.
fn mutated_table(flips: Vec<(usize, u8)>, sealed_layout: bool) -> Vec<u8> {
    let opts = SstBuildOptions {
        block_size: 64,
        ..small_opts()
    };
    let mut bytes = build(&sample_entries(20), false, 1, opts)
        .map(|(b, _)| b.to_vec())
        .unwrap_or_default();
    let n = bytes.len();
    for (at, x) in flips {
        // Bias towards the footer and the blocks it points at.
        let at = if sealed_layout {
            n - 1 - at % n.min(300)
        } else {
            at % n
        };
        bytes[at] ^= x;
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_api::fuzz_block(&data);
        fuzz_api::fuzz_table(&data);
    }

    #[test]
    fn block_decoder_never_panics_on_damaged_blocks(
        flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4),
        restart_interval in 1usize..5,
    ) {
        let mut b = BlockBuilder::new(restart_interval);
        for (k, v) in sample_entries(30) {
            b.add(&k, &v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut data = b.finish().map_err(|e| TestCaseError::fail(e.to_string()))?.to_vec();
        let n = data.len();
        for (at, x) in flips {
            data[at % n] ^= x;
        }
        fuzz_api::fuzz_block(&data);
    }

    #[test]
    fn decoders_never_panic_on_damaged_tables(
        flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..6),
        tail in any::<bool>(),
    ) {
        let bytes = mutated_table(flips, tail);
        fuzz_api::fuzz_table(&bytes);
        fuzz_api::fuzz_block(&bytes);
    }

    #[test]
    fn table_matches_sorted_model(
        model in entries_strategy(),
        sealed in any::<bool>(),
        block_size in 16usize..600,
        restart_interval in 1usize..8,
        probes in proptest::collection::vec(
            (proptest::collection::vec(0u8..4, 0..5), 0u64..60), 0..40),
        lz4 in any::<bool>(),
    ) {
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let opts = SstBuildOptions {
            block_size, restart_interval, bloom_bits_per_key: 10, compression,
        };
        check_model(&model, sealed, opts, &probes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

/// The sealed table in `testdata/sealed-aes-gcm-0.10.sst` was written by the RustCrypto
/// `aes-gcm` backend (commit d29aef8): `sample_entries(200)`, `small_opts()`, file 5, its
/// data key wrapped under `table_key()` (the bytes `build` wrote then). Every backend must
/// open it unchanged.
const OLD_BACKEND_TABLE: &[u8] = include_bytes!("testdata/sealed-aes-gcm-0.10.sst");

#[test]
fn a_table_sealed_by_the_rustcrypto_backend_still_opens() -> Result<()> {
    let t = open(Bytes::from_static(OLD_BACKEND_TABLE), true, 5, None)?;
    t.verify()?;
    assert_eq!(collect_forward(&t)?, sample_entries(200));
    assert_eq!(
        t.get(b"key0011", SeqNo::MAX)?,
        Some((ValueKind::Put, Bytes::from_static(b"value-11")))
    );
    // One flipped ciphertext bit in the first data block: an integrity failure, not data.
    let mut bad = OLD_BACKEND_TABLE.to_vec();
    bad[10] ^= 1;
    let t = open(Bytes::from(bad), true, 5, None)?;
    assert!(t.verify().is_err_and(|e| e.is_integrity_failure()));
    Ok(())
}

#[test]
fn a_scan_caches_only_the_blocks_around_its_seek_and_reads_every_entry() -> Result<()> {
    for sealed in [false, true] {
        let entries = sample_entries(500);
        let (bytes, summary) = build(&entries, sealed, 4, small_opts())?;
        let cache = Arc::new(BlockCache::new(1 << 20));
        let t = open(bytes, sealed, 4, Some(Arc::clone(&cache)))?;
        let blocks = t.properties().data_blocks;
        assert!(blocks > 20, "{blocks} blocks");
        // Forward and backward scans see every entry, in order...
        assert_eq!(collect_forward(&t)?, entries, "sealed={sealed}");
        assert_eq!(collect_backward(&t)?, entries, "sealed={sealed}");
        // ...while the cache keeps only each scan's first blocks (the seek's and the next).
        let cached = cache.usage();
        assert!(cached > 0, "sealed={sealed}");
        assert!(
            cached <= 4 * (summary.size as usize / blocks as usize + 200),
            "sealed={sealed}: {cached} bytes cached after two scans of {blocks} blocks"
        );
        // A block that is in the cache is served from it mid-scan (a hit, not a second open).
        let k = &entries[250].0;
        assert!(t.get(ikey::user_key(k), SeqNo::MAX)?.is_some());
        let hits = cache.hits();
        assert_eq!(collect_forward(&t)?, entries);
        assert!(
            cache.hits() > hits,
            "sealed={sealed}: the cached block was not used"
        );
    }
    Ok(())
}

#[test]
fn a_data_key_wrapped_for_a_wal_segment_is_refused() -> Result<()> {
    // The same table and file number, but wrapped for a WAL segment: its wrapped key would
    // not unwrap as an SSTable's when the table is read.
    let wal = WrapContext {
        file_kind: FileKind::Wal,
        ..wrap_ctx(9)
    };
    let for_wal = Protection::with_key(DataKey::generate(), &table_key(), wal);
    match SstBuilder::new(
        Box::new(MemWritable::default()),
        for_wal,
        SstBuildOptions::default(),
    ) {
        Err(Error::Internal(m)) => assert!(m.contains("wrapped for Wal"), "{m}"),
        Err(other) => return Err(other),
        Ok(_) => panic!("an SSTable builder took a key wrapped for a WAL segment"),
    }
    // Wrapped for an SSTable, and plaintext: accepted.
    SstBuilder::new(
        Box::new(MemWritable::default()),
        protection(true, 9),
        SstBuildOptions::default(),
    )?;
    SstBuilder::new(
        Box::new(MemWritable::default()),
        Protection::Plain,
        SstBuildOptions::default(),
    )?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A block cursor walked by any mix of `next`, `prev`, seeks and both ends stands where
    /// an index into the sorted entries does, key and value: `prev` answers from the
    /// entries its last backward scan decoded only when they are the ones before it.
    #[test]
    fn a_block_cursor_walks_like_an_index_into_its_entries(
        n in 1usize..90,
        restart_interval in 1usize..10,
        ops in proptest::collection::vec((0u8..5, any::<u16>()), 1..200),
    ) {
        let entries = sample_entries(n);
        let mut b = BlockBuilder::new(restart_interval);
        for (k, v) in &entries {
            b.add(k, v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let data = Bytes::copy_from_slice(
            b.finish().map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        let block = Arc::new(
            Block::new(data, Arc::from("walk"), 0).map_err(|e| TestCaseError::fail(e.to_string()))?,
        );
        let mut it = block.iter();
        // The model: the index of the current entry, None when invalid.
        let mut at: Option<usize> = None;
        for (op, arg) in ops {
            let step = match op {
                0 => {
                    at = at.and_then(|i| (i + 1 < n).then_some(i + 1));
                    it.next()
                }
                1 => {
                    at = at.and_then(|i| i.checked_sub(1));
                    it.prev()
                }
                2 => {
                    let i = usize::from(arg) % n;
                    at = Some(i);
                    it.seek(&entries[i].0)
                }
                3 => {
                    at = Some(0);
                    it.seek_to_first()
                }
                _ => {
                    at = Some(n - 1);
                    it.seek_to_last()
                }
            };
            step.map_err(|e| TestCaseError::fail(e.to_string()))?;
            match at {
                Some(i) => {
                    prop_assert!(it.valid(), "op {op}: invalid, expected entry {i}");
                    prop_assert_eq!(it.key(), &entries[i].0[..], "op {}: key of {}", op, i);
                    prop_assert_eq!(it.value(), &entries[i].1[..], "op {}: value of {}", op, i);
                }
                None => {
                    prop_assert!(!it.valid(), "op {op}: valid, expected none");
                    // The model, like the cursor, stays invalid until a seek.
                }
            }
        }
    }
}
