//! The key of an index entry in the index's own LSM: the index key, escaped so that it
//! ends unambiguously, then the item's primary key.
//!
//! ```text
//! entry key = escape(index key) || 0x00 0x01 || primary key
//! escape    = each byte b of the index key as b, except 0x00 which becomes 0x00 0xFF
//! ```
//!
//! Why: entries of one index key must sort together and by primary key, so that non-unique
//! keys coexist and a prefix scan of one index key finds every item that has it. Escaping
//! keeps the order of index keys (`a < b` iff `escape(a) || 00 01 < escape(b) || 00 01`):
//! a 0x00 inside a key continues as `00 FF`, which sorts after the terminator `00 01`, so a
//! key sorts before every longer key it is a prefix of, as bytes do. The primary key needs
//! no escaping: it is whatever follows the first terminator. (The same idea as the
//! order-preserving byte-string encodings of tuple layers over ordered key-value stores.)

/// Marks the end of the escaped index key.
const TERMINATOR: [u8; 2] = [0x00, 0x01];
/// A 0x00 byte of the index key is stored as these two.
const ESCAPED_ZERO: [u8; 2] = [0x00, 0xFF];

/// Appends `escape(index_key)` to `out`: the prefix shared by every entry whose index key
/// starts with `index_key`.
pub(crate) fn put_escaped(out: &mut Vec<u8>, index_key: &[u8]) {
    for &b in index_key {
        if b == 0 {
            out.extend_from_slice(&ESCAPED_ZERO);
        } else {
            out.push(b);
        }
    }
}

/// The prefix of every entry whose index key is exactly `index_key`.
pub(crate) fn exact_prefix(index_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(index_key.len() + TERMINATOR.len());
    put_escaped(&mut out, index_key);
    out.extend_from_slice(&TERMINATOR);
    out
}

/// The prefix of every entry whose index key starts with `prefix`.
pub(crate) fn starts_with_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len());
    put_escaped(&mut out, prefix);
    out
}

/// The entry key of (`index_key`, `primary_key`).
pub(crate) fn encode(index_key: &[u8], primary_key: &[u8]) -> Vec<u8> {
    let mut out = exact_prefix(index_key);
    out.extend_from_slice(primary_key);
    out
}

/// Writes `prefix` and the entry key of (`index_key`, `primary_key`) into `out`, replacing
/// what it held (the write path reuses one buffer for every entry of a batch; `prefix` is
/// a local index's key-space slot, `local::slot_prefix`, or empty).
pub(crate) fn encode_into(out: &mut Vec<u8>, prefix: &[u8], index_key: &[u8], primary_key: &[u8]) {
    out.clear();
    out.extend_from_slice(prefix);
    put_escaped(out, index_key);
    out.extend_from_slice(&TERMINATOR);
    out.extend_from_slice(primary_key);
}

/// Splits an entry key into (index key, primary key); `None` if it is not one (no
/// terminator, or a 0x00 followed by anything but 0x01 or 0xFF).
pub(crate) fn decode(entry: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut index_key = Vec::new();
    let mut i = 0;
    while let Some(&b) = entry.get(i) {
        if b != 0 {
            index_key.push(b);
            i += 1;
            continue;
        }
        match entry.get(i + 1) {
            Some(0x01) => return Some((index_key, entry.get(i + 2..)?)),
            Some(0xFF) => {
                index_key.push(0);
                i += 2;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_layout() {
        assert_eq!(encode(b"ab", b"k"), vec![b'a', b'b', 0, 1, b'k']);
        assert_eq!(encode(&[0, 7], b""), vec![0, 0xFF, 7, 0, 1]);
        assert_eq!(decode(&[b'x', 0, 2]), None);
        assert_eq!(decode(b"no terminator"), None);
        let mut buf = b"leftover".to_vec();
        encode_into(&mut buf, &[], &[0, 7], b"pk");
        assert_eq!(buf, encode(&[0, 7], b"pk"));
        encode_into(&mut buf, &[1, 2], b"a", b"pk");
        assert_eq!(buf, [&[1, 2][..], &encode(b"a", b"pk")].concat());
    }

    proptest! {
        #[test]
        fn round_trips_and_keeps_order(
            a in proptest::collection::vec(any::<u8>(), 0..8),
            b in proptest::collection::vec(any::<u8>(), 0..8),
            pa in proptest::collection::vec(any::<u8>(), 0..8),
            pb in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let ea = encode(&a, &pa);
            let eb = encode(&b, &pb);
            let da = decode(&ea);
            prop_assert_eq!(da, Some((a.clone(), pa.as_slice())));
            // Ordered by index key, then by primary key.
            prop_assert_eq!(ea.cmp(&eb), (&a, &pa).cmp(&(&b, &pb)));
            // A prefix scan finds exactly the keys that start with the prefix.
            prop_assert_eq!(ea.starts_with(&starts_with_prefix(&b)), a.starts_with(&b));
            prop_assert_eq!(ea.starts_with(&exact_prefix(&b)), a == b);
        }
    }
}
