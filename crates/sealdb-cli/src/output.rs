//! What the user sees: exit codes, one-sentence errors, and keys and values as text or hex.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use sealdb::kms::KmsError;
use sealdb::Error;

/// The process exit status, one per class of failure. Scripts rely on these numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The key, table, key id or grant does not exist.
    NotFound = 1,
    /// The command line or its input is malformed, or the command is not in this build.
    Usage = 2,
    /// The KMS refused the principal, or the table is unavailable to it.
    AccessDenied = 3,
    /// Stored bytes failed their checksum or authentication.
    Integrity = 4,
    Io = 5,
    Other = 6,
    /// The keystore cannot be opened: wrong passphrase or root key, the wrong kind of root
    /// key, a keystore in use by another process, or a damaged keystore file.
    Keystore = 7,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// A failed command: its exit status and one sentence for stderr.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> CliError {
        CliError::new(Exit::NotFound, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit status a KMS error maps to.
fn kms_exit(e: &KmsError) -> Exit {
    match e {
        KmsError::NotFound(_) | KmsError::InvalidGrant(_) => Exit::NotFound,
        KmsError::AccessDenied { .. }
        | KmsError::ServicePrincipalRefused { .. }
        | KmsError::Disabled(_)
        | KmsError::InvalidState { .. } => Exit::AccessDenied,
        KmsError::InvalidArgument(_) | KmsError::MalformedPolicy(_) => Exit::Usage,
        KmsError::InvalidCiphertext => Exit::Integrity,
        KmsError::Keystore(_) => Exit::Keystore,
        KmsError::Io { .. } => Exit::Io,
        _ => Exit::Other,
    }
}

/// What to do about a keystore that does not open.
const KEYSTORE_HINT: &str = "the keystore opens only with the root key it was created with: \
     set SEALDB_KMS_PASSPHRASE (or SEALDB_KMS_KEY_FILE) to that one, or pass --kms for \
     another keystore";

/// The sentence for a KMS error, with what to do where there is something to do.
fn kms_message(e: &KmsError) -> String {
    match e {
        // A message that already names what to set needs no second hint.
        KmsError::Keystore(m) if m.contains("set SEALDB_") => format!("KMS: {e}"),
        KmsError::Keystore(_) => format!("KMS: {e}; {KEYSTORE_HINT}"),
        _ => format!("KMS: {e}"),
    }
}

impl From<KmsError> for CliError {
    fn from(e: KmsError) -> CliError {
        CliError::new(kms_exit(&e), kms_message(&e))
    }
}

/// What the engine says of a table whose upkeep its grant no longer allows
/// (`db::keyring::maintenance_error`).
const GRANT_REFUSED: &str = "grant revoked or access denied";

/// The exit status an engine error maps to.
fn error_exit(e: &Error) -> Exit {
    if e.is_integrity_failure() {
        return Exit::Integrity;
    }
    match e {
        Error::TableNotFound(_) | Error::IndexUnavailable { .. } => Exit::NotFound,
        Error::InvalidArgument(_) | Error::TableExists(_) | Error::KeyNotDeletable { .. } => {
            Exit::Usage
        }
        Error::TableUnavailable { .. } | Error::TableLocked { .. } => Exit::AccessDenied,
        Error::Kms(k) => kms_exit(k),
        Error::Io { .. } => Exit::Io,
        _ => Exit::Other,
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        let message = match &e {
            Error::Kms(k) => kms_message(k),
            Error::AlreadyOpen(_) => {
                format!("{e}; close the other sealdb process (or wait for it to finish) and retry")
            }
            // The engine's grant is gone (revoked, or the key policy no longer lets it):
            // flushes and compactions of the table stop until it has a new one.
            Error::TableUnavailable { table, reason, .. }
                if reason.contains(GRANT_REFUSED) && !reason.contains("renew-grant") =>
            {
                format!(
                    "{e}; run `sealdb renew-grant {table}` to give the engine a new grant (as \
                     a principal that may use the table's key)"
                )
            }
            _ => e.to_string(),
        };
        CliError::new(error_exit(&e), message)
    }
}

impl From<sealdb_bench::BenchError> for CliError {
    fn from(e: sealdb_bench::BenchError) -> CliError {
        use sealdb_bench::BenchError;
        let exit = match &e {
            BenchError::Config(_) => Exit::Usage,
            BenchError::Io { .. } => Exit::Io,
            BenchError::Engine { source, .. } => match source.downcast_ref::<Error>() {
                Some(engine) => error_exit(engine),
                None => Exit::Other,
            },
            _ => Exit::Other,
        };
        CliError::new(exit, e.to_string())
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        CliError::new(Exit::Io, format!("I/O error: {e}"))
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> CliError {
        CliError::new(Exit::Other, format!("cannot encode JSON: {e}"))
    }
}

/// Turns a key or value argument into bytes: UTF-8 as given, or hex with `--hex`.
pub fn decode_arg(what: &str, text: &str, hex: bool) -> Result<Vec<u8>, CliError> {
    if !hex {
        return Ok(text.as_bytes().to_vec());
    }
    hex::decode(text).map_err(|e| CliError::usage(format!("the {what} {text:?} is not hex: {e}")))
}

/// Renders stored bytes: hex with `--hex`, else UTF-8 (lossless, or an error naming `--hex`).
pub fn encode_bytes(what: &str, bytes: &[u8], hex: bool) -> Result<String, CliError> {
    if hex {
        return Ok(hex::encode(bytes));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        CliError::usage(format!(
            "a {what} is not UTF-8 ({}); use --hex",
            hex_preview(bytes)
        ))
    })
}

fn hex_preview(bytes: &[u8]) -> String {
    let shown = bytes.get(..16).unwrap_or(bytes);
    let more = if bytes.len() > 16 { "..." } else { "" };
    format!("hex {}{more}", hex::encode(shown))
}

/// A `key<TAB>value` line; refuses text that would not read back the same.
pub fn tsv_line(key: &str, value: &str) -> Result<String, CliError> {
    let bad = |s: &str| s.contains(['\t', '\n', '\r']);
    if bad(key) || bad(value) {
        return Err(CliError::usage(
            "a key or value contains a tab or a newline; use --jsonl or --hex",
        ));
    }
    Ok(format!("{key}\t{value}"))
}

/// Writes one line to stdout; a closed pipe (`| head`) ends the command quietly.
pub fn print_line(out: &mut impl Write, line: &str) -> Result<(), CliError> {
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(CliError::new(Exit::Ok, "")),
        other => Ok(other?),
    }
}

