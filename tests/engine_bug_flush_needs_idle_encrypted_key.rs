//! Found by tests/engine_model.rs once it got an encrypted table (after merging main at
//! 76f4893), proptest's minimal input: a put into a plaintext table, then `flush`, while an
//! encrypted table that nobody has written to exists. The flush fails with
//! `table "t0" is unavailable: cannot flush: table "2" is unavailable: its key is needed to
//! authenticate a manifest edit` -- the flush's manifest edit (which also advances the idle
//! table's log number) needs the idle encrypted table's key, which the engine does not hold.
//! Engine bug (src/db), fixed in f04c9ca: an idle encrypted table whose key the engine does
//! not hold keeps its log number, so the flush's edit needs no key. This test is the
//! regression that keeps it fixed (it runs; it is not ignored).

mod common;

use std::sync::Arc;

use common::rel::TestResult;
use sealdb::{Db, Options, TableOptions};

#[test]
fn a_flush_does_not_need_the_key_of_an_idle_encrypted_table() -> TestResult {
    let dir = tempfile::tempdir()?;
    let kms: Arc<dyn sealdb::kms::Kms> = Arc::new(common::rel::local_kms(&dir.path().join("kms"))?);
    let db = Db::open(dir.path().join("db"), {
        let mut o = Options::default();
        o.kms = Some(kms);
        o
    })?;
    let plain = db.create_table("t0", TableOptions::plaintext())?;
    db.create_table("t1", TableOptions::encrypted())?;
    plain.put("k", "")?;
    db.flush()?;
    assert_eq!(plain.get("k")?.as_deref(), Some(&b""[..]));
    Ok(())
}
