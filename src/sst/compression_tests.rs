//! Tables with compressed data blocks: round trips, mixed and old-format files, tamper
//! detection, and the fuzz entry over damaged compressed tables.

use super::*;
use crate::sst::compression::frame_block;
use crate::sst::footer::FOOTER_LEN;

/// Values that compress well, with a few incompressible runs so one table mixes
/// compressed and uncompressed blocks.
fn mixed_entries(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    (0..n)
        .map(|i| {
            let value = if (i / 8) % 3 == 2 {
                // 8 entries in a row of noise: whole blocks that do not shrink.
                let mut v = vec![0u8; 200];
                rng.fill_bytes(&mut v);
                v
            } else {
                format!("value-{i}-").repeat(8).into_bytes()
            };
            (
                ik(
                    format!("key{i:04}").as_bytes(),
                    1 + i as u64,
                    ValueKind::Put,
                ),
                value,
            )
        })
        .collect()
}

fn lz4_opts(block_size: usize) -> SstBuildOptions {
    SstBuildOptions {
        block_size,
        compression: Compression::Lz4,
        ..small_opts()
    }
}

/// The compression tag of every data block of a plaintext table (`None` for version 1).
fn plain_block_tags(bytes: &Bytes) -> Result<Vec<u8>> {
    let t = open(bytes.clone(), false, 1, None)?;
    let mut idx = t.index.iter();
    idx.seek_to_first()?;
    let mut tags = Vec::new();
    while idx.valid() {
        let h = t.data_handle(idx.value())?;
        // stored = payload || crc32: the tag is the payload's last byte.
        tags.push(bytes[(h.offset + h.size) as usize - 5]);
        idx.next()?;
    }
    Ok(tags)
}

#[test]
fn compressed_tables_round_trip_and_shrink() -> Result<()> {
    for sealed in [false, true] {
        let entries = mixed_entries(240);
        let (raw, _) = build(&entries, sealed, 6, lz4_opts(512).with_none())?;
        let (small, summary) = build(&entries, sealed, 6, lz4_opts(512))?;
        assert_eq!(summary.size, small.len() as u64);
        assert!(
            small.len() * 10 < raw.len() * 7,
            "sealed={sealed}: {} vs {}",
            small.len(),
            raw.len()
        );
        let cache = Arc::new(BlockCache::new(1 << 20));
        for t in [
            open(small.clone(), sealed, 6, None)?,
            open(small, sealed, 6, Some(cache))?,
        ] {
            t.verify()?;
            assert_eq!(collect_forward(&t)?, entries);
            assert_eq!(collect_backward(&t)?, entries);
            for (k, v) in entries.iter().step_by(7) {
                let got = t.get(ikey::user_key(k), SeqNo::MAX)?;
                assert_eq!(got, Some((ValueKind::Put, Bytes::from(v.clone()))));
            }
            assert_eq!(t.get(b"key9999", SeqNo::MAX)?, None);
        }
    }
    Ok(())
}

#[test]
fn one_table_mixes_compressed_and_plain_blocks() -> Result<()> {
    let entries = mixed_entries(240);
    let (bytes, _) = build(&entries, false, 1, lz4_opts(512))?;
    let tags = plain_block_tags(&bytes)?;
    assert!(tags.contains(&(Compression::Lz4 as u8)), "{tags:?}");
    assert!(tags.contains(&(Compression::None as u8)), "{tags:?}");
    assert!(tags.iter().all(|&t| t <= 1));
    assert_eq!(read_everything(bytes, false, 1)?, entries);
    // Without compression every block is tagged None.
    let (bytes, _) = build(&entries, false, 1, lz4_opts(512).with_none())?;
    assert!(plain_block_tags(&bytes)?.iter().all(|&t| t == 0));
    Ok(())
}

#[test]
fn version_1_tables_without_tags_are_still_read() -> Result<()> {
    for sealed in [false, true] {
        let entries = mixed_entries(100);
        let w = MemWritable::default();
        let mut b = SstBuilder::new(Box::new(w.clone()), protection(sealed, 2), lz4_opts(256))?
            .write_format_v1();
        for (k, v) in &entries {
            b.add(k, v)?;
        }
        b.finish()?;
        let bytes = Bytes::from(w.0.lock().clone());
        let version_at = bytes.len() - FOOTER_LEN + 113;
        assert_eq!(&bytes[version_at..version_at + 4], &1u32.to_le_bytes());
        assert_eq!(read_everything(bytes.clone(), sealed, 2)?, entries);
        if !sealed {
            // Version 1 ignores the compression option: the first block is stored as
            // built, its last payload byte is the block's restart count (not a tag).
            let (v2, _) = build(&entries, false, 2, lz4_opts(256).with_none())?;
            assert_eq!(bytes.len() + plain_block_tags(&v2)?.len(), v2.len());
        }
    }
    Ok(())
}

