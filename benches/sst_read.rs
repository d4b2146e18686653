//! SSTable point reads (filter, index, data block) on a 20k-entry table held in memory:
//! plaintext and encrypted, with a warm block cache and with none (every read decodes and,
//! when encrypted, decrypts its block).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealdb::bench_internals::SstFixture;
use sealdb_bench::key;

const N: u64 = 20_000;

fn sst_read(c: &mut Criterion) {
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        (0..N).map(|i| (key(i).to_vec(), vec![3u8; 100])).collect();
    let mut g = c.benchmark_group("sst-get");
    g.throughput(Throughput::Elements(1));
    for (name, sealed) in [("plain", false), ("encrypted", true)] {
        for (cache_name, cache) in [("cached", Some(64usize << 20)), ("uncached", None)] {
            let t = SstFixture::build(&entries, sealed, cache).unwrap_or_else(|e| panic!("{e}"));
            let mut rng = StdRng::seed_from_u64(2);
            g.bench_function(format!("{name}/{cache_name}"), |b| {
                b.iter(|| {
                    t.get(&key(rng.gen_range(0..N)))
                        .unwrap_or_else(|e| panic!("{e}"))
                })
            });
        }
        let t = SstFixture::build(&entries, sealed, None).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = StdRng::seed_from_u64(3);
        g.bench_function(format!("{name}/miss"), |b| {
            b.iter(|| {
                let mut k = key(rng.gen_range(0..N));
                k[15] = b'.';
                t.get(&k).unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sst_read);
criterion_main!(benches);
