//! The crypto ceiling: raw AES-256-GCM seal and open on a 4 KiB block (an SSTable data
//! block) and a 128-byte record (a WAL section of one 16-byte key and 100-byte value),
//! with no engine around it, for the three backends in one run:
//! - RustCrypto `aes-gcm` (the pure-Rust build, `--no-default-features`),
//! - `aws-lc-rs` (the default build's backend; needs the `aws-lc` feature),
//! - `ring` (measured for the choice; see DESIGN.md, "The AEAD backend").
//!
//! "open" includes copying the ciphertext into the output buffer first (RustCrypto and
//! ring decrypt in place only; aws-lc-rs reads the ciphertext and writes the plaintext in
//! one pass, which is what the engine does from the memory map).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [usize; 2] = [4096, 128];
const AAD: [u8; 23] = [1; 23];
const KEY: [u8; 32] = [0x42; 32];

fn nonce(i: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_le_bytes());
    n
}

fn rustcrypto(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    let cipher = Aes256Gcm::new(&KEY.into());
    let mut g = c.benchmark_group("aes-gcm 0.10 (RustCrypto)");
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0xA5u8; len];
        let mut ctr = 0u64;
        g.bench_function(BenchmarkId::new("seal", len), |b| {
            b.iter(|| {
                ctr += 1;
                cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce(ctr)), &AAD, &mut buf)
                    .unwrap_or_else(|_| unreachable!())
            })
        });
        let mut sealed = vec![0x5Au8; len];
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce(0)), &AAD, &mut sealed)
            .unwrap_or_else(|_| unreachable!());
        let mut out = vec![0u8; len];
        g.bench_function(BenchmarkId::new("open", len), |b| {
            b.iter(|| {
                out.copy_from_slice(&sealed);
                cipher
                    .decrypt_in_place_detached(Nonce::from_slice(&nonce(0)), &AAD, &mut out, &tag)
                    .unwrap_or_else(|_| unreachable!())
            })
        });
    }
    g.finish();
}

fn ring_backend(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap_or_else(|_| unreachable!()));
    let mut g = c.benchmark_group("ring 0.17");
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0xA5u8; len];
        let mut ctr = 0u64;
        g.bench_function(BenchmarkId::new("seal", len), |b| {
            b.iter(|| {
                ctr += 1;
                key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce(ctr)),
                    Aad::from(AAD),
                    &mut buf,
                )
                .unwrap_or_else(|_| unreachable!())
            })
        });
        let mut sealed = vec![0x5Au8; len];
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(0)),
                Aad::from(AAD),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!());
        let mut out = vec![0u8; len];
        g.bench_function(BenchmarkId::new("open", len), |b| {
            b.iter(|| {
                out.copy_from_slice(&sealed);
                key.open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce(0)),
                    Aad::from(AAD),
                    tag,
                    &mut out,
                    0..,
                )
                .map(|p| p.len())
                .unwrap_or_else(|_| unreachable!())
            })
        });
    }
    g.finish();
}

#[cfg(feature = "aws-lc")]
fn aws_lc_backend(c: &mut Criterion) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap_or_else(|_| unreachable!()));
    let mut g = c.benchmark_group("aws-lc-rs 1");
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0xA5u8; len];
        let mut ctr = 0u64;
        g.bench_function(BenchmarkId::new("seal", len), |b| {
            b.iter(|| {
                ctr += 1;
                key.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce(ctr)),
                    Aad::from(AAD),
                    &mut buf,
                )
                .unwrap_or_else(|_| unreachable!())
            })
        });
        let mut sealed = vec![0x5Au8; len];
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(0)),
                Aad::from(AAD),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!());
        let mut out = vec![0u8; len];
        g.bench_function(BenchmarkId::new("open", len), |b| {
            b.iter(|| {
                key.open_separate_gather(
                    Nonce::assume_unique_for_key(nonce(0)),
                    Aad::from(AAD),
                    &sealed,
                    tag.as_ref(),
                    &mut out,
                )
                .unwrap_or_else(|_| unreachable!())
            })
        });
    }
    g.finish();
}

#[cfg(not(feature = "aws-lc"))]
fn aws_lc_backend(_: &mut Criterion) {}

criterion_group!(benches, rustcrypto, aws_lc_backend, ring_backend);
criterion_main!(benches);
