//! The runner's error: a setting it cannot use, a file-system step of its own, or a failure
//! of the engine under test (sealdb's or a peer's, whatever its error type).

use std::fmt;
use std::io;

use crate::engine::EngineError;

/// Why a benchmark run stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// A setting or workload name the runner cannot use.
    Config(String),
    /// A file-system step of the runner itself (its directories, the JSON report).
    Io {
        /// What the runner was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The engine under test failed.
    Engine {
        /// What the runner asked of it.
        context: String,
        /// The engine's own error.
        source: EngineError,
    },
}

/// The runner's result type.
pub type Result<T> = std::result::Result<T, BenchError>;

impl BenchError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> BenchError {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn engine(context: impl Into<String>, source: EngineError) -> BenchError {
        BenchError::Engine {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Config(msg) => write!(f, "bench: {msg}"),
            BenchError::Io { context, source } => write!(f, "bench: {context}: {source}"),
            BenchError::Engine { context, source } => write!(f, "bench: {context}: {source}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Config(_) => None,
            BenchError::Io { source, .. } => Some(source),
            BenchError::Engine { source, .. } => Some(source.as_ref()),
        }
    }
}

impl From<sealdb::Error> for BenchError {
    fn from(e: sealdb::Error) -> BenchError {
        BenchError::engine("sealdb", Box::new(e))
    }
}
