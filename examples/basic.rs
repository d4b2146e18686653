//! Basic use: a local KMS, an encrypted and a plaintext table, writes (single, batched,
//! synced), point reads, range and prefix scans, a snapshot, a flush and a reopen.
//!
//! Run with `cargo run --example basic`.

use std::sync::Arc;

use sealdb::kms::{KdfParams, LocalKms, LocalKmsOptions, RootKeySource};
use sealdb::{Db, Options, TableOptions, WriteBatch, WriteOptions};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn open(root: &std::path::Path) -> Result<Db> {
    let mut kms_opts = LocalKmsOptions::new("111122223333", "us-west-2");
    // A passphrase-sealed keystore; these KDF parameters are for examples only.
    kms_opts.root_key = RootKeySource::Passphrase {
        passphrase: "example passphrase".to_string().into(),
        kdf: KdfParams::insecure_fast_for_tests(),
    };
    let kms = Arc::new(LocalKms::open(&root.join("data.kms"), kms_opts)?);
    Ok(Db::open(root.join("data"), Options::with_kms(kms))?)
}

fn main() -> Result {
    let dir = tempfile::tempdir()?;
    {
        let db = open(dir.path())?;
        let books = db.create_table("Books", TableOptions::encrypted())?;
        let stats = db.create_table("Stats", TableOptions::plaintext())?;

        books.put("author/herbert/dune", "1965")?;
        books.put_opt("author/lem/solaris", "1961", WriteOptions::synced())?;

        // One atomic batch across both tables.
        let mut batch = WriteBatch::new();
        batch.put(&books, "author/le-guin/earthsea", "1968");
        batch.put(&stats, "books", "3");
        db.write(&batch, WriteOptions::synced())?;

        let before = db.snapshot();
        books.delete("author/lem/solaris")?;
        println!(
            "solaris now: {:?}, in the snapshot: {:?}",
            books.get("author/lem/solaris")?,
            books.get_at("author/lem/solaris", &before)?
        );

        println!("authors, newest name first:");
        for item in books.prefix("author/")?.rev() {
            let (k, v) = item?;
            println!(
                "  {} = {}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            );
        }
        db.flush()?;
    }

    // Everything acknowledged is there after a reopen (the WAL, then the SSTables).
    let db = open(dir.path())?;
    println!("tables after reopen: {:?}", db.tables());
    let books = db.table("Books")?;
    assert_eq!(
        books.get("author/herbert/dune")?.as_deref(),
        Some(&b"1965"[..])
    );
    assert_eq!(books.get("author/lem/solaris")?, None);
    let n = books.range("a".."b")?.count();
    println!("{n} books in [a, b)");
    Ok(())
}
