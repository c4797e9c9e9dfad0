//! `POST /v1/traces` through the router: both encodings and gzip stored
//! and fetched back, every refusal with its status and message, the
//! partial success of a full queue, the metrics, and a caller's span
//! joining Vigil's trace and the service map.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use vigil_trace::model::{Span, SpanId, SpanKind, TraceId};

use crate::config::TracesConfig;
use crate::state::AppState;
use crate::telemetry::trace::{SpanOrigin, TraceSink, now_us};
use crate::test_util::*;
use crate::trace_writer::Traces;

fn state_with_traces() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let traces = Arc::new(Traces::open(&TracesConfig::default(), dir.path()).expect("traces"));
    let state = demo_state();
    state
        .gateway()
        .telemetry()
        .set_traces(Arc::clone(&traces.writer) as _);
    (state.with_traces(traces), dir)
}

fn otlp(body: Vec<u8>, content_type: &str, gzip: bool) -> Request<Body> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/v1/traces")
        .header("content-type", content_type);
    if gzip {
        builder = builder.header("content-encoding", "gzip");
    }
    builder.body(Body::from(body)).expect("request")
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// A checkout service's trace: a server span and its client call.
fn checkout_trace(trace: TraceId) -> Vec<Span> {
    let now = now_us();
    let mut server = Span::new(
        trace,
        SpanId([1; 8]),
        None,
        "POST /checkout",
        "checkout",
        now - 2_000,
        now,
    );
    server.kind = SpanKind::Server;
    let mut client = Span::new(
        trace,
        SpanId([2; 8]),
        Some(SpanId([1; 8])),
        "score",
        "checkout",
        now - 1_500,
        now - 100,
    );
    client.kind = SpanKind::Client;
    vec![server, client]
}

