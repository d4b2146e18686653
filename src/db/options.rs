//! Options for a database, its tables, its writes and its reads.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{system_clock, Clock};
use crate::kms::{Kms, Principal};
pub use crate::sst::Compression;
use crate::storage::{default_env, Env};

/// The account id used when `Options` names none (the seed's example account).
pub const DEFAULT_ACCOUNT: &str = "111122223333";
/// The region used when `Options` names none.
pub const DEFAULT_REGION: &str = "us-west-2";

/// Options for [`Db::open`](crate::Db::open).
///
/// New options are added over time, so the struct cannot be built with a literal outside
/// sealdb: start from [`Options::default`] (or [`Options::with_kms`]) and set fields.
///
/// ```
/// let mut opts = sealdb::Options::default();
/// opts.write_buffer_size = 8 << 20;
/// opts.paranoid_checks = true;
/// # let _ = opts;
/// ```
///
/// The default account, region and principal ([`DEFAULT_ACCOUNT`], [`DEFAULT_REGION`], an
/// `Admin` role session of that account) are the embedded default's: a database with a
/// [`LocalKms`](crate::kms::LocalKms) of the same account works as is; set them to your own
/// when the KMS is shared or real.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// Create the directory if it does not exist (default true).
    pub create_if_missing: bool,
    /// A table's memtable is frozen and flushed past this many bytes (default 32 MiB).
    pub write_buffer_size: usize,
    /// Frozen memtables a table may have waiting for flush before writers stall (default 2).
    pub max_immutable_memtables: usize,
    /// Byte capacity of the shared cache of decoded blocks (default 32 MiB).
    pub block_cache_bytes: usize,
    /// SSTables kept open (mapped, with their index, filter and data key) at once; the
    /// least recently used are closed beyond it (default 1000).
    pub max_open_files: usize,
    /// Target size of a data block before protection (default 4 KiB).
    pub block_size: usize,
    /// Bloom filter bits per key (default 10, about 1% false positives).
    pub bloom_bits_per_key: usize,
    /// The file system (tests inject faults through it).
    pub env: Arc<dyn Env>,
    /// Time, for the table-key cache (tests inject a manual clock).
    pub clock: Arc<dyn Clock>,
    /// The KMS that table keys come from. Without one, only plaintext tables can be used.
    pub kms: Option<Arc<dyn Kms>>,
    /// The account the database belongs to (`sealdb:subscriberId` in encryption contexts).
    pub account: String,
    /// The region (part of the engine's service name, `sealdb.<region>.amazonaws.com`).
    pub region: String,
    /// The principal that handles opened from this `Db` act as (see `Db::as_principal`).
    pub principal: Principal,
    /// A principal's cached table key is checked with the KMS again after this much idle
    /// time (default 5 minutes).
    pub key_recheck_after_idle: Duration,
    /// A cached table key is used at most this long after the KMS last confirmed it
    /// (default 12 hours), so a shorter KMS outage does not stop reads and writes.
    pub key_max_age: Duration,
    /// Level 0 is compacted into level 1 once it holds this many files (default 4).
    pub l0_compaction_trigger: usize,
    /// Writers are slowed (about 1 ms per write) from this many level-0 files (default 8).
    pub l0_slowdown_writes_trigger: usize,
    /// Writers wait for compaction from this many level-0 files (default 12).
    pub l0_stop_writes_trigger: usize,
    /// Target size of level 1 (default 64 MiB); level n targets this times
    /// `level_size_multiplier` to the power n - 1. `None`: four level-0 flushes' worth
    /// (`4 * write_buffer_size`), which keeps level 1 about as large as what level 0 feeds it.
    pub level_base_bytes: Option<u64>,
    /// Growth factor between the targets of adjacent levels (default 10).
    pub level_size_multiplier: u64,
    /// Compaction cuts output files at about this many bytes (default 32 MiB).
    pub target_file_size: u64,
    /// Writers are slowed while compaction is this many bytes behind the level targets
    /// (default 64 GiB).
    pub soft_pending_compaction_bytes: u64,
    /// Writers wait while compaction is this many bytes behind (default 256 GiB).
    pub hard_pending_compaction_bytes: u64,
    /// Turns off background compaction (manual `compact_*` calls still work; default false).
    pub disable_auto_compactions: bool,
    /// Refuse to open an existing database whose manifest is not authenticated by a
    /// database key from the KMS (default false). A database gets that key with its first
    /// encrypted table; set this once it has one, so that a manifest stripped of its key
    /// and its encrypted tables (or swapped for a plaintext-only one) is an error, not an
    /// emptier database.
    pub require_authenticated_manifest: bool,
    /// Read back every block of each new SSTable (flush, compaction, recovery) before the
    /// manifest names it (default false: the size, footer, index, filter and data key are
    /// always checked). RocksDB's `paranoid_checks` in spirit.
    pub paranoid_checks: bool,
    /// The named Rust index key extractors (`IndexSpec::named`); every one an index of the
    /// database uses must be registered at every open, or the open fails.
    pub index_extractors: crate::index::IndexExtractors,
}

