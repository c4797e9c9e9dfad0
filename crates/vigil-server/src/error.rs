//! API errors: one [`ErrorCode`] enum whose code→status tables (HTTP and
//! gRPC, side by side) live here and nowhere else, and [`ApiError`], the
//! error every handler returns.
//!
//! The JSON body (`{"error", "code", "request_id"}`) is written by the
//! request middleware in [`crate::access_log`], which knows the request id;
//! a 5xx body is always generic and the detail only goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What kind of failure a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or does not fit the model.
    BadRequest,
    /// No API key, or an unusable one, where keys are required.
    Unauthorized,
    /// The API key is unknown, disabled or not allowed to do this.
    Forbidden,
    /// No such route, model or version.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request body is not `application/json`.
    UnsupportedMediaType,
    /// The request body is larger than `server.max_body_bytes`.
    PayloadTooLarge,
    /// The request conflicts with the current state.
    Conflict,
    /// The client is being throttled.
    TooManyRequests,
    /// The server cannot answer right now.
    Unavailable,
    /// The request took longer than `gateway.request_timeout_ms`.
    Timeout,
    /// A bug or an unexpected failure on the server.
    Internal,
}

impl ErrorCode {
    /// The one code→status table.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The one code→gRPC status table, beside the HTTP one.
    ///
    /// `conflict` is `ALREADY_EXISTS`: it means a request id already logged
    /// with another input, a record that exists and will not change, so a
    /// retry fails the same way; `ABORTED` would tell the client to retry
    /// the sequence. `payload_too_large` is `RESOURCE_EXHAUSTED`, which is
    /// what gRPC itself answers for a message over the size limit.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest => tonic::Code::InvalidArgument,
            ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
            ErrorCode::Forbidden => tonic::Code::PermissionDenied,
            ErrorCode::NotFound => tonic::Code::NotFound,
            // No HTTP method or media type in gRPC: only a request that is
            // not gRPC at all could get these.
            ErrorCode::MethodNotAllowed => tonic::Code::Unimplemented,
            ErrorCode::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::Conflict => tonic::Code::AlreadyExists,
            ErrorCode::TooManyRequests => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Timeout => tonic::Code::DeadlineExceeded,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The code for a status produced outside our handlers (axum's own
    /// rejections, the fallback), so that every error body is ours.
    pub fn from_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => ErrorCode::Timeout,
            s if s.is_server_error() => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        }
    }

    /// The snake_case name used in the `code` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, precise for 4xx, generic for 5xx.
    pub error: String,
    /// Machine-readable kind of error.
    pub code: ErrorCode,
    /// The request id (also in the `x-request-id` header).
    pub request_id: String,
}

/// An error a handler returns; turned into a JSON error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The kind of error, which decides the status.
    pub code: ErrorCode,
    /// The message for the client (4xx) or the log (5xx).
    pub message: String,
    /// A 5xx whose message was written for the client (limits, timeouts).
    pub public: bool,
}

impl ApiError {
    /// An error with `code` and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            public: false,
        }
    }

    /// An error whose message a client may see even for a 5xx (it must
    /// never hold an internal detail).
    pub fn public(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            public: true,
            ..ApiError::new(code, message)
        }
    }
    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }
    /// A 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }
    /// A 500 whose `detail` only goes to the log.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, detail)
    }

    /// The message a client may see.
    pub fn public_message(&self) -> &str {
        if self.code.status().is_server_error() && !self.public {
            "internal error, see the server log for this request id"
        } else {
            &self.message
        }
    }
}

impl ApiError {
    /// The gRPC status for this error: the code from [`ErrorCode::grpc_code`],
    /// the message a client may see, and the `vigil-error-code` metadata
    /// (the snake_case code, as the JSON body's `code`).
    pub fn to_grpc_status(&self) -> tonic::Status {
        let mut status = tonic::Status::new(self.code.grpc_code(), self.public_message());
        status.metadata_mut().insert(
            GRPC_ERROR_CODE_KEY,
            tonic::metadata::MetadataValue::from_static(self.code.as_str()),
        );
        status
    }
}

/// Metadata key of a gRPC error's Vigil [`ErrorCode`] (several codes share
/// one gRPC status, e.g. `too_many_requests` and `payload_too_large`).
pub const GRPC_ERROR_CODE_KEY: &str = "vigil-error-code";

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The middleware writes the body once it knows the request id.
        let mut response = self.code.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Render the JSON body for `error` (the middleware calls this).
pub(crate) fn error_body(error: &ApiError, request_id: &str) -> Vec<u8> {
    let body = ErrorBody {
        error: error.public_message().to_owned(),
        code: error.code,
        request_id: request_id.to_owned(),
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_round_trips() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::Timeout,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Conflict,
            ErrorCode::TooManyRequests,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_status(code.status()), code);
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(
            ErrorCode::from_status(StatusCode::UNPROCESSABLE_ENTITY),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn grpc_table_matches_the_protocol() {
        use tonic::Code;
        let table = [
            (ErrorCode::BadRequest, Code::InvalidArgument),
            (ErrorCode::NotFound, Code::NotFound),
            (ErrorCode::Unauthorized, Code::Unauthenticated),
            (ErrorCode::Forbidden, Code::PermissionDenied),
            (ErrorCode::Conflict, Code::AlreadyExists),
            (ErrorCode::TooManyRequests, Code::ResourceExhausted),
            (ErrorCode::Unavailable, Code::Unavailable),
            (ErrorCode::Timeout, Code::DeadlineExceeded),
            (ErrorCode::PayloadTooLarge, Code::ResourceExhausted),
            (ErrorCode::Internal, Code::Internal),
        ];
        for (code, grpc) in table {
            assert_eq!(code.grpc_code(), grpc, "{code:?}");
        }
        let status = ApiError::internal("secret detail").to_grpc_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"), "{}", status.message());
        assert_eq!(
            status
                .metadata()
                .get(GRPC_ERROR_CODE_KEY)
                .map(|v| v.to_str().ok()),
            Some(Some("internal"))
        );
        let status = ApiError::bad_request("tensor `x` has shape [2]").to_grpc_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "tensor `x` has shape [2]");
    }

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let error = ApiError::internal("secret detail at /var/lib");
        let body = String::from_utf8(error_body(&error, "rid-1")).expect("utf8");
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("\"request_id\":\"rid-1\""), "{body}");
        assert!(body.contains("\"code\":\"internal\""), "{body}");
    }
}
