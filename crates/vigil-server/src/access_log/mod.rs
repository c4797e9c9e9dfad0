//! The per-request middleware: request id, JSON error bodies and the access
//! log line.
//!
//! The access log is one JSON line per request on stdout. Formatting happens
//! on the request task (a few hundred nanoseconds); writing is the
//! [`sink`]'s.

pub mod sink;

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, ErrorCode, error_body};
use crate::state::AppState;
use crate::telemetry::events::{RequestFinished, Traced};
use crate::telemetry::trace::{self, RequestTrace};
pub use sink::{AccessLog, LineSink, StdoutLog};

/// The request id header, read from the request and set on the response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id this middleware chose, handed to gRPC handlers in the
/// request's extensions (an HTTP error body gets it from here directly).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

/// The middleware every route runs through.
pub(crate) async fn middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let start_us = trace::now_us();
    let trace = start_trace(&state, &request);
    let request_id = request_id(request.headers());
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    // A gRPC call is told by its content type (`application/grpc`,
    // `application/grpc+proto`, ...), whichever path it asks for.
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        // A gRPC error has no body for us to finish: the handler logs an
        // internal error itself, with this id.
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
    }
    // Only the access log needs the path (for the model name); cloning a
    // `Uri` shares its bytes.
    let uri = state
        .access_log
        .sink()
        .is_some()
        .then(|| request.uri().clone());

    // What the root span says of the caller, taken only when sampled.
    let caller = trace.sampled.then(|| Caller::of(&request));

    let mut response = trace.clone().scope(next.run(request)).await;

    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        finalize_error(
            &mut response,
            &request_id,
            &method,
            route.as_ref().map(MatchedPath::as_str),
            state.max_body_bytes,
        );
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    set_trace_headers(&mut response, &trace);
    // A gRPC call answers HTTP 200; its outcome is the `grpc-status`
    // (in the headers when it failed, 0 in the trailers when it did not).
    let grpc_status: Option<u16> = grpc.then(|| {
        response
            .headers()
            .get("grpc-status")
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    });
    state.gateway.telemetry().emit(RequestFinished {
        route: route.as_ref().map(MatchedPath::as_str),
        status: grpc_status.map_or_else(|| response.status().as_u16(), grpc_http_status),
        latency: start.elapsed(),
        integration: response
            .extensions()
            .get::<crate::gateway::IntegrationLatency>()
            .map(|latency| latency.0),
        trace: caller.as_ref().map(|caller| Traced {
            trace: &trace,
            start_us,
            method: method.as_str(),
            path: &caller.path,
            user_agent: caller.user_agent.as_deref(),
            client_ip: caller.client_ip.as_deref(),
            content_length: axum::body::HttpBody::size_hint(response.body()).exact(),
            request_id: &request_id,
            key_name: response
                .extensions()
                .get::<crate::gateway::keys::KeyName>()
                .map(|key| &*key.0),
        }),
    });
    if let Some(sink) = state.access_log.sink() {
        let model = route
            .as_ref()
            .zip(uri.as_ref())
            .and_then(|(route, uri)| model_segment(route.as_str(), uri.path()));
        let line = format_line(
            SystemTime::now(),
            method.as_str(),
            route.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status().as_u16(),
            start.elapsed(),
            model,
            &request_id,
            &trace.trace_id,
            response
                .extensions()
                .get::<crate::gateway::keys::KeyName>()
                .map(|key| &*key.0),
            grpc_status,
        );
        sink.write_line(line);
    }
    response
}

