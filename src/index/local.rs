//! Local indexes: index entries kept inside the table's own LSM (same memtables, files,
//! data keys and compactions as its items), declared when the table is created.
//!
//! A table created with local indexes has the *local layout*: its keys are split into two
//! key spaces by their first byte, so an index entry can never collide with an item,
//! whatever bytes the application's keys hold:
//!
//! ```text
//! item key  = 0x00 || primary key                                    value: the item's
//! entry key = 0x01 || slot : u8 || escape(index key) || 0x00 0x01    value: empty
//!                  || 0x00 || primary key
//! ```
//!
//! `escape` and the `0x00 0x01` terminator are `key`'s (the global layout); what follows
//! the terminator is the item's *stored* key (`0x00 || primary key`), as in a global
//! index of this table, so one lookup finds the item. `slot` is the index's position in the
//! table's declaration (0 for the first), recorded in its `DeclareLocalIndex` edit.
//!
//! The table handle (`Table`, `WriteBatch`) maps every primary key and range bound into
//! the item space and strips the byte on the way out, so reads, scans and writes of the
//! table never see the index space. A table without local indexes keeps its keys bare:
//! the layout is fixed by the table's `CreateTable` record, which holds the declarations.

use std::borrow::Cow;
use std::ops::Bound;

use crate::db::prefix_successor;

/// First byte of every item key of a table with the local layout.
pub(crate) const ITEM_SPACE: u8 = 0x00;
/// First byte of every local index entry.
pub(crate) const INDEX_SPACE: u8 = 0x01;
/// Local indexes a table may declare (slots 0..MAX_LOCAL_INDEXES).
pub(crate) const MAX_LOCAL_INDEXES: usize = 16;

/// The stored key of item `pk`: `pk` itself, or `0x00 || pk` in the local layout.
pub(crate) fn stored_key(local_layout: bool, pk: &[u8]) -> Cow<'_, [u8]> {
    if local_layout {
        let mut k = Vec::with_capacity(pk.len() + 1);
        k.push(ITEM_SPACE);
        k.extend_from_slice(pk);
        Cow::Owned(k)
    } else {
        Cow::Borrowed(pk)
    }
}

/// The stored form of a bound on primary keys (an unbounded side stays unbounded).
pub(crate) fn stored_bound(b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    let stored = |k: Vec<u8>| stored_key(true, &k).into_owned();
    match b {
        Bound::Included(k) => Bound::Included(stored(k)),
        Bound::Excluded(k) => Bound::Excluded(stored(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The stored range of the items whose primary keys are in (`lower`, `upper`): within the
/// item space, never reaching an index entry.
pub(crate) fn item_bounds(
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lower = match stored_bound(lower) {
        Bound::Unbounded => Bound::Included(vec![ITEM_SPACE]),
        b => b,
    };
    let upper = match stored_bound(upper) {
        Bound::Unbounded => Bound::Excluded(vec![INDEX_SPACE]),
        b => b,
    };
    (lower, upper)
}

/// The prefix of every entry of the local index in `slot`.
pub(crate) fn slot_prefix(slot: u8) -> [u8; 2] {
    [INDEX_SPACE, slot]
}

/// The stored range holding every entry of the local index in `slot`.
pub(crate) fn slot_bounds(slot: u8) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let p = slot_prefix(slot);
    (
        Bound::Included(p.to_vec()),
        prefix_successor(&p).map_or(Bound::Unbounded, Bound::Excluded),
    )
}

#[cfg(test)]
mod tests {
    use std::ops::RangeBounds;

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_layout() {
        assert_eq!(stored_key(true, b"k").as_ref(), &[0x00, b'k']);
        assert_eq!(stored_key(false, b"k").as_ref(), b"k");
        let mut entry = Vec::new();
        super::super::key::encode_into(
            &mut entry,
            &slot_prefix(3),
            b"a\x00",
            &stored_key(true, b"pk"),
        );
        assert_eq!(
            entry,
            vec![0x01, 3, b'a', 0x00, 0xFF, 0x00, 0x01, 0x00, b'p', b'k']
        );
        assert_eq!(
            slot_bounds(3),
            (Bound::Included(vec![1, 3]), Bound::Excluded(vec![1, 4]))
        );
    }

    proptest! {
        /// No item key, and no bound of an item range, reaches the index space; every
        /// entry key of every slot is outside every item range.
        #[test]
        fn items_and_entries_never_meet(
            pk in proptest::collection::vec(any::<u8>(), 0..8),
            lo in proptest::collection::vec(any::<u8>(), 0..8),
            hi in proptest::collection::vec(any::<u8>(), 0..8),
            ik in proptest::collection::vec(any::<u8>(), 0..8),
            slot in 0u8..16,
        ) {
            let item = stored_key(true, &pk).into_owned();
            let mut entry = slot_prefix(slot).to_vec();
            entry.extend_from_slice(&super::super::key::encode(&ik, &item));
            let (l, u) = item_bounds(Bound::Unbounded, Bound::Unbounded);
            let inside = |k: &[u8], l: &Bound<Vec<u8>>, u: &Bound<Vec<u8>>| {
                (l.clone(), u.clone()).contains(&k.to_vec())
            };
            prop_assert!(inside(&item, &l, &u));
            prop_assert!(!inside(&entry, &l, &u));
            let (l, u) = item_bounds(Bound::Included(lo), Bound::Included(hi));
            prop_assert!(!inside(&entry, &l, &u));
            let (sl, su) = slot_bounds(slot);
            prop_assert!(inside(&entry, &sl, &su));
            prop_assert!(!inside(&item, &sl, &su));
        }
    }
}
