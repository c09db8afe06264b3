//! The one place where errors become HTTP responses:
//! `{"error": {"code": "...", "message": "..."}}` with the matching status (plus
//! the estimate of a query that needs confirmation, and `Retry-After` on 429).
//! Internal details are logged, not shown.

use axum::{
    http::{header, HeaderValue, StatusCode},
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
    /// More fields of the error object (the estimate of `confirmation_required`).
    pub details: Option<serde_json::Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let code = error.code();
        let status = match &error {
            Error::InvalidRequest(_) | Error::RejectedSql(_) | Error::Sql { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Unavailable { .. } | Error::LlmNotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Confirm { .. } => StatusCode::CONFLICT,
            Error::TooCostly(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Error::Llm { .. } => StatusCode::BAD_GATEWAY,
            Error::Config(_) | Error::Dataset { .. } | Error::Internal { .. } => {
                tracing::error!(error = %error, "internal error");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, "internal error; see the server log");
            }
        };
        let mut api = ApiError::new(status, code, error.to_string());
        match error {
            Error::RateLimited { retry_after, .. } => api.retry_after = Some(retry_after),
            Error::Confirm { details, .. } => api.details = Some(details),
            _ => {}
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(serde_json::Value::Object(details)), Some(object)) = (self.details, error.as_object_mut()) {
            object.extend(details);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Lets the metrics middleware count errors by code.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
