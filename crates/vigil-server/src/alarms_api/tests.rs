#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::test_util::demo_state;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn app() -> axum::Router {
    let state = demo_state();
    let registry = std::sync::Arc::clone(state.gateway().telemetry().registry());
    let service = vigil_metrics::service::MetricsService::in_memory(
        vigil_metrics::tsdb::TsdbConfig::default(),
        registry,
    )
    .unwrap();
    crate::app(state.with_metrics(std::sync::Arc::new(service)))
}

const ALARM: &str = r#"{"namespace": "InferencePipeline", "metric_name": "ErrorCount",
    "statistic": "Sum", "period": 10, "evaluation_periods": 3, "datapoints_to_alarm": 2,
    "threshold": 0, "comparison_operator": "GreaterThanThreshold",
    "alarm_actions": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]}"#;

#[tokio::test]
async fn put_get_list_set_state_history_delete() {
    let app = app();
    let (status, alarm) = call(&app, "PUT", "/api/alarms/errors", ALARM).await;
    assert_eq!(status, StatusCode::OK, "{alarm}");
    assert_eq!(alarm["name"], "errors");
    assert_eq!(alarm["state_value"], "INSUFFICIENT_DATA");
    assert_eq!(alarm["datapoints_to_alarm"], 2);

    let (status, list) = call(&app, "GET", "/api/alarms?state=INSUFFICIENT_DATA", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["alarms"].as_array().map(Vec::len), Some(1));
    let (_, list) = call(&app, "GET", "/api/alarms?state=ALARM", "").await;
    assert_eq!(list["alarms"].as_array().map(Vec::len), Some(0));

    let (status, forced) = call(
        &app,
        "POST",
        "/api/alarms/errors/state",
        r#"{"state_value": "ALARM", "state_reason": "testing the pager"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    assert_eq!(forced["state_value"], "ALARM");
    assert_eq!(forced["state_reason"], "testing the pager");

    let (status, history) = call(&app, "GET", "/api/alarms/errors/history", "").await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["item_type"].as_str())
        .collect();
    assert!(kinds.contains(&"StateUpdate"), "{kinds:?}");
    assert!(kinds.contains(&"ConfigurationUpdate"), "{kinds:?}");

    let (status, _) = call(&app, "DELETE", "/api/alarms/errors", "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&app, "GET", "/api/alarms/errors", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn bad_alarms_are_400s_naming_each_field() {
    let app = app();
    let bad = r#"{"namespace": "N", "metric_name": "M", "statistic": "Median", "period": 7,
        "evaluation_periods": 1, "threshold": 1, "comparison_operator": "Bigger",
        "alarm_actions": [{"type": "webhook", "url": "ftp://x"}]}"#;
    let (status, body) = call(&app, "PUT", "/api/alarms/a", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"].as_str().unwrap_or_default().to_owned();
    for field in [
        "statistic",
        "period",
        "comparison_operator",
        "alarm_actions[0].url",
    ] {
        assert!(message.contains(field), "{field} missing from {message}");
    }
    let (status, body) = call(&app, "PUT", "/api/alarms/a", r#"{"name": "b"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let rule = r#"{"alarm_rule": "ALARM(missing) AND"}"#;
    let (status, body) = call(&app, "PUT", "/api/alarms/c", rule).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("column"),
        "{body}"
    );
}

#[tokio::test]
async fn a_composite_refers_to_existing_alarms_and_protects_them() {
    let app = app();
    let (status, _) = call(&app, "PUT", "/api/alarms/errors", ALARM).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &app,
        "PUT",
        "/api/alarms/pager",
        r#"{"alarm_rule": "ALARM(nope)"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(
        &app,
        "PUT",
        "/api/alarms/pager",
        r#"{"alarm_rule": "ALARM(errors) OR FALSE"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alarm_type"], "composite");
    let (status, body) = call(&app, "DELETE", "/api/alarms/errors", "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}
