//! The `sealdb` command-line tool: a thin layer over the library's public API.
//!
//! Each command lives in `commands/`; `output` maps every failure to one sentence on stderr
//! and a distinct exit code.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod args;
mod commands;
mod diagnose;
mod output;

use std::process::ExitCode;

use clap::Parser;

use args::Cli;
use output::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            if e.exit != Exit::Ok && !e.message.is_empty() {
                eprintln!("sealdb: {}", e.message);
            }
            e.exit.into()
        }
    }
}
