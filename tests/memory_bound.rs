//! A 1M-key load with default options stays under 256 MiB of resident memory: memtables
//! are bounded by flushes and write stalls, not by the data size.

use sealdb::{Db, Options, TableOptions};

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn one_million_keys_with_default_options_stay_under_256_mib(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default())?;
    let t = db.create_table("load", TableOptions::plaintext())?;
    let value = [0x5au8; 100];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1_000_000u32 {
        // xorshift: random 16-byte keys, as db_bench's fillrandom.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&x.to_be_bytes());
        key[8..].copy_from_slice(&x.rotate_left(29).to_le_bytes());
        t.put(key, value)?;
    }
    db.flush()?;
    let Some(peak) = peak_rss_bytes() else {
        eprintln!("no /proc/self/status here: peak RSS not measured");
        return Ok(());
    };
    eprintln!("peak RSS after 1M puts: {} MiB", peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    Ok(())
}
