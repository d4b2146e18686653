//! The one fixture of the CLI's integration tests (every `tests/*_cli.rs` and `cli.rs` says
//! `mod common;`): a database and its KMS in a temporary directory, the `sealdb` binary run
//! on them with the caller's `SEALDB_*` variables scrubbed, and what one run printed.
// Each test binary uses a part of this module; the rest is dead in that binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use parking_lot::RwLock;
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A principal of another account.
pub const OUTSIDER: &str = "arn:aws:iam::444455556666:user/mallory";

/// The variables the CLI reads; a run sees only what its test sets.
const SCRUBBED: [&str; 7] = [
    "SEALDB_DB",
    "SEALDB_KMS",
    "SEALDB_PRINCIPAL",
    "SEALDB_ACCOUNT",
    "SEALDB_REGION",
    "SEALDB_KMS_PASSPHRASE",
    "SEALDB_KMS_KEY_FILE",
];

/// Held (shared) while a child process is being started. A child inherits every open file
/// of this process between its fork and its exec (they close on exec), and with them the
/// `flock` of a database a test holds open: closing the database then does not release the
/// lock until the child has exec'd. A test that closes a database and at once expects
/// another process to take its lock closes it under [`no_child_starting`].
static SPAWNING: RwLock<()> = RwLock::new(());

/// Runs `f` while no child process of this test binary is between fork and exec.
pub fn no_child_starting<T>(f: impl FnOnce() -> T) -> T {
    let _none = SPAWNING.write();
    f()
}

/// The `sealdb` binary with the caller's `SEALDB_*` variables removed.
pub fn sealdb() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealdb"));
    for var in SCRUBBED {
        c.env_remove(var);
    }
    c
}

/// Runs `c` to its end, feeding it `input` on stdin if given.
fn output(mut c: Command, input: Option<&str>) -> Result<Output, std::io::Error> {
    c.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = {
        let _starting = SPAWNING.read();
        c.spawn()?
    };
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    child.wait_with_output()
}

/// Runs a command built from [`Fixture::command`] (with more variables set) to its end.
pub fn run_command(c: Command) -> Result<Run, std::io::Error> {
    Ok(Run::from(output(c, None)?))
}

/// A database and its KMS in a temporary directory, and a way to run the CLI on them.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub kms: PathBuf,
}

/// What one run printed, and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run's output; fails the test if the CLI panicked.
    pub fn from(o: Output) -> Run {
        let run = Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "the CLI panicked: {}",
            run.stderr
        );
        run
    }

    /// The run, if it exited 0; else an error naming the exit code and stderr.
    pub fn ok(self) -> Result<Run, String> {
        match self.code {
            0 => Ok(self),
            c => Err(format!("exit {c}: {}", self.stderr)),
        }
    }

    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.stdout)
    }

    /// The error sentence, without the development-key warning.
    pub fn error(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("sealdb: ") && !l.starts_with("sealdb: warning"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Fixture {
    /// An empty directory: the database `data` and the KMS `data.kms` are created by the
    /// first command that needs them.
    pub fn new() -> Result<Fixture, std::io::Error> {
        let dir = tempfile::tempdir()?;
        Ok(Fixture {
            db: dir.path().join("data"),
            kms: dir.path().join("data.kms"),
            dir,
        })
    }

    /// The CLI on this fixture's database and KMS, with `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = sealdb();
        c.env("SEALDB_DB", &self.db)
            .env("SEALDB_KMS", &self.kms)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Result<Run, std::io::Error> {
        Ok(Run::from(output(self.command(args), None)?))
    }

    /// A run on another database (a backup, a restored copy) with this fixture's KMS.
    pub fn run_on(&self, db: &Path, args: &[&str]) -> Result<Run, std::io::Error> {
        let mut c = self.command(args);
        c.env("SEALDB_DB", db);
        run_command(c)
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Result<Run, std::io::Error> {
        Ok(Run::from(output(self.command(args), Some(input))?))
    }

    /// The stdout of a run that must succeed; else an error naming the command, the exit
    /// code and stderr.
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let r = self.run(args).map_err(|e| e.to_string())?;
        match r.code {
            0 => Ok(r.stdout),
            c => Err(format!("{args:?}: exit {c}: {}", r.stderr)),
        }
    }
}
