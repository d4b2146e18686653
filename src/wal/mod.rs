//! The write-ahead log: one log shared by every table of a database, so a batch across
//! tables is one record and survives a crash whole or not at all.
//!
//! The log is a sequence of segment files `NNNNNN.log`. A new segment starts on every open
//! and on every memtable switch; a segment is never appended to after a reopen. Each
//! encrypted table gets a fresh data key per segment (a `TableKey` record), and each of its
//! sections is sealed by the crypto seam at its absolute file offset. The format is in
//! DESIGN.md section 5; the layouts are atop `frame.rs` and `record.rs`.

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reader::replay_bytes;
pub(crate) use reader::{list_segments, replay_segment, ReplayKey, WalKeyRef};
pub(crate) use writer::{WalSink, WalWriter};

/// Runs the segment decoder over arbitrary bytes (as segment 1, last, every table plain
/// except table 1, whose sections are opened with a fixed all-zero data key). Never panics.
#[cfg(feature = "fuzzing")]
pub fn fuzz_wal(data: &[u8]) {
    use crate::crypto::{DataKey, KEY_LEN};
    use crate::types::{FileNumber, TableId};
    let mut resolve = |table: TableId, key: Option<&WalKeyRef<'_>>| -> crate::Result<ReplayKey> {
        Ok(match (table.0, key) {
            (1, Some(_)) => ReplayKey::Sealed(DataKey::from_bytes([0; KEY_LEN])),
            (_, None) => ReplayKey::Plain,
            (_, Some(_)) => ReplayKey::Skip,
        })
    };
    let mut sink = |_, _, _| Ok(());
    let _ = replay_bytes(
        bytes::Bytes::copy_from_slice(data),
        "fuzz.log",
        FileNumber(1),
        true,
        &mut resolve,
        &mut sink,
    );
}
