//! `POST /v1/traces`: the OTLP/HTTP trace receiver, so a calling service's
//! spans join the trace Vigil's own spans are in (the caller's span is the
//! parent of Vigil's root through `traceparent`) and the service map shows
//! the caller.
//!
//! The body is an `ExportTraceServiceRequest`, protobuf
//! (`application/x-protobuf`) or OTLP/JSON (`application/json`), gzipped
//! or not, at most `traces.otlp_max_body_bytes` sent and once inflated. The
//! spans are not sampled again (the caller sampled them); each trace goes
//! to the trace writer's queue through the telemetry spine
//! ([`SpansReceived`]). The answer is an `ExportTraceServiceResponse` in
//! the request's encoding: empty, or with `partialSuccess` when the queue
//! was full for some of them. Errors are Vigil's JSON error body.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use vigil_trace::model::{Span, TraceId};
use vigil_trace::otlp::{DecodeError, DecodeLimits, decode_json, decode_proto};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::telemetry::events::SpansReceived;

/// The protobuf media type.
pub const PROTOBUF: &str = "application/x-protobuf";
/// The OTLP/JSON media type.
pub const JSON: &str = "application/json";

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ExportTracePartialSuccess>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_spans: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn of(value: Option<&HeaderValue>) -> Result<Format, ApiError> {
        let text = value.map(|v| v.to_str().unwrap_or("")).unwrap_or("");
        let essence = text.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Format::Protobuf)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Ok(Format::Json)
        } else {
            let got = if value.is_none() {
                "none".to_owned()
            } else {
                format!("`{text}`")
            };
            Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("content-type must be {PROTOBUF} or {JSON}, got {got}"),
            ))
        }
    }
}

/// Receives spans over OTLP/HTTP (an `ExportTraceServiceRequest`,
/// protobuf or JSON, `Content-Encoding: gzip` accepted): they are stored as
/// they came (not sampled again) and added to the service map, so a
/// caller's span that is the parent of Vigil's root (through
/// `traceparent`) joins its trace and the map shows the caller. Needs a
/// key with the admin role, like the rest of the trace API (OpenTelemetry
/// exporters send it with `OTEL_EXPORTER_OTLP_HEADERS`).
#[utoipa::path(post, path = "/v1/traces", tag = "traces",
    request_body(description = "an OTLP `ExportTraceServiceRequest`: protobuf or OTLP/JSON, at most \
        `traces.otlp_max_body_bytes` (4 MiB) sent and once inflated, at most 10,000 spans",
        content((Vec<u8> = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "an `ExportTraceServiceResponse` in the request's encoding: empty \
            (protobuf: no bytes, JSON: `{}`), or with `partialSuccess` {`rejectedSpans`, `errorMessage`} when \
            the trace writer's queue was full for some spans",
            content((Vec<u8> = "application/x-protobuf"), (Object = "application/json"))),
        (status = 400, description = "not an export request, or a bad field: the message names its path \
            (`resourceSpans[0].scopeSpans[0].spans[3].traceId: expected 16 bytes, found 3`), or bad gzip",
            body = crate::error::ErrorBody),
        (status = 413, description = "the body (sent or inflated) is larger than `traces.otlp_max_body_bytes`, \
            or holds more than 10,000 spans", body = crate::error::ErrorBody),
        (status = 415, description = "a content type other than application/x-protobuf or application/json, \
            or an encoding other than gzip", body = crate::error::ErrorBody),
        (status = 503, description = "traces are off (`traces.enabled = false`)", body = crate::error::ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    state.traces().map_err(|_| {
        ApiError::public(
            ErrorCode::Unavailable,
            "traces are off (traces.enabled = false): no spans are received",
        )
    })?;
    let format = Format::of(request.headers().get(CONTENT_TYPE))?;
    let limit = state.otlp_max_body_bytes;
    let (parts, body) = request.into_parts();
    let body =
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|err| match crate::extract::body_error(err, limit) {
                e if e.code == ErrorCode::PayloadTooLarge => too_large(limit),
                other => other,
            })?;
    let body = crate::extract::inflated(&parts.headers, &body, limit).map_err(|e| {
        if e.code == ErrorCode::PayloadTooLarge {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the inflated body is larger than traces.otlp_max_body_bytes ({limit} bytes)"
                ),
            )
        } else {
            e
        }
    })?;
    let limits = DecodeLimits::default();
    let spans = match format {
        Format::Protobuf => decode_proto(&body, &limits),
        Format::Json => decode_json(&body, &limits),
    }
    .map_err(|err| match err {
        DecodeError::TooManySpans { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    })?;
    let mut rejected = 0;
    state.gateway().telemetry().emit(SpansReceived {
        traces: by_trace(spans),
        rejected: &mut rejected,
    });
    Ok(answer(format, rejected))
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than traces.otlp_max_body_bytes ({limit} bytes)"),
    )
}

/// The spans grouped by trace, traces in the order they first appear.
fn by_trace(spans: Vec<Span>) -> Vec<Vec<Span>> {
    let mut index: std::collections::HashMap<TraceId, usize> = std::collections::HashMap::new();
    let mut traces: Vec<Vec<Span>> = Vec::new();
    for span in spans {
        let i = *index.entry(span.trace_id).or_insert_with(|| {
            traces.push(Vec::new());
            traces.len() - 1
        });
        traces[i].push(span);
    }
    traces
}

/// The `ExportTraceServiceResponse` in `format`.
fn answer(format: Format, rejected: usize) -> Response {
    let partial = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: format!(
            "{rejected} spans dropped: the trace writer's queue is full (traces.queue_capacity)"
        ),
    });
    let (content_type, body) = match format {
        Format::Protobuf => (
            PROTOBUF,
            ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
        ),
        Format::Json => {
            let value = match partial {
                None => serde_json::json!({}),
                // OTLP/JSON writes 64-bit integers as strings.
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            (JSON, value.to_string().into_bytes())
        }
    };
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_are_told_apart_with_parameters_and_case() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            Format::of(Some(&v("application/x-protobuf"))).unwrap(),
            Format::Protobuf
        );
        assert_eq!(
            Format::of(Some(&v("Application/JSON; charset=utf-8"))).unwrap(),
            Format::Json
        );
        let err = Format::of(Some(&v("text/plain"))).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedMediaType);
        assert!(err.message.contains("application/x-protobuf"), "{err}");
        assert!(err.message.contains("`text/plain`"), "{err}");
        assert!(Format::of(None).unwrap_err().message.contains("none"));
    }

    #[test]
    fn a_partial_success_encodes_in_both_forms() {
        assert!(
            ExportTraceServiceResponse {
                partial_success: None
            }
            .encode_to_vec()
            .is_empty()
        );
        let bytes = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "full".into(),
            }),
        }
        .encode_to_vec();
        let back = ExportTraceServiceResponse::decode(&bytes[..]).unwrap();
        assert_eq!(back.partial_success.unwrap().rejected_spans, 3);
    }
}
