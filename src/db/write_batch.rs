//! `WriteBatch`: writes to one or more tables applied atomically, and the encoding of one
//! table's share of a batch as it is stored in a WAL section.
//!
//! ```text
//! section payload = count : u32 LE || entry*
//! entry           = seq_delta : varint || kind : u8 || key_len : varint || key
//!                   || (kind == Put: value_len : varint || value)
//! ```
//! `seq_delta` is the entry's position in the whole batch, so sections of different tables
//! interleave back into the batch's sequence numbers.

use std::collections::BTreeMap;

use crate::coding::{put_varint, put_varint_prefixed, Cursor};
use crate::error::{Error, Result};
use crate::types::{SeqNo, TableId, ValueKind, MAX_KEY_LEN, MAX_VALUE_LEN};

use super::Table;

/// Puts and deletes across tables, applied all or nothing.
#[derive(Default, Debug, Clone)]
pub struct WriteBatch {
    sections: BTreeMap<TableId, Section>,
    /// Position in the WAL record of the next entry added (the sequence-number delta).
    count: u64,
    /// Position of this batch's first entry: 0, or the length of the batch it follows
    /// (`WriteBatch::following`).
    first: u64,
    error: Option<String>,
}

/// One table's share of a batch, kept in its stored form (count, then entries) so the
/// write path hands it to the WAL and the memtable without copying.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    count: u32,
    payload: Vec<u8>,
}

