//! Target `index_key`: the entry keys of a secondary index (`index/key.rs`).
//!
//! - The bytes as a stored entry key: `decode` never panics, and what it accepts is
//!   canonical (encoding the parts again gives the same bytes), so one entry has one key.
//! - The bytes as two (index key, primary key) pairs: each round-trips through
//!   `encode`/`decode`, the entry keys sort exactly as the pairs do (the order a prefix scan
//!   relies on), and an entry key starts with `exact_prefix` of its own index key and
//!   `starts_with_prefix` of every prefix of it, and with the exact prefix of no other key
//!   (differential: the reference is the tuple order of the pairs).

use crate::index::key::{decode, encode, exact_prefix, starts_with_prefix};

/// Splits `data` into four parts at the positions its first four bytes name.
fn four_parts(data: &[u8]) -> Option<[&[u8]; 4]> {
    let (cuts, rest) = data.split_first_chunk::<4>()?;
    let mut parts: [&[u8]; 4] = [&[]; 4];
    let mut rest = rest;
    for (part, &cut) in parts.iter_mut().zip(cuts.iter()).take(3) {
        let (head, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        *part = head;
        rest = tail;
    }
    parts[3] = rest;
    Some(parts)
}

/// Runs the checks above on `data`; panics on a finding.
pub fn index_key(data: &[u8]) {
    if let Some((k, p)) = decode(data) {
        assert_eq!(encode(&k, p), data, "a decoded entry key is not canonical");
    }
    let Some([ka, pa, kb, pb]) = four_parts(data) else {
        return;
    };
    let (ea, eb) = (encode(ka, pa), encode(kb, pb));
    for (e, k, p) in [(&ea, ka, pa), (&eb, kb, pb)] {
        assert_eq!(
            decode(e),
            Some((k.to_vec(), p)),
            "entry key does not round-trip"
        );
        assert!(
            e.starts_with(&exact_prefix(k)),
            "entry lacks its exact prefix"
        );
        for n in 0..=k.len() {
            let prefix = k.get(..n).unwrap_or_default();
            assert!(
                e.starts_with(&starts_with_prefix(prefix)),
                "entry lacks the scan prefix of {n} bytes of its key"
            );
        }
    }
    assert_eq!(
        ea.cmp(&eb),
        (ka, pa).cmp(&(kb, pb)),
        "entry keys sort unlike their (index key, primary key) pairs"
    );
    if ka != kb {
        assert!(
            !eb.starts_with(&exact_prefix(ka)),
            "an exact-prefix scan of one index key finds another key's entry"
        );
    }
}
