//! The peer engines behind `sealdb_bench::BenchEngine`, configured as equally as each
//! allows: WAL (journal) on, no fsync per write unless `--sync`, the same cache size,
//! 4 KiB blocks, 10 bloom bits per key, no compression unless `--lz4` (then LZ4 blocks on RocksDB
//! and fjall; redb and sled have none).

use std::path::Path;

use sealdb_bench::{BenchConfig, BenchEngine, EngineFactory, EngineResult};

const MEMTABLE: usize = 32 << 20;

// ---------------------------------------------------------------- RocksDB

pub struct RocksFactory;

struct Rocks {
    db: rocksdb::DB,
    write: rocksdb::WriteOptions,
    _cache: rocksdb::Cache,
}

impl EngineFactory for RocksFactory {
    fn name(&self) -> String {
        "rocksdb".into()
    }
    fn settings(&self, c: &BenchConfig) -> String {
        format!(
            "rocksdb crate 0.24, bundled RocksDB 10.4.2 built from source: WAL on, sync={}, LRU block cache {} MiB, write buffer 32 MiB, 4 KiB blocks, bloom 10 bits/key, {}, default leveled compaction",
            c.sync,
            c.cache_bytes >> 20,
            c.compression_name()
        )
    }
    fn open(&self, dir: &Path, c: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>> {
        let cache = rocksdb::Cache::new_lru_cache(c.cache_bytes);
        let mut bbo = rocksdb::BlockBasedOptions::default();
        bbo.set_block_cache(&cache);
        bbo.set_block_size(4096);
        bbo.set_bloom_filter(10.0, false);
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&bbo);
        opts.set_write_buffer_size(MEMTABLE);
        opts.set_compression_type(if c.lz4 {
            rocksdb::DBCompressionType::Lz4
        } else {
            rocksdb::DBCompressionType::None
        });
        let db = rocksdb::DB::open(&opts, dir)?;
        let mut write = rocksdb::WriteOptions::default();
        write.set_sync(c.sync);
        Ok(Box::new(Rocks {
            db,
            write,
            _cache: cache,
        }))
    }
}

impl BenchEngine for Rocks {
    fn put(&self, k: &[u8], v: &[u8]) -> EngineResult<()> {
        Ok(self.db.put_opt(k, v, &self.write)?)
    }
    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()> {
        let mut b = rocksdb::WriteBatch::default();
        for (k, v) in entries {
            b.put(k, v);
        }
        Ok(self.db.write_opt(b, &self.write)?)
    }
    fn get(&self, k: &[u8]) -> EngineResult<Option<usize>> {
        Ok(self.db.get_pinned(k)?.map(|v| v.len()))
    }
    fn delete(&self, k: &[u8]) -> EngineResult<()> {
        Ok(self.db.delete_opt(k, &self.write)?)
    }
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64> {
        let mut it = self.db.raw_iterator();
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        let mut n = 0;
        while it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                visit(k, v);
            }
            n += 1;
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status()?;
        Ok(n)
    }
    fn seek(&self, k: &[u8], n: usize) -> EngineResult<usize> {
        let mut it = self.db.raw_iterator();
        it.seek(k);
        let mut got = 0;
        while it.valid() && got < n {
            got += 1;
            it.next();
        }
        it.status()?;
        Ok(got)
    }
    fn flush(&self) -> EngineResult<()> {
        Ok(self.db.flush()?)
    }
}

// ---------------------------------------------------------------- fjall

pub struct FjallFactory;

struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
    sync: bool,
}

