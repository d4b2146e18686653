//! Bloom filter build (10 bits per key) and probe, hit and miss.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sealdb::bench_internals::Bloom;
use sealdb_bench::key;

fn bloom(c: &mut Criterion) {
    const KEYS: u64 = 10_000;
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| key(i * 2).to_vec()).collect();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(KEYS));
    g.bench_function("build-10k", |b| {
        b.iter(|| Bloom::build(&keys, 10).unwrap_or_else(|e| panic!("{e}")))
    });
    let (filter, _) = Bloom::build(&keys, 10).unwrap_or_else(|e| panic!("{e}"));
    g.throughput(Throughput::Elements(1));
    let hit = key(5000 * 2);
    let miss = key(5000 * 2 + 1);
    g.bench_function("probe-hit", |b| b.iter(|| filter.may_contain(&hit)));
    g.bench_function("probe-miss", |b| b.iter(|| filter.may_contain(&miss)));
    g.finish();
}

criterion_group!(benches, bloom);
criterion_main!(benches);
