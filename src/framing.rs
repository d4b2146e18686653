//! The framing shared by WAL segments and manifests: a fixed file header, then records.
//!
//! ```text
//! file header (24 bytes):
//!   magic     : [u8; 8]   b"SEALWAL\0" (WAL) or b"SEALMAN\0" (manifest)
//!   version   : u8        the file kind's format version
//!   reserved  : [u8; 3]   zero
//!   number    : u64 LE    the file's own number (must match its name)
//!   hcrc      : u32 LE    crc32(bytes 0..20)
//!
//! record (13-byte header, then the payload):
//!   len       : u32 LE    payload length
//!   crc       : u32 LE    crc32(type || payload)
//!   type      : u8        record type (the file kind's own enum)
//!   hcrc      : u32 LE    crc32(bytes 0..9 of this header)
//!   payload   : [u8; len]
//! ```
//!
//! The header checksum exists so that a damaged `len` is told apart from a torn write: a
//! torn write only ever cuts the file short, so a record whose header checks out but whose
//! payload runs past the end of the file was cut by a crash, while a header that does not
//! check out is damage (unless the rest of the file is zeros: file systems may extend a file
//! with zeros before a crash loses its data). A complete record whose payload fails its
//! checksum is damage wherever it stands, the last record included. These are the only
//! tails the scanner forgives itself, and only where the reader allows a torn tail at all.
//! A reader that knows more about what was synced asks for every kind of damage to be
//! reported instead (`set_report_damage`) and judges it: the last WAL segment by its sync
//! points, a manifest after its snapshot by whether any whole record follows the damage.

use bytes::Bytes;

use crate::coding::Cursor;
use crate::error::{Error, Result};
use crate::types::FileNumber;

/// Bytes of a file header.
pub(crate) const FILE_HEADER_LEN: usize = 8 + 1 + 3 + 8 + 4;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 4 + 4 + 1 + 4;

/// Encodes a file header; see the layout above. Each file kind has its own versions.
pub(crate) fn encode_file_header_version(
    magic: &[u8; 8],
    number: FileNumber,
    version: u8,
) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8] = version;
    h[12..20].copy_from_slice(&number.0.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a complete file header against what the file's name promises, accepting any of
/// `versions`; returns the file's version.
pub(crate) fn check_file_header_versions(
    data: &[u8],
    magic: &[u8; 8],
    number: FileNumber,
    label: &str,
    versions: &[u8],
) -> Result<u8> {
    let mut c = Cursor::new(data, 0, label);
    let got_magic: [u8; 8] = c.array("file magic")?;
    let version = c.u8("format version")?;
    let reserved: [u8; 3] = c.array("reserved header bytes")?;
    let got_number = c.u64("file number")?;
    let crc = c.u32("header checksum")?;
    let bad = |offset: u64, what: String| Error::corruption(label, offset, what);
    let expected_crc = crc32fast::hash(data.get(..20).unwrap_or_default());
    if crc != expected_crc {
        return Err(bad(20, "file header checksum mismatch".into()));
    }
    if &got_magic != magic {
        return Err(bad(0, "bad file magic".into()));
    }
    if !versions.contains(&version) {
        return Err(bad(8, format!("unsupported format version {version}")));
    }
    if reserved != [0; 3] {
        return Err(bad(9, "reserved header bytes are not zero".into()));
    }
    if got_number != number.0 {
        return Err(bad(
            12,
            format!("header says file {got_number}, name says {}", number.0),
        ));
    }
    Ok(version)
}

/// Starts a record at the end of `out`: reserves its header. Returns the record's start.
pub(crate) fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    start
}

