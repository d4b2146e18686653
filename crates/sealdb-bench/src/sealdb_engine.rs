//! sealdb as a [`BenchEngine`]: one table, encrypted under a key from a local KMS or
//! plaintext, opened through a [`CountingEnv`] so write amplification is exact.

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::counting_env::CountingEnv;
use super::engine::{BenchEngine, EngineFactory, EngineResult};
use super::BenchConfig;
use sealdb::kms::{KdfParams, Kms, LocalKms, LocalKmsOptions, RootKeySource};
use sealdb::storage::default_env;
use sealdb::{Compression, Db, Options, Table, TableOptions, WriteBatch, WriteOptions};

/// Name of the table every workload uses.
pub const BENCH_TABLE: &str = "bench";

/// Opens sealdb for the workloads.
#[derive(Clone, Copy, Debug, Default)]
pub struct SealdbFactory;

impl SealdbFactory {
    fn label(config: &BenchConfig) -> &'static str {
        if config.encrypted {
            "sealdb-encrypted"
        } else {
            "sealdb-plaintext"
        }
    }
}

impl EngineFactory for SealdbFactory {
    fn name(&self) -> String {
        "sealdb".into()
    }

    fn settings(&self, config: &BenchConfig) -> String {
        let d = Options::default();
        format!(
            "{}: WAL on, sync={}, block cache {} MiB, write buffer {} MiB, block {} B, bloom {} bits/key, {}{}",
            Self::label(config),
            config.sync,
            config.cache_bytes >> 20,
            d.write_buffer_size >> 20,
            config.block_size.unwrap_or(d.block_size),
            d.bloom_bits_per_key,
            config.compression_name(),
            if config.encrypted {
                format!(", AES-256-GCM ({}), local KMS", sealdb::AEAD_BACKEND)
            } else {
                ", CRC32".to_owned()
            }
        )
    }

    fn open(&self, dir: &Path, config: &BenchConfig) -> EngineResult<Box<dyn BenchEngine>> {
        let env = CountingEnv::new(default_env());
        let mut opts = Options::default();
        opts.block_cache_bytes = config.cache_bytes;
        if let Some(b) = config.block_size {
            opts.block_size = b;
        }
        opts.env = Arc::new(env.clone());
        let table_opts = if config.encrypted {
            // The KMS lives beside the data directory, so its files are not counted.
            let kms_dir = dir.with_extension("kms");
            std::fs::create_dir_all(&kms_dir)?;
            let kms = LocalKms::open(
                &kms_dir,
                LocalKmsOptions::new(&opts.account, &opts.region).with_root_key(
                    RootKeySource::Passphrase {
                        passphrase: Zeroizing::new("sealdb bench passphrase".into()),
                        kdf: KdfParams::insecure_fast_for_tests(),
                    },
                ),
            )?;
            let kms: Arc<dyn Kms> = Arc::new(kms);
            opts.kms = Some(kms);
            TableOptions::encrypted()
        } else {
            TableOptions::plaintext()
        };
        let table_opts = if config.lz4 {
            table_opts.with_compression(Compression::Lz4)
        } else {
            table_opts
        };
        let db = Db::open(dir, opts)?;
        // `readreopen` opens the database a fill made.
        let table = if db.tables().iter().any(|t| t == BENCH_TABLE) {
            db.table(BENCH_TABLE)?
        } else {
            db.create_table(BENCH_TABLE, table_opts)?
        };
        Ok(Box::new(SealdbEngine {
            db,
            table,
            env,
            write: WriteOptions::with_sync(config.sync),
        }))
    }
}

struct SealdbEngine {
    db: Db,
    table: Table,
    env: CountingEnv,
    write: WriteOptions,
}

impl BenchEngine for SealdbEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> EngineResult<()> {
        Ok(self.table.put_opt(key, value, self.write)?)
    }

    fn put_batch(&self, entries: &[(&[u8], &[u8])]) -> EngineResult<()> {
        let mut b = WriteBatch::new();
        for (k, v) in entries {
            b.put(&self.table, k, v);
        }
        Ok(self.db.write(&b, self.write)?)
    }

    fn get(&self, key: &[u8]) -> EngineResult<Option<usize>> {
        Ok(self.table.get(key)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> EngineResult<()> {
        Ok(self.table.delete_opt(key, self.write)?)
    }

    fn scan(&self, reverse: bool, visit: &mut dyn FnMut(&[u8], &[u8])) -> EngineResult<u64> {
        let it = self.table.iter()?;
        let it = if reverse { it.rev() } else { it };
        let mut n = 0;
        for kv in it {
            let (k, v) = kv?;
            visit(&k, &v);
            n += 1;
        }
        Ok(n)
    }

    fn seek(&self, key: &[u8], n: usize) -> EngineResult<usize> {
        let mut got = 0;
        for kv in self.table.range(key..)?.take(n) {
            kv?;
            got += 1;
        }
        Ok(got)
    }

    fn flush(&self) -> EngineResult<()> {
        Ok(self.db.flush()?)
    }

    fn bytes_written(&self) -> Option<u64> {
        Some(self.env.bytes_written())
    }
}
