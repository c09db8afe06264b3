//! The one error type of the engine. Variants are kinds, not call sites: the HTTP
//! layer (`api::error`) maps each kind to a status code and a stable error code in
//! exactly one place, and internal details are logged rather than shown.

use std::time::Duration;

/// Everything that can go wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (missing field, empty question, bad header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A named dataset, conversation or other resource does not exist.
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    /// SQL that does not parse or that the read-only allow-list rejects.
    #[error("rejected SQL: {0}")]
    RejectedSql(String),
    /// SQL that parsed and passed the checks but DuckDB refused or failed to run.
    #[error("sql error: {0}")]
    Sql(String),
    /// The query ran longer than its time limit and was interrupted.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// The query was cancelled by the client.
    #[error("query cancelled")]
    Cancelled,
    /// No LLM is configured, so questions (and LLM operators) cannot run.
    #[error("no LLM configured: {0}")]
    LlmNotConfigured(String),
    /// The LLM endpoint failed, timed out or answered something unusable.
    #[error("llm error: {0}")]
    Llm(String),
    /// Invalid configuration; start-up stops with this message.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Dataset files that cannot be loaded.
    #[error("dataset error: {0}")]
    Dataset(String),
    /// A bug or an environment failure (I/O, a poisoned lock, a panicked task).
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into() }
    }

    /// Whether feeding this error back to the SQL-writing LLM may fix it.
    pub fn is_repairable(&self) -> bool {
        matches!(self, Error::RejectedSql(_) | Error::Sql(_))
    }
}

impl From<duckdb::Error> for Error {
    fn from(e: duckdb::Error) -> Self {
        Error::Sql(e.to_string().trim().to_string())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Internal(format!("state database: {e}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(format!("i/o: {e}"))
    }
}
