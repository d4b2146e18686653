//! The differential target: an operation sequence decoded from the fuzz bytes runs on the
//! engine and on a `BTreeMap`; a simulated crash (`FaultEnv::crash`) after a chosen op
//! drops everything not fsynced. After the crash the engine must hold exactly the model's
//! state after some prefix of the operations that is at least as long as the last one
//! acknowledged as durable (a synced write or a completed flush); at every other point it
//! must equal the model exactly.
//!
//! Two tables, `t` and `u`: batches across both are atomic (after a crash both tables come
//! from the same prefix), and compactions run between the operations.
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

fn open(dir: &Path, env: &FaultEnv) -> crate::Result<(Db, Table, Table)> {
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
    let u = match db.table("u") {
        Ok(u) => u,
        Err(_) => db.create_table("u", TableOptions::plaintext())?,
    };
    Ok((db, t, u))
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
    let (mut db, mut t, mut u) = match open(dir.path(), &env) {
        Ok(v) => v,
        Err(e) => panic!("open of a new database failed: {e}"),
    };
    let mut model = Model::new();
    let mut model_u = Model::new();
    // Model states (both tables) after each op since the last durable point, oldest first.
    let mut since_durable: Vec<(Model, Model)> = vec![(Model::new(), Model::new())];
    let mut snapshot: Option<(crate::Snapshot, Model)> = None;
    for (i, op) in ops.chunks_exact(2).take(MAX_OPS).enumerate() {
        let (code, arg) = (op[0], op[1]);
        let mut durable = false;
        let result: crate::Result<()> = (|| {
            match code % 12 {
                0..=2 => {
                    let v = format!("v{i}-{}", "x".repeat(usize::from(arg) % 90)).into_bytes();
                    let sync = code % 12 == 2;
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
                10 => db.compact_table(if arg & 1 == 0 { "t" } else { "u" })?,
                11 => {
                    // Atomic across tables: both or neither after a crash.
                    let mut b = WriteBatch::new();
                    let v = format!("x{i}");
                    b.put(&t, key(arg), &v);
                    b.put(&u, key(arg), &v);
                    b.delete(&u, key(arg.wrapping_add(3)));
                    let sync = arg & 0x40 != 0;
                    db.write(&b, WriteOptions { sync })?;
                    model.insert(key(arg), v.clone().into_bytes());
                    model_u.insert(key(arg), v.into_bytes());
                    model_u.remove(&key(arg.wrapping_add(3)));
                    durable = sync;
                }
                _ => {}
            }
            Ok(())
        })();
        if let Err(e) = result {
            panic!("op {i} (code {code}) failed with no fault injected: {e}");
        }
        if code % 12 == 9 {
            // A clean close and reopen keeps everything acknowledged.
            snapshot = None;
            drop((t, u));
            drop(db);
            (db, t, u) = match open(dir.path(), &env) {
                Ok(v) => v,
                Err(e) => panic!("clean reopen failed: {e}"),
            };
            match (contents(&t, false), contents(&u, true)) {
                (Ok(m), Ok(mu)) => {
                    assert!(
                        m == model && mu == model_u,
                        "state differs after a clean reopen"
                    )
                }
                (Err(e), _) | (_, Err(e)) => panic!("scan after a clean reopen failed: {e}"),
            }
            durable = true;
        }
        if durable {
            since_durable.clear();
        }
        since_durable.push((model.clone(), model_u.clone()));
        if i == usize::from(crash_at) {
            snapshot = None;
            env.halt();
            drop((t, u));
            drop(db);
            // The power-loss mode follows from the op code, so inputs explore all four.
            let mode =
                crate::storage::fault::PowerLoss::all_modes(u64::from(arg))[usize::from(code >> 6)];
            if let Err(e) = env.crash_with(mode) {
                panic!("crash simulation failed: {e}");
            }
            (db, t, u) = match open(dir.path(), &env) {
                Ok(v) => v,
                Err(e) => panic!("reopen after a crash failed: {e}"),
            };
            let recovered = match (contents(&t, false), contents(&u, false)) {
                (Ok(m), Ok(mu)) => (m, mu),
                (Err(e), _) | (_, Err(e)) => panic!("scan after a crash ({mode:?}) failed: {e}"),
            };
            assert!(
                since_durable.contains(&recovered),
                "after a crash ({mode:?}) the state is no prefix of the ops since the last durable one"
            );
            (model, model_u) = recovered;
            since_durable = vec![(model.clone(), model_u.clone())];
        }
    }
    match (contents(&t, true), contents(&u, true)) {
        (Ok(m), Ok(mu)) => assert!(m == model && mu == model_u, "final reverse scan differs"),
        (Err(e), _) | (_, Err(e)) => panic!("final scan failed: {e}"),
    }
}