impl Options {
    /// The defaults, with encrypted tables' keys from `kms`.
    pub fn with_kms(kms: Arc<dyn Kms>) -> Options {
        Options {
            kms: Some(kms),
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            write_buffer_size: 32 << 20,
            max_immutable_memtables: 2,
            block_cache_bytes: 32 << 20,
            max_open_files: 1000,
            block_size: 4096,
            bloom_bits_per_key: 10,
            env: default_env(),
            clock: system_clock(),
            kms: None,
            account: DEFAULT_ACCOUNT.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            principal: Principal::assumed_role(DEFAULT_ACCOUNT, "Admin", "user01"),
            key_recheck_after_idle: DEFAULT_KEY_RECHECK_AFTER_IDLE,
            key_max_age: DEFAULT_KEY_MAX_AGE,
            l0_compaction_trigger: 4,
            l0_slowdown_writes_trigger: 8,
            l0_stop_writes_trigger: 12,
            level_base_bytes: Some(64 << 20),
            level_size_multiplier: 10,
            target_file_size: 32 << 20,
            soft_pending_compaction_bytes: 64 << 30,
            hard_pending_compaction_bytes: 256 << 30,
            disable_auto_compactions: false,
            require_authenticated_manifest: false,
            paranoid_checks: false,
            index_extractors: crate::index::IndexExtractors::new(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("create_if_missing", &self.create_if_missing)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_immutable_memtables", &self.max_immutable_memtables)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("max_open_files", &self.max_open_files)
            .field("block_size", &self.block_size)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("kms", &self.kms.as_ref().map(|_| "configured"))
            .field("account", &self.account)
            .field("region", &self.region)
            .field("principal", &self.principal.arn)
            .field("key_recheck_after_idle", &self.key_recheck_after_idle)
            .field("key_max_age", &self.key_max_age)
            .field("l0_compaction_trigger", &self.l0_compaction_trigger)
            .field(
                "l0_slowdown_writes_trigger",
                &self.l0_slowdown_writes_trigger,
            )
            .field("l0_stop_writes_trigger", &self.l0_stop_writes_trigger)
            .field(
                "require_authenticated_manifest",
                &self.require_authenticated_manifest,
            )
            .field("paranoid_checks", &self.paranoid_checks)
            .field("index_extractors", &self.index_extractors)
            .field("level_base_bytes", &self.level_base_bytes)
            .field("level_size_multiplier", &self.level_size_multiplier)
            .field("target_file_size", &self.target_file_size)
            .field("disable_auto_compactions", &self.disable_auto_compactions)
            .finish_non_exhaustive()
    }
}

/// Whether a table is encrypted at rest, chosen once at `create_table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// Stored in the clear, with a CRC32 on every block and record; no crypto cost.
    Plaintext,
    /// AES-256-GCM under a table key from the KMS: the service default key
    /// (`alias/aws/sealdb`) when `key_id` is `None`, else that customer managed key.
    Encrypted {
        /// The KMS key (id, ARN or alias); `None` for the service default key.
        key_id: Option<String>,
    },
}

/// Whether an encrypted table's per-file range boundaries stay readable in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Boundaries {
    /// Each file's smallest and largest key are plaintext in the manifest (as DynamoDB's
    /// range-boundary sort keys are), so files can be pruned without the table key.
    #[default]
    Plain,
    /// Boundaries are sealed under the table key too.
    Sealed,
}

