//! `bench`: the db_bench-style runner (the `sealdb-bench` crate), on its own temporary databases.

use crate::output::CliError;

pub fn run(args: &sealdb_bench::BenchArgs) -> Result<(), CliError> {
    sealdb_bench::run_args(args)?;
    Ok(())
}
