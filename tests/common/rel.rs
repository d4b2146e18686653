//! Helpers of the reliability tests (fault injection, crashes, tampering).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sealdb::clock::ManualClock;
use sealdb::kms::LocalKms;
use sealdb::storage::Env;
use sealdb::{Db, Options};

pub use super::{TestResult, ACCOUNT, REGION};
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// A LocalKms in `dir` under a fixed test passphrase and a fast KDF.
pub fn local_kms(dir: &Path) -> Result<LocalKms, sealdb::kms::KmsError> {
    let clock = Arc::new(ManualClock::default());
    LocalKms::open(
        dir,
        super::local_kms_options("reliability harness", clock, 1 << 20),
    )
}

/// Options with tiny buffers (so flushes happen every few writes), the given env, and a
/// LocalKms in `kms_dir` when one is given.
pub fn options(
    env: Arc<dyn Env>,
    kms_dir: Option<&Path>,
) -> Result<Options, sealdb::kms::KmsError> {
    let kms: Option<Arc<dyn sealdb::kms::Kms>> = match kms_dir {
        Some(d) => Some(Arc::new(local_kms(d)?)),
        None => None,
    };
    Ok({
        let mut o = Options::default();
        o.write_buffer_size = 2 << 10;
        o.block_size = 256;
        o.block_cache_bytes = 64 << 10;
        o.env = env;
        o.kms = kms;
        o
    })
}

pub fn open(dir: &Path, env: Arc<dyn Env>, kms_dir: Option<&Path>) -> sealdb::Result<Db> {
    Db::open(dir, options(env, kms_dir)?)
}

/// Counts panics in every thread (the engine's background worker included), so a test
/// can assert none happened even where no `JoinHandle` sees them.
pub fn panic_counter() -> &'static AtomicU64 {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            COUNT.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut m) = panic_messages().lock() {
                m.push(info.to_string());
            }
            previous(info);
        }));
    });
    &COUNT
}

pub fn panic_messages() -> &'static Mutex<Vec<String>> {
    static MSGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    MSGS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The value written for key `i` in generation `gen`: distinct per write, so a stale or
/// foreign value is told apart from the right one.
pub fn value_for(i: u64, gen: u64) -> Vec<u8> {
    format!("value-{i:06}-g{gen}-{}", "v".repeat((i % 40) as usize)).into_bytes()
}

pub fn key_for(i: u64) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Runs `f` on its own thread and fails if it takes longer than `secs` (a hang is a bug
/// too) or panics.
pub fn with_deadline<T: Send + 'static>(
    what: String,
    secs: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(format!("{what}: panicked")),
        Err(_) => Err(format!("{what}: did not finish within {secs} s (hang)")),
    }
}
