//! The one place where errors become HTTP responses:
//! `{"error": {"code": "...", "message": "..."}}` with the matching status.
//! Internal details are logged, not shown.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::error::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, code) = match &error {
            Error::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "dataset_unavailable"),
            Error::RejectedSql(_) => (StatusCode::BAD_REQUEST, "rejected_sql"),
            Error::Sql { .. } => (StatusCode::BAD_REQUEST, "sql_error"),
            Error::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Error::Cancelled => (StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST), "cancelled"),
            Error::LlmNotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "llm_not_configured"),
            Error::Llm { .. } => (StatusCode::BAD_GATEWAY, "llm_error"),
            Error::Config(_) | Error::Dataset { .. } | Error::Internal { .. } => {
                tracing::error!(error = %error, "internal error");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log");
            }
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        // Lets the metrics middleware count errors by code.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
