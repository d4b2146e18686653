//! The file-system seam. Every file operation of the engine goes through an [`Env`], so
//! tests can inject I/O faults and simulate crashes that drop what was not fsynced.

#[cfg(any(test, feature = "fault-injection"))]
#[expect(
    clippy::indexing_slicing,
    reason = "the fault plan's per-call-site tables, indexed by an enum's position (FaultOp::index)"
)]
pub mod fault;
mod std_env;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use std_env::StdEnv;

/// A file opened for appending. Data reaches the OS on `append` (no user-space buffer is
/// kept here; callers batch), and stable storage only on `sync`.
pub trait WritableFile: Send {
    /// Appends `data` at the end of the file.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes every byte appended so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Bytes appended so far, including those present when the file was opened.
    fn len(&self) -> u64;
    /// True when nothing has been appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A handle that can sync this file from another thread while appends go on
    /// (group commit syncs outside the append lock).
    fn syncer(&self) -> io::Result<Box<dyn FileSyncer>>;
}

/// Syncs a file from another thread; see [`WritableFile::syncer`].
pub trait FileSyncer: Send + Sync {
    /// Makes every byte appended to the file before this call durable.
    fn sync(&self) -> io::Result<()>;
}

/// A file opened for reading at arbitrary offsets. The standard implementation maps it.
pub trait RandomAccessFile: Send + Sync {
    /// Reads exactly `len` bytes at `offset`; fails with `UnexpectedEof` past the end.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes>;
    /// `read_at` for a range the caller consumes whole and at once (a block it decrypts or
    /// checksums). A mapped file also asks the CPU to start loading every cache line of it,
    /// so the loads overlap instead of arriving one after another behind the decryption.
    fn read_whole_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.read_at(offset, len)
    }
    /// The file's length when it was opened.
    fn len(&self) -> u64;
    /// True for an empty file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Held while a database directory is open; dropping it releases the lock.
pub trait FileLock: Send + Sync {}

/// The operations the engine performs on the file system.
pub trait Env: Send + Sync + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Creates a new file for writing, readable and writable by its owner only (mode 0600
    /// on unix), for secrets such as a root key; fails with `AlreadyExists` if `path`
    /// exists, so a secret is never overwritten. An env that cannot restrict a file to its
    /// owner fails with `Unsupported` rather than create a readable one.
    fn create_private(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this env creates no owner-only files",
        ))
    }
    /// Opens a file for random reads.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>>;
    /// Reads a whole (small) file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Cuts a file to `len` bytes and makes that durable (used to drop a torn WAL tail).
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// True when the path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive advisory lock on `path`, creating it; fails with `WouldBlock`
    /// when another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Makes `to` a second name of the file `from` (a hard link), for checkpoints. An env
    /// that cannot (another file system, no links) fails, and the caller copies instead.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _ = (from, to);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this env makes no hard links",
        ))
    }
    /// Removes an empty directory (a checkpoint's or a restore's staging directory).
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this env removes no directories",
        ))
    }
}

/// The environment used when `Options` names none.
pub fn default_env() -> Arc<dyn Env> {
    Arc::new(StdEnv)
}

/// Joins a directory and a file name.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
