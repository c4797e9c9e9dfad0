use std::sync::Arc;

use axum::http::StatusCode;

use crate::state::AppState;
use crate::test_util::{assert_error, demo_state, json_request, send};
use vigil_metrics::service::now_ms;

fn state_with_logs() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = vigil_logs::store::LogStore::open(dir.path(), Default::default()).expect("store");
    let logs = vigil_logs::pipeline::Logs::new(Arc::new(store));
    (demo_state().with_logs(Arc::new(logs)), dir)
}

#[tokio::test]
async fn a_batch_is_stored_with_its_out_of_window_events_listed() {
    let (state, _dir) = state_with_logs();
    let now = now_ms();
    let body = format!(
        r#"{{"events": [{{"timestamp": {now}, "message": "GET / 200"}},
            {{"timestamp": {}, "message": "too old"}},
            {{"timestamp": {}, "message": "too new"}}]}}"#,
        now - 15 * 86_400_000,
        now + 3 * 3_600_000
    );
    let answer = send(
        &state,
        json_request("POST", "/api/logs/%2Fapp%2Fapi/host-1", &body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["accepted"], 1);
    assert_eq!(answer.json["rejected"][0]["index"], 1);
    assert_eq!(answer.json["rejected"][0]["reason"], "too_old");
    assert_eq!(answer.json["rejected"][1]["reason"], "too_new");
    let groups = send(&state, json_request("GET", "/api/logs/groups", "")).await;
    assert_eq!(groups.status, StatusCode::OK, "{}", groups.text);
    assert_eq!(groups.json["groups"][0]["name"], "/app/api");
    assert_eq!(groups.json["groups"][0]["events"], 1);
    assert!(groups.json["groups"][0]["retention_days"].is_null());
}

