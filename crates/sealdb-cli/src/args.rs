//! The command line, declared with clap's derive API: global options, then one subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sealdb: an embedded, encrypted key-value store whose table keys come from a KMS.
///
/// Keys and values are UTF-8 text unless `--hex` is given. Exit codes: 0 ok, 1 not found,
/// 2 usage, 3 access denied, 4 integrity failure, 5 I/O error, 6 any other error,
/// 7 keystore (wrong passphrase or root key, locked or damaged keystore).
#[derive(Parser, Debug)]
#[command(name = "sealdb", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; each also comes from an environment variable.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The database directory.
    #[arg(
        long,
        global = true,
        env = "SEALDB_DB",
        default_value = "./sealdb-data"
    )]
    pub db: PathBuf,
    /// The local KMS directory [default: a sibling of the database, <db>.kms], or
    /// `aws:<key-id-or-alias>` for AWS KMS (a build with the `aws-kms` feature).
    #[arg(long, global = true, env = "SEALDB_KMS")]
    pub kms: Option<PathBuf>,
    /// The AWS KMS endpoint URL (with `--kms aws:...`) [default: the region's].
    #[arg(long, global = true, env = "SEALDB_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,
    /// The principal to act as [default: arn:aws:sts::<account>:assumed-role/Admin/user01].
    #[arg(long, global = true, env = "SEALDB_PRINCIPAL")]
    pub principal: Option<String>,
    /// The account the database and the KMS belong to.
    #[arg(
        long,
        global = true,
        env = "SEALDB_ACCOUNT",
        default_value = "111122223333"
    )]
    pub account: String,
    /// The region (part of the engine's service name and of key ARNs).
    #[arg(
        long,
        global = true,
        env = "SEALDB_REGION",
        default_value = "us-west-2"
    )]
    pub region: String,
}

/// How keys and values are written on the command line and printed.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Encoding {
    /// Keys and values are hex (for binary data), in arguments and in output.
    #[arg(long)]
    pub hex: bool,
}