/// Fills in the header of the record begun at `start`, whose payload is the rest of `out`.
pub(crate) fn finish_record(out: &mut [u8], start: usize, rtype: u8) -> Result<()> {
    let region = out
        .get_mut(start..)
        .filter(|r| r.len() >= RECORD_HEADER_LEN)
        .ok_or_else(|| Error::Internal("record start past buffer".into()))?;
    let (head, payload) = region.split_at_mut(RECORD_HEADER_LEN);
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::InvalidArgument(format!("record of {} bytes is too large", payload.len()))
    })?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[rtype]);
    h.update(payload);
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[4..8].copy_from_slice(&h.finalize().to_le_bytes());
    head[8] = rtype;
    let hcrc = crc32fast::hash(&head[..9]);
    head[9..].copy_from_slice(&hcrc.to_le_bytes());
    Ok(())
}

/// One framed record read back.
#[derive(Debug)]
pub(crate) struct Frame {
    /// File offset of the record header.
    pub(crate) offset: u64,
    /// File offset of the first payload byte.
    pub(crate) payload_offset: u64,
    pub(crate) rtype: u8,
    pub(crate) payload: Bytes,
}

/// What the scanner found next.
#[derive(Debug)]
pub(crate) enum Scan {
    Record(Frame),
    /// The file ends cleanly here.
    End,
    /// The file ends in a torn write starting here (only when torn tails are tolerated).
    Torn,
    /// A record here fails its checks (only when the caller asked for damage to be reported
    /// rather than refused, `report_damage`): the caller decides whether it can be a tear.
    Damaged(&'static str),
}

/// Walks the records of a whole file held in memory.
pub(crate) struct FrameScanner<'l> {
    data: Bytes,
    pos: usize,
    tolerate_torn: bool,
    report_damage: bool,
    label: &'l str,
}

impl<'l> FrameScanner<'l> {
    /// `data` is the whole file, header included (already checked by the caller).
    pub(crate) fn new(data: Bytes, tolerate_torn: bool, label: &'l str) -> FrameScanner<'l> {
        FrameScanner {
            data,
            pos: FILE_HEADER_LEN,
            tolerate_torn,
            report_damage: false,
            label,
        }
    }

    /// From now on, a record that fails its checksums is reported as `Scan::Damaged` at its
    /// offset instead of an error, and so is every tail `Torn` would cover: the caller knows
    /// which offsets were synced (the WAL's sync points) and judges the damage itself.
    pub(crate) fn set_report_damage(&mut self, report: bool) {
        self.report_damage = report;
    }

    /// Offset where the next record would start (the start of the damage after `Damaged`).
    pub(crate) fn position(&self) -> u64 {
        self.pos as u64
    }

    /// From now on, damage a crash can leave at the end of the file is reported as `Torn`
    /// (a manifest forgives nothing before its snapshot is complete).
    pub(crate) fn set_tolerate_torn(&mut self, tolerate: bool) {
        self.tolerate_torn = tolerate;
    }

    /// Offset just past the last whole, valid record returned.
    pub(crate) fn valid_len(&self) -> u64 {
        self.pos as u64
    }

    fn torn_or(&self, what: &'static str) -> Result<Scan> {
        if self.report_damage {
            Ok(Scan::Damaged(what))
        } else if self.tolerate_torn {
            Ok(Scan::Torn)
        } else {
            Err(Error::corruption(self.label, self.pos as u64, what))
        }
    }

    fn damaged(&self, what: &'static str) -> Result<Scan> {
        if self.report_damage {
            Ok(Scan::Damaged(what))
        } else {
            Err(Error::corruption(self.label, self.pos as u64, what))
        }
    }

    pub(crate) fn next_frame(&mut self) -> Result<Scan> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(Scan::End);
        }
        if rest.len() < RECORD_HEADER_LEN {
            return self.torn_or("record header cut short by the end of the file");
        }
        let mut c = Cursor::new(rest, self.pos as u64, self.label);
        let len = c.u32("record length")?;
        let crc = c.u32("record checksum")?;
        let rtype = c.u8("record type")?;
        let hcrc = c.u32("record header checksum")?;
        if crc32fast::hash(rest.get(..9).unwrap_or_default()) != hcrc {
            if rest.iter().all(|&b| b == 0) {
                return self.torn_or("zero-filled tail");
            }
            return self.damaged("record header checksum mismatch");
        }
        let len = usize::try_from(len).map_err(|_| c.error("record length"))?;
        let end = RECORD_HEADER_LEN
            .checked_add(len)
            .filter(|&end| end <= rest.len());
        let Some(end) = end else {
            return self.torn_or("record payload cut short by the end of the file");
        };
        let payload_start = self.pos + RECORD_HEADER_LEN;
        let payload = self.data.slice(payload_start..self.pos + end);
        let mut h = crc32fast::Hasher::new();
        h.update(&[rtype]);
        h.update(&payload);
        if h.finalize() != crc {
            // A complete record that fails its checksum is damage, even as the last record: a
            // crash cuts a file short or leaves zeros, it does not rewrite bytes in place.
            // (The all-zero case is caught above: its header checksum cannot match.) Only a
            // caller that knows where the last sync ended may judge it (`report_damage`).
            return self.damaged("record checksum mismatch");
        }
        let frame = Frame {
            offset: self.pos as u64,
            payload_offset: payload_start as u64,
            rtype,
            payload,
        };
        self.pos += end;
        Ok(Scan::Record(frame))
    }
}

