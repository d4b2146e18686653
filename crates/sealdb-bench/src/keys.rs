//! Keys and values of the workloads: 16-byte decimal keys (ordered like their numbers) and
//! values cut from a pool of random bytes, so no engine gets to compress them away.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};

/// Length of every key.
pub const KEY_LEN: usize = 16;

/// Writes `n` as 16 zero-padded decimal digits: `0000000000000042`. Numbers at or above
/// 10^16 wrap (no workload gets near that).
pub fn key_of(n: u64, out: &mut [u8; KEY_LEN]) {
    let mut v = n;
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// A key as an owned array.
pub fn key(n: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    key_of(n, &mut k);
    k
}

/// Random values of one length, sliced from a shared pool at varying offsets.
pub struct ValueSource {
    pool: Vec<u8>,
    len: usize,
    next: usize,
}

impl ValueSource {
    pub fn new(len: usize, seed: u64) -> ValueSource {
        let mut pool = vec![0u8; (1 << 20) + len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut pool);
        ValueSource { pool, len, next: 0 }
    }

    /// The next value. Consecutive values start 61 bytes apart, so they differ.
    pub fn next_value(&mut self) -> &[u8] {
        let start = self.next;
        self.next = (self.next + 61) % (1 << 20);
        &self.pool[start..start + self.len]
    }
}

/// `0..n` in a seeded random order.
pub fn permutation(n: u64, seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    v.shuffle(&mut StdRng::seed_from_u64(seed));
    v
}

/// Uniform key numbers in `[lo, hi)`.
pub struct UniformKeys {
    rng: StdRng,
    lo: u64,
    hi: u64,
}

impl UniformKeys {
    pub fn new(lo: u64, hi: u64, seed: u64) -> UniformKeys {
        UniformKeys {
            rng: StdRng::seed_from_u64(seed),
            lo,
            hi: hi.max(lo + 1),
        }
    }

    pub fn next_key(&mut self) -> u64 {
        self.rng.gen_range(self.lo..self.hi)
    }
}

/// The share `[start, end)` of `total` items that thread `t` of `threads` handles.
pub fn share(total: u64, t: usize, threads: usize) -> (u64, u64) {
    let threads = threads.max(1) as u64;
    let t = t as u64;
    (total * t / threads, total * (t + 1) / threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_digits_in_numeric_order() {
        assert_eq!(&key(42), b"0000000000000042");
        assert_eq!(&key(0), b"0000000000000000");
        assert!(key(9) < key(10));
        assert!(key(999_999) < key(1_000_000));
    }

    #[test]
    fn permutation_covers_every_number_once() {
        let mut p = permutation(1000, 7);
        assert_ne!(p, (0..1000).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn shares_tile_the_range() {
        let parts: Vec<_> = (0..3).map(|t| share(10, t, 3)).collect();
        assert_eq!(parts, vec![(0, 3), (3, 6), (6, 10)]);
    }

    #[test]
    fn values_have_the_length_and_differ() {
        let mut v = ValueSource::new(100, 1);
        let a = v.next_value().to_vec();
        let b = v.next_value().to_vec();
        assert_eq!(a.len(), 100);
        assert_ne!(a, b);
    }
}
