//! The commands, and what they share: where the database and the KMS live, who acts, and
//! how both are opened.

mod audit;
mod backup;
mod bench;
mod data;
mod demo;
mod docs;
mod index;
mod kms;
mod maintenance;
mod tables;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealdb::kms::{Kms, LocalKms, LocalKmsOptions, Principal};
use sealdb::{Db, Options};

use crate::args::{Cli, Command, Global};
use crate::diagnose;
use crate::output::{CliError, Exit};

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    // These need no database, no KMS and none of the global options.
    match &cli.command {
        Command::Bench(b) => return bench::run(&b.args),
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man => return docs::man(),
        _ => {}
    }
    let ctx = Context::new(cli.global)?;
    run_with(&ctx, cli.command).map_err(|e| ctx.explain(e))
}

fn run_with(ctx: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Demo(a) => demo::run(ctx, a),
        Command::CreateTable(a) => tables::create(ctx, a),
        Command::DropTable(a) => backup::drop_table(ctx, a),
        Command::Backup(a) => backup::backup(ctx, a),
        Command::Restore(a) => backup::restore(ctx, a),
        Command::Tables(f) => tables::list(ctx, f),
        Command::Put {
            table,
            key,
            value,
            enc,
            sync,
            fmt,
        } => data::put(ctx, &table, &key, &value, enc, sync, fmt),
        Command::Get {
            table,
            key,
            enc,
            fmt,
        } => data::get(ctx, &table, &key, enc, fmt),
        Command::Delete {
            table,
            key,
            enc,
            sync,
            fmt,
        } => data::delete(ctx, &table, &key, enc, sync, fmt),
        Command::Scan(a) => data::scan(ctx, a),
        Command::CreateIndex(a) => index::create(ctx, a),
        Command::DropIndex { table, name, fmt } => index::drop(ctx, &table, &name, fmt),
        Command::Indexes { table, fmt } => index::list(ctx, &table, fmt),
        Command::Query(a) => index::query(ctx, a),
        Command::Import(a) => transfer::import(ctx, a),
        Command::Export(a) => transfer::export(ctx, a),
        Command::Load(a) => transfer::load(ctx, a),
        Command::Flush(f) => maintenance::flush(ctx, f),
        Command::Compact { table, fmt } => maintenance::compact(ctx, table.as_deref(), fmt),
        Command::RenewGrant { table, fmt } => maintenance::renew_grant(ctx, &table, fmt),
        Command::UpdateTable(a) => tables::update(ctx, a),
        Command::RewrapKeys(f) => tables::rewrap(ctx, f),
        Command::Inspect { table, fmt } => maintenance::inspect(ctx, table.as_deref(), fmt),
        Command::Verify(f) => maintenance::verify(ctx, f),
        Command::Status(f) => maintenance::status(ctx, f),
        Command::Audit(a) => audit::run(ctx, a),
        Command::Kms(k) => kms::run(ctx, k),
        Command::Bench(_) | Command::Completions { .. } | Command::Man => Ok(()),
    }
}

/// Where things are and who acts, resolved from the global options.
pub struct Context {
    pub db_dir: PathBuf,
    pub kms_dir: PathBuf,
    /// `Some(key)` when `--kms aws:<key>` names an AWS KMS key.
    pub aws_key: Option<String>,
    pub kms_endpoint: Option<String>,
    pub principal: Principal,
    pub account: String,
    pub region: String,
}

impl Context {
    /// `e` with what the first sentence leaves out: the process holding the keystore's or
    /// the database's lock, or the account and region the keys belong to.
    fn explain(&self, mut e: CliError) -> CliError {
        // Only a lock another process holds explains a failed open: the one this process
        // took (the keystore's, before the database's) does not.
        let held =
            |dir: &Path| diagnose::lock_holder(dir).filter(|(pid, _)| *pid != std::process::id());
        if e.exit == Exit::Keystore {
            if let Some((_, holder)) = held(&self.kms_dir) {
                e.message = format!(
                    "the KMS keystore {} is in use by {holder}; wait for it to finish (or stop \
                     it) and retry",
                    self.kms_dir.display()
                );
                return e;
            }
        }
        if e.exit == Exit::Other {
            if let Some((_, holder)) = held(&self.db_dir) {
                e.message = format!(
                    "the database {} is open in {holder}; wait for it to finish (or stop it) \
                     and retry",
                    self.db_dir.display()
                );
                return e;
            }
        }
        if matches!(e.exit, Exit::AccessDenied | Exit::NotFound) {
            if let Some(hint) =
                diagnose::account_region_mismatch(&e.message, &self.account, &self.region)
            {
                e.message = format!("{}; {hint}", e.message);
            }
        }
        e
    }

    fn new(g: Global) -> Result<Context, CliError> {
        let principal = match &g.principal {
            Some(arn) => {
                Principal::parse(arn).map_err(|e| CliError::usage(format!("--principal: {e}")))?
            }
            None => Principal::assumed_role(&g.account, "Admin", "user01"),
        };
        let aws_key = g
            .kms
            .as_ref()
            .and_then(|k| k.to_str())
            .and_then(|k| k.strip_prefix("aws:"))
            .map(str::to_owned);
        let kms_dir = match g.kms {
            Some(dir) if aws_key.is_none() => dir,
            _ => sibling_kms_dir(&g.db)?,
        };
        Ok(Context {
            db_dir: g.db,
            kms_dir,
            aws_key,
            kms_endpoint: g.kms_endpoint,
            principal,
            account: g.account,
            region: g.region,
        })
    }

