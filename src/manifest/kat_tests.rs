//! Known answers for the sealed layouts of `manifest/` (DESIGN.md section 7): sealed range
//! boundaries and the two MAC chains. Each output of the code is rebuilt here from the
//! documented bytes with `hkdf`, `hmac` and RustCrypto `aes-gcm` called directly, and
//! pinned, so the code, the document and the manifests on disk cannot drift apart.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::boundary::{open_boundary, seal_boundary};
use super::record::{ChainKey, DbChainKey, MAC_LEN};
use crate::crypto::{TableKey, KEY_LEN, NONCE_LEN};
use crate::error::Result;
use crate::types::{FileNumber, TableId};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).unwrap_or_default()
}

/// HKDF-SHA256(salt "sealdb-v1", ikm = the key, info): every subkey of a table or database
/// key (DESIGN.md section 2).
fn subkey(key: &[u8; KEY_LEN], info: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    hkdf::Hkdf::<Sha256>::new(Some(b"sealdb-v1"), key)
        .expand(info, &mut out)
        .unwrap_or_else(|_| unreachable!("32 bytes"));
    out
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// sealed = nonce || AES-256-GCM(HKDF(table_key, "boundaries"), internal_key) || tag,
/// aad = "sealdb-boundary" || FORMAT_VERSION || table u32 LE || file u64 LE || end u8.
#[test]
fn sealed_boundary_is_the_documented_layout() -> Result<()> {
    let key = [0x03; KEY_LEN];
    let (table, file) = (TableId(0x0a0b_0c0d), FileNumber(0x0102_0304_0506_0708));
    let sub = subkey(&key, b"boundaries");
    let cipher = Aes256Gcm::new_from_slice(&sub).unwrap_or_else(|_| unreachable!());
    for (is_largest, end) in [(false, "00"), (true, "01")] {
        let mut aad = b"sealdb-boundary".to_vec();
        aad.extend(unhex(&format!("01  0d0c0b0a  0807060504030201  {end}")));
        // The engine's seal (random nonce) opens with the documented key and AAD...
        let sealed = seal_boundary(&TableKey::from_bytes(key), table, file, is_largest, b"ikey")?;
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - 16);
        let mut buf = body.to_vec();
        assert!(cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &aad, &mut buf, tag.into())
            .is_ok());
        assert_eq!(buf, b"ikey");
        // ...and one made from the layout alone opens in the engine.
        let nonce = [0x42; NONCE_LEN];
        let mut made = b"ikey".to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut made)
            .unwrap_or_else(|_| unreachable!());
        let made = [&nonce[..], &made, &tag].concat();
        let opened = open_boundary(&TableKey::from_bytes(key), table, file, is_largest, &made)?;
        assert_eq!(opened, b"ikey");
        // The other end's AAD does not open it.
        assert!(
            open_boundary(&TableKey::from_bytes(key), table, file, !is_largest, &made).is_err()
        );
        if !is_largest {
            assert_eq!(
                hex::encode(&made),
                "424242424242424242424242c13ba1ba2b0c7f4a3de7d8612ddc964e21423c9e"
            );
        }
    }
    Ok(())
}

/// hmac = HMAC-SHA256(HKDF(table_key, "manifest-mac"), "sealdb-manifest-mac" ||
/// FORMAT_VERSION || manifest u64 LE || prev [32] || table u32 LE || edits_len u32 LE ||
/// edits).
#[test]
fn table_chain_mac_is_the_documented_layout() -> Result<()> {
    let key = [0x09; KEY_LEN];
    let prev = [0xa5; MAC_LEN];
    let edits = b"some edits";
    let ours = ChainKey::new(&TableKey::from_bytes(key))?.compute(
        FileNumber(0x0102_0304_0506_0708),
        &prev,
        TableId(0x0a0b_0c0d),
        edits,
    );
    let fields = unhex("01  0807060504030201");
    let tail = unhex("0d0c0b0a  0a000000");
    let reference = hmac(
        &subkey(&key, b"manifest-mac"),
        &[b"sealdb-manifest-mac", &fields, &prev, &tail, edits],
    );
    assert_eq!(ours, reference);
    assert_eq!(
        hex::encode(ours),
        "25a1e9f224315a7300547fe60ec88efb3ecf86fa65f2be081b7bd11800b2b7ad"
    );
    Ok(())
}

/// db_mac = HMAC-SHA256(HKDF(database_key, "manifest-db-mac"), "sealdb-manifest-db-mac" ||
/// version u8 (the manifest header's: 2 or 3) || manifest u64 LE || prev_db [32] ||
/// covered_len u32 LE || covered).
#[test]
fn database_chain_mac_is_the_documented_layout() -> Result<()> {
    let key = [0x0b; KEY_LEN];
    let prev = [0x5a; MAC_LEN];
    let covered = b"the record payload";
    let manifest = FileNumber(0x0102_0304_0506_0708);
    for (version, pinned) in [
        (
            2u8,
            "2040c19c638729869f505079c52587e77ec21d4f591ea7ef362424f82c410b3f",
        ),
        (
            3u8,
            "fa9a4299d89cac60f300ba3c8f65ba570bdda883ff58eeed9d678e9e04e32135",
        ),
    ] {
        let db = DbChainKey::new(&TableKey::from_bytes(key), version)?;
        let ours = db.compute(manifest, &prev, covered);
        let fields = unhex(&format!("{version:02x}  0807060504030201"));
        let len = unhex("12000000");
        let reference = hmac(
            &subkey(&key, b"manifest-db-mac"),
            &[b"sealdb-manifest-db-mac", &fields, &prev, &len, covered],
        );
        assert_eq!(ours, reference, "version {version}");
        assert!(db.verify(manifest, &prev, covered, &reference));
        assert_eq!(hex::encode(ours), pinned, "version {version}");
    }
    Ok(())
}
