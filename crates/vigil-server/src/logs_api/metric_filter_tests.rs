use std::sync::Arc;

use axum::http::StatusCode;

use crate::state::AppState;
use crate::test_util::{Answer, assert_error, json_request, send, state_with_metrics};
use vigil_metrics::service::now_ms;

/// A state with metrics, logs in a temporary directory and the metric
/// filters over that metric store (as `open_logs` wires them).
fn state_with_filters() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_metrics();
    let metrics = Arc::clone(state.metrics().expect("metrics on"));
    let store = vigil_logs::store::LogStore::open(dir.path(), Default::default()).expect("store");
    let filters = super::open(dir.path(), &metrics, &[]).expect("filters");
    let logs = vigil_logs::pipeline::Logs::new(Arc::new(store)).with_metric_filters(filters);
    (state.with_logs(Arc::new(logs)), dir)
}

fn flush(state: &AppState, now: i64) -> usize {
    let logs = state.logs().expect("logs on");
    logs.metric_filters().expect("filters on").flush(now)
}

async fn req(state: &AppState, method: &str, uri: &str, body: &str) -> Answer {
    send(state, json_request(method, uri, body)).await
}

async fn ok(state: &AppState, method: &str, uri: &str, body: &str) -> serde_json::Value {
    let answer = req(state, method, uri, body).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{method} {uri}: {}",
        answer.text
    );
    answer.json
}

/// The start of the minute `back` minutes before now's.
fn minute(now: i64, back: i64) -> i64 {
    (now / 60_000 - back) * 60_000
}

async fn stat(
    state: &AppState,
    series: &str,
    stat: &str,
    start: i64,
    minutes: i64,
) -> serde_json::Value {
    let uri = format!(
        "/api/metrics/{series}&stat={stat}&period=60&start={start}&end={}",
        start + minutes * 60_000
    );
    ok(state, "GET", &uri, "").await
}

const FILTER_5XX: &str = r#"{"pattern": "[ip, user, ..., status = 5*, bytes]",
    "metric": {"name": "Bytes5xx", "namespace": "App", "value": "$bytes",
               "dimensions": {"Status": "$status"}, "unit": "Bytes"}}"#;

#[tokio::test]
async fn a_filter_turns_ingested_events_into_a_metric() {
    let (state, _dir) = state_with_filters();
    ok(&state, "PUT", "/api/logs/%2Fapp%2Fweb", "{}").await;
    let put = ok(
        &state,
        "PUT",
        "/api/logs/%2Fapp%2Fweb/metric-filters/bytes-5xx",
        FILTER_5XX,
    )
    .await;
    assert_eq!(put["group"], "/app/web");
    assert_eq!(put["name"], "bytes-5xx");
    assert_eq!(put["pattern"], "[ip, user, ..., status = 5*, bytes]");
    assert_eq!(put["metric"]["value"], "$bytes");
    assert_eq!(put["metric"]["dimensions"]["Status"], "$status");
    assert_eq!(put["metric"]["unit"], "Bytes");
    assert!(put["metric"].get("default").is_none());
    let got = ok(
        &state,
        "GET",
        "/api/logs/%2Fapp%2Fweb/metric-filters/bytes-5xx",
        "",
    )
    .await;
    assert_eq!(got, put);
    let list = ok(&state, "GET", "/api/logs/%2Fapp%2Fweb/metric-filters", "").await;
    assert_eq!(list["metric_filters"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["metric_filters"][0], put);

    let now = now_ms();
    let t = minute(now, 2);
    let lines = [
        "10.0.0.1 - GET /a 503 100",
        "10.0.0.1 - GET /b 503 20",
        "10.0.0.2 - GET /c 500 7",
        "10.0.0.3 - GET /d 200 999",
    ];
    let events: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                r#"{{"timestamp": {}, "message": "{l}"}}"#,
                t + 1_000 * i as i64
            )
        })
        .collect();
    let body = format!(r#"{{"events": [{}]}}"#, events.join(","));
    let put = ok(&state, "POST", "/api/logs/%2Fapp%2Fweb/host-1", &body).await;
    assert_eq!(put["accepted"], 4);
    assert!(put.get("emf").is_none(), "no EMF event: {put}");
    assert_eq!(flush(&state, now), 2);

    let sum = stat(&state, "App/Bytes5xx?dim.Status=503", "Sum", t, 1).await;
    assert_eq!(sum["timestamps"][0], t);
    assert_eq!(sum["values"]["Sum"][0], 120.0);
    let count = stat(&state, "App/Bytes5xx?dim.Status=500", "SampleCount", t, 1).await;
    assert_eq!(count["values"]["SampleCount"][0], 1.0);
    let listed = ok(&state, "GET", "/api/metrics?namespace=App", "").await;
    let series = listed["series"].as_array().expect("series");
    assert_eq!(series.len(), 2, "{listed}");
    assert!(series.iter().all(|s| s["unit"] == "Bytes"));
}

