//! The AEAD ceiling on this machine: AES-256-GCM seal and open of 4 KiB blocks (SSTable
//! data blocks) and 128-byte records (a WAL section of a 16-byte key and a 100-byte value)
//! with RustCrypto `aes-gcm` (sealdb's pure-Rust build), `ring` and `aws-lc-rs` (sealdb's
//! default backend), timed in one process.

use std::time::Instant;

use serde::Serialize;

/// Unit sizes measured, with the share of the iterations each gets.
const SIZES: [(usize, u64); 2] = [(4096, 1), (128, 8)];
const AAD: [u8; 23] = [1; 23];

#[derive(Serialize)]
pub struct AeadFigure {
    pub crate_name: &'static str,
    /// Bytes per sealed unit.
    pub bytes: usize,
    pub seal_gib_s: f64,
    pub open_gib_s: f64,
    pub seal_us_per_block: f64,
    pub open_us_per_block: f64,
}

fn nonce(i: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_le_bytes());
    n
}

/// Times `iters` calls of `f`, best of three rounds; returns seconds per call.
fn time(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        best = best.min(t.elapsed().as_secs_f64() / iters as f64);
    }
    best
}

fn figure(name: &'static str, len: usize, seal: f64, open: f64) -> AeadFigure {
    let gib = |s: f64| len as f64 / s / (1u64 << 30) as f64;
    AeadFigure {
        crate_name: name,
        bytes: len,
        seal_gib_s: gib(seal),
        open_gib_s: gib(open),
        seal_us_per_block: seal * 1e6,
        open_us_per_block: open * 1e6,
    }
}

fn rustcrypto(len: usize, iters: u64) -> AeadFigure {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    let c = Aes256Gcm::new_from_slice(&[7; 32]).expect("key");
    let mut buf = vec![0x5a; len];
    let seal = time(iters, |i| {
        let tag = c
            .encrypt_in_place_detached(Nonce::from_slice(&nonce(i)), &AAD, &mut buf)
            .expect("seal");
        let _ = std::hint::black_box(tag);
    });
    let mut ct = vec![0x5a; len];
    let tag = c
        .encrypt_in_place_detached(Nonce::from_slice(&nonce(0)), &AAD, &mut ct)
        .expect("seal");
    let mut work = ct.clone();
    let open = time(iters, |_| {
        work.copy_from_slice(&ct);
        c.decrypt_in_place_detached(Nonce::from_slice(&nonce(0)), &AAD, &mut work, &tag)
            .expect("open");
    });
    figure("aes-gcm 0.10 (RustCrypto)", len, seal, open)
}

fn ring_figure(len: usize, iters: u64) -> AeadFigure {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let mut buf = vec![0x5a; len];
    let seal = time(iters, |i| {
        let tag = k
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(i)),
                Aad::from(AAD),
                &mut buf,
            )
            .expect("seal");
        let _ = std::hint::black_box(tag);
    });
    let mut ct = vec![0x5a; len];
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce(0)),
            Aad::from(AAD),
            &mut ct,
        )
        .expect("seal");
    ct.extend_from_slice(tag.as_ref());
    let mut work = ct.clone();
    let open = time(iters, |_| {
        work.copy_from_slice(&ct);
        k.open_in_place(
            Nonce::assume_unique_for_key(nonce(0)),
            Aad::from(AAD),
            &mut work,
        )
        .expect("open");
    });
    figure("ring 0.17", len, seal, open)
}

fn awslc_figure(len: usize, iters: u64) -> AeadFigure {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    let mut buf = vec![0x5a; len];
    let seal = time(iters, |i| {
        let tag = k
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce(i)),
                Aad::from(AAD),
                &mut buf,
            )
            .expect("seal");
        let _ = std::hint::black_box(tag);
    });
    let mut ct = vec![0x5a; len];
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce(0)),
            Aad::from(AAD),
            &mut ct,
        )
        .expect("seal");
    ct.extend_from_slice(tag.as_ref());
    let mut work = ct.clone();
    let open = time(iters, |_| {
        work.copy_from_slice(&ct);
        k.open_in_place(
            Nonce::assume_unique_for_key(nonce(0)),
            Aad::from(AAD),
            &mut work,
        )
        .expect("open");
    });
    figure("aws-lc-rs 1", len, seal, open)
}

/// Every crate at every size; `iters` calls per 4 KiB round (more for smaller units).
pub fn run(iters: u64) -> Vec<AeadFigure> {
    let mut out = Vec::new();
    for (len, share) in SIZES {
        let n = iters * share;
        out.extend([
            rustcrypto(len, n),
            ring_figure(len, n),
            awslc_figure(len, n),
        ]);
    }
    out
}