    /// Opens the existing local KMS, with its root key from the environment
    /// (`SEALDB_KMS_PASSPHRASE`, `SEALDB_KMS_KEY_FILE`, else a development key file).
    pub fn open_kms(&self) -> Result<Arc<LocalKms>, CliError> {
        self.open_local_kms(false)
    }

    /// Opens the local KMS; only `create` (create-table) makes a new keystore, so that a
    /// mistyped `--kms` is refused instead of starting an empty keystore that opens nothing.
    fn open_local_kms(&self, create: bool) -> Result<Arc<LocalKms>, CliError> {
        if self.aws_key.is_some() {
            return Err(CliError::usage(
                "this command works with the local KMS; with AWS KMS use the AWS console, \
                 CLI or CloudTrail",
            ));
        }
        if !create && !self.kms_dir.exists() {
            return Err(CliError::not_found(format!(
                "no KMS keystore at {}; pass --kms with the keystore's directory \
                 (create-table creates one)",
                self.kms_dir.display()
            )));
        }
        open_kms_at(&self.kms_dir, &self.account, &self.region)
    }

    /// The KMS the engine uses: AWS KMS for `--kms aws:<key>`, else the local one.
    fn open_engine_kms(&self, create: bool) -> Result<Arc<dyn Kms>, CliError> {
        match &self.aws_key {
            Some(key) => open_aws_kms(key, &self.region, self.kms_endpoint.as_deref()),
            None => Ok(self.open_local_kms(create)? as Arc<dyn Kms>),
        }
    }

    /// Opens the database (creating it when `create` is set) with the local KMS.
    pub fn open_db(&self, create: bool) -> Result<(Db, Arc<dyn Kms>), CliError> {
        if !create && !self.db_dir.exists() {
            return Err(CliError::not_found(format!(
                "no database at {} (create a table first, or pass --db)",
                self.db_dir.display()
            )));
        }
        let kms = self.open_engine_kms(create)?;
        let db = open_db_at(&self.db_dir, &kms, self, create)?;
        Ok((db, kms))
    }
}

pub fn open_kms_at(dir: &Path, account: &str, region: &str) -> Result<Arc<LocalKms>, CliError> {
    Ok(Arc::new(LocalKms::open(
        dir,
        LocalKmsOptions::new(account, region),
    )?))
}

#[cfg(feature = "aws-kms")]
fn open_aws_kms(key: &str, region: &str, endpoint: Option<&str>) -> Result<Arc<dyn Kms>, CliError> {
    let mut o = sealdb::kms::AwsKmsOptions::new(key);
    o.region = Some(region.to_owned());
    o.endpoint_url = endpoint.map(str::to_owned);
    Ok(Arc::new(sealdb::kms::AwsKms::new(o)?))
}

#[cfg(not(feature = "aws-kms"))]
fn open_aws_kms(
    _key: &str,
    _region: &str,
    _endpoint: Option<&str>,
) -> Result<Arc<dyn Kms>, CliError> {
    Err(CliError::usage(
        "--kms aws:... needs a sealdb built with the aws-kms feature \
         (cargo build --release --features aws-kms)",
    ))
}

pub fn open_db_at(
    dir: &Path,
    kms: &Arc<dyn Kms>,
    ctx: &Context,
    create: bool,
) -> Result<Db, CliError> {
    Ok(Db::open(dir, engine_options(kms, ctx, create))?)
}

/// The engine's options for `ctx` with `kms`.
pub fn engine_options(kms: &Arc<dyn Kms>, ctx: &Context, create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing = create;
    opts.kms = Some(Arc::clone(kms));
    opts.account = ctx.account.clone();
    opts.region = ctx.region.clone();
    opts.principal = ctx.principal.clone();
    opts
}

/// `<parent>/<name>.kms` for a database at `<parent>/<name>`: next to the data directory,
/// never inside it, so that a copy of the data directory does not carry its keys.
pub fn sibling_kms_dir(db: &Path) -> Result<PathBuf, CliError> {
    let named = match db.file_name() {
        Some(_) => db.to_path_buf(),
        None => std::path::absolute(db)?,
    };
    let name = named.file_name().ok_or_else(|| {
        CliError::usage(format!(
            "cannot place the KMS next to {}; pass --kms DIR",
            db.display()
        ))
    })?;
    let mut kms_name = name.to_os_string();
    kms_name.push(".kms");
    Ok(named.with_file_name(kms_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_dir_is_a_sibling() -> Result<(), CliError> {
        assert_eq!(
            sibling_kms_dir(Path::new("./sealdb-data"))?,
            PathBuf::from("./sealdb-data.kms")
        );
        assert_eq!(
            sibling_kms_dir(Path::new("/var/lib/db/"))?,
            PathBuf::from("/var/lib/db.kms")
        );
        Ok(())
    }
}