/// Polls `GET /api/traces/{id}` until it holds `n` spans of `service`.
async fn stored(state: &AppState, trace: &str, service: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = send(
            state,
            json_request("GET", &format!("/api/traces/{trace}"), ""),
        )
        .await;
        let spans = got.json["spans"].as_array().cloned().unwrap_or_default();
        let found = spans.iter().filter(|s| s["service"] == service).count();
        if found >= n || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(spans: &[serde_json::Value]) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn protobuf_json_and_gzip_bodies_are_stored_as_sent() {
    let (state, _dir) = state_with_traces();
    let cases = [
        (TraceId([0x11; 16]), "application/x-protobuf", false),
        (TraceId([0x22; 16]), "application/json", false),
        (TraceId([0x33; 16]), "application/x-protobuf", true),
        (TraceId([0x44; 16]), "application/json; charset=utf-8", true),
    ];
    for (trace, content_type, gzip) in cases {
        let spans = checkout_trace(trace);
        let mut body = if content_type.starts_with("application/json") {
            vigil_trace::otlp::encode_json(&spans)
        } else {
            vigil_trace::otlp::encode_proto(&spans)
        };
        if gzip {
            body = gzipped(&body);
        }
        let answer = send(&state, otlp(body, content_type, gzip)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{content_type}: {}",
            answer.text
        );
        // An empty ExportTraceServiceResponse in the request's encoding.
        if content_type.starts_with("application/json") {
            assert_eq!(answer.headers["content-type"], "application/json");
            assert_eq!(answer.json, serde_json::json!({}));
        } else {
            assert_eq!(answer.headers["content-type"], "application/x-protobuf");
            assert!(answer.bytes.is_empty(), "{:?}", answer.bytes);
        }
        let got = stored(&state, &trace.to_string(), "checkout", 2).await;
        assert_eq!(
            names(&got),
            [("checkout", "POST /checkout"), ("checkout", "score")],
            "{content_type} gzip={gzip}"
        );
        let client = got.iter().find(|s| s["name"] == "score").unwrap();
        assert_eq!(client["kind"], "client");
        assert_eq!(client["parent_id"], SpanId([1; 8]).to_string());
    }
}

#[tokio::test]
async fn refusals_say_what_is_wrong() {
    let (mut state, _dir) = state_with_traces();
    // Not an export request at all, either encoding.
    let answer = send(
        &state,
        otlp(b"\xff\xff\xff".to_vec(), "application/x-protobuf", false),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["not an ExportTraceServiceRequest"],
    );
    let answer = send(&state, otlp(b"{oops".to_vec(), "application/json", false)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["not JSON"],
    );
    // A bad field: the message is the decoder's, with the field's path.
    let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc","spanId":"0102030405060708","name":"x"}]}]}]}"#;
    let answer = send(&state, otlp(body.into(), "application/json", false)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["resourceSpans[0].scopeSpans[0].spans[0].traceId"],
    );
    // Bad gzip.
    let answer = send(
        &state,
        otlp(b"not gzip".to_vec(), "application/x-protobuf", true),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["gzip"]);
    // Content types and encodings.
    let answer = send(&state, otlp(Vec::new(), "text/plain", false)).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["application/x-protobuf", "application/json", "text/plain"],
    );
    let request = Request::builder()
        .method("POST")
        .uri("/v1/traces")
        .body(Body::empty())
        .unwrap();
    let answer = send(&state, request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut request = otlp(Vec::new(), "application/x-protobuf", false);
    request
        .headers_mut()
        .insert("content-encoding", "br".parse().unwrap());
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["br", "gzip"],
    );
    // Limits: the body as sent, and once inflated (a small gzip of a big
    // body is no way around the limit).
    state.otlp_max_body_bytes = 4096;
    let big =
        vigil_trace::otlp::encode_proto(&vec![checkout_trace(TraceId([7; 16]))[0].clone(); 200]);
    assert!(big.len() > 4096);
    let answer = send(&state, otlp(big.clone(), "application/x-protobuf", false)).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["traces.otlp_max_body_bytes", "4096"],
    );
    let zipped = gzipped(&big);
    assert!(zipped.len() < 4096, "{}", zipped.len());
    let answer = send(&state, otlp(zipped, "application/x-protobuf", true)).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["inflated", "traces.otlp_max_body_bytes"],
    );
    // More spans than a request may hold.
    state.otlp_max_body_bytes = 64 << 20;
    let span = checkout_trace(TraceId([8; 16]))[0].clone();
    let many = vigil_trace::otlp::encode_proto(&vec![span; 10_001]);
    let answer = send(&state, otlp(many, "application/x-protobuf", false)).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["10000 spans"],
    );
    // None of it was stored.
    let missing = send(
        &state,
        json_request("GET", &format!("/api/traces/{}", TraceId([7; 16])), ""),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_traces_off_the_receiver_answers_503() {
    let state = demo_state();
    let body = vigil_trace::otlp::encode_proto(&checkout_trace(TraceId([9; 16])));
    let answer = send(&state, otlp(body, "application/x-protobuf", false)).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["traces.enabled = false"],
    );
}

/// A writer whose queue is always full.
#[derive(Debug)]
struct Full;

impl TraceSink for Full {
    fn write(&self, _: SpanOrigin, _: Vec<Span>) -> bool {
        false
    }
}

