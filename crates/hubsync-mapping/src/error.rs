//! The mapping error type.

use std::path::PathBuf;

/// Why a mapping could not be loaded or could not translate a record.
///
/// [`MappingError::is_record_error`] tells the engine whether the failure belongs to one record
/// (dead-letter it and go on) or to the mapping service itself.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// A mapping file could not be read.
    #[error("cannot read mapping file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// A JSONata expression does not compile.
    #[error("{file}:{line}:{column}: {message}\n    {snippet}")]
    Compile {
        /// The file name.
        file: String,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error.
        column: usize,
        /// The offending source line, with a `^` marker under the column on the next line.
        snippet: String,
        /// The parser's message.
        message: String,
    },

    /// A fields file is malformed or inconsistent.
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Spec {
        /// The file name.
        file: String,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// A record holds a value the mapping cannot translate (a malformed e-mail list, a string
    /// in a number field, …).
    #[error("invalid value for `{field}`: {reason}")]
    InvalidValue {
        /// The unified field (or HubSpot input part) at fault.
        field: String,
        /// Why the value is invalid.
        reason: String,
    },

    /// Evaluating a mapping expression failed for a record.
    #[error("{file}: evaluation failed: {message}")]
    Evaluation {
        /// The mapping file.
        file: String,
        /// The evaluator's message.
        message: String,
    },

    /// A mapping expression produced something the declarations do not allow (an undeclared
    /// field or property, a non-object result, …).
    #[error("{file}: {reason}")]
    Output {
        /// The mapping file.
        file: String,
        /// What is wrong with the output.
        reason: String,
    },

    /// The evaluation threads are gone (the service is shutting down).
    #[error("the mapping worker pool has shut down")]
    PoolClosed,

    /// The evaluation threads could not be started.
    #[error("cannot start mapping worker thread: {0}")]
    Spawn(std::io::Error),
}

impl MappingError {
    /// Whether the error belongs to one record (dead-letter it and go on) rather than to the
    /// mapping service.
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            MappingError::InvalidValue { .. }
                | MappingError::Evaluation { .. }
                | MappingError::Output { .. }
        )
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> MappingError {
        MappingError::InvalidValue {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
