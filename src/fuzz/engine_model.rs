//! The differential target: an operation sequence decoded from the fuzz bytes runs on the
//! engine and on a `BTreeMap`; a simulated crash (`FaultEnv::crash`) after a chosen op
//! drops everything not fsynced. After the crash the engine must hold exactly the model's
//! state after some prefix of the operations that is at least as long as the last one
//! acknowledged as durable (a synced write or a completed flush); at every other point it
//! must equal the model exactly.
//!
//! Input: byte 0 picks the op index of the crash (past the end: no crash); then each op is
//! two bytes, `code` and `arg`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::storage::fault::FaultEnv;
use crate::{Db, Options, Table, TableOptions, WriteBatch, WriteOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Most ops decoded from one input: enough to cross several flushes.
const MAX_OPS: usize = 200;

fn open(dir: &Path, env: &FaultEnv) -> crate::Result<(Db, Table)> {
    let db = Db::open(
        dir,
        Options {
            write_buffer_size: 512,
            block_size: 128,
            block_cache_bytes: 16 << 10,
            env: Arc::new(env.clone()),
            ..Options::default()
        },
    )?;
    let t = match db.table("t") {
        Ok(t) => t,
        Err(_) => db.create_table("t", TableOptions::plaintext())?,
    };
    Ok((db, t))
}

fn contents(t: &Table, reverse: bool) -> crate::Result<Model> {
    let it = if reverse { t.iter()?.rev() } else { t.iter()? };
    let mut m = Model::new();
    let mut last: Option<Vec<u8>> = None;
    for item in it {
        let (k, v) = item?;
        if let Some(prev) = &last {
            let ordered = if reverse {
                prev.as_slice() > k.as_ref()
            } else {
                prev.as_slice() < k.as_ref()
            };
            assert!(ordered, "iterator out of order");
        }
        last = Some(k.to_vec());
        m.insert(k.to_vec(), v.to_vec());
    }
    Ok(m)
}

fn key(arg: u8) -> Vec<u8> {
    format!("key{:02}", arg % 24).into_bytes()
}

/// Runs one op sequence; panics on any divergence from the model (that is the finding).
pub fn engine_model(data: &[u8]) {
    let Some((&crash_at, ops)) = data.split_first() else {
        return;
    };
    let dir = match std::fs::metadata("/dev/shm") {
        Ok(m) if m.is_dir() => tempfile::tempdir_in("/dev/shm"),
        _ => tempfile::tempdir(),
    };
    let Ok(dir) = dir else { return };
    let env = FaultEnv::new();
    let (mut db, mut t) = match open(dir.path(), &env) {
        Ok(v) => v,
        Err(e) => panic!("open of a new database failed: {e}"),
    };
    let mut model = Model::new();
    // Model states after each op since the last durable point, oldest first.
    let mut since_durable: Vec<Model> = vec![Model::new()];
    let mut snapshot: Option<(crate::Snapshot, Model)> = None;
    for (i, op) in ops.chunks_exact(2).take(MAX_OPS).enumerate() {
        let (code, arg) = (op[0], op[1]);
        let mut durable = false;
        let result: crate::Result<()> = (|| {
            match code % 10 {
                0..=2 => {
                    let v = format!("v{i}-{}", "x".repeat(usize::from(arg) % 90)).into_bytes();
                    let sync = code % 10 == 2;
                    t.put_opt(key(arg), &v, WriteOptions { sync })?;
                    model.insert(key(arg), v);
                    durable = sync;
                }
                3 => {
                    let sync = arg & 0x80 != 0;
                    t.delete_opt(key(arg), WriteOptions { sync })?;
                    model.remove(&key(arg));
                    durable = sync;
                }
                4 => {
                    let mut b = WriteBatch::new();
                    b.put(&t, key(arg), format!("b{i}"));
                    b.delete(&t, key(arg.wrapping_add(1)));
                    db.write(&b, WriteOptions { sync: true })?;
                    model.insert(key(arg), format!("b{i}").into_bytes());
                    model.remove(&key(arg.wrapping_add(1)));
                    durable = true;
                }
                5 => {
                    db.flush()?;
                    durable = true;
                }
                6 => {
                    let got = t.get(key(arg))?;
                    assert_eq!(got.as_deref(), model.get(&key(arg)).map(Vec::as_slice));
                }
                7 => {
                    assert!(contents(&t, arg & 1 == 1)? == model, "scan differs");
                }
                8 => match snapshot.take() {
                    None => snapshot = Some((db.snapshot(), model.clone())),
                    Some((snap, then)) => {
                        let got = t.get_at(key(arg), &snap)?;
                        assert_eq!(got.as_deref(), then.get(&key(arg)).map(Vec::as_slice));
                        let seen: Model = t
                            .range_at_snapshot::<Vec<u8>>(.., &snap)?
                            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                            .collect::<crate::Result<_>>()?;
                        assert!(seen == then, "snapshot view differs");
                    }
                },
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = result {
            panic!("op {i} (code {code}) failed with no fault injected: {e}");
        }
        if code % 10 == 9 {
            // A clean close and reopen keeps everything acknowledged.
            snapshot = None;
            drop(t);
            drop(db);
            (db, t) = match open(dir.path(), &env) {
                Ok(v) => v,
                Err(e) => panic!("clean reopen failed: {e}"),
            };
            match contents(&t, false) {
                Ok(m) => assert!(m == model, "state differs after a clean reopen"),
                Err(e) => panic!("scan after a clean reopen failed: {e}"),
            }
            durable = true;
        }
        if durable {
            since_durable.clear();
        }
        since_durable.push(model.clone());
        if i == usize::from(crash_at) {
            snapshot = None;
            env.halt();
            drop(t);
            drop(db);
            if let Err(e) = env.crash() {
                panic!("crash simulation failed: {e}");
            }
            (db, t) = match open(dir.path(), &env) {
                Ok(v) => v,
                Err(e) => panic!("reopen after a crash failed: {e}"),
            };
            let recovered = match contents(&t, false) {
                Ok(m) => m,
                Err(e) => panic!("scan after a crash failed: {e}"),
            };
            assert!(
                since_durable.contains(&recovered),
                "after a crash the state is no prefix of the ops since the last durable one"
            );
            model = recovered;
            since_durable = vec![model.clone()];
        }
    }
    match contents(&t, true) {
        Ok(m) => assert!(m == model, "final reverse scan differs"),
        Err(e) => panic!("final scan failed: {e}"),
    }
}
