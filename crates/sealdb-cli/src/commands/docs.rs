//! `completions` and `man`: shell completion scripts and the manual page, both generated
//! from the clap definitions in `args.rs`, so they cannot drift from the real command line.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell as Target;

use crate::args::{Cli, Shell};
use crate::output::{CliError, Exit};

pub fn completions(shell: Shell) -> Result<(), CliError> {
    let target = match shell {
        Shell::Bash => Target::Bash,
        Shell::Zsh => Target::Zsh,
        Shell::Fish => Target::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(target, &mut cmd, "sealdb", &mut out);
    write_all(&out)
}

pub fn man() -> Result<(), CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    write_all(&out)
}

/// Writes to stdout; a closed pipe (`| head`) ends the command quietly.
fn write_all(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(CliError::new(Exit::Ok, "")),
        other => Ok(other?),
    }
}
