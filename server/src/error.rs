//! The one error type of the engine. Variants are kinds, not call sites: the HTTP
//! layer (`api::error`) maps each kind to a status code and a stable error code in
//! exactly one place, and internal details are logged rather than shown. Errors that
//! come from another library keep it as their `source`.

use std::{sync::Arc, time::Duration};

/// The cause of an error, kept for logs and `source()` chains.
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while answering a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (missing field, empty question, bad header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A named dataset, conversation or other resource does not exist.
    #[error("{kind} not found: {name}")]
    NotFound { kind: &'static str, name: String },
    /// A dataset whose database cannot be reached now; the reason never carries its
    /// connection string.
    #[error("dataset {name} is unavailable: {reason}")]
    Unavailable { name: String, reason: String },
    /// No valid access token (missing, unknown, wrong, revoked or expired: one answer).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A valid token that may not do this (an admin's endpoint).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Over a budget: requests per minute or LLM tokens per day.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// A query that costs more than the threshold and needs the client's
    /// confirmation (`code` `confirmation_required`), or whose estimate changed
    /// since it was confirmed (`estimate_changed`); `details` carries the estimate.
    #[error("{message}")]
    Confirm { code: &'static str, message: String, details: serde_json::Value },
    /// A query that would make (or made) more LLM calls than one query may
    /// (`query.max_llm_calls`).
    #[error("{0}")]
    TooCostly(String),
    /// SQL that does not parse or that the read-only allow-list rejects.
    #[error("rejected SQL: {0}")]
    RejectedSql(String),
    /// SQL that parsed and passed the checks but DuckDB refused or failed to run.
    #[error("sql error: {message}")]
    Sql { message: String, source: Option<Source> },
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
    #[error("llm error: {message}")]
    Llm { message: String, source: Option<Source> },
    /// Invalid configuration; start-up stops with this message.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Dataset files that cannot be loaded.
    #[error("dataset error: {message}")]
    Dataset { message: String, source: Option<Source> },
    /// A bug or an environment failure (I/O, a poisoned lock, a panicked task).
    #[error("internal error: {message}")]
    Internal { message: String, source: Option<Source> },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn source_of(e: impl std::error::Error + Send + Sync + 'static) -> Option<Source> {
    Some(Arc::new(e))
}

impl Error {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound { kind, name: name.into() }
    }

    pub fn sql(message: impl Into<String>) -> Self {
        Error::Sql { message: message.into(), source: None }
    }

    pub fn llm(message: impl Into<String>) -> Self {
        Error::Llm { message: message.into(), source: None }
    }

    /// An LLM failure caused by `source` (an HTTP or parsing error).
    pub fn llm_from(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Llm { message: message.into(), source: source_of(source) }
    }

    pub fn dataset(message: impl Into<String>) -> Self {
        Error::Dataset { message: message.into(), source: None }
    }

    /// A dataset that cannot be loaded because of `source`.
    pub fn dataset_from(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Dataset { message: message.into(), source: source_of(source) }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal { message: message.into(), source: None }
    }

    /// An internal failure caused by `source`.
    pub fn internal_from(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal { message: message.into(), source: source_of(source) }
    }

    /// The stable error code clients (and the audit trail) see.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "invalid_request",
            Error::NotFound { .. } => "not_found",
            Error::Unavailable { .. } => "dataset_unavailable",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::RateLimited { .. } => "rate_limited",
            Error::Confirm { code, .. } => code,
            Error::TooCostly(_) => "too_costly",
            Error::RejectedSql(_) => "rejected_sql",
            Error::Sql { .. } => "sql_error",
            Error::Timeout(_) => "timeout",
            Error::Cancelled => "cancelled",
            Error::LlmNotConfigured(_) => "llm_not_configured",
            Error::Llm { .. } => "llm_error",
            Error::Config(_) | Error::Dataset { .. } | Error::Internal { .. } => "internal",
        }
    }

    /// Whether feeding this error back to the SQL-writing LLM may fix it.
    pub fn is_repairable(&self) -> bool {
        matches!(self, Error::RejectedSql(_) | Error::Sql { .. })
    }

    /// The message without the kind's prefix.
    pub fn message(&self) -> String {
        match self {
            Error::InvalidRequest(m) | Error::RejectedSql(m) | Error::LlmNotConfigured(m) | Error::Config(m) => m.clone(),
            Error::Sql { message, .. } | Error::Llm { message, .. } | Error::Dataset { message, .. } | Error::Internal { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        }
    }
}

impl From<duckdb::Error> for Error {
    fn from(e: duckdb::Error) -> Self {
        Error::Sql { message: e.to_string().trim().to_string(), source: source_of(e) }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal_from(format!("state database: {e}"), e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::internal_from(format!("i/o: {e}"), e)
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::internal_from(format!("a task failed: {e}"), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converted_errors_keep_their_source() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no access");
        let error = Error::from(io);
        let source = std::error::Error::source(&error).expect("the i/o error is the source");
        assert_eq!(source.to_string(), "no access");
        assert_eq!(error.to_string(), "internal error: i/o: no access");
        assert!(std::error::Error::source(&Error::sql("x")).is_none());
    }
}
