#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::state::AppState;
use crate::test_util::{demo_features, demo_state, json_request, send, state_with_metrics};

async fn call(state: &AppState, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let answer = send(state, json_request(method, uri, body)).await;
    (answer.status, answer.text)
}

#[tokio::test]
async fn prometheus_text_counts_the_requests_just_made() {
    let app = demo_state();
    let features = format!(r#"{{"features": {}}}"#, demo_features(&[1.0; 8]));
    for _ in 0..3 {
        let (status, _) = call(&app, "POST", "/v1/models/fraud/score", &features).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = call(&app, "POST", "/v1/models/fraud/score", "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let route = r#"route="/v1/models/{name}/score""#;
    assert!(
        text.contains(&format!("vigil_gateway_requests_total{{{route}}} 4")),
        "{text}"
    );
    assert!(
        text.contains(&format!("vigil_gateway_4xx_errors_total{{{route}}} 1")),
        "{text}"
    );
    assert!(
        text.contains("inference_pipeline_success_total 3"),
        "{text}"
    );
    assert!(text.contains("inference_pipeline_errors_total 1"), "{text}");
    assert!(
        text.contains(r#"vigil_function_invocations_total{model="fraud",version="#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE vigil_gateway_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"vigil_gateway_latency_seconds_bucket{{{route},le="+Inf"}} 4"#
        )),
        "{text}"
    );
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn minute_ago() -> i64 {
    // Inside a completed minute, so the query's one period holds it.
    let now = crate::telemetry::now_ms();
    (now / 60_000 - 1) * 60_000 + 5_000
}

#[tokio::test]
async fn custom_metrics_are_stored_and_bad_data_listed() {
    let app = state_with_metrics();
    let t = minute_ago();
    let body = format!(
        r#"{{"metrics": [
            {{"name": "LatencyMs", "dimensions": {{"model": "fraud"}}, "unit": "Milliseconds", "timestamp": {t}, "values": [10, 20, 30], "counts": [1, 1, 2]}},
            {{"name": "LatencyMs", "dimensions": {{"model": "fraud"}}, "unit": "Furlongs", "timestamp": {t}, "value": 1}}
        ]}}"#
    );
    let (status, text) = call(&app, "POST", "/api/metrics/InferencePipeline", &body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let put = json(&text);
    assert_eq!(put["accepted"], 1);
    assert_eq!(put["rejected"][0]["index"], 1);
    assert_eq!(put["rejected"][0]["field"], "metrics[1].unit");

    let uri = format!(
        "/api/metrics/InferencePipeline/LatencyMs?dim.model=fraud&stat=Sum&stat=SampleCount&stat=Maximum&period=60&start={}&end={}",
        t - 5_000,
        t + 55_000
    );
    let (status, text) = call(&app, "GET", &uri, "").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let got = json(&text);
    assert_eq!(got["values"]["Sum"][0], 90.0);
    assert_eq!(got["values"]["SampleCount"][0], 4.0);
    assert_eq!(got["values"]["Maximum"][0], 30.0);
    assert_eq!(got["timestamps"][0], t - 5_000);

    let (status, text) = call(&app, "GET", "/api/metrics?namespace=InferencePipeline", "").await;
    assert_eq!(status, StatusCode::OK);
    let list = json(&text);
    assert_eq!(list["series"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["series"][0]["unit"], "Milliseconds");
}

#[tokio::test]
async fn nothing_valid_is_a_400_naming_each_problem() {
    let app = state_with_metrics();
    let body = r#"{"metrics": [{"name": "X", "value": 1, "values": [1]}]}"#;
    let (status, text) = call(&app, "POST", "/api/metrics/Custom", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("metrics[0]"), "{text}");
    let (status, text) = call(
        &app,
        "POST",
        "/api/metrics/:bad",
        r#"{"metrics": [{"name": "X", "value": 1}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("namespace"), "{text}");
}

#[tokio::test]
async fn a_gzip_body_is_inflated() {
    use std::io::Write;
    let app = state_with_metrics();
    let t = minute_ago();
    let body = format!(r#"{{"metrics": [{{"name": "Hits", "timestamp": {t}, "value": 7}}]}}"#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let request = Request::builder()
        .method("POST")
        .uri("/api/metrics/Custom")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let response = crate::app(app.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, text) = call(
        &app,
        "GET",
        &format!(
            "/api/metrics/Custom/Hits?stat=Sum&start={}&end={}",
            t - 5_000,
            t + 55_000
        ),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(json(&text)["values"]["Sum"][0], 7.0);
}

#[tokio::test]
async fn bad_statistics_periods_and_expressions_are_400s() {
    let app = state_with_metrics();
    let (status, text) = call(&app, "GET", "/api/metrics/Custom/Hits?stat=p101", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("p101"), "{text}");
    let (status, text) = call(&app, "GET", "/api/metrics/Custom/Hits?period=7", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("period"), "{text}");
    let body = r#"{"metrics": [
        {"id": "hits", "metric_stat": {"namespace": "Custom", "metric_name": "Hits", "period": 60, "stat": "Sum"}, "return_data": false},
        {"id": "double", "expression": "2 * (hits"}
    ]}"#;
    let (status, text) = call(&app, "POST", "/api/metrics/query", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("column"), "{text}");
}

#[tokio::test]
async fn metric_math_combines_stored_series() {
    let app = state_with_metrics();
    let t = minute_ago();
    let body = format!(
        r#"{{"metrics": [
            {{"name": "Errors", "timestamp": {t}, "value": 3}},
            {{"name": "Invocations", "timestamp": {t}, "value": 60}}
        ]}}"#
    );
    let (status, _) = call(&app, "POST", "/api/metrics/Custom", &body).await;
    assert_eq!(status, StatusCode::OK);
    let query = format!(
        r#"{{"metrics": [
            {{"id": "e", "metric_stat": {{"namespace": "Custom", "metric_name": "Errors", "period": 60, "stat": "Sum"}}, "return_data": false}},
            {{"id": "i", "metric_stat": {{"namespace": "Custom", "metric_name": "Invocations", "period": 60, "stat": "Sum"}}, "return_data": false}},
            {{"id": "rate", "expression": "100 * e / i", "label": "error rate"}}
        ], "start": {}, "end": {}}}"#,
        t - 5_000,
        t + 55_000
    );
    let (status, text) = call(&app, "POST", "/api/metrics/query", &query).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let got = json(&text);
    assert_eq!(got["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(got["results"][0]["label"], "error rate");
    assert_eq!(got["results"][0]["values"][0], 5.0);
}

#[tokio::test]
async fn metrics_off_is_a_503() {
    let app = demo_state();
    let (status, text) = call(&app, "GET", "/api/metrics", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(text.contains("metrics.enabled"), "{text}");
}

#[test]
fn accept_picks_openmetrics_only_when_preferred() {
    use super::wants_openmetrics;
    // Prometheus 2.42's scrape header.
    assert!(wants_openmetrics(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
         text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    ));
    assert!(wants_openmetrics("application/openmetrics-text"));
    assert!(wants_openmetrics(
        "Application/OpenMetrics-Text; version=\"1.0.0\"; q=0.9, text/plain; q=0.8"
    ));
    for plain in [
        "",
        "*/*",
        "text/plain",
        "text/plain;version=0.0.4",
        "text/plain, application/openmetrics-text;q=0.5",
        "application/openmetrics-text;q=0",
        "application/openmetrics-text;version=2.0.0",
        "application/json",
    ] {
        assert!(!wants_openmetrics(plain), "{plain}");
    }
}

/// A state whose every request is sampled and stored.
async fn traced_state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let traces = std::sync::Arc::new(
        crate::trace_writer::Traces::open(&crate::config::TracesConfig::default(), dir.path())
            .unwrap(),
    );
    let state = demo_state();
    state
        .gateway()
        .telemetry()
        .set_traces(std::sync::Arc::clone(&traces.writer) as _);
    let state = state.with_traces(traces);
    let (status, text) = call(
        &state,
        "PUT",
        "/api/traces/sampling-rules/Default",
        r#"{"reservoir": 0, "fixed_rate": 1.0}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    (state, dir)
}

async fn scrape(state: &AppState, accept: Option<&str>) -> (String, String) {
    let mut request = json_request("GET", "/metrics", "");
    if let Some(accept) = accept {
        request
            .headers_mut()
            .insert("accept", accept.parse().unwrap());
    }
    let answer = send(state, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let content_type = answer.headers["content-type"].to_str().unwrap().to_owned();
    (content_type, answer.text)
}

#[tokio::test]
async fn openmetrics_scrapes_link_latency_buckets_to_stored_traces() {
    let (state, _dir) = traced_state().await;
    let features = format!(r#"{{"features": {}}}"#, demo_features(&[1.0; 8]));
    let answer = send(
        &state,
        json_request("POST", "/v1/models/fraud/score", &features),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let traceresponse = answer.headers["traceresponse"].to_str().unwrap();
    let trace_id = traceresponse.split('-').nth(1).unwrap().to_owned();

    let prometheus_accept = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (content_type, text) = scrape(&state, Some(prometheus_accept)).await;
    assert_eq!(content_type, super::OPENMETRICS_CONTENT_TYPE);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "# TYPE vigil_gateway_requests counter"),
        "{text}"
    );
    let exemplar = format!("# {{trace_id=\"{trace_id}\"}} ");
    for family in [
        "vigil_gateway_latency_seconds_bucket{route=\"/v1/models/{name}/score\",",
        "inference_pipeline_latency_seconds_bucket{",
    ] {
        let linked: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(family) && l.contains(&exemplar))
            .collect();
        assert_eq!(linked.len(), 1, "{family} with {exemplar} in\n{text}");
    }
    // That trace is stored: the link leads somewhere.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = call(&state, "GET", &format!("/api/traces/{trace_id}"), "").await;
        if status == StatusCode::OK {
            assert!(body.contains(&trace_id), "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Without OpenMetrics in Accept: the 0.0.4 text, unchanged.
    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let (content_type, text) = scrape(&state, accept).await;
        assert_eq!(content_type, super::PROMETHEUS_CONTENT_TYPE, "{accept:?}");
        assert!(
            !text.contains("trace_id") && !text.contains("# EOF"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l == "# TYPE vigil_gateway_requests_total counter"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_unsampled_request_leaves_no_exemplar() {
    let (state, _dir) = traced_state().await;
    let (status, text) = call(
        &state,
        "PUT",
        "/api/traces/sampling-rules/Default",
        r#"{"reservoir": 0, "fixed_rate": 0.0}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let features = format!(r#"{{"features": {}}}"#, demo_features(&[1.0; 8]));
    let (status, _) = call(&state, "POST", "/v1/models/fraud/score", &features).await;
    assert_eq!(status, StatusCode::OK);
    let (_, text) = scrape(&state, Some("application/openmetrics-text")).await;
    // (The sampling-rule changes before it were sampled, so their route
    // has exemplars.)
    let score_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("vigil_gateway_latency_seconds_bucket{route=\"/v1/models/{name}/score\"")
                || l.starts_with("inference_pipeline_latency_seconds_bucket")
        })
        .collect();
    assert_eq!(score_lines.len(), 2 * 18, "{text}");
    assert!(
        score_lines.iter().all(|l| !l.contains("trace_id")),
        "{score_lines:#?}"
    );
}