impl Section {
    /// An empty section (count 0) with room for `entries` more bytes.
    fn with_capacity(entries: usize) -> Section {
        let mut payload = Vec::with_capacity(entries + 4);
        payload.extend_from_slice(&0u32.to_le_bytes());
        Section { count: 0, payload }
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds a put of `key` -> `value` in `table`.
    pub fn put(&mut self, table: &Table, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.add_item(table, ValueKind::Put, key.as_ref(), value.as_ref());
    }

    /// Adds a delete of `key` in `table`.
    pub fn delete(&mut self, table: &Table, key: impl AsRef<[u8]>) {
        self.add_item(table, ValueKind::Delete, key.as_ref(), &[]);
    }

    /// An item write: in a table with local indexes its key goes into the item key space
    /// (`crate::index::local`).
    fn add_item(&mut self, table: &Table, kind: ValueKind, key: &[u8], value: &[u8]) {
        if table.state.has_local_layout() {
            let space = [crate::index::local::ITEM_SPACE];
            self.add_prefixed(table.id(), kind, &space, key, value);
        } else {
            self.add(table.id(), kind, key, value);
        }
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        (self.count - self.first) as usize
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == self.first
    }

    /// An empty batch to be written in the same WAL record after `base`: its sections
    /// follow `base`'s and its entries are numbered after `base`'s (index maintenance adds
    /// the entries a write causes this way, without copying the write).
    pub(crate) fn following(base: &WriteBatch) -> WriteBatch {
        WriteBatch {
            count: base.count,
            first: base.count,
            ..WriteBatch::default()
        }
    }

    pub(crate) fn add(&mut self, table: TableId, kind: ValueKind, key: &[u8], value: &[u8]) {
        self.add_prefixed(table, kind, &[], key, value)
    }

    /// Adds an entry whose stored key is `prefix || key`.
    pub(crate) fn add_prefixed(
        &mut self,
        table: TableId,
        kind: ValueKind,
        prefix: &[u8],
        key: &[u8],
        value: &[u8],
    ) {
        if prefix.len() + key.len() > MAX_KEY_LEN {
            self.error.get_or_insert(format!(
                "key of {} bytes exceeds the {MAX_KEY_LEN}-byte limit{}",
                key.len(),
                if prefix.is_empty() {
                    ""
                } else {
                    " (less the key-space byte of a table with local indexes)"
                }
            ));
            return;
        }
        if value.len() > MAX_VALUE_LEN {
            self.error.get_or_insert(format!(
                "value of {} bytes exceeds the {MAX_VALUE_LEN}-byte limit",
                value.len()
            ));
            return;
        }
        // At most three varints (10 + 5 + 5 bytes) and the kind beyond key and value: one
        // allocation for a single put (the section starts at its size), amortized doubling
        // for a large batch.
        let needed = prefix.len() + key.len() + value.len() + 24;
        let s = self
            .sections
            .entry(table)
            .or_insert_with(|| Section::with_capacity(needed));
        s.payload.reserve(needed);
        put_varint(&mut s.payload, self.count);
        s.payload.push(kind as u8);
        put_varint(&mut s.payload, (prefix.len() + key.len()) as u64);
        s.payload.extend_from_slice(prefix);
        s.payload.extend_from_slice(key);
        if kind == ValueKind::Put {
            put_varint_prefixed(&mut s.payload, value);
        }
        s.count += 1;
        s.payload[..4].copy_from_slice(&s.count.to_le_bytes());
        self.count += 1;
    }

    /// Fails if any operation was refused when it was added (too large).
    pub(crate) fn check(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(Error::InvalidArgument(e.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn sections(&self) -> impl Iterator<Item = (TableId, &Section)> {
        self.sections.iter().map(|(t, s)| (*t, s))
    }

    pub(crate) fn tables(&self) -> impl Iterator<Item = TableId> + '_ {
        self.sections.keys().copied()
    }
}

impl Section {
    /// The stored payload: count then entries.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// One decoded entry of a section.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SectionEntry<'a> {
    pub(crate) seq: SeqNo,
    pub(crate) kind: ValueKind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// Decodes a section payload, calling `f` for each entry. Malformed input is an
/// `Error::Corruption` naming `label` (where the section came from), the offset in the
/// section and the field that failed.
pub(crate) fn decode_section<'a>(
    payload: &'a [u8],
    first_seq: SeqNo,
    label: &'a str,
    mut f: impl FnMut(SectionEntry<'a>),
) -> Result<()> {
    let mut c = Cursor::new(payload, 0, label);
    let count = c.u32("batch section entry count")?;
    for i in 0..count {
        let at = c.offset();
        let delta = c.varint("batch section sequence delta")?;
        let kind_byte = c.u8("batch section entry kind")?;
        let kind = ValueKind::try_from(kind_byte)
            .map_err(|_| c.error_at(at, format!("entry {i}: unknown entry kind {kind_byte}")))?;
        let key = c.varint_prefixed("batch section key")?;
        let value = match kind {
            ValueKind::Put => c.varint_prefixed("batch section value")?,
            ValueKind::Delete => &[],
        };
        let seq = first_seq.0.checked_add(delta).ok_or_else(|| {
            c.error_at(at, format!("entry {i}: sequence delta {delta} overflows"))
        })?;
        f(SectionEntry {
            seq: SeqNo(seq),
            kind,
            key,
            value,
        });
    }
    if !c.is_empty() {
        return Err(c.error(format!(
            "bytes after the {count} entries of a batch section"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip_with_batch_positions() {
        let mut b = WriteBatch::new();
        b.add(TableId(2), ValueKind::Put, b"k1", b"v1");
        b.add(TableId(1), ValueKind::Delete, b"k2", b"");
        b.add(TableId(2), ValueKind::Put, b"k3", b"");
        assert_eq!(b.len(), 3);
        let mut seen = Vec::new();
        for (t, s) in b.sections() {
            decode_section(s.payload(), SeqNo(100), "test", |e| {
                seen.push((t, e.seq, e.kind, e.key.to_vec(), e.value.to_vec()))
            })
            .unwrap_or_else(|e| panic!("decodes: {e}"));
        }
        seen.sort_by_key(|e| e.1);
        assert_eq!(
            seen,
            vec![
                (
                    TableId(2),
                    SeqNo(100),
                    ValueKind::Put,
                    b"k1".to_vec(),
                    b"v1".to_vec()
                ),
                (
                    TableId(1),
                    SeqNo(101),
                    ValueKind::Delete,
                    b"k2".to_vec(),
                    vec![]
                ),
                (
                    TableId(2),
                    SeqNo(102),
                    ValueKind::Put,
                    b"k3".to_vec(),
                    vec![]
                ),
            ]
        );
    }

    #[test]
    fn golden_section_bytes() {
        let mut b = WriteBatch::new();
        b.add(TableId(1), ValueKind::Put, b"ab", b"x");
        b.add(TableId(1), ValueKind::Delete, b"c", b"");
        let (_, s) = b.sections().next().unwrap_or_else(|| panic!("one section"));
        assert_eq!(
            s.payload().to_vec(),
            vec![2, 0, 0, 0, 0, 1, 2, b'a', b'b', 1, b'x', 1, 0, 1, b'c']
        );
    }

    #[test]
    fn a_following_batch_numbers_after_its_base_and_prefixes_keys() {
        let mut base = WriteBatch::new();
        base.add(TableId(1), ValueKind::Put, b"a", b"1");
        base.add(TableId(1), ValueKind::Put, b"b", b"2");
        let mut extra = WriteBatch::following(&base);
        assert!(extra.is_empty());
        extra.add_prefixed(TableId(1), ValueKind::Delete, &[0x01, 0x00], b"e", b"");
        assert_eq!(extra.len(), 1);
        let (_, s) = extra
            .sections()
            .next()
            .unwrap_or_else(|| panic!("one section"));
        // seq_delta 2 (after the base's two entries), Delete, key 01 00 'e'.
        assert_eq!(s.payload().to_vec(), vec![1, 0, 0, 0, 2, 0, 3, 1, 0, b'e']);
        let mut limit = WriteBatch::new();
        limit.add_prefixed(TableId(1), ValueKind::Put, &[0], &vec![0; MAX_KEY_LEN], b"");
        assert!(matches!(limit.check(), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn oversized_entries_are_refused() {
        let mut b = WriteBatch::new();
        b.add(TableId(1), ValueKind::Put, &vec![0; MAX_KEY_LEN + 1], b"");
        assert!(matches!(b.check(), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn truncated_sections_are_rejected() {
        let mut b = WriteBatch::new();
        b.add(TableId(1), ValueKind::Put, b"key", b"value");
        let (_, s) = b.sections().next().unwrap_or_else(|| panic!("one section"));
        let p = s.payload().to_vec();
        // Each cut names the field it cut short.
        let mut fields = std::collections::BTreeSet::new();
        for n in 0..p.len() {
            match decode_section(&p[..n], SeqNo(1), "000009.log", |_| {}) {
                Err(Error::Corruption { file, what, .. }) => {
                    assert_eq!(file, "000009.log");
                    fields.insert(what.split(':').next().unwrap_or_default().to_owned());
                }
                other => panic!("cut at {n}: {other:?}"),
            }
        }
        assert!(fields.contains("batch section entry count"), "{fields:?}");
        assert!(fields.contains("batch section key"), "{fields:?}");
        assert!(fields.contains("batch section value"), "{fields:?}");
        // Trailing bytes, an unknown kind and an overflowing sequence number are named too.
        let mut long = p.clone();
        long.push(0);
        let e = decode_section(&long, SeqNo(1), "f", |_| {}).err();
        assert!(
            format!("{e:?}").contains("bytes after the 1 entries"),
            "{e:?}"
        );
        let mut bad_kind = p.clone();
        bad_kind[5] = 9; // count (4 bytes), delta 0 (1 byte), then the kind
        let e = decode_section(&bad_kind, SeqNo(1), "f", |_| {}).err();
        assert!(format!("{e:?}").contains("unknown entry kind 9"), "{e:?}");
        let mut delta_one = p.clone();
        delta_one[4] = 1;
        let e = decode_section(&delta_one, SeqNo(u64::MAX), "f", |_| {}).err();
        assert!(format!("{e:?}").contains("overflows"), "{e:?}");
    }
}
