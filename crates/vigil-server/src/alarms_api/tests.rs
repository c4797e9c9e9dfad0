#![allow(clippy::unwrap_used)]

use axum::http::StatusCode;

use crate::state::AppState;
use crate::test_util::{json_request, send, state_with_metrics};

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let answer = send(state, json_request(method, uri, body)).await;
    (answer.status, answer.json)
}

fn app() -> AppState {
    state_with_metrics()
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
    // One node alone evaluates its own alarms.
    assert_eq!(
        list["evaluator"],
        serde_json::json!({"mode": "single", "leader": true})
    );
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

#[tokio::test]
async fn a_reload_puts_the_files_alarms_into_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.json"), crate::DEMO_MODEL).unwrap();
    let config = |alarm: &str| {
        format!(
            "[[models]]\nname = \"fraud\"\npath = \"demo.json\"\n\n[[alarms]]\nname = \"{alarm}\"\n\
             namespace = \"InferencePipeline\"\nmetric_name = \"ErrorCount\"\nstatistic = \"Sum\"\n\
             period = 60\nevaluation_periods = 1\nthreshold = 0.0\n\
             comparison_operator = \"GreaterThanThreshold\"\n"
        )
    };
    let path = dir.path().join("vigil.toml");
    std::fs::write(&path, config("first")).unwrap();
    let loaded = crate::config::Config::load(&path).unwrap();
    let base = AppState::from_config(&loaded).unwrap();
    let registry = std::sync::Arc::clone(base.gateway().telemetry().registry());
    let service = std::sync::Arc::new(
        vigil_metrics::service::MetricsService::in_memory(
            vigil_metrics::tsdb::TsdbConfig::default(),
            registry,
        )
        .unwrap(),
    );
    let state = base.with_metrics(std::sync::Arc::clone(&service));
    std::fs::write(&path, config("second")).unwrap();
    crate::reload(state.gateway(), state.metrics(), state.dashboards())
        .await
        .unwrap();
    let (status, alarm) = call(&state, "GET", "/api/alarms/second", "").await;
    assert_eq!(status, StatusCode::OK, "{alarm}");
    assert_eq!(alarm["metric_name"], "ErrorCount");
}