#[tokio::test]
async fn a_closed_minute_with_events_and_no_match_gets_the_default() {
    let (state, _dir) = state_with_filters();
    ok(&state, "PUT", "/api/logs/app", "{}").await;
    let filter = r#"{"pattern": "{ $.level = \"ERROR\" }",
        "metric": {"name": "Errors", "namespace": "App", "value": 1, "default": 0}}"#;
    let put = ok(&state, "PUT", "/api/logs/app/metric-filters/errors", filter).await;
    assert_eq!(put["metric"]["value"], "1");
    assert_eq!(put["metric"]["default"], 0.0);
    let now = now_ms();
    let (quiet, busy) = (minute(now, 3), minute(now, 2));
    let body = format!(
        r#"{{"events": [
            {{"timestamp": {}, "message": "{{\"level\": \"INFO\"}}"}},
            {{"timestamp": {}, "message": "{{\"level\": \"ERROR\"}}"}},
            {{"timestamp": {}, "message": "{{\"level\": \"ERROR\"}}"}}]}}"#,
        quiet + 5_000,
        busy + 5_000,
        busy + 6_000
    );
    ok(&state, "POST", "/api/logs/app/s", &body).await;
    flush(&state, now);
    let got = stat(&state, "App/Errors?", "Sum&stat=SampleCount", quiet, 3).await;
    assert_eq!(got["timestamps"], serde_json::json!([quiet, busy]), "{got}");
    assert_eq!(got["values"]["Sum"], serde_json::json!([0.0, 2.0]));
    assert_eq!(got["values"]["SampleCount"], serde_json::json!([1.0, 2.0]));
}

#[tokio::test]
async fn emf_events_are_reported_and_their_metrics_stored() {
    let (state, _dir) = state_with_filters();
    let now = now_ms();
    let t = minute(now, 1) + 5_000;
    let emf = format!(
        r#"{{\"_aws\":{{\"Timestamp\":{t},\"CloudWatchMetrics\":[{{\"Namespace\":\"svc\",\"Dimensions\":[[\"Model\"],[\"Model\",\"Stage\"],[]],\"Metrics\":[{{\"Name\":\"latencyMs\",\"Unit\":\"Milliseconds\",\"StorageResolution\":1}}]}}]}},\"Model\":\"fraud\",\"Stage\":\"prod\",\"latencyMs\":[12,15,40]}}"#
    );
    let bad = format!(
        r#"{{\"_aws\":{{\"Timestamp\":{t},\"CloudWatchMetrics\":[{{\"Namespace\":\"svc\",\"Metrics\":[{{\"Name\":\"gone\"}}]}}]}}}}"#
    );
    let body = format!(
        r#"{{"events": [{{"timestamp": {t}, "message": "{emf}"}}, {{"timestamp": {t}, "message": "plain"}},
            {{"timestamp": {t}, "message": "{bad}"}}]}}"#
    );
    let put = ok(&state, "POST", "/api/logs/svc/s", &body).await;
    assert_eq!(put["accepted"], 3);
    assert_eq!(put["emf"]["metrics"], 3, "{put}");
    assert_eq!(put["emf"]["invalid"][0]["index"], 2);
    let message = put["emf"]["invalid"][0]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("metric \"gone\" has no member"),
        "{message}"
    );
    // Stored at once, at 1 s resolution: no flush needed.
    let start = minute(now, 1);
    for uri in [
        "svc/latencyMs?dim.Model=fraud",
        "svc/latencyMs?dim.Model=fraud&dim.Stage=prod",
        "svc/latencyMs?unit=Milliseconds",
    ] {
        let got = stat(&state, uri, "Sum&stat=Maximum&stat=SampleCount", start, 1).await;
        assert_eq!(got["values"]["Sum"][0], 67.0, "{uri}: {got}");
        assert_eq!(got["values"]["Maximum"][0], 40.0, "{uri}");
        assert_eq!(got["values"]["SampleCount"][0], 3.0, "{uri}");
    }
    let listed = ok(&state, "GET", "/api/metrics?namespace=svc", "").await;
    assert_eq!(
        listed["series"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
}

#[tokio::test]
async fn bad_filters_are_400s_naming_the_field_or_column() {
    let (state, _dir) = state_with_filters();
    ok(&state, "PUT", "/api/logs/g", "{}").await;
    let uri = "/api/logs/g/metric-filters/f";
    let cases: [(&str, &[&str]); 6] = [
        (
            r#"{"pattern": "{ $.a = }", "metric": {"name": "a", "namespace": "A", "value": "1"}}"#,
            &["pattern: column 9"],
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "default": 0, "dimensions": {"A": "$a"}}}"#,
            &["metric.default", "cannot have a default value"],
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "$b"}}"#,
            &["metric.value", "no field `b`"],
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a", "namespace": "A", "value": "1", "unit": "Parsecs"}}"#,
            &["metric.unit", "Parsecs"],
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a", "namespace": "A", "value": "1", "colour": 1}}"#,
            &["unknown field `colour`"],
        ),
        (r#"{"pattern": ""}"#, &["missing field `metric`"]),
    ];
    for (body, needles) in cases {
        let answer = req(&state, "PUT", uri, body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", needles);
    }
    let good = r#"{"metric": {"name": "a", "namespace": "A", "value": "1"}}"#;
    let answer = req(&state, "PUT", "/api/logs/g/metric-filters/a:b", good).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["name", "':'"],
    );
    let answer = req(
        &state,
        "PUT",
        "/api/logs/bad%20group/metric-filters/f",
        good,
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["log group name"],
    );
    let list = ok(&state, "GET", "/api/logs/g/metric-filters", "").await;
    assert_eq!(list["metric_filters"], serde_json::json!([]));
}

