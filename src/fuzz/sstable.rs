//! SSTable targets beyond the plaintext decoder in `sst::fuzz_api`:
//! - `sstable_roundtrip` (differential): entries decoded from the input are built into a
//!   table (plaintext or sealed, with or without LZ4, a block size from the input), opened
//!   again, and read every way; every read must equal the sorted input.
//! - `sstable_tamper`: a sealed table (with or without LZ4) built from fixed entries, with
//!   bytes changed where the input says; it may fail to open or read, but a read that
//!   succeeds returns exactly what was written (never wrong bytes, never a key missing).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::crypto::{
    unwrap_data_key, DataKey, FileKind, Protection, TableKey, UnitContext, UnitOpener, WrapContext,
    KEY_LEN,
};
use crate::iter::InternalIterator;
use crate::sst::{Compression, FooterKey, MemFile, SstBuildOptions, SstBuilder, SstReader};
use crate::storage::{FileSyncer, WritableFile};
use crate::types::{FileNumber, SeqNo, TableId, ValueKind};

type Model = BTreeMap<Vec<u8>, (SeqNo, ValueKind, Vec<u8>)>;
/// One table entry: (user key, sequence number, kind, value).
type Entry = (Vec<u8>, SeqNo, ValueKind, Vec<u8>);

/// A file in memory for the builder.
struct MemWritable(Arc<Mutex<Vec<u8>>>);

struct NoSync;

impl FileSyncer for NoSync {
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl WritableFile for MemWritable {
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(data);
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.lock().map(|v| v.len() as u64).unwrap_or(0)
    }
    fn syncer(&self) -> std::io::Result<Box<dyn FileSyncer>> {
        Ok(Box::new(NoSync))
    }
}

const TABLE: TableId = TableId(3);
const FILE: FileNumber = FileNumber(17);

fn table_key() -> TableKey {
    TableKey::from_bytes([0x42; KEY_LEN])
}

fn wrap_ctx(key_version: u32) -> WrapContext {
    WrapContext {
        table: TABLE,
        file_kind: FileKind::Sst,
        file: FILE,
        key_version,
    }
}

fn unit_ctx() -> UnitContext {
    UnitContext {
        table: TABLE,
        file: FILE,
        file_kind: FileKind::Sst,
        label: Arc::from("fuzz.sst"),
    }
}

/// Builds a table of `model` in memory.
fn build(
    model: &Model,
    sealed: bool,
    compression: Compression,
    block_size: usize,
) -> crate::Result<Vec<u8>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let protection = if sealed {
        Protection::with_key(DataKey::generate(), &table_key(), wrap_ctx(1))
    } else {
        Protection::Plain
    };
    let opts = SstBuildOptions {
        block_size,
        restart_interval: 4,
        bloom_bits_per_key: 10,
        compression,
    };
    let mut b = SstBuilder::new(Box::new(MemWritable(Arc::clone(&out))), protection, opts)?;
    for (k, (seq, kind, v)) in model {
        b.add(&crate::ikey::encode(k, *seq, *kind), v)?;
    }
    b.finish()?;
    let bytes = out.lock().map(|v| v.clone()).unwrap_or_default();
    Ok(bytes)
}

/// Opens a table the way the engine does (the sealed opener unwraps the footer's key).
fn open(bytes: Vec<u8>, sealed: bool) -> crate::Result<Arc<SstReader>> {
    let label: Arc<str> = Arc::from("fuzz.sst");
    SstReader::open(
        Arc::new(MemFile(Bytes::from(bytes))),
        Arc::clone(&label),
        FILE.0,
        |fk: Option<&FooterKey>| match (sealed, fk) {
            (false, None) => Ok(UnitOpener::plain(label)),
            (true, Some(fk)) => {
                let dek = unwrap_data_key(&table_key(), &fk.wrapped_dek, &wrap_ctx(fk.key_version))
                    .ok_or_else(|| crate::Error::Integrity {
                        file: "fuzz.sst".into(),
                        offset: 0,
                    })?;
                Ok(UnitOpener::sealed(unit_ctx(), &dek))
            }
            _ => Err(crate::Error::corruption(
                "fuzz.sst",
                0,
                "protection mismatch",
            )),
        },
        None,
    )
}

/// Every entry of the table, forward, as (user key, seq, kind, value).
fn entries(t: &Arc<SstReader>, reverse: bool) -> crate::Result<Vec<Entry>> {
    let mut it = t.iter();
    let mut out = Vec::new();
    if reverse {
        it.seek_to_last()?;
    } else {
        it.seek_to_first()?;
    }
    while it.valid() && out.len() < 100_000 {
        let p = crate::ikey::parse(it.key())
            .ok_or_else(|| crate::Error::corruption("fuzz.sst", 0, "bad internal key"))?;
        out.push((p.user_key.to_vec(), p.seq, p.kind, it.value().to_vec()));
        if reverse {
            it.prev()?;
        } else {
            it.next()?;
        }
    }
    if reverse {
        out.reverse();
    }
    Ok(out)
}

