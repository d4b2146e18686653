//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sealdb::{Db, Options};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Small buffers so tests exercise flushes and many files quickly.
pub fn small_options() -> Options {
    Options {
        write_buffer_size: 256 << 10,
        block_cache_bytes: 1 << 20,
        ..Options::default()
    }
}

pub fn open(path: &Path) -> sealdb::Result<Db> {
    Db::open(path, small_options())
}

/// Copies every regular file of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// Files in `dir` whose names end with `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