impl EngineFactory for FjallFactory {
    fn name(&self) -> String {
        "fjall".into()
    }
    fn settings(&self, c: &BenchConfig) -> String {
        format!(
            "fjall 3.1: journal on (each write flushed to the OS), sync={}, cache {} MiB, memtable 32 MiB, 4 KiB blocks, bloom 10 bits/key, {}",
            c.sync,
            c.cache_bytes >> 20,
            c.compression_name()
        )
    }
    fn open(&self, dir: &Path, c: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>> {
        use fjall::config::{
            BlockSizePolicy, BloomConstructionPolicy, CompressionPolicy, FilterPolicy,
            FilterPolicyEntry,
        };
        let db = fjall::Database::builder(dir)
            .cache_size(c.cache_bytes as u64)
            .open()?;
        let ks = db.keyspace("bench", || {
            fjall::KeyspaceCreateOptions::default()
                .max_memtable_size(MEMTABLE as u64)
                .data_block_size_policy(BlockSizePolicy::all(4096))
                .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                    BloomConstructionPolicy::BitsPerKey(10.0),
                )))
                .data_block_compression_policy(if c.lz4 {
                    CompressionPolicy::all(fjall::CompressionType::Lz4)
                } else {
                    CompressionPolicy::disabled()
                })
                .index_block_compression_policy(CompressionPolicy::disabled())
        })?;
        Ok(Box::new(Fjall {
            db,
            ks,
            sync: c.sync,
        }))
    }
}

impl Fjall {
    fn synced(&self) -> EngineResult<()> {
        if self.sync {
            self.db.persist(fjall::PersistMode::SyncData)?;
        }
        Ok(())
    }
}

impl BenchEngine for Fjall {
    fn put(&self, k: &[u8], v: &[u8]) -> EngineResult<()> {
        self.ks.insert(k, v)?;
        self.synced()
    }
    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()> {
        let mut b = self.db.batch();
        for (k, v) in entries {
            b.insert(&self.ks, *k, *v);
        }
        b.commit()?;
        self.synced()
    }
    fn get(&self, k: &[u8]) -> EngineResult<Option<usize>> {
        Ok(self.ks.get(k)?.map(|v| v.len()))
    }
    fn delete(&self, k: &[u8]) -> EngineResult<()> {
        self.ks.remove(k)?;
        self.synced()
    }
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64> {
        let mut n = 0;
        let mut each = |g: fjall::Guard| -> EngineResult<()> {
            let (k, v) = g.into_inner()?;
            visit(&k, &v);
            n += 1;
            Ok(())
        };
        if reverse {
            for kv in self.ks.iter().rev() {
                each(kv)?;
            }
        } else {
            for kv in self.ks.iter() {
                each(kv)?;
            }
        }
        Ok(n)
    }
    fn seek(&self, k: &[u8], n: usize) -> EngineResult<usize> {
        let mut got = 0;
        for g in self.ks.range(k.to_vec()..).take(n) {
            g.into_inner()?;
            got += 1;
        }
        Ok(got)
    }
    fn flush(&self) -> EngineResult<()> {
        self.ks.rotate_memtable_and_wait()?;
        Ok(())
    }
}

// ---------------------------------------------------------------- redb

pub struct RedbFactory;

type RedbEntry<'a> = Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

struct Redb {
    db: redb::Database,
    durability: redb::Durability,
    /// Commits so far: every 1000th is `Immediate`, since redb frees pages only then (with
    /// `None` alone the file grew past 40 GiB during a 1M-key run).
    commits: std::sync::atomic::AtomicU64,
}