#[test]
fn golden_compressed_data_unit_in_a_plain_table() -> Result<()> {
    let entries = vec![(ik(b"k", 1, ValueKind::Put), vec![b'z'; 100])];
    let (bytes, _) = build(&entries, false, 1, lz4_opts(4096))?;
    let mut block = BlockBuilder::new(3);
    block.add(&entries[0].0, &entries[0].1)?;
    let (mut scratch, mut framed) = (Vec::new(), Vec::new());
    frame_block(block.finish()?, Compression::Lz4, &mut scratch, &mut framed);
    // raw_len = entry (3 one-byte varints + 9 key + 100 value) + restart + count = 0x78
    assert_eq!(&framed[..4], &0x78u32.to_le_bytes());
    assert_eq!(framed.last(), Some(&1));
    // token 0x71: 7 literals (shared 0, unshared 9, value_len 100, "k", trailer 01 01 00)
    //   then match offset 1, 4 + 1 = 5 bytes (the trailer's zeros);
    // token 0x1f: 1 literal "z", match offset 1, 4 + 15 + ext 0x50 = 99 bytes of "z";
    // token 0x80: 8 literals (restart 0 u32, num_restarts 1 u32); tag 1 (Lz4).
    let want = "78000000 71 0009646b010100 0100 1f 7a 0100 50 80 00000000 01000000 01";
    let want: String = want.split_whitespace().collect();
    assert_eq!(hex::encode(&framed), want);
    // The unit is the framed payload and CRC32(kind Data = 1 || payload).
    let mut h = crc32fast::Hasher::new();
    h.update(&[1]);
    h.update(&framed);
    assert_eq!(&bytes[..framed.len()], &framed[..]);
    assert_eq!(
        &bytes[framed.len()..framed.len() + 4],
        &h.finalize().to_le_bytes()
    );
    Ok(())
}

#[test]
fn every_flipped_byte_of_a_compressed_table_is_detected() -> Result<()> {
    for sealed in [false, true] {
        let entries = mixed_entries(30);
        let (bytes, _) = build(&entries, sealed, 3, lz4_opts(256))?;
        if !sealed {
            assert!(plain_block_tags(&bytes)?.contains(&1));
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x01;
            match read_everything(Bytes::from(bad), sealed, 3) {
                Err(e) => assert!(e.is_integrity_failure(), "sealed={sealed} byte {i}: {e}"),
                Ok(_) => panic!("sealed={sealed}: flip at byte {i} went unnoticed"),
            }
        }
    }
    Ok(())
}

/// A plaintext table whose blocks were compressed, with its CRCs then recomputed after
/// damage: the decompressor itself must refuse the damage, never panic.
fn damaged_compressed_table(flips: &[(usize, u8)]) -> Result<Vec<u8>> {
    let (bytes, _) = build(&mixed_entries(40), false, 1, lz4_opts(256))?;
    let t = open(bytes.clone(), false, 1, None)?;
    let mut out = bytes.to_vec();
    let mut idx = t.index.iter();
    idx.seek_to_first()?;
    while idx.valid() {
        let h = t.data_handle(idx.value())?;
        let (start, end) = (h.offset as usize, (h.offset + h.size) as usize - 4);
        for &(at, x) in flips {
            out[start + at % (end - start)] ^= x;
        }
        let mut c = crc32fast::Hasher::new();
        c.update(&[1]);
        c.update(&out[start..end]);
        out[end..end + 4].copy_from_slice(&c.finalize().to_le_bytes());
        idx.next()?;
    }
    Ok(out)
}

#[test]
fn fuzz_corpus_holds_a_compressed_table() -> Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/sstable/lz4-mixed-40-keys");
    let (bytes, _) = build(&mixed_entries(40), false, 1, lz4_opts(256))?;
    if std::env::var_os("SEALDB_WRITE_CORPUS").is_some() {
        std::fs::write(&path, &bytes).map_err(|e| Error::io("writing corpus", e))?;
    }
    let stored = std::fs::read(&path).map_err(|e| Error::io("reading corpus", e))?;
    assert!(stored == bytes, "regenerate with SEALDB_WRITE_CORPUS=1");
    assert!(plain_block_tags(&bytes)?.contains(&1));
    fuzz_api::fuzz_table(&stored);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_compressed_blocks_are_errors_not_panics(
        flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4),
    ) {
        let bytes = damaged_compressed_table(&flips)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        fuzz_api::fuzz_table(&bytes);
    }
}

trait WithNone {
    fn with_none(self) -> Self;
}

impl WithNone for SstBuildOptions {
    fn with_none(mut self) -> Self {
        self.compression = Compression::None;
        self
    }
}
