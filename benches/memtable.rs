//! Memtable insert (random order), point get, and a whole forward and backward scan through
//! its cursor, on 100k entries of 16-byte keys and 100-byte values.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealdb::bench_internals::Memtable;
use sealdb_bench::key;

const N: u64 = 100_000;

fn memtable(c: &mut Criterion) {
    let value = vec![7u8; 100];
    let mut g = c.benchmark_group("memtable");
    g.throughput(Throughput::Elements(1));
    let mem = Memtable::default();
    let mut rng = StdRng::seed_from_u64(1);
    let mut seq = 0u64;
    g.bench_function("insert", |b| {
        b.iter(|| {
            seq += 1;
            mem.insert(&key(rng.gen_range(0..N)), seq, &value)
        })
    });
    let full = Memtable::default();
    for i in 0..N {
        full.insert(&key(i), i + 1, &value);
    }
    g.bench_function("get-100k", |b| {
        b.iter(|| full.get(&key(rng.gen_range(0..N))))
    });
    g.finish();
    let mut g = c.benchmark_group("memtable-scan");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("forward-100k", |b| b.iter(|| full.scan(false)));
    g.bench_function("backward-100k", |b| b.iter(|| full.scan(true)));
    g.finish();
}

criterion_group!(benches, memtable);
criterion_main!(benches);