#[tokio::test]
async fn missing_groups_and_filters_are_404s_and_a_full_group_a_409() {
    let (state, _dir) = state_with_filters();
    let good = r#"{"metric": {"name": "a", "namespace": "A", "value": "1"}}"#;
    let answer = req(&state, "PUT", "/api/logs/nowhere/metric-filters/f", good).await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["\"nowhere\""],
    );
    let answer = req(&state, "GET", "/api/logs/nowhere/metric-filters", "").await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["\"nowhere\""],
    );
    ok(&state, "PUT", "/api/logs/g", "{}").await;
    let answer = req(&state, "GET", "/api/logs/g/metric-filters/f", "").await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["\"f\"", "\"g\""],
    );
    let answer = req(&state, "DELETE", "/api/logs/g/metric-filters/f", "").await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["\"f\""]);
    for i in 0..100 {
        ok(
            &state,
            "PUT",
            &format!("/api/logs/g/metric-filters/f{i}"),
            good,
        )
        .await;
    }
    let answer = req(&state, "PUT", "/api/logs/g/metric-filters/one-more", good).await;
    assert_error(
        &answer,
        StatusCode::CONFLICT,
        "conflict",
        &["100 metric filters"],
    );
    let answer = req(&state, "DELETE", "/api/logs/g/metric-filters/f7", "").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    ok(&state, "PUT", "/api/logs/g/metric-filters/one-more", good).await;
    // Deleting the group deletes its filters.
    let answer = req(&state, "DELETE", "/api/logs/g", "").await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    ok(&state, "PUT", "/api/logs/g", "{}").await;
    let list = ok(&state, "GET", "/api/logs/g/metric-filters", "").await;
    assert_eq!(list["metric_filters"], serde_json::json!([]));
}

#[tokio::test]
async fn filters_need_metrics_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = vigil_logs::store::LogStore::open(dir.path(), Default::default()).expect("store");
    let logs = vigil_logs::pipeline::Logs::new(Arc::new(store));
    let state = crate::test_util::demo_state().with_logs(Arc::new(logs));
    ok(&state, "PUT", "/api/logs/g", "{}").await;
    let answer = req(&state, "GET", "/api/logs/g/metric-filters", "").await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["metrics.enabled = false"],
    );
}

#[tokio::test]
async fn config_filters_are_put_at_start_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state_with_metrics();
    let metrics = Arc::clone(state.metrics().expect("metrics on"));
    let entry = crate::config::MetricFilterEntry {
        group: "/vigil/access".into(),
        name: "5xx".into(),
        spec: serde_json::from_str(
            r#"{"pattern": "{ $.status >= 500 }", "metric": {"name": "5xx", "namespace": "Vigil/Access", "value": "1", "default": 0}}"#,
        )
        .expect("spec"),
    };
    let filters = super::open(dir.path(), &metrics, std::slice::from_ref(&entry)).expect("open");
    let created = filters.get("/vigil/access", "5xx").expect("put").created_ms;
    drop(filters);
    // Reopened with the same entry: unchanged, not put again.
    let filters = super::open(dir.path(), &metrics, &[entry]).expect("reopen");
    assert_eq!(
        filters.get("/vigil/access", "5xx").map(|d| d.created_ms),
        Some(created)
    );
    // And without it: the file keeps what was put.
    let filters = super::open(dir.path(), &metrics, &[]).expect("reopen");
    assert_eq!(filters.len(), 1);
}

#[test]
fn the_counters_become_vigil_logs_metrics() {
    use crate::telemetry::Telemetry;
    use crate::telemetry::events::LogMetricsRead;
    use vigil_logs::metric_filter::MetricFilterStats;

    let t = Telemetry::recording(Arc::new(vigil_metrics::registry::Registry::new()));
    let mut stats = MetricFilterStats {
        matched_events: 5,
        emf_invalid: 1,
        ..MetricFilterStats::default()
    };
    t.emit(LogMetricsRead { stats: &stats });
    stats.matched_events = 7;
    t.emit(LogMetricsRead { stats: &stats });
    let text = t.registry().render_prometheus();
    assert!(
        text.contains("vigil_logs_metric_filter_matches_total 7"),
        "{text}"
    );
    assert!(text.contains("vigil_logs_emf_invalid_total 1"), "{text}");
    assert!(
        text.contains("vigil_logs_metric_write_errors_total 0"),
        "{text}"
    );
    assert_eq!(t.recorded(), vec!["LogMetricsRead", "LogMetricsRead"]);
}
