//! The unit seam on 4 KiB blocks: seal and open through `UnitSealer`/`UnitOpener`, as every
//! SSTable block and WAL record goes, CRC32 (plaintext tables) against AES-256-GCM.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sealdb::bench_internals::UnitCodec;

const BLOCK: usize = 4096;

fn seal_open(c: &mut Criterion) {
    let payload = vec![0x5Au8; BLOCK];
    let mut g = c.benchmark_group("unit-4KiB");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    for (name, sealed) in [("crc32", false), ("aes-256-gcm", true)] {
        let mut codec = UnitCodec::new(sealed);
        g.bench_function(format!("seal/{name}"), |b| {
            b.iter(|| codec.seal(&payload).unwrap_or_else(|e| panic!("{e}")))
        });
        let mut codec = UnitCodec::new(sealed);
        let (at, _) = codec.seal(&payload).unwrap_or_else(|e| panic!("{e}"));
        let stored = codec.last_sealed();
        g.bench_function(format!("open/{name}"), |b| {
            b.iter_batched(
                || stored.clone(),
                |s| codec.open(at, s).unwrap_or_else(|e| panic!("{e}")),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
