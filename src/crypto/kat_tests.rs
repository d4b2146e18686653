//! Known answers for the sealed layouts of `crypto/` (DESIGN.md sections 4 and 5, and the
//! layout comments atop `unit.rs` and `wrap.rs`). Each output of the code is rebuilt here
//! from the documented bytes with RustCrypto `aes-gcm` called directly, and pinned, so the
//! code, the document and the bytes on disk cannot drift apart (whatever backend seals).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use bytes::Bytes;

use super::{
    unwrap_data_key, wrap_data_key, DataKey, FileKind, TableKey, UnitContext, UnitKind, UnitOpener,
    UnitSealer, WrapContext, KEY_LEN, NONCE_LEN, TAG_LEN,
};
use crate::error::Result;
use crate::types::{FileNumber, TableId};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).unwrap_or_default()
}

/// AES-256-GCM of `plaintext` under `key`, as `ciphertext || tag`.
fn reference_seal(key: &[u8; KEY_LEN], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).unwrap_or_else(|_| unreachable!("32-byte key"));
    let mut buf = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut buf)
        .unwrap_or_else(|_| unreachable!("small plaintext"));
    buf.extend_from_slice(&tag);
    buf
}

/// The plaintext of `ciphertext || tag`, if it authenticates.
fn reference_open(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let (body, tag) = sealed.split_at(sealed.len().checked_sub(TAG_LEN)?);
    let mut buf = body.to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .ok()?;
    Some(buf)
}

/// A unit in an SSTable: table 0x0a0b0c0d, file 0x0102030405060708, an index block at
/// offset 0x1112131415161718. Every field has distinct bytes, so a field moved, resized or
/// put in another byte order changes the AAD.
#[test]
fn unit_aad_and_nonce_are_the_documented_bytes() -> Result<()> {
    let dek = [0x5a; KEY_LEN];
    let ctx = UnitContext {
        table: TableId(0x0a0b_0c0d),
        file: FileNumber(0x0102_0304_0506_0708),
        file_kind: FileKind::Sst,
        label: "kat.sst".into(),
    };
    let offset = 0x1112_1314_1516_1718;
    // FORMAT_VERSION || table u32 LE || file u64 LE || file_kind || unit_kind || offset u64 LE
    let aad = unhex("01  0d0c0b0a  0807060504030201  02  02  1817161514131211");
    // 0u32 || offset u64 LE
    let nonce = unhex("00000000  1817161514131211");
    assert_eq!(nonce.len(), NONCE_LEN);

    let mut sealer = UnitSealer::sealed(ctx.clone(), &DataKey::from_bytes(dek));
    let mut out = Vec::new();
    sealer.seal(UnitKind::Index, offset, b"index block", &mut out)?;
    assert_eq!(out, reference_seal(&dek, &nonce, &aad, b"index block"));
    assert_eq!(
        hex::encode(&out),
        "085c57c4736c0f9c9c611317043b091a9f609a31bd13d4eea470a6"
    );
    let opener = UnitOpener::sealed(ctx, &DataKey::from_bytes(dek));
    assert_eq!(
        &opener.open(UnitKind::Index, offset, Bytes::from(out))?[..],
        b"index block"
    );

    // A WAL record: file kind 1, unit kind 5.
    let wal = UnitContext {
        table: TableId(1),
        file: FileNumber(2),
        file_kind: FileKind::Wal,
        label: "000002.log".into(),
    };
    let mut sealer = UnitSealer::sealed(wal, &DataKey::from_bytes(dek));
    let mut out = Vec::new();
    sealer.seal(UnitKind::WalRecord, 24, b"batch", &mut out)?;
    let aad = unhex("01  01000000  0200000000000000  01  05  1800000000000000");
    let nonce = unhex("00000000  1800000000000000");
    assert_eq!(out, reference_seal(&dek, &nonce, &aad, b"batch"));
    Ok(())
}

/// The unit pinned in `unit.rs` (sealed by the RustCrypto backend at d29aef8) opens with
/// the documented AAD and nonce: table 3, SSTable 7, a data block at offset 4096.
#[test]
fn the_pinned_unit_opens_with_the_documented_aad() {
    let stored = unhex("783d36bf8413beb61a24f65e5355977d5a884df0c633a4a2f047dec2e4c8b33026b6d77b");
    let aad = unhex("01  03000000  0700000000000000  02  01  0010000000000000");
    let nonce = unhex("00000000  0010000000000000");
    assert_eq!(
        reference_open(&[0x11; KEY_LEN], &nonce, &aad, &stored).as_deref(),
        Some(&b"known answer payload"[..])
    );
}

/// A wrapped data key: nonce || AES-256-GCM(table key, dek) || tag, with
/// aad = "sealdb-dek" || FORMAT_VERSION || table u32 LE || file_kind || file u64 LE ||
/// key_version u32 LE.
#[test]
fn data_key_wrap_is_the_documented_layout() {
    let tk = [0x07; KEY_LEN];
    let ctx = WrapContext {
        table: TableId(0x0a0b_0c0d),
        file_kind: FileKind::Sst,
        file: FileNumber(0x0102_0304_0506_0708),
        key_version: 0x2122_2324,
    };
    let mut aad = b"sealdb-dek".to_vec();
    aad.extend(unhex("01  0d0c0b0a  02  0807060504030201  24232221"));
    let dek = [0x33; KEY_LEN];
    let wrapped = wrap_data_key(&TableKey::from_bytes(tk), &DataKey::from_bytes(dek), &ctx);
    let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
    assert_eq!(
        reference_open(&tk, nonce, &aad, sealed).as_deref(),
        Some(&dek[..])
    );

    // A wrap made here, from the layout alone, unwraps in the engine; and the one pinned in
    // wrap.rs (RustCrypto backend, d29aef8) opens here.
    let nonce = [0x42; NONCE_LEN];
    let mut made = nonce.to_vec();
    made.extend(reference_seal(&tk, &nonce, &aad, &dek));
    assert_eq!(
        hex::encode(&made),
        "4242424242424242424242423cb6e4f53417d503f5fa5466f4dc78d14a1a68d0f22314a1b5f5262d325512a749d0e82963ae275d23d1a934d9b063f9"
    );
    let back = unwrap_data_key(&TableKey::from_bytes(tk), &made, &ctx);
    assert_eq!(back.map(|k| *k.expose_secret_bytes()), Some(dek));
    let pinned = unhex(
        "ac73158482e1ab8343e11fba713542635c79222c90ca8821c4d0d5f929bdfc6b\
         9984a5b043c58ce23a76f686a3f735bc711bab3921a706b36984db55",
    );
    let mut aad = b"sealdb-dek".to_vec();
    aad.extend(unhex("01  03000000  02  0900000000000000  01000000"));
    let (nonce, sealed) = pinned.split_at(NONCE_LEN);
    assert_eq!(
        reference_open(&tk, nonce, &aad, sealed).as_deref(),
        Some(&[0x33; KEY_LEN][..])
    );
}