impl EngineFactory for RedbFactory {
    fn name(&self) -> String {
        "redb".into()
    }
    fn settings(&self, c: &BenchConfig) -> String {
        format!(
            "redb 2: one write transaction per write, Durability::{} (redb has no WAL; None = not persisted until the next Immediate commit; every 1000th commit and the untimed flush are Immediate; Eventual measured at about 300 ops/s here), cache {} MiB, one read transaction per read",
            if c.sync { "Immediate" } else { "None" },
            c.cache_bytes >> 20
        )
    }
    fn open(&self, dir: &Path, c: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>> {
        let db = redb::Database::builder()
            .set_cache_size(c.cache_bytes)
            .create(dir.join("bench.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(REDB_TABLE)?;
        tx.commit()?;
        Ok(Box::new(Redb {
            db,
            durability: if c.sync {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            },
            commits: std::sync::atomic::AtomicU64::new(0),
        }))
    }
}

impl Redb {
    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> EngineResult<()>,
    ) -> EngineResult<()> {
        let mut tx = self.db.begin_write()?;
        let n = self
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tx.set_durability(if n % 1000 == 999 {
            redb::Durability::Immediate
        } else {
            self.durability
        });
        {
            let mut t = tx.open_table(REDB_TABLE)?;
            f(&mut t)?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl BenchEngine for Redb {
    fn put(&self, k: &[u8], v: &[u8]) -> EngineResult<()> {
        self.write(|t| {
            t.insert(k, v)?;
            Ok(())
        })
    }
    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()> {
        self.write(|t| {
            for (k, v) in entries {
                t.insert(*k, *v)?;
            }
            Ok(())
        })
    }
    fn get(&self, k: &[u8]) -> EngineResult<Option<usize>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_TABLE)?;
        Ok(t.get(k)?.map(|v| v.value().len()))
    }
    fn delete(&self, k: &[u8]) -> EngineResult<()> {
        self.write(|t| {
            t.remove(k)?;
            Ok(())
        })
    }
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64> {
        use redb::ReadableTable;
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_TABLE)?;
        let mut n = 0;
        let it = t.iter()?;
        let mut each = |kv: RedbEntry<'_>| -> EngineResult<()> {
            let (k, v) = kv?;
            visit(k.value(), v.value());
            n += 1;
            Ok(())
        };
        if reverse {
            for kv in it.rev() {
                each(kv)?;
            }
        } else {
            for kv in it {
                each(kv)?;
            }
        }
        Ok(n)
    }
    fn seek(&self, k: &[u8], n: usize) -> EngineResult<usize> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_TABLE)?;
        let mut got = 0;
        for kv in t.range(k..)?.take(n) {
            kv?;
            got += 1;
        }
        Ok(got)
    }
    fn flush(&self) -> EngineResult<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Immediate);
        tx.commit()?;
        Ok(())
    }
}

// ---------------------------------------------------------------- sled

pub struct SledFactory;

struct Sled {
    db: sled::Db,
    sync: bool,
}

impl EngineFactory for SledFactory {
    fn name(&self) -> String {
        "sled".into()
    }
    fn settings(&self, c: &BenchConfig) -> String {
        format!(
            "sled 0.34: log on (background flush every 500 ms), sync={} (flush per write), cache {} MiB",
            c.sync,
            c.cache_bytes >> 20
        )
    }
    fn open(&self, dir: &Path, c: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(c.cache_bytes as u64)
            .open()?;
        Ok(Box::new(Sled { db, sync: c.sync }))
    }
}

impl Sled {
    fn synced(&self) -> EngineResult<()> {
        if self.sync {
            self.db.flush()?;
        }
        Ok(())
    }
}

impl BenchEngine for Sled {
    fn put(&self, k: &[u8], v: &[u8]) -> EngineResult<()> {
        self.db.insert(k, v)?;
        self.synced()
    }
    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()> {
        let mut b = sled::Batch::default();
        for (k, v) in entries {
            b.insert(*k, *v);
        }
        self.db.apply_batch(b)?;
        self.synced()
    }
    fn get(&self, k: &[u8]) -> EngineResult<Option<usize>> {
        Ok(self.db.get(k)?.map(|v| v.len()))
    }
    fn delete(&self, k: &[u8]) -> EngineResult<()> {
        self.db.remove(k)?;
        self.synced()
    }
    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64> {
        let mut n = 0;
        let mut each = |kv: sled::Result<(sled::IVec, sled::IVec)>| -> EngineResult<()> {
            let (k, v) = kv?;
            visit(&k, &v);
            n += 1;
            Ok(())
        };
        if reverse {
            for kv in self.db.iter().rev() {
                each(kv)?;
            }
        } else {
            for kv in self.db.iter() {
                each(kv)?;
            }
        }
        Ok(n)
    }
    fn seek(&self, k: &[u8], n: usize) -> EngineResult<usize> {
        let mut got = 0;
        for kv in self.db.range(k..).take(n) {
            kv?;
            got += 1;
        }
        Ok(got)
    }
    fn flush(&self) -> EngineResult<()> {
        self.db.flush()?;
        Ok(())
    }
}
