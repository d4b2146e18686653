//! The crypto ceiling: raw AES-256-GCM throughput of RustCrypto `aes-gcm` (the crate sealdb
//! uses) on 4 KiB blocks, seal and open, with no engine around it.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BLOCK: usize = 4096;

fn aead(c: &mut Criterion) {
    let cipher = Aes256Gcm::new_from_slice(&[0x42; 32]).unwrap_or_else(|_| unreachable!());
    let aad = [1u8; 23];
    let mut g = c.benchmark_group("aes-gcm-4KiB");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    let mut buf = vec![0xA5u8; BLOCK];
    let mut ctr = 0u64;
    g.bench_function("seal", |b| {
        b.iter(|| {
            ctr += 1;
            let mut n = [0u8; 12];
            n[4..].copy_from_slice(&ctr.to_le_bytes());
            cipher
                .encrypt_in_place_detached(Nonce::from_slice(&n), &aad, &mut buf)
                .unwrap_or_else(|_| unreachable!())
        })
    });
    let nonce = [9u8; 12];
    let plain = vec![0x5Au8; BLOCK];
    let mut sealed = plain.clone();
    let tag: Tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut sealed)
        .unwrap_or_else(|_| unreachable!());
    g.bench_function("open", |b| {
        b.iter_batched_ref(
            || sealed.clone(),
            |ct| {
                cipher
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, ct, &tag)
                    .unwrap_or_else(|_| unreachable!())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, aead);
criterion_main!(benches);
