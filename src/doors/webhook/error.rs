//! The one place that turns a rejected request into an HTTP response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::event::DecodeError;
use super::signature::SignatureError;
use crate::types::EventKind;

/// Why a webhook request was refused. Every message says plainly what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (415).
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is over the limit (413).
    #[error("body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read (400).
    #[error("could not read the request body: {0}")]
    Body(String),
    /// Not authentic (401).
    #[error("{0}")]
    Unauthorized(#[from] SignatureError),
    /// Not a webhook we understand (400).
    #[error("{0}")]
    BadRequest(#[from] DecodeError),
    /// `X-Webhook-Event` disagrees with `message.type` (400).
    #[error("X-Webhook-Event header {header:?} does not match message.type \"{body}\"")]
    EventMismatch {
        /// The header value.
        header: String,
        /// The body's event type.
        body: EventKind,
    },
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Body(_) | ApiError::BadRequest(_) | ApiError::EventMismatch { .. } => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}
