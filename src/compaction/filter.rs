//! Which versions a compaction keeps: entry by entry of its merged input, in internal-key
//! order (per user key, newest first).
//!
//! The live snapshots cut the sequence numbers into stripes: stripe i holds the sequence
//! numbers in (snapshot[i-1], snapshot[i]], and the last stripe everything above the newest
//! snapshot (what readers without a snapshot see). A reader of any stripe sees only the
//! newest version of a key inside that stripe or below, so within one stripe only the
//! newest version can ever be read: the others are dropped. A tombstone in the lowest
//! stripe hides nothing anyone can see once no deeper level may hold an older version of
//! its key: it is dropped too (and the older versions beneath it, all in the same stripe).

use crate::error::{Error, Result};
use crate::ikey;
use crate::types::{SeqNo, ValueKind};

/// Keep-or-drop decisions for one compaction.
pub(crate) struct VersionFilter<F: Fn(&[u8]) -> bool> {
    /// Live snapshots, ascending.
    snapshots: Vec<SeqNo>,
    /// True when no level below the output may hold the user key.
    is_base_level: F,
    current: Vec<u8>,
    has_current: bool,
    /// The stripe of the newest version of `current` seen so far.
    last_stripe: usize,
    pub(crate) dropped: u64,
}

impl<F: Fn(&[u8]) -> bool> VersionFilter<F> {
    pub(crate) fn new(mut snapshots: Vec<SeqNo>, is_base_level: F) -> Self {
        snapshots.sort_unstable();
        snapshots.dedup();
        VersionFilter {
            snapshots,
            is_base_level,
            current: Vec::new(),
            has_current: false,
            last_stripe: 0,
            dropped: 0,
        }
    }

    /// The stripe of `seq`: how many snapshots are older than it.
    fn stripe(&self, seq: SeqNo) -> usize {
        self.snapshots.partition_point(|s| *s < seq)
    }

    /// True when the entry with internal key `key` must be written to the output.
    /// Entries must come in internal-key order.
    pub(crate) fn keep(&mut self, key: &[u8]) -> Result<bool> {
        let p = ikey::parse(key)
            .ok_or_else(|| Error::corruption("<compaction input>", 0, "malformed internal key"))?;
        let stripe = self.stripe(p.seq);
        let same_key = self.has_current && self.current == p.user_key;
        if same_key && stripe == self.last_stripe {
            // A newer version in the same stripe hides this one from every reader.
            self.dropped += 1;
            return Ok(false);
        }
        if !same_key {
            self.current.clear();
            self.current.extend_from_slice(p.user_key);
            self.has_current = true;
        }
        self.last_stripe = stripe;
        if p.kind == ValueKind::Delete && stripe == 0 && (self.is_base_level)(p.user_key) {
            self.dropped += 1;
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        snapshots: &[u64],
        base: bool,
        entries: &[(&[u8], u64, ValueKind)],
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut f = VersionFilter::new(snapshots.iter().map(|s| SeqNo(*s)).collect(), |_| base);
        let mut out = Vec::new();
        for (k, s, kind) in entries {
            if f.keep(&ikey::encode(k, SeqNo(*s), *kind))? {
                out.push((k.to_vec(), *s));
            }
        }
        Ok(out)
    }

    use ValueKind::{Delete, Put};

    #[test]
    fn without_snapshots_only_the_newest_version_survives() -> Result<()> {
        let got = run(
            &[],
            false,
            &[
                (b"a", 9, Put),
                (b"a", 5, Put),
                (b"a", 1, Delete),
                (b"b", 3, Put),
            ],
        )?;
        assert_eq!(got, vec![(b"a".to_vec(), 9), (b"b".to_vec(), 3)]);
        Ok(())
    }

    #[test]
    fn a_snapshot_keeps_the_version_it_sees() -> Result<()> {
        // Snapshot at 6 sees a@5; the current view sees a@9; a@4 is seen by no one.
        let got = run(
            &[6],
            false,
            &[(b"a", 9, Put), (b"a", 5, Put), (b"a", 4, Put)],
        )?;
        assert_eq!(got, vec![(b"a".to_vec(), 9), (b"a".to_vec(), 5)]);
        // Snapshot at exactly a version's sequence number sees it.
        let got = run(
            &[5],
            false,
            &[(b"a", 9, Put), (b"a", 5, Put), (b"a", 4, Put)],
        )?;
        assert_eq!(got, vec![(b"a".to_vec(), 9), (b"a".to_vec(), 5)]);
        Ok(())
    }

    #[test]
    fn tombstones_drop_only_at_the_base_level_and_below_every_snapshot() -> Result<()> {
        let entries: &[(&[u8], u64, ValueKind)] = &[(b"a", 7, Delete), (b"a", 3, Put)];
        // Base level, no snapshot: the delete and what it hid both go.
        assert_eq!(run(&[], true, entries)?, vec![]);
        // Not the base level: an older version may live deeper; the tombstone stays.
        assert_eq!(run(&[], false, entries)?, vec![(b"a".to_vec(), 7)]);
        // A snapshot before the delete still reads a@3: both stay.
        assert_eq!(
            run(&[5], true, entries)?,
            vec![(b"a".to_vec(), 7), (b"a".to_vec(), 3)]
        );
        // A snapshot after the delete: it sees nothing, like everyone else.
        assert_eq!(run(&[8], true, entries)?, vec![]);
        Ok(())
    }

    #[test]
    fn malformed_keys_are_errors() {
        let mut f = VersionFilter::new(Vec::new(), |_| true);
        assert!(f.keep(b"short").is_err());
    }
}