/// The request's trace: the caller's (`traceparent`, else
/// `X-Amzn-Trace-Id`; malformed headers are ignored) or a new one; sampled
/// as the caller decided, else as the sampling rules say (never with
/// traces off).
fn start_trace(state: &AppState, request: &Request) -> RequestTrace {
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let incoming = vigil_trace::propagation::incoming(
        text("traceparent"),
        text("tracestate"),
        text("x-amzn-trace-id"),
    );
    let (trace_id, parent, parent_sampled, tracestate) = match incoming {
        Some(i) => (i.trace_id, i.parent_id, i.sampled, i.tracestate),
        None => (trace::new_trace_id(), None, None, None),
    };
    let sampled = state.traces.as_ref().is_some_and(|traces| {
        let req = vigil_trace::sampling::SampleRequest {
            service_name: trace::SERVICE,
            host: text("host").unwrap_or(""),
            http_method: request.method().as_str(),
            url_path: request.uri().path(),
        };
        let now_ms = vigil_metrics::service::now_ms();
        traces
            .sampler
            .decide(&req, parent_sampled, now_ms, trace::random_unit())
            .sampled
    });
    RequestTrace::new(trace_id, parent, sampled, tracestate.map(Into::into))
}

/// The caller as a sampled trace's root span records it.
struct Caller {
    path: String,
    user_agent: Option<String>,
    client_ip: Option<String>,
}

impl Caller {
    fn of(request: &Request) -> Caller {
        let headers = request.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Caller {
            path: request.uri().path().to_owned(),
            user_agent: text("user-agent").map(str::to_owned),
            // The first address a proxy saw, when one is in front.
            client_ip: text("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(|ip| ip.trim().to_owned()),
        }
    }
}

/// The response names the request's trace: `traceresponse` (W3C's form,
/// with Vigil's root span) and `X-Amzn-Trace-Id` (X-Ray's).
fn set_trace_headers(response: &mut Response, trace: &RequestTrace) {
    let w3c = vigil_trace::propagation::traceparent(trace.trace_id, trace.root, trace.sampled);
    let xray = vigil_trace::propagation::xray_header(
        trace.trace_id,
        Some(trace.root),
        Some(trace.sampled),
    );
    let headers = response.headers_mut();
    for (name, value) in [("traceresponse", w3c), ("x-amzn-trace-id", xray)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// The HTTP status class a gRPC status stands for, so a failed call counts
/// as a 4xx or 5xx like its HTTP twin.
fn grpc_http_status(code: u16) -> u16 {
    match code {
        0 => 200,
        // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
        // FAILED_PRECONDITION, OUT_OF_RANGE: the client's.
        3 | 5 | 6 | 7 | 9 | 11 => 400,
        8 => 429,
        16 => 401,
        1 => 499,
        _ => 500,
    }
}

/// Give every error response our JSON body, whoever produced it.
fn finalize_error(
    response: &mut Response,
    request_id: &str,
    method: &axum::http::Method,
    route: Option<&str>,
    limit: usize,
) {
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None => {
            let status = response.status();
            let code = ErrorCode::from_status(status);
            let message = match status {
                StatusCode::METHOD_NOT_ALLOWED => {
                    let allowed = route.map_or_else(String::new, crate::openapi::allowed_methods);
                    format!("method {method} is not allowed on this route (allowed: {allowed})")
                }
                StatusCode::PAYLOAD_TOO_LARGE => {
                    format!("request body is larger than max_body_bytes ({limit} bytes)")
                }
                _ => status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase(),
            };
            ApiError::new(code, message)
        }
    };
    if error.code.status().is_server_error() {
        tracing::error!(request_id, error = %error.message, "internal error");
    }
    *response.body_mut() = Body::from(error_body(&error, request_id));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
}

/// The model name in `path` when the route template has a `{name}` segment.
fn model_segment<'a>(route: &str, path: &'a str) -> Option<&'a str> {
    // `{name}` is a model only under the model routes (an alarm or a
    // metric elsewhere).
    if !route.contains("/models/{name}") {
        return None;
    }
    let position = route.split('/').position(|segment| segment == "{name}")?;
    path.split('/').nth(position)
}

/// The client's request id when it is sane, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(value) = headers.get(REQUEST_ID_HEADER) {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if let (true, Ok(id)) = (sane, value.to_str()) {
            return id.to_owned();
        }
    }
    generate_request_id()
}

/// A process-unique id: a per-process prefix and a counter (cheaper than a
/// random UUID and still unique across restarts in practice).
fn generate_request_id() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Fold time and pid so two processes started together differ.
        let mixed = (nanos as u64) ^ (u64::from(std::process::id()).rotate_left(32));
        (mixed ^ (mixed >> 32)) as u32
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(24);
    let _ = write!(id, "{prefix:08x}-{n:012x}");
    id
}