#[tokio::test]
async fn bad_names_batches_and_bodies_are_4xx_naming_the_problem() {
    let (state, _dir) = state_with_logs();
    let now = now_ms();
    let one = format!(r#"{{"events": [{{"timestamp": {now}, "message": "x"}}]}}"#);
    let answer = send(
        &state,
        json_request("POST", "/api/logs/bad%20group/s", &one),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["log group name", "' '"],
    );
    let answer = send(&state, json_request("POST", "/api/logs/g/a:b", &one)).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["stream"]);
    let answer = send(
        &state,
        json_request("POST", "/api/logs/g/s", r#"{"events": []}"#),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["empty"]);
    let answer = send(
        &state,
        json_request("POST", "/api/logs/g/s", r#"{"events": [{"message": "x"}]}"#),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["timestamp"],
    );
    let many: Vec<String> = (0..10_001)
        .map(|_| format!(r#"{{"timestamp": {now}, "message": "x"}}"#))
        .collect();
    let body = format!(r#"{{"events": [{}]}}"#, many.join(","));
    let answer = send(&state, json_request("POST", "/api/logs/g/s", &body)).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["10000"],
    );
    let answer = send(
        &state,
        json_request("PUT", "/api/logs/g", r#"{"retention_days": 2}"#),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["not allowed", "1, 3, 5"],
    );
}

#[tokio::test]
async fn a_group_is_created_given_a_retention_and_deleted() {
    let (state, _dir) = state_with_logs();
    let answer = send(
        &state,
        json_request(
            "PUT",
            "/api/logs/%2Fvigil%2Fsystem",
            r#"{"retention_days": 30}"#,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["name"], "/vigil/system");
    assert_eq!(answer.json["retention_days"], 30);
    let answer = send(
        &state,
        json_request(
            "PUT",
            "/api/logs/%2Fvigil%2Fsystem",
            r#"{"retention_days": 7}"#,
        ),
    )
    .await;
    assert_eq!(answer.json["retention_days"], 7);
    let answer = send(
        &state,
        json_request("DELETE", "/api/logs/%2Fvigil%2Fsystem", ""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    let answer = send(
        &state,
        json_request("DELETE", "/api/logs/%2Fvigil%2Fsystem", ""),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["/vigil/system"],
    );
}

#[tokio::test]
async fn logs_off_is_a_503_that_says_so() {
    let answer = send(&demo_state(), json_request("GET", "/api/logs/groups", "")).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["logs.enabled = false"],
    );
}

#[tokio::test]
async fn test_pattern_says_which_lines_match_and_what_they_extracted() {
    let state = demo_state();
    let body = r#"{"pattern": "[ip, user, ..., status = 5*, bytes]", "events": [
        "127.0.0.1 frank GET /a 200 512",
        "10.0.0.2 - POST /b 503 17",
        "10.0.0.3 - GET /c 500 9"]}"#;
    let answer = send(&state, json_request("POST", "/api/logs/test-pattern", body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["matched"], 2);
    assert_eq!(answer.json["total"], 3);
    assert_eq!(answer.json["matches"][0]["index"], 1);
    assert_eq!(answer.json["matches"][0]["extracted"]["$status"], "503");
    assert_eq!(answer.json["matches"][1]["extracted"]["$bytes"], "9");
    let json = r#"{"pattern": "{ $.latency_us > 2000 }", "events": ["{\"latency_us\": 2500}", "{\"latency_us\": 10}", "not json"]}"#;
    let answer = send(&state, json_request("POST", "/api/logs/test-pattern", json)).await;
    assert_eq!(answer.json["matched"], 1, "{}", answer.text);
    assert_eq!(answer.json["matches"][0]["extracted"]["$.latency_us"], 2500);
}

#[tokio::test]
async fn a_bad_pattern_is_a_400_with_its_column() {
    let answer = send(
        &demo_state(),
        json_request(
            "POST",
            "/api/logs/test-pattern",
            r#"{"pattern": "{ $.a = }", "events": ["x"]}"#,
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["pattern", "column"],
    );
}

fn put_access(state: &AppState, now: i64, n: usize) -> impl std::future::Future<Output = ()> + '_ {
    let events: Vec<String> = (0..n)
        .map(|i| {
            let status = if i % 4 == 0 { 503 } else { 200 };
            // Two minutes back, spread over two whole minutes.
            let ts = (now / 60_000 - 3) * 60_000 + (i as i64 * 120_000 / n as i64);
            format!(r#"{{"timestamp": {ts}, "message": "{{\"status\": {status}, \"latency_us\": {i}}}"}}"#)
        })
        .collect();
    let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
    async move {
        let answer = send(
            state,
            json_request("POST", "/api/logs/%2Fvigil%2Faccess/s", &body),
        )
        .await;
        assert_eq!(answer.json["accepted"], n, "{}", answer.text);
    }
}

#[tokio::test]
async fn a_query_counts_exactly_per_minute_and_pages() {
    let (state, _dir) = state_with_logs();
    let now = now_ms();
    put_access(&state, now, 400).await;
    let query = r#"{"groups": ["/vigil/access"], "start": 0, "query": "filter status >= 500 | stats count(*) by bin(1m)"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", query)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["scanned"], 400);
    assert_eq!(answer.json["matched"], 100);
    let rows = answer.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{}", answer.text);
    assert_eq!(rows[0]["count(*)"], 50);
    assert_eq!(rows[1]["count(*)"], 50);
    assert!(
        rows[0]["bin(1m)"]
            .as_str()
            .expect("bin")
            .ends_with(":00.000Z"),
        "{}",
        answer.text
    );

    let page = r#"{"groups": ["/vigil/access"], "start": 0, "page_size": 150, "query": "fields latency_us | sort latency_us asc | limit 400"}"#;
    let first = send(&state, json_request("POST", "/api/logs/query", page)).await;
    assert_eq!(
        first.json["rows"].as_array().map(Vec::len),
        Some(150),
        "{}",
        first.text
    );
    assert_eq!(first.json["rows"][0]["latency_us"], 0);
    let cursor = first.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let next = page.replace(
        "\"page_size\"",
        &format!("\"cursor\": \"{cursor}\", \"page_size\""),
    );
    let second = send(&state, json_request("POST", "/api/logs/query", &next)).await;
    assert_eq!(second.json["rows"][0]["latency_us"], 150, "{}", second.text);
}

#[tokio::test]
async fn a_bad_query_names_its_column_and_a_missing_group_is_named() {
    let (state, _dir) = state_with_logs();
    let answer = send(
        &state,
        json_request(
            "POST",
            "/api/logs/query",
            r#"{"groups": ["/vigil/access"], "query": "filter status >"}"#,
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["query", "column"],
    );
    let answer = send(
        &state,
        json_request(
            "POST",
            "/api/logs/query",
            r#"{"groups": ["/nope"], "query": "limit 1"}"#,
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["/nope", "does not exist"],
    );
    let answer = send(
        &state,
        json_request(
            "POST",
            "/api/logs/query",
            r#"{"groups": ["g"], "start": "yesterday", "query": "limit 1"}"#,
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["start", "RFC 3339"],
    );
}

#[tokio::test]
async fn a_query_past_the_scan_limit_is_partial_and_says_so() {
    let (mut state, _dir) = state_with_logs();
    state.log_scan_limit = 100;
    let now = now_ms();
    put_access(&state, now, 400).await;
    let query = r#"{"groups": ["/vigil/access"], "start": 0, "query": "stats count(*)"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", query)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["scanned"], 100);
    assert!(
        answer.json["warning"]
            .as_str()
            .expect("warning")
            .contains("logs.max_scan_events")
    );
}
