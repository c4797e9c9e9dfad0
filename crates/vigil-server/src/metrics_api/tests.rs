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