/// Reads `input` as entries: (key length % 24, key, kind, value length, value seed)*.
fn model_from(mut input: &[u8]) -> Model {
    let mut m = Model::new();
    let mut seq = 1u64;
    let take = |n: usize, input: &mut &[u8]| -> Option<Vec<u8>> {
        let n = n.min(input.len());
        let (a, b) = input.split_at(n);
        *input = b;
        Some(a.to_vec())
    };
    while let Some((&klen, rest)) = input.split_first() {
        input = rest;
        let Some(k) = take(usize::from(klen % 24), &mut input) else {
            break;
        };
        let Some(&[kind, vlen, vseed]) = take(3, &mut input).as_deref() else {
            break;
        };
        let kind = if kind % 5 == 0 {
            ValueKind::Delete
        } else {
            ValueKind::Put
        };
        let v = match kind {
            ValueKind::Put => (0..usize::from(vlen) * (1 + usize::from(vseed % 8)))
                .map(|i| vseed.wrapping_add((i / 7) as u8))
                .collect(),
            ValueKind::Delete => Vec::new(),
        };
        m.insert(k, (SeqNo(seq), kind, v));
        seq += 1;
    }
    m
}

/// The differential round trip.
pub fn sstable_roundtrip(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let sealed = flags & 1 != 0;
    let compression = if flags & 2 != 0 {
        Compression::Lz4
    } else {
        Compression::None
    };
    let block_size = [64, 256, 1024, 4096][usize::from(flags >> 2) % 4];
    let model = model_from(rest);
    if model.is_empty() {
        return;
    }
    let bytes = match build(&model, sealed, compression, block_size) {
        Ok(b) => b,
        Err(e) => panic!("building a table of valid entries failed: {e}"),
    };
    let t = match open(bytes, sealed) {
        Ok(t) => t,
        Err(e) => panic!("a freshly built table does not open: {e}"),
    };
    if let Err(e) = t.verify() {
        panic!("a freshly built table does not verify: {e}");
    }
    let want: Vec<_> = model
        .iter()
        .map(|(k, (s, kind, v))| (k.clone(), *s, *kind, v.clone()))
        .collect();
    for reverse in [false, true] {
        match entries(&t, reverse) {
            Ok(got) => assert!(
                got == want,
                "table contents differ from the input (reverse={reverse})"
            ),
            Err(e) => panic!("reading a freshly built table failed: {e}"),
        }
    }
    for (k, (_, kind, v)) in &model {
        match t.get(k, SeqNo::MAX) {
            Ok(Some((gk, gv))) => assert!(
                gk == *kind && gv.as_ref() == v.as_slice(),
                "get returned another entry"
            ),
            Ok(None) => panic!("get missed a key the table holds"),
            Err(e) => panic!("get failed on a fresh table: {e}"),
        }
        // A key the table lacks, just after this one.
        let mut absent = k.clone();
        absent.push(0);
        if !model.contains_key(&absent) {
            match t.get(&absent, SeqNo::MAX) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("get found a key never written"),
                Err(e) => panic!("get of an absent key failed: {e}"),
            }
        }
    }
}

/// The fixed entries of the tampered table: enough for several blocks and a filter.
fn tamper_model() -> Model {
    (0..120u64)
        .map(|i| {
            let kind = if i % 9 == 4 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let v = if kind == ValueKind::Put {
                format!("value-{i}-{}", "z".repeat((i % 30) as usize)).into_bytes()
            } else {
                Vec::new()
            };
            (format!("key{i:04}").into_bytes(), (SeqNo(i + 1), kind, v))
        })
        .collect()
}

/// The tamper target: input byte 0 picks LZ4; then (offset: u16 LE, xor: u8) triples.
pub fn sstable_tamper(data: &[u8]) {
    let Some((&flags, edits)) = data.split_first() else {
        return;
    };
    let compression = if flags & 1 != 0 {
        Compression::Lz4
    } else {
        Compression::None
    };
    let model = tamper_model();
    let Ok(mut bytes) = build(&model, true, compression, 256) else {
        panic!("building the tamper table failed");
    };
    let len = bytes.len();
    for e in edits.chunks_exact(3).take(64) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % len;
        bytes[at] ^= e[2];
    }
    let Ok(t) = open(bytes, true) else { return };
    let _ = t.verify();
    if let Ok(got) = entries(&t, flags & 2 != 0) {
        for (k, s, kind, v) in got {
            let want = model.get(&k);
            assert!(
                want == Some(&(s, kind, v)),
                "a tampered table returned an entry never written"
            );
        }
    }
    for (k, (_, kind, v)) in &model {
        match t.get(k, SeqNo::MAX) {
            Ok(Some((gk, gv))) => assert!(
                gk == *kind && gv.as_ref() == v.as_slice(),
                "a tampered table returned a wrong value"
            ),
            Ok(None) => panic!("a tampered table reported a written key absent without an error"),
            Err(_) => {}
        }
    }
}
