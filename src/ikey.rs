//! Internal keys: a user key plus the sequence number and kind of the write that made it.
//!
//! ```text
//! internal key = user_key || trailer : u64 LE      trailer = seq << 8 | kind
//! order: user_key ascending, then trailer descending (newest version first)
//! ```

use std::cmp::Ordering;

use crate::types::{SeqNo, ValueKind};

/// Bytes of the trailer after the user key.
pub(crate) const TRAILER_LEN: usize = std::mem::size_of::<u64>();

pub(crate) fn pack_trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    (seq.0 << 8) | kind as u64
}

/// Appends the internal key for (`user_key`, `seq`, `kind`) to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

pub(crate) fn encode(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_into(&mut v, user_key, seq, kind);
    v
}

/// The smallest internal key for `user_key` visible at `seq`: seeking to it lands on the
/// newest version with a sequence number at or below `seq`.
pub(crate) fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    encode(user_key, seq, ValueKind::Put)
}

/// A decoded internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParsedKey<'a> {
    pub(crate) user_key: &'a [u8],
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
}

/// Splits an internal key; `None` when it is too short or its kind is unknown.
pub(crate) fn parse(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let (user_key, trailer) = ikey.split_at(split);
    let trailer = u64::from_le_bytes(trailer.try_into().ok()?);
    let kind = ValueKind::try_from((trailer & 0xff) as u8).ok()?;
    Some(ParsedKey {
        user_key,
        seq: SeqNo(trailer >> 8),
        kind,
    })
}

/// The user key part of an internal key (the whole slice if it is too short to have a
/// trailer: callers validate with [`parse`] where it matters).
pub(crate) fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

fn trailer(ikey: &[u8]) -> u64 {
    let split = ikey.len().saturating_sub(TRAILER_LEN);
    ikey.get(split..)
        .and_then(|t| t.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Orders internal keys: user key ascending, then newest (largest trailer) first.
pub(crate) fn compare(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a)
        .cmp(user_key(b))
        .then_with(|| trailer(b).cmp(&trailer(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_sorts_first() {
        let a = encode(b"k", SeqNo(5), ValueKind::Put);
        let b = encode(b"k", SeqNo(9), ValueKind::Delete);
        let c = encode(b"l", SeqNo(1), ValueKind::Put);
        assert_eq!(compare(&b, &a), Ordering::Less);
        assert_eq!(compare(&a, &c), Ordering::Less);
        assert_eq!(compare(&seek_key(b"k", SeqNo(7)), &a), Ordering::Less);
        assert_eq!(compare(&seek_key(b"k", SeqNo(7)), &b), Ordering::Greater);
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let k = encode(b"user", SeqNo(42), ValueKind::Delete);
        let p = parse(&k);
        assert_eq!(
            p,
            Some(ParsedKey {
                user_key: b"user",
                seq: SeqNo(42),
                kind: ValueKind::Delete
            })
        );
        assert!(parse(b"short").is_none());
        let mut bad = k.clone();
        let n = bad.len();
        bad[n - TRAILER_LEN] = 7;
        assert!(parse(&bad).is_none());
    }
}
