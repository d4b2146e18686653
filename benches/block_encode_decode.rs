//! Data block encode (prefix compression, restarts) and decode (walk forward and back, seek)
//! of a 4 KiB block of 16-byte keys and 100-byte values.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sealdb::bench_internals::{internal_key, BlockCodec};
use sealdb_bench::key;

fn block(c: &mut Criterion) {
    // About 4 KiB: 34 entries of (16 + 8)-byte internal keys and 100-byte values.
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..34u64)
        .map(|i| (internal_key(&key(i * 7), 1000 - i), vec![i as u8; 100]))
        .collect();
    let mut codec = BlockCodec::new(16);
    let payload = codec.encode(&entries).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| codec.encode(&entries).unwrap_or_else(|e| panic!("{e}")))
    });
    g.bench_function("decode-walk", |b| {
        b.iter(|| BlockCodec::decode_all(payload.clone()).unwrap_or_else(|e| panic!("{e}")))
    });
    g.bench_function("decode-walk-reverse", |b| {
        b.iter(|| BlockCodec::decode_all_reverse(payload.clone()).unwrap_or_else(|e| panic!("{e}")))
    });
    let target = internal_key(&key(20 * 7), u64::MAX >> 8);
    g.bench_function("decode-seek", |b| {
        b.iter(|| {
            BlockCodec::decode_seek(payload.clone(), &target).unwrap_or_else(|e| panic!("{e}"))
        })
    });
    g.finish();
}

criterion_group!(benches, block);
criterion_main!(benches);
