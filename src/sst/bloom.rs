//! The filter block: one bloom filter over every user key of the file.
//!
//! ```text
//! filter = bits : [u8; m / 8] || num_probes : u8
//! probe i of key k (i = 0 .. num_probes):  bit (h1 + i * h2) mod m
//!   where h = hash64(k), h1 = low 32 bits, h2 = (high 32 bits) | 1  (double hashing)
//! ```
//!
//! `m` is `keys * bits_per_key` rounded up to a whole byte, at least 64; `num_probes` is
//! `bits_per_key * ln 2` clamped to 1..=30, which minimises false positives for that ratio
//! (10 bits per key: 6 probes, about 0.8% false positives).

use bytes::Bytes;

/// The most probes a filter may ask for; more is treated as corruption.
pub(crate) const MAX_PROBES: u8 = 30;

/// MurmurHash64A (Austin Appleby, public domain) with a fixed seed. Frozen: the filter
/// bits on disk depend on it.
pub(crate) fn hash64(data: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    const SEED: u64 = 0x5ea1_db00_5ea1_db00;
    let mut h = SEED ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut t = [0u8; 8];
        t[..tail.len()].copy_from_slice(tail);
        h ^= u64::from_le_bytes(t);
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Collects key hashes while a table is built; writes the filter at the end.
pub(crate) struct BloomBuilder {
    bits_per_key: usize,
    hashes: Vec<u64>,
}

impl BloomBuilder {
    pub(crate) fn new(bits_per_key: usize) -> BloomBuilder {
        BloomBuilder {
            bits_per_key: bits_per_key.max(1),
            hashes: Vec::new(),
        }
    }

    pub(crate) fn add_key(&mut self, user_key: &[u8]) {
        self.hashes.push(hash64(user_key));
    }

    /// The filter's bytes (see the layout above).
    pub(crate) fn finish(&self) -> Vec<u8> {
        let bits = (self.hashes.len() * self.bits_per_key).max(64);
        let bytes = bits.div_ceil(8);
        let bits = bytes * 8;
        // ln 2 ~= 0.69
        let probes = ((self.bits_per_key * 69) / 100).clamp(1, usize::from(MAX_PROBES)) as u8;
        let mut out = vec![0u8; bytes + 1];
        for &h in &self.hashes {
            let (mut h1, h2) = split(h);
            for _ in 0..probes {
                let bit = (h1 as usize) % bits;
                out[bit / 8] |= 1 << (bit % 8);
                h1 = h1.wrapping_add(h2);
            }
        }
        out[bytes] = probes;
        out
    }
}

fn split(h: u64) -> (u32, u32) {
    (h as u32, ((h >> 32) as u32) | 1)
}

/// A filter read back from a table.
#[derive(Clone, Debug)]
pub(crate) struct BloomFilter {
    bits: Bytes,
    probes: u8,
}

impl BloomFilter {
    /// `None` when the filter is malformed.
    pub(crate) fn decode(data: Bytes) -> Option<BloomFilter> {
        let (&probes, _) = data.split_last()?;
        if probes == 0 || probes > MAX_PROBES || data.len() < 2 {
            return None;
        }
        let bits = data.slice(..data.len() - 1);
        Some(BloomFilter { bits, probes })
    }

    /// The same filter in a buffer of its own: a plaintext file's filter is a slice of
    /// its memory map, which a copy kept past its reader must not hold mapped.
    pub(crate) fn detached(&self) -> BloomFilter {
        BloomFilter {
            bits: Bytes::copy_from_slice(&self.bits),
            probes: self.probes,
        }
    }

    /// False only when `user_key` was certainly never added.
    pub(crate) fn may_contain(&self, user_key: &[u8]) -> bool {
        let nbits = self.bits.len() * 8;
        let (mut h1, h2) = split(hash64(user_key));
        for _ in 0..self.probes {
            let bit = (h1 as usize) % nbits;
            match self.bits.get(bit / 8) {
                Some(b) if b & (1 << (bit % 8)) != 0 => {}
                _ => return false,
            }
            h1 = h1.wrapping_add(h2);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut b = BloomBuilder::new(10);
        for i in 0..10_000u32 {
            b.add_key(format!("key{i}").as_bytes());
        }
        let Some(f) = BloomFilter::decode(Bytes::from(b.finish())) else {
            panic!("filter must decode")
        };
        for i in 0..10_000u32 {
            assert!(f.may_contain(format!("key{i}").as_bytes()));
        }
        let fp = (0..10_000u32)
            .filter(|i| f.may_contain(format!("other{i}").as_bytes()))
            .count();
        assert!(fp < 200, "false positives: {fp}");
    }

    #[test]
    fn hash_is_frozen() {
        // Golden values: changing the hash silently breaks every filter on disk.
        assert_eq!(hash64(b""), 0x46c7_dbef_47b6_f270);
        assert_eq!(hash64(b"sealdb-key-9"), 0x7552_615e_0c23_89ef);
        let mut b = BloomBuilder::new(10);
        b.add_key(b"a");
        // 64 bits (the minimum), six probes, then the probe count.
        assert_eq!(b.finish(), [64, 0, 2, 16, 128, 0, 4, 32, 6]);
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert!(BloomFilter::decode(Bytes::new()).is_none());
        assert!(BloomFilter::decode(Bytes::from_static(&[0])).is_none());
        assert!(BloomFilter::decode(Bytes::from_static(&[0xff, 31])).is_none());
        assert!(BloomFilter::decode(Bytes::from_static(&[0xff, 0])).is_none());
    }
}
