//! The table-key cache and a KMS outage, on a manual clock: reads go on while the KMS is
//! down, for up to the cache's maximum age (12 hours) after the KMS last confirmed the key;
//! after that the table fails closed, and it comes back with the KMS.
//!
//! Run with `cargo run --example key_cache`.

use std::sync::Arc;
use std::time::Duration;

use sealdb::clock::ManualClock;
use sealdb::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
use sealdb::{Db, Options, TableOptions};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn main() -> Result {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::default();
    let kms_opts = LocalKmsOptions::new("111122223333", "us-west-2")
        .with_root_key(RootKeySource::Passphrase {
            passphrase: "example passphrase".to_string().into(),
            kdf: KdfParams::insecure_fast_for_tests(),
        })
        .with_clock(Arc::new(clock.clone()));
    let kms = Arc::new(LocalKms::open(&dir.path().join("data.kms"), kms_opts)?);
    let mut opts = Options::with_kms(kms.clone());
    opts.clock = Arc::new(clock.clone());
    let db = Db::open(dir.path().join("data"), opts)?;
    let books = db.create_table("Books", TableOptions::encrypted())?;
    books.put("dune", "Frank Herbert")?;
    let decrypts = || kms.call_count("Decrypt");

    books.get("dune")?;
    let after_first = decrypts();
    books.get("dune")?;
    println!(
        "a second read within 5 minutes: no KMS call ({} Decrypt)",
        decrypts() - after_first
    );

    clock.advance(10 * MINUTE);
    books.get("dune")?;
    println!(
        "after 10 idle minutes the key is re-checked: {} Decrypt",
        decrypts() - after_first
    );

    kms.set_available(false);
    println!("\nthe KMS goes down");
    for (advance, label) in [(10 * MINUTE, "10 minutes"), (11 * HOUR, "11 hours")] {
        clock.advance(advance);
        let v = books.get("dune")?;
        println!(
            "  {label} later, reads still work: {:?}",
            v.as_deref().map(String::from_utf8_lossy)
        );
    }
    clock.advance(HOUR);
    match books.get("dune") {
        Ok(_) => return Err("unexpected: a read succeeded past the 12 hour limit".into()),
        Err(e) => println!("  past 12 hours since the KMS last confirmed the key: {e}"),
    }

    kms.set_available(true);
    println!("\nthe KMS is back");
    println!(
        "  read: {:?}",
        books.get("dune")?.as_deref().map(String::from_utf8_lossy)
    );
    Ok(())
}