/// The record starting at `pos` of `data` if it is whole and passes both checksums: its
/// type and payload. For searching past damage, so it never fails, only answers `None`.
pub(crate) fn whole_record_at(data: &[u8], pos: usize) -> Option<(u8, &[u8])> {
    let head = data.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let hcrc = u32::from_le_bytes(head.get(9..13)?.try_into().ok()?);
    if crc32fast::hash(head.get(..9)?) != hcrc {
        return None;
    }
    let len = usize::try_from(u32::from_le_bytes(head.get(..4)?.try_into().ok()?)).ok()?;
    let crc = u32::from_le_bytes(head.get(4..8)?.try_into().ok()?);
    let rtype = *head.get(8)?;
    let start = pos + RECORD_HEADER_LEN;
    let payload = data.get(start..start.checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[rtype]);
    h.update(payload);
    (h.finalize() == crc).then_some((rtype, payload))
}

/// The offset of the first whole, checksummed record starting after `from`, if any: a
/// search past damage, for a file whose writer syncs each record before it writes the next
/// (the manifest), where any record after the damage proves the damaged one was synced.
pub(crate) fn whole_record_after(data: &[u8], from: u64) -> Option<u64> {
    let start = usize::try_from(from).ok()?.checked_add(1)?;
    (start..data.len())
        .find(|&q| whole_record_at(data, q).is_some())
        .map(|q| q as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTMAG\0";
    const VERSION: u8 = 1;

    fn encode_file_header(magic: &[u8; 8], number: FileNumber) -> [u8; FILE_HEADER_LEN] {
        encode_file_header_version(magic, number, VERSION)
    }

    fn check_file_header(
        data: &[u8],
        magic: &[u8; 8],
        number: FileNumber,
        label: &str,
    ) -> Result<()> {
        check_file_header_versions(data, magic, number, label, &[VERSION]).map(|_| ())
    }

    fn file(records: &[(u8, &[u8])]) -> Result<Vec<u8>> {
        let mut out = encode_file_header(MAGIC, FileNumber(3)).to_vec();
        for (t, p) in records {
            let start = begin_record(&mut out);
            out.extend_from_slice(p);
            finish_record(&mut out, start, *t)?;
        }
        Ok(out)
    }

    fn scan_all(data: Vec<u8>, torn_ok: bool) -> Result<(Vec<Vec<u8>>, bool)> {
        check_file_header(&data, MAGIC, FileNumber(3), "f")?;
        let mut s = FrameScanner::new(Bytes::from(data), torn_ok, "f");
        let mut out = Vec::new();
        loop {
            match s.next_frame()? {
                Scan::Record(f) => out.push(f.payload.to_vec()),
                Scan::End => return Ok((out, false)),
                Scan::Torn => return Ok((out, true)),
                Scan::Damaged(what) => return Err(Error::Internal(format!("reported {what}"))),
            }
        }
    }

    /// Scans with damage reported: the records before it and where it starts, if any.
    fn scan_reporting(data: Vec<u8>) -> Result<(Vec<Vec<u8>>, Option<u64>)> {
        let mut s = FrameScanner::new(Bytes::from(data), true, "f");
        s.set_report_damage(true);
        let mut out = Vec::new();
        loop {
            match s.next_frame()? {
                Scan::Record(f) => out.push(f.payload.to_vec()),
                Scan::End => return Ok((out, None)),
                Scan::Torn => return Err(Error::Internal("torn while reporting".into())),
                Scan::Damaged(_) => return Ok((out, Some(s.position()))),
            }
        }
    }

    #[test]
    fn header_round_trip_and_checks() -> Result<()> {
        let h = encode_file_header(MAGIC, FileNumber(3));
        check_file_header(&h, MAGIC, FileNumber(3), "f")?;
        assert!(check_file_header(&h, MAGIC, FileNumber(4), "f").is_err());
        assert!(check_file_header(&h, b"OTHERMG\0", FileNumber(3), "f").is_err());
        assert!(check_file_header(&h[..10], MAGIC, FileNumber(3), "f").is_err());
        for i in 0..h.len() {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(check_file_header(&bad, MAGIC, FileNumber(3), "f").is_err());
        }
        Ok(())
    }

    #[test]
    fn records_round_trip_and_tails() -> Result<()> {
        let data = file(&[(1, b"alpha"), (2, b""), (1, b"omega!")])?;
        let (recs, torn) = scan_all(data.clone(), false)?;
        assert_eq!(recs, vec![b"alpha".to_vec(), vec![], b"omega!".to_vec()]);
        assert!(!torn);
        // Zero-filled tail is torn when tolerated, corruption otherwise.
        let mut z = data.clone();
        z.extend_from_slice(&[0; 40]);
        assert_eq!(scan_all(z.clone(), true)?, (recs.clone(), true));
        assert!(scan_all(z, false).is_err());
        // Non-zero garbage after the records is corruption even when torn tails are allowed.
        let mut g = data;
        g.extend_from_slice(&[0xAB; 20]);
        assert!(scan_all(g, true).is_err());
        Ok(())
    }

    #[test]
    fn damage_is_reported_at_the_damaged_record_when_asked() -> Result<()> {
        let data = file(&[(1, b"alpha"), (2, b"beta"), (1, b"omega!")])?;
        let second = (FILE_HEADER_LEN + RECORD_HEADER_LEN + 5) as u64;
        // A payload byte, a header byte, a cut, and zeros: each reported at its record.
        let mut payload = data.clone();
        payload[second as usize + RECORD_HEADER_LEN] ^= 1;
        let mut header = data.clone();
        header[second as usize] ^= 1;
        let cut = data[..data.len() - 2].to_vec();
        let mut zeros = data.clone();
        zeros.extend_from_slice(&[0; 30]);
        let alpha = b"alpha".to_vec();
        assert_eq!(
            scan_reporting(payload.clone())?,
            (vec![alpha.clone()], Some(second))
        );
        assert_eq!(scan_reporting(header)?, (vec![alpha], Some(second)));
        assert_eq!(scan_reporting(cut)?.1, Some(second + 13 + 4));
        assert_eq!(scan_reporting(zeros)?.1, Some(data.len() as u64));
        assert_eq!(scan_reporting(data.clone())?.1, None);
        // Found by a search past damage: whole records only.
        assert_eq!(
            whole_record_at(&data, second as usize),
            Some((2, &b"beta"[..]))
        );
        assert_eq!(whole_record_at(&payload, second as usize), None);
        assert_eq!(whole_record_at(&data, second as usize + 1), None);
        assert_eq!(whole_record_at(&data, data.len() - 3), None);
        let third = second + (RECORD_HEADER_LEN + 4) as u64;
        assert_eq!(whole_record_after(&payload, second), Some(third));
        assert_eq!(whole_record_after(&data, third), None);
        Ok(())
    }
}