/// Output shape of every command that reports something.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Format {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs a self-contained tour: tables, a load, reads, a flush, status, audit events.
    Demo(DemoArgs),
    /// Creates a table (encrypted under the service default key unless told otherwise).
    CreateTable(CreateTableArgs),
    /// Drops a table: deletes its files and destroys its wrapped key.
    ///
    /// What it does to older backups (and any other copy of the database's files):
    ///
    /// Under the shared service default key (alias/aws/sealdb), a drop destroys the wrapped
    /// table key in this database only. A backup taken before keeps its own copy, which
    /// that key still unwraps: the table stays readable in the backup. The drop retires the
    /// table's grant, which the backup shares, so the restored table reports "grant
    /// revoked" until `renew-grant` (by a principal the key's policy allows). Nothing short
    /// of deleting the default key (which would take every table) shreds it.
    ///
    /// Under the table's own customer managed key, --delete-key also schedules that key for
    /// deletion (ScheduleKeyDeletion, --pending-days, 7 to 30). While pending, copies report
    /// "key pending deletion" (CancelKeyDeletion brings them back); once the KMS deletes
    /// the key, every copy of the table, backups included, reports "key deleted" forever:
    /// never data, never an empty table. Refused, before anything is dropped, for the
    /// default key, a key other tables use, or a key with other grants.
    ///
    /// A table-key rotation (a new table key, the files re-encrypted) does not shred older
    /// backups either: they hold the old table key wrapped under the same KMS key, which
    /// still unwraps it. Only deleting the KMS key does.
    ///
    /// With the local KMS, the keystore directory holds the keys: a copy of it from before
    /// the deletion brings the key back, so keep no such copy of a keystore you shred from.
    #[command(verbatim_doc_comment)]
    DropTable(DropTableArgs),
    /// Writes a consistent point-in-time copy of the database into DIR (new or empty):
    /// SSTables hard-linked where possible, WAL segments copied, a fresh manifest. The
    /// files stay encrypted; the KMS keystore is not copied (keep it: the backup opens
    /// only with the same KMS).
    Backup(BackupArgs),
    /// Restores a backup into DIR (new or empty): copied, opened with the KMS and verified
    /// in DIR.tmp-restore, then renamed into place. A failed restore leaves DIR as it was.
    Restore(RestoreArgs),
    /// Lists the tables.
    Tables(Format),
    /// Stores a value.
    Put {
        table: String,
        key: String,
        value: String,
        #[command(flatten)]
        enc: Encoding,
        /// Wait until the write is durable (fsync of the WAL).
        #[arg(long)]
        sync: bool,
        #[command(flatten)]
        fmt: Format,
    },
    /// Prints a value; exit code 1 when the key is absent (with --json: a null value).
    Get {
        table: String,
        key: String,
        #[command(flatten)]
        enc: Encoding,
        #[command(flatten)]
        fmt: Format,
    },
    /// Deletes a key.
    Delete {
        table: String,
        key: String,
        #[command(flatten)]
        enc: Encoding,
        /// Wait until the delete is durable (fsync of the WAL).
        #[arg(long)]
        sync: bool,
        #[command(flatten)]
        fmt: Format,
    },
    /// Prints keys and values in key order (`key<TAB>value` lines, or JSON lines).
    Scan(ScanArgs),
    /// Adds a global secondary index to a table and backfills it, with a progress bar.
    CreateIndex(CreateIndexArgs),
    /// Removes a secondary index; its files are deleted.
    DropIndex {
        table: String,
        name: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Lists a table's indexes: extractor, uniqueness, ready or backfilling, boundaries.
    Indexes {
        table: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Prints the items found through an index (`index key<TAB>key<TAB>value` lines, or
    /// JSON lines), by index key.
    Query(QueryArgs),
    /// Reads `key<TAB>value` lines (or JSON lines with --jsonl) from stdin.
    Import(ImportExportArgs),
    /// Writes the table as `key<TAB>value` lines (or JSON lines with --jsonl) to stdout.
    Export(ImportExportArgs),
    /// Writes generated data, with a progress bar.
    Load(LoadArgs),
    /// Flushes every memtable to SSTables.
    Flush(Format),
    /// Compacts one table, or every table.
    Compact {
        table: Option<String>,
        #[command(flatten)]
        fmt: Format,
    },
    /// Shows the LSM layout: levels, files, sizes, range boundaries, key ids.
    Inspect {
        table: Option<String>,
        #[command(flatten)]
        fmt: Format,
    },
    /// Authenticates every block of every file.
    Verify(Format),
    /// Shows each table's encryption status.
    Status(Format),
    /// Prints the KMS audit trail as JSON lines.
    Audit(AuditArgs),
    /// Calls the local KMS directly.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Switches a table to another KMS key (DynamoDB's UpdateTable SSESpecification): the
    /// same table key re-wrapped under the new key, a grant on it, the old grant retired.
    UpdateTable(UpdateTableArgs),
    /// Re-wraps, now, every table key whose KMS key has rotated to newer key material (the
    /// background worker does it every minute too). No data is rewritten.
    RewrapKeys(Format),
    /// Rotates a table's key: a new table key from the KMS (GenerateDataKey), used at once
    /// by new files; the files under the older key are re-encrypted (progress printed as it
    /// goes) and its wrapped copy removed once nothing uses it.
    RotateTableKey(RotateTableKeyArgs),
    /// Creates a new grant for the engine on an encrypted table (after a revoke).
    RenewGrant {
        table: String,
        #[command(flatten)]
        fmt: Format,
    },
    /// Runs the db_bench-style benchmarks (fillseq, fillrandom, overwrite, readrandom, ...)
    /// on their own temporary databases; the global options do not apply.
    Bench(BenchCmd),
    /// Prints a shell completion script (e.g. `sealdb completions bash > /etc/bash_completion.d/sealdb`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Prints the manual page (roff), generated from these definitions: `sealdb man | man -l -`.
    Man,
}

/// `bench`: the runner's own options. The global options do not apply to it; their hidden
/// stand-ins here keep them out of `sealdb bench --help` (clap propagates a global option
/// to a subcommand only where the subcommand has no argument of that id; the types match the
/// global ones, whose values clap copies in).
#[derive(Args, Debug)]
pub struct BenchCmd {
    #[command(flatten)]
    pub args: sealdb_bench::BenchArgs,
    #[arg(id = "db", long = "db", hide = true)]
    _db: Option<PathBuf>,
    #[arg(id = "kms", long = "kms", hide = true)]
    _kms: Option<PathBuf>,
    #[arg(id = "kms_endpoint", long = "kms-endpoint", hide = true)]
    _kms_endpoint: Option<String>,
    #[arg(id = "principal", long = "principal", hide = true)]
    _principal: Option<String>,
    #[arg(id = "account", long = "account", hide = true)]
    _account: Option<String>,
    #[arg(id = "region", long = "region", hide = true)]
    _region: Option<String>,
}

/// The shells `completions` writes scripts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work in this new directory instead of a temporary one (it is kept afterwards; an
    /// existing directory is refused).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keys to load into each table.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
}

#[derive(Args, Debug)]
pub struct CreateTableArgs {
    pub name: String,
    /// No encryption: a CRC32 on every block and record, no crypto cost.
    #[arg(long, conflicts_with_all = ["key_id", "sealed_boundaries"])]
    pub plaintext: bool,
    /// Encrypt under this customer managed key (id, ARN or alias) instead of the default key.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Encrypt the per-file range boundaries in the manifest too.
    #[arg(long)]
    pub sealed_boundaries: bool,
    /// LZ4-compress data blocks (before encryption; recorded per block).
    #[arg(long)]
    pub lz4: bool,
    /// A local secondary index, inside the table's own files (repeatable; declared only
    /// at creation): NAME=/json/pointer, or NAME=/json/pointer,unique.
    #[arg(long = "index", value_name = "NAME=/POINTER[,unique]")]
    pub index: Vec<String>,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct DropTableArgs {
    pub name: String,
    /// Also schedule the table's own customer managed KMS key for deletion
    /// (crypto-shredding: every copy of the table becomes unreadable once it is deleted).
    #[arg(long)]
    pub delete_key: bool,
    /// Days before the KMS deletes the key (7 to 30), with --delete-key.
    #[arg(long, requires = "delete_key", default_value_t = 30)]
    pub pending_days: u32,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The backup's directory (must not exist, or be empty).
    pub dir: PathBuf,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup's directory.
    pub backup: PathBuf,
    /// The new database's directory (must not exist, or be empty).
    pub dir: PathBuf,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct RotateTableKeyArgs {
    pub name: String,
    /// Return once the new key is committed; the re-encryption goes on whenever the
    /// database is open (in the background worker, at a bounded rate).
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct UpdateTableArgs {
    pub name: String,
    /// The KMS key to put the table under (id, ARN or alias).
    #[arg(
        long,
        required_unless_present = "default_key",
        conflicts_with = "default_key"
    )]
    pub key_id: Option<String>,
    /// Back to the service default key (alias/aws/sealdb).
    #[arg(long)]
    pub default_key: bool,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    pub table: String,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub enc: Encoding,
    #[command(flatten)]
    pub fmt: Format,
}

/// The range flags of `scan` (over table keys) and `query` (over index keys).
#[derive(Args, Debug)]
pub struct RangeArgs {
    /// First key (inclusive): a table key for `scan`, an index key for `query`.
    #[arg(long)]
    pub from: Option<String>,
    /// Last key (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Descending key order.
    #[arg(long)]
    pub reverse: bool,
}

#[derive(Args, Debug)]
pub struct CreateIndexArgs {
    pub table: String,
    /// The index's name.
    pub name: String,
    /// Index keys from this RFC 6901 JSON pointer into JSON values (`/author`).
    #[arg(value_name = "POINTER")]
    pub path: Option<String>,
    /// The same as the positional POINTER.
    #[arg(long)]
    pub pointer: Option<String>,
    /// Index keys from the Rust extractor registered under this name (library use).
    #[arg(long)]
    pub extractor: Option<String>,
    /// A write that would give two items the same key fails.
    #[arg(long)]
    pub unique: bool,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    pub table: String,
    /// The index.
    pub name: String,
    /// Index keys that start with this.
    #[arg(long)]
    pub prefix: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub enc: Encoding,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct ImportExportArgs {
    pub table: String,
    /// One JSON object per line: {"key": ..., "value": ...}.
    #[arg(long)]
    pub jsonl: bool,
    #[command(flatten)]
    pub enc: Encoding,
    /// (import) Wait until each batch is durable.
    #[arg(long)]
    pub sync: bool,
    /// (import) All records in one atomic batch: all of them are written, or none.
    #[arg(long)]
    pub atomic: bool,
    /// (import) Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    pub table: String,
    /// How many keys to write.
    #[arg(long)]
    pub count: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Wait until each batch of 1000 writes is durable.
    #[arg(long)]
    pub sync: bool,
    #[command(flatten)]
    pub fmt: Format,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only events of this name (e.g. Decrypt; any case).
    #[arg(long)]
    pub event: Option<String>,
    /// Only events of this table: those naming it (encryption context, grant constraint),
    /// those on its grants (RetireGrant, RevokeGrant), and key-level events (DescribeKey,
    /// ListGrants, policy and state changes) on its key while it existed; a key shared by
    /// several tables (the service default key) shares its key-level events among them.
    #[arg(long)]
    pub table: Option<String>,
    /// Only events at or after this time (RFC 3339, e.g. 2024-05-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many events (the oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Only events about this key (id or ARN).
    #[arg(long)]
    pub key_id: Option<String>,
}

/// The default key the `kms` commands act on.
pub const DEFAULT_KEY: &str = "alias/aws/sealdb";

/// The `kms` commands: the AWS CLI's `aws kms` names, flags and JSON output shapes, called
/// directly (never through the engine: `kms:ViaService` is set only by the engine itself).
#[derive(Subcommand, Debug)]
pub enum KmsCommand {
    /// CreateKey: a customer managed key in the acting principal's account.
    CreateKey(CreateKeyArgs),
    /// DescribeKey.
    DescribeKey(KeyArg),
    /// ListKeys: the keys of the acting principal's account.
    ListKeys,
    /// ListAliases (of one key with --key-id).
    ListAliases(ListAliasesArgs),
    /// CreateAlias: --alias-name alias/<name> --target-key-id <key>.
    CreateAlias(CreateAliasArgs),
    /// EnableKey.
    EnableKey(RequiredKeyArg),
    /// DisableKey: crypto and grants under the key fail until EnableKey.
    DisableKey(RequiredKeyArg),
    /// ScheduleKeyDeletion: 7 to 30 days; the key is unusable meanwhile.
    ScheduleKeyDeletion(ScheduleDeletionArgs),
    /// CancelKeyDeletion: the key goes back to Disabled (as in AWS).
    CancelKeyDeletion(RequiredKeyArg),
    /// GetKeyPolicy.
    GetKeyPolicy(KeyArg),
    /// PutKeyPolicy: customer managed keys only (the service default key's is fixed).
    PutKeyPolicy(PutKeyPolicyArgs),
    /// ListGrants.
    ListGrants(KeyArg),
    /// CreateGrant.
    CreateGrant(CreateGrantArgs),
    /// RevokeGrant (by the key's administrators).
    RevokeGrant(GrantIdArgs),
    /// RetireGrant (by the grant's retiring principal).
    RetireGrant(GrantIdArgs),
    /// EnableKeyRotation: rotate a customer managed key's material every period.
    EnableKeyRotation(EnableRotationArgs),
    /// DisableKeyRotation.
    DisableKeyRotation(RequiredKeyArg),
    /// GetKeyRotationStatus.
    GetKeyRotationStatus(RequiredKeyArg),
    /// RotateKeyOnDemand: new key material now; old ciphertexts still decrypt.
    RotateKeyOnDemand(RequiredKeyArg),
    /// ListKeyRotations: the rotations that happened.
    ListKeyRotations(RequiredKeyArg),
}

#[derive(Args, Debug)]
pub struct EnableRotationArgs {
    /// Key id, key ARN or alias.
    #[arg(long)]
    pub key_id: String,
    /// Days between automatic rotations (90 to 2560) [default: 365].
    #[arg(long)]
    pub rotation_period_in_days: Option<u32>,
}

#[derive(Args, Debug)]
pub struct KeyArg {
    /// Key id, key ARN or alias.
    #[arg(long, default_value = DEFAULT_KEY)]
    pub key_id: String,
}

#[derive(Args, Debug)]
pub struct RequiredKeyArg {
    /// Key id, key ARN or alias.
    #[arg(long)]
    pub key_id: String,
}

#[derive(Args, Debug)]
pub struct CreateKeyArgs {
    /// A description for the key.
    #[arg(long, default_value = "")]
    pub description: String,
    /// The key policy (JSON text, or file://<path>) [default: the account may do everything].
    #[arg(long)]
    pub policy: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListAliasesArgs {
    /// Only the aliases of this key.
    #[arg(long)]
    pub key_id: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateAliasArgs {
    /// `alias/<name>` (not `alias/aws/...`).
    #[arg(long)]
    pub alias_name: String,
    /// The key the alias names.
    #[arg(long)]
    pub target_key_id: String,
}

#[derive(Args, Debug)]
pub struct ScheduleDeletionArgs {
    /// Key id, key ARN or alias.
    #[arg(long)]
    pub key_id: String,
    /// Days before the key is deleted (7 to 30).
    #[arg(long, default_value_t = 30)]
    pub pending_window_in_days: u32,
}

#[derive(Args, Debug)]
pub struct PutKeyPolicyArgs {
    /// Key id, key ARN or alias.
    #[arg(long)]
    pub key_id: String,
    /// The policy (JSON text, or file://<path>).
    #[arg(long)]
    pub policy: String,
    /// Only `default` exists.
    #[arg(long, default_value = "default")]
    pub policy_name: String,
}

#[derive(Args, Debug)]
pub struct CreateGrantArgs {
    #[command(flatten)]
    pub key: KeyArg,
    /// Who the grant lets use the key (an ARN or a service principal name).
    #[arg(long = "grantee-principal", visible_alias = "grantee")]
    pub grantee: String,
    /// Who may retire the grant.
    #[arg(long = "retiring-principal", visible_alias = "retiring")]
    pub retiring: Option<String>,
    /// Comma-separated operations, e.g. Decrypt,Encrypt.
    #[arg(long, value_delimiter = ',', required = true)]
    pub operations: Vec<String>,
    /// Constrain the grant to this table's encryption context (subset).
    #[arg(long)]
    pub table: Option<String>,
    /// A name for the grant.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct GrantIdArgs {
    #[command(flatten)]
    pub key: KeyArg,
    /// The grant id (64 hex characters).
    #[arg(value_name = "GRANT_ID", required_unless_present = "grant_id_flag")]
    grant_id: Option<String>,
    /// The same as the positional GRANT_ID (the AWS CLI's spelling).
    #[arg(
        long = "grant-id",
        id = "grant_id_flag",
        value_name = "GRANT_ID",
        conflicts_with = "grant_id"
    )]
    grant_id_flag: Option<String>,
}

impl GrantIdArgs {
    /// The grant id, positional or `--grant-id` (clap requires exactly one).
    pub fn grant_id(&self) -> &str {
        self.grant_id
            .as_deref()
            .or(self.grant_id_flag.as_deref())
            .unwrap_or_default()
    }
}