/// Prints `text` as one stdout line, or `value` as pretty JSON with `--json`: the shape of
/// every command that reports what it did.
pub fn report(json: bool, text: &str, value: serde_json::Value) -> Result<(), CliError> {
    if json {
        return print_json(&value);
    }
    print_line(&mut io::stdout().lock(), text)
}

/// `n` with thousands separators: `267336` as `267,336`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate as whole operations per second with separators: `267,336/s`.
pub fn rate(per_sec: f64) -> String {
    // Rounded to the operation; a negative or non-finite rate (no time elapsed) shows as 0.
    let n = if per_sec.is_finite() && per_sec > 0.0 {
        per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", thousands(n))
}

/// A point in time as RFC 3339 UTC to the second (`2026-12-01T22:38:20Z`): the one
/// spelling of a timestamp in the CLI's output.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)?;
    print_line(&mut io::stdout().lock(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_arguments() -> Result<(), CliError> {
        assert_eq!(decode_arg("key", "00ff", true)?, vec![0, 255]);
        assert_eq!(decode_arg("key", "00ff", false)?, b"00ff".to_vec());
        let e = decode_arg("key", "zz", true).err().map(|e| e.exit);
        assert_eq!(e, Some(Exit::Usage));
        Ok(())
    }

    #[test]
    fn non_utf8_needs_hex() -> Result<(), CliError> {
        assert_eq!(encode_bytes("value", &[0xff], true)?, "ff");
        let e = encode_bytes("value", &[0xff, 0xfe], false).err();
        assert!(e.is_some_and(|e| e.message.contains("--hex")));
        Ok(())
    }

    #[test]
    fn rates_have_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(267_336), "267,336");
        assert_eq!(thousands(12_345_678), "12,345,678");
        assert_eq!(rate(267_335.6), "267,336/s");
        assert_eq!(rate(f64::INFINITY), "0/s");
    }

    #[test]
    fn tsv_refuses_tabs() {
        assert!(tsv_line("a", "b").is_ok_and(|l| l == "a\tb"));
        assert!(tsv_line("a\tb", "c").is_err());
        assert!(tsv_line("a", "b\nc").is_err());
    }

    #[test]
    fn error_classes() {
        let nf: CliError = Error::TableNotFound("t".into()).into();
        assert_eq!(nf.exit, Exit::NotFound);
        let denied: CliError = Error::Kms(KmsError::AccessDenied {
            principal: "p".into(),
            action: "kms:Decrypt".into(),
            key: "k".into(),
        })
        .into();
        assert_eq!(denied.exit, Exit::AccessDenied);
        let integ: CliError = Error::Integrity {
            file: "1.sst".into(),
            offset: 7,
        }
        .into();
        assert_eq!(integ.exit, Exit::Integrity);
        let keystore: CliError = KmsError::Keystore("wrong passphrase".into()).into();
        assert_eq!(keystore.exit, Exit::Keystore);
        assert!(keystore.message.contains("SEALDB_KMS_PASSPHRASE"));
    }
}
