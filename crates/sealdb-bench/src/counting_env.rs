//! An [`Env`] that passes every call to another and counts the bytes appended to files:
//! the numerator of write amplification, exact, whatever the page cache does.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sealdb::storage::{Env, FileLock, FileSyncer, RandomAccessFile, WritableFile};

/// Wraps an [`Env`]; clones share the counter.
#[derive(Clone)]
pub struct CountingEnv {
    inner: Arc<dyn Env>,
    written: Arc<AtomicU64>,
}

impl CountingEnv {
    pub fn new(inner: Arc<dyn Env>) -> CountingEnv {
        CountingEnv {
            inner,
            written: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes appended to any file created through this env since it was made.
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

struct CountingFile {
    inner: Box<dyn WritableFile>,
    written: Arc<AtomicU64>,
}

impl WritableFile for CountingFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)?;
        self.written.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>> {
        self.inner.syncer()
    }
}

impl Env for CountingEnv {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        Ok(Box::new(CountingFile {
            inner: self.inner.create(path)?,
            written: Arc::clone(&self.written),
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.inner.open_read(path)
    }
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.truncate(path, len)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealdb::storage::default_env;

    #[test]
    fn counts_appended_bytes() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let env = CountingEnv::new(default_env());
        let mut f = env.create(&dir.path().join("a"))?;
        f.append(b"hello")?;
        f.append(b"!")?;
        let mut g = env.clone().create(&dir.path().join("b"))?;
        g.append(&[0u8; 10])?;
        assert_eq!(env.bytes_written(), 16);
        assert_eq!(std::fs::read(dir.path().join("a"))?, b"hello!");
        Ok(())
    }
}