#[tokio::test]
async fn a_full_queue_is_a_partial_success_and_spans_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let traces = Arc::new(Traces::open(&TracesConfig::default(), dir.path()).expect("traces"));
    let state = demo_state().with_traces(traces);
    state.gateway().telemetry().set_traces(Arc::new(Full));
    let mut spans = checkout_trace(TraceId([0x55; 16]));
    spans.extend(checkout_trace(TraceId([0x66; 16])));
    let body = vigil_trace::otlp::encode_json(&spans);
    let answer = send(&state, otlp(body, "application/json", false)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let partial = &answer.json["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "4", "{}", answer.text);
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("queue is full"),
        "{}",
        answer.text
    );
    // The protobuf answer carries the same: field 1 (partial_success),
    // its field 1 (rejected_spans) = 2.
    let body = vigil_trace::otlp::encode_proto(&checkout_trace(TraceId([0x77; 16])));
    let answer = send(&state, otlp(body, "application/x-protobuf", false)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.bytes[2..4], &[0x08, 2], "{:?}", answer.bytes);
    let metrics = send(&state, json_request("GET", "/metrics", "")).await;
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "vigil_traces_otlp_received_spans_total 6"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .lines()
            .any(|l| l == "vigil_traces_otlp_rejected_spans_total 6"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn a_callers_span_joins_vigils_trace_and_the_service_map() {
    let (state, _dir) = state_with_traces();
    let answer = send(
        &state,
        json_request(
            "PUT",
            "/api/traces/sampling-rules/Default",
            r#"{"reservoir": 0, "fixed_rate": 1.0}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // checkout's client span calls Vigil with traceparent...
    let trace = crate::telemetry::trace::new_trace_id();
    let client_id = SpanId([0xc1; 8]);
    let body = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    let mut request = json_request("POST", "/v1/models/fraud/score", &body);
    request.headers_mut().insert(
        "traceparent",
        format!("00-{trace}-{client_id}-01").parse().unwrap(),
    );
    let answer = send(&state, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // ...then exports it.
    let now = now_us();
    let mut client = Span::new(
        trace,
        client_id,
        None,
        "score fraud",
        "checkout",
        now - 5_000,
        now,
    );
    client.kind = SpanKind::Client;
    let body = vigil_trace::otlp::encode_proto(&[client]);
    let answer = send(&state, otlp(body, "application/x-protobuf", false)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    let spans = stored(&state, &trace.to_string(), "checkout", 1).await;
    let checkout = spans.iter().find(|s| s["service"] == "checkout");
    let root = spans.iter().find(|s| s["name"] == "vigil");
    let (Some(checkout), Some(root)) = (checkout, root) else {
        panic!("both spans should be stored: {spans:?}");
    };
    assert_eq!(root["parent_id"], checkout["span_id"]);

    let deadline = Instant::now() + Duration::from_secs(10);
    let edges = loop {
        let map = send(&state, json_request("GET", "/api/service-map", "")).await;
        assert_eq!(map.status, StatusCode::OK, "{}", map.text);
        let edges: Vec<(String, String)> = map.json["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["caller"].as_str().unwrap_or("").to_owned(),
                    e["callee"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let has = |a: &str, b: &str| edges.iter().any(|(x, y)| x == a && y == b);
        if has("service:checkout", "service:vigil") || Instant::now() > deadline {
            break edges;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let has = |a: &str, b: &str| edges.iter().any(|(x, y)| x == a && y == b);
    assert!(has("service:checkout", "service:vigil"), "{edges:?}");
    assert!(has("client", "service:checkout"), "{edges:?}");
}

#[tokio::test]
async fn with_keys_the_receiver_needs_the_admin_key() {
    use crate::gateway::tests::{ADMIN_KEY, SCORE_KEY, config_with, keys_toml};
    let dir = tempfile::tempdir().expect("tempdir");
    let traces = Arc::new(Traces::open(&TracesConfig::default(), dir.path()).expect("traces"));
    let state = AppState::from_config(&config_with(&keys_toml()))
        .expect("state")
        .with_traces(Arc::clone(&traces));
    state
        .gateway()
        .telemetry()
        .set_traces(Arc::clone(&traces.writer) as _);
    let body = vigil_trace::otlp::encode_proto(&checkout_trace(TraceId([0x88; 16])));
    let with = |key: Option<&str>| {
        let mut request = otlp(body.clone(), "application/x-protobuf", false);
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        request
    };
    assert_eq!(
        send(&state, with(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A scoring key is not enough: the spans land in the trace store.
    assert_eq!(
        send(&state, with(Some(SCORE_KEY))).await.status,
        StatusCode::FORBIDDEN
    );
    let answer = send(&state, with(Some(ADMIN_KEY))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}
