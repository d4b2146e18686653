//! `bench`: the db_bench-style runner (`sealdb::bench`), on its own temporary databases.

use crate::output::CliError;

pub fn run(args: &sealdb::bench::BenchArgs) -> Result<(), CliError> {
    sealdb::bench::run_args(args)?;
    Ok(())
}