/// One access-log line.
// Plain arguments keep the hot path free of an intermediate struct.
#[allow(clippy::too_many_arguments)]
fn format_line(
    now: SystemTime,
    method: &str,
    route: &str,
    status: u16,
    latency: Duration,
    model: Option<&str>,
    request_id: &str,
    trace_id: &vigil_trace::model::TraceId,
    key: Option<&str>,
    grpc_status: Option<u16>,
) -> String {
    let mut line = String::with_capacity(224);
    line.push_str("{\"ts\":\"");
    push_timestamp(&mut line, now);
    line.push_str("\",\"level\":\"info\",\"msg\":\"request\",\"method\":");
    push_json_str(&mut line, method);
    line.push_str(",\"route\":");
    push_json_str(&mut line, route);
    let _ = write!(
        line,
        ",\"status\":{status},\"latency_us\":{}",
        latency.as_micros()
    );
    if let Some(code) = grpc_status {
        let _ = write!(line, ",\"grpc_status\":{code}");
    }
    line.push_str(",\"model\":");
    match model {
        Some(model) => push_json_str(&mut line, model),
        None => line.push_str("null"),
    }
    line.push_str(",\"request_id\":");
    push_json_str(&mut line, request_id);
    let _ = write!(line, ",\"trace_id\":\"{trace_id}\"");
    // The API key's name (never the key), when the request presented one.
    if let Some(key) = key {
        line.push_str(",\"key\":");
        push_json_str(&mut line, key);
    }
    line.push('}');
    line
}

fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 UTC with microseconds, e.g. `2025-01-31T12:00:00.123456Z`.
fn push_timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_micros()
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let mut out = String::new();
        push_timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_micros(951_782_400_000_001),
        );
        assert_eq!(out, "2000-02-29T00:00:00.000001Z");
        out.clear();
        push_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(1_735_689_599));
        assert_eq!(out, "2024-12-31T23:59:59.000000Z");
    }

    #[test]
    fn line_is_json_with_every_field() {
        let line = format_line(
            UNIX_EPOCH,
            "POST",
            "/v1/models/{name}/score",
            200,
            Duration::from_micros(42),
            Some("fr\"aud"),
            "abc",
            &vigil_trace::model::TraceId([0xab; 16]),
            Some("app-1"),
            None,
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(value["ts"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(value["level"], "info");
        assert_eq!(value["msg"], "request");
        assert_eq!(value["method"], "POST");
        assert_eq!(value["route"], "/v1/models/{name}/score");
        assert_eq!(value["status"], 200);
        assert_eq!(value["latency_us"], 42);
        assert_eq!(value["model"], "fr\"aud");
        assert_eq!(value["request_id"], "abc");
        assert_eq!(value["key"], "app-1");
        assert_eq!(value["trace_id"], "ab".repeat(16));
        assert!(value.get("grpc_status").is_none(), "{line}");
        let line = format_line(
            UNIX_EPOCH,
            "POST",
            "/inference.GRPCInferenceService/ModelInfer",
            200,
            Duration::from_micros(7),
            None,
            "abc",
            &vigil_trace::model::TraceId([1; 16]),
            None,
            Some(8),
        );
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(value["grpc_status"], 8);
        assert_eq!(value["route"], "/inference.GRPCInferenceService/ModelInfer");
    }

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("tx-42.a:b_c"));
        assert_eq!(request_id(&headers), "tx-42.a:b_c");
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        let generated = request_id(&headers);
        assert_ne!(generated, "has space");
        assert_eq!(generated.len(), 21, "{generated}");
        assert_ne!(generate_request_id(), generate_request_id());
    }

    #[test]
    fn model_name_comes_from_the_template_position() {
        assert_eq!(
            model_segment(
                "/v2/models/{name}/versions/{version}/infer",
                "/v2/models/fraud/versions/1/infer"
            ),
            Some("fraud")
        );
        assert_eq!(model_segment("/v2/health/live", "/v2/health/live"), None);
    }
}
