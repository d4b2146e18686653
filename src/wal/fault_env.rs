//! A test `Env`: the real file system with injectable write, sync and rename faults.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::storage::{Env, FileLock, FileSyncer, RandomAccessFile, StdEnv, WritableFile};

/// The real file system, whose writable files fail appends and syncs on demand.
#[derive(Default)]
pub(crate) struct FaultEnv {
    /// Appends (half-written) and syncs fail while set.
    pub(crate) fail: Arc<AtomicBool>,
    /// Renames fail while set.
    pub(crate) fail_rename: AtomicBool,
}

struct FaultFile {
    inner: Box<dyn WritableFile>,
    fail: Arc<AtomicBool>,
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

impl WritableFile for FaultFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            // A partial write: half the bytes land, then the error.
            self.inner
                .append(data.get(..data.len() / 2).unwrap_or_default())?;
            return Err(injected());
        }
        self.inner.append(data)
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.sync()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        self.inner.syncer()
    }
}

impl Env for FaultEnv {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdEnv.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(FaultFile {
            inner: StdEnv.create(path)?,
            fail: self.fail.clone(),
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        StdEnv.open_read(path)
    }
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdEnv.read_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.fail_rename.load(Ordering::SeqCst) {
            return Err(injected());
        }
        StdEnv.rename(from, to)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        StdEnv.truncate(path, len)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdEnv.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdEnv.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdEnv.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        StdEnv.exists(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        StdEnv.lock(path)
    }
}
