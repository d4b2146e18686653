//! The merging iterator in use: a full forward scan of a table whose keys are spread over
//! several L0 tables and the memtable (interleaved, so the merge switches source at every
//! step), through the public API.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sealdb::{Db, Options, TableOptions};
use sealdb_bench::key;

const N: u64 = 50_000;

fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge-scan");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    for sources in [1u64, 4, 8] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Db::open(dir.path(), Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let t = db
            .create_table("t", TableOptions::plaintext())
            .unwrap_or_else(|e| panic!("{e}"));
        // Source s holds keys s, s + sources, s + 2 * sources, ...; all but the last are flushed.
        for s in 0..sources {
            let mut i = s;
            while i < N {
                t.put(key(i), [5u8; 100]).unwrap_or_else(|e| panic!("{e}"));
                i += sources;
            }
            if s + 1 < sources {
                db.flush().unwrap_or_else(|e| panic!("{e}"));
            }
        }
        g.bench_function(format!("{sources}-sources"), |b| {
            b.iter(|| {
                let mut n = 0u64;
                for kv in t.iter().unwrap_or_else(|e| panic!("{e}")) {
                    kv.unwrap_or_else(|e| panic!("{e}"));
                    n += 1;
                }
                assert_eq!(n, N);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
