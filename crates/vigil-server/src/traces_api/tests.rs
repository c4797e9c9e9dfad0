use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::config::TracesConfig;
use crate::state::AppState;
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

async fn score(state: &AppState, headers: &[(&str, &str)]) -> Answer {
    let body = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    let mut request = json_request("POST", "/v1/models/fraud/score", &body);
    for (name, value) in headers {
        request.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    send(state, request).await
}

/// Polls the search until `n` traces match `filter` (the writer stores
/// them a few milliseconds after the answer).
async fn search(state: &AppState, filter: &str, n: usize) -> serde_json::Value {
    let uri = format!("/api/traces?filter={}&limit=1000", url_encode(filter));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(state, json_request("GET", &uri, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let found = answer.json["traces"].as_array().map_or(0, Vec::len);
        if found >= n || Instant::now() > deadline {
            return answer.json;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn sample_everything(state: &AppState) {
    let answer = send(
        state,
        json_request(
            "PUT",
            "/api/traces/sampling-rules/Default",
            r#"{"reservoir": 0, "fixed_rate": 1.0}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[tokio::test]
async fn a_sampled_request_is_a_trace_with_a_span_per_stage_and_its_annotations() {
    let (state, _dir) = state_with_traces();
    sample_everything(&state).await;
    let answer = score(&state, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let header = answer.headers["traceresponse"].to_str().unwrap().to_owned();
    let trace_id = header.split('-').nth(1).unwrap().to_owned();
    assert!(header.ends_with("-01"), "{header}");
    let xray = answer.headers["x-amzn-trace-id"].to_str().unwrap();
    assert!(xray.contains("Sampled=1"), "{xray}");

    let found = search(
        &state,
        r#"annotation.model = "fraud" AND http.status = 200"#,
        1,
    )
    .await;
    let traces = found["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{found}");
    assert_eq!(traces[0]["trace_id"], trace_id.as_str());
    assert_eq!(traces[0]["http"]["url"], "/v1/models/fraud/score");

    let trace = send(
        &state,
        json_request("GET", &format!("/api/traces/{trace_id}"), ""),
    )
    .await;
    assert_eq!(trace.status, StatusCode::OK, "{}", trace.text);
    let spans = trace.json["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    for stage in ["vigil", "gateway", "parse", "cache", "score", "response"] {
        assert!(names.contains(&stage), "{stage} missing from {names:?}");
    }
    let root = spans.iter().find(|s| s["name"] == "vigil").unwrap();
    assert_eq!(root["kind"], "server");
    assert_eq!(root["annotations"]["model"], "fraud");
    assert_eq!(root["annotations"]["cached"], false);
    assert!(root["metadata"]["scores"].is_array(), "{root}");
    for span in spans.iter().filter(|s| s["name"] != "vigil") {
        assert_eq!(span["parent_id"], root["span_id"], "{span}");
    }
    // The X-Ray form of the id finds the same trace.
    let hex = trace_id.as_str();
    let xray_id = format!("1-{}-{}", &hex[..8], &hex[8..]);
    let again = send(
        &state,
        json_request("GET", &format!("/api/traces/{xray_id}"), ""),
    )
    .await;
    assert_eq!(
        again.json["spans"].as_array().map(Vec::len),
        Some(spans.len())
    );

    let map = send(&state, json_request("GET", "/api/service-map", "")).await;
    assert_eq!(map.status, StatusCode::OK, "{}", map.text);
    let edges = map.json["edges"].as_array().unwrap();
    assert!(!edges.is_empty(), "{}", map.text);
    assert!(map.json["rebuilding"].is_boolean(), "{}", map.text);
}

#[tokio::test]
async fn the_callers_trace_and_sampled_flag_are_followed() {
    let (state, _dir) = state_with_traces();
    // The caller said "not sampled": nothing is kept, the id is its own.
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let answer = score(&state, &[("traceparent", unsampled)]).await;
    let header = answer.headers["traceresponse"].to_str().unwrap();
    assert!(
        header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{header}"
    );
    assert!(header.ends_with("-00"), "{header}");
    // The caller said "sampled" (X-Ray's header): the root's parent is the caller's span.
    let xray =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1";
    let answer = score(&state, &[("x-amzn-trace-id", xray)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let trace = "5759e988bd862e3fe1be46a994272793";
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let got = send(
            &state,
            json_request("GET", &format!("/api/traces/{trace}"), ""),
        )
        .await;
        if got.status == StatusCode::OK || Instant::now() > deadline {
            break got.json["spans"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let root = spans
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "vigil"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(root["parent_id"], "53995c3f42cd8ad8", "{spans}");
    let unsampled_trace = send(
        &state,
        json_request("GET", "/api/traces/4bf92f3577b34da6a3ce929d0e0e4736", ""),
    )
    .await;
    assert_eq!(unsampled_trace.status, StatusCode::NOT_FOUND);
    // A malformed header is ignored, never a 4xx.
    let answer = score(&state, &[("traceparent", "00-zz-00f067aa0ba902b7-01")]).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_filters_ids_and_rules_are_400s_naming_the_problem() {
    let (state, _dir) = state_with_traces();
    let answer = send(
        &state,
        json_request("GET", "/api/traces?filter=http.status%20%3E%20abc", ""),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["filter", "column 15"],
    );
    let answer = send(&state, json_request("GET", "/api/traces?colour=red", "")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["colour", "filter"],
    );
    let answer = send(&state, json_request("GET", "/api/traces?cursor=nope", "")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["cursor"]);
    let answer = send(&state, json_request("GET", "/api/traces/xyz", "")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["trace id"],
    );
    let answer = send(
        &state,
        json_request(
            "PUT",
            "/api/traces/sampling-rules/slow",
            r#"{"priority": 0, "reservoir": 1, "fixed_rate": 2}"#,
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["priority", "fixed_rate"],
    );
    let answer = send(
        &state,
        json_request("DELETE", "/api/traces/sampling-rules/Default", ""),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["Default"],
    );
}

#[tokio::test]
async fn rules_are_created_listed_applied_and_deleted_without_a_restart() {
    let (state, _dir) = state_with_traces();
    let body =
        r#"{"priority": 10, "reservoir": 0, "fixed_rate": 0, "url_path": "/v1/models/*/score"}"#;
    let put = send(
        &state,
        json_request("PUT", "/api/traces/sampling-rules/never-score", body),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    sample_everything(&state).await;
    let answer = score(&state, &[]).await;
    let header = answer.headers["traceresponse"].to_str().unwrap();
    assert!(
        header.ends_with("-00"),
        "the rule at priority 10 wins: {header}"
    );
    let list = send(
        &state,
        json_request("GET", "/api/traces/sampling-rules", ""),
    )
    .await;
    let rules = list.json["rules"].as_array().unwrap();
    assert_eq!(rules[0]["name"], "never-score");
    assert_eq!(rules[0]["stats"]["not_sampled"], 1, "{}", list.text);
    assert_eq!(rules.last().unwrap()["name"], "Default");
    let deleted = send(
        &state,
        json_request("DELETE", "/api/traces/sampling-rules/never-score", ""),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let answer = score(&state, &[]).await;
    let header = answer.headers["traceresponse"].to_str().unwrap();
    assert!(header.ends_with("-01"), "Default samples all now: {header}");
}

#[tokio::test]
async fn with_traces_off_the_routes_say_so_and_requests_still_carry_an_id() {
    let state = demo_state();
    let answer = send(&state, json_request("GET", "/api/traces", "")).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["traces.enabled"],
    );
    let answer = score(&state, &[]).await;
    let header = answer.headers["traceresponse"].to_str().unwrap();
    assert!(header.ends_with("-00"), "{header}");
}
