//! `bench`: the db_bench-style runner belongs to the benchmarks work; not in this build.

use super::Context;
use crate::output::CliError;

pub fn run(_ctx: &Context, _args: &[String]) -> Result<(), CliError> {
    Err(CliError::unavailable("bench"))
}