/// Options fixed when a table is created: built with [`TableOptions::encrypted`],
/// [`TableOptions::encrypted_with`] or [`TableOptions::plaintext`] and the `with_*` methods
/// (new options are added over time).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableOptions {
    /// Plaintext, or encrypted under which KMS key.
    pub encryption: Encryption,
    /// Whether the manifest keeps each file's smallest and largest key in plaintext.
    pub boundaries: Boundaries,
    /// Data blocks compressed before they are sealed (default: none).
    pub compression: Compression,
    /// Local secondary indexes, by name, living in the table's own LSM
    /// ([`TableOptions::with_local_index`]).
    pub local_indexes: Vec<(String, crate::IndexSpec)>,
}

impl TableOptions {
    /// An encrypted table under the service default key.
    pub fn encrypted() -> TableOptions {
        TableOptions {
            encryption: Encryption::Encrypted { key_id: None },
            boundaries: Boundaries::Plain,
            compression: Compression::None,
            local_indexes: Vec::new(),
        }
    }

    /// An encrypted table under a customer managed key.
    pub fn encrypted_with(key_id: impl Into<String>) -> TableOptions {
        TableOptions {
            encryption: Encryption::Encrypted {
                key_id: Some(key_id.into()),
            },
            boundaries: Boundaries::Plain,
            compression: Compression::None,
            local_indexes: Vec::new(),
        }
    }

    /// A plaintext table.
    pub fn plaintext() -> TableOptions {
        TableOptions {
            encryption: Encryption::Plaintext,
            boundaries: Boundaries::Plain,
            compression: Compression::None,
            local_indexes: Vec::new(),
        }
    }

    /// Adds local secondary index `name`: it lives inside the table's own LSM (same files
    /// and data keys as its items), is maintained in the same WAL record as each write,
    /// and is queried like a global index ([`crate::Table::index`]). Local indexes are
    /// declared only here, when the table is created, and live as long as the table (at
    /// most 16). An encrypted table with local indexes always seals its boundaries: they
    /// may be index entries, which are attribute values.
    pub fn with_local_index(mut self, name: impl Into<String>, spec: crate::IndexSpec) -> Self {
        self.local_indexes.push((name.into(), spec));
        self
    }

    /// Seals the range boundaries too (encrypted tables only).
    pub fn with_sealed_boundaries(mut self) -> TableOptions {
        self.boundaries = Boundaries::Sealed;
        self
    }

    /// Compresses data blocks (before encryption) with `compression`; a block that does
    /// not shrink by at least 1/8 is stored as is.
    pub fn with_compression(mut self, compression: Compression) -> TableOptions {
        self.compression = compression;
        self
    }

    /// True for an encrypted table.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.encryption, Encryption::Encrypted { .. })
    }
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions::encrypted()
    }
}

/// Options for one write: [`WriteOptions::default`] (not synced), [`WriteOptions::synced`]
/// or [`WriteOptions::with_sync`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// `true`: the write is durable (fdatasync of the WAL) when the call returns; concurrent
    /// syncing writers share one fsync. It becomes visible to readers only after the fsync
    /// succeeded. If the call fails, no reader of this process ever sees the write (the
    /// database is then poisoned, read-only); after a reopen its record may or may not
    /// replay, as for a write in flight during a crash: the outcome is unknown.
    /// `false`: the write reaches the OS when the call returns and survives a process
    /// crash, but not a power loss or kernel crash; it is visible once every older synced
    /// write is (so the call may wait for a concurrent fsync).
    pub sync: bool,
}

impl WriteOptions {
    /// Every write waits until the WAL is fsynced.
    pub fn synced() -> WriteOptions {
        WriteOptions { sync: true }
    }

    /// Synced (`true`) or not, as `sync` says.
    pub fn with_sync(sync: bool) -> WriteOptions {
        WriteOptions { sync }
    }
}

/// Idle time after which a principal's cached table key is checked with the KMS again.
pub const DEFAULT_KEY_RECHECK_AFTER_IDLE: Duration = Duration::from_secs(5 * 60);
/// The longest a table key stays cached, so a KMS outage shorter than this is invisible.
pub const DEFAULT_KEY_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
