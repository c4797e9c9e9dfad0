use serde_json::json;

use super::store::{DashboardError, Dashboards, Source};
use super::*;

fn fields(body: &Value) -> Vec<String> {
    validate_body(body)
        .into_iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect()
}

fn seed_body() -> Value {
    json!({"start": "-PT3H", "widgets": [
        {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6, "properties": {
            "metrics": [["InferencePipeline", "LatencyMs", {"stat": "p99", "id": "p99"}],
                        [".", ".", {"stat": "p50", "label": "p50"}],
                        [{"expression": "p99 * 2", "label": "twice", "id": "e1"}]],
            "view": "timeSeries", "stat": "Average", "period": 60, "title": "LatencyMs",
            "yAxis": {"left": {"min": 0, "label": "ms"}},
            "annotations": {"horizontal": [{"value": 2000, "label": "High-Latency-Alarm"}]}}},
        {"type": "metric", "x": 12, "y": 0, "width": 6, "height": 3, "properties": {
            "metrics": [["Vigil/Model", "Predictions", "model", "fraud", "version", "1", "label", "fraud"]],
            "view": "singleValue", "stat": "Sum", "period": 60, "setPeriodToTimeRange": true}},
        {"type": "text", "x": 0, "y": 6, "width": 24, "height": 2,
         "properties": {"markdown": "# Runbook\nLatency above **2 s** pages."}},
        {"type": "alarm", "x": 0, "y": 8, "width": 12, "height": 3, "properties": {
            "alarms": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:High-Latency-Alarm",
                       "Inference-Error-Alarm"], "title": "Alarms"}},
        {"type": "log", "x": 12, "y": 8, "width": 12, "height": 6, "properties": {
            "query": "SOURCE '/vigil/access' | filter status >= 400 | sort @timestamp desc | limit 20",
            "view": "table"}},
        {"type": "trace-list", "x": 0, "y": 14, "width": 12, "height": 6,
         "properties": {"filter": "responsetime > 0.5", "limit": 20}},
        {"type": "service-map", "x": 12, "y": 14, "width": 12, "height": 6, "properties": {}},
        {"type": "metric", "x": 0, "y": 20, "width": 6, "height": 6, "properties": {
            "metrics": [["Vigil/Gateway", "Latency"]], "view": "gauge",
            "yAxis": {"left": {"min": 0, "max": 100}}}}
    ]})
}

#[test]
fn a_body_with_every_widget_type_is_valid() {
    assert_eq!(fields(&seed_body()), Vec::<String>::new());
}

#[test]
fn problems_name_the_widget_index_and_field() {
    let mut body = seed_body();
    body["widgets"][2]["type"] = json!("metric");
    assert_eq!(
        fields(&body),
        [
            "widgets[2].properties.markdown: unknown field, expected one of metrics, view, stat, period, title, region, stacked, yAxis, annotations, setPeriodToTimeRange, liveData, legend, sparkline, timezone, start",
            "widgets[2].properties.metrics: required: an array of metric rows",
        ]
    );
    let mut body = seed_body();
    body["widgets"][0]["properties"]["metrics"][0] =
        json!(["InferencePipeline", "LatencyMs", "model"]);
    assert_eq!(
        fields(&body),
        [
            "widgets[0].properties.metrics[0][2]: a dimension name without its value (dimensions come in name, value pairs)"
        ]
    );
    let mut body = seed_body();
    body["widgets"][0]["properties"]["metrics"][1] = json!([".", ".", {"stat": "p1000"}]);
    let problems = fields(&body);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("widgets[0].properties.metrics[1][2].stat: unknown statistic `p1000`"),
        "{problems:?}"
    );
    let mut body = seed_body();
    body["widgets"][0]["properties"]["metrics"][2] = json!([{"expression": "p99 +", "id": "e1"}]);
    let problems = fields(&body);
    assert!(
        problems.len() == 1
            && problems[0].starts_with("widgets[0].properties.metrics[2][0].expression: ")
            && problems[0].contains("column"),
        "{problems:?}"
    );
}

#[test]
fn dot_repeats_the_previous_row_and_needs_one() {
    let body = json!({"widgets": [{"type": "metric", "x": 0, "y": 0, "width": 6, "height": 6,
        "properties": {"metrics": [[".", "LatencyMs"]]}}]});
    assert_eq!(
        fields(&body),
        [
            "widgets[0].properties.metrics[0][0]: `.` repeats the previous row's value here, but it has none"
        ]
    );
    // A row of dots after a full row is its copy; a dot past the previous
    // row's length has nothing to repeat.
    let body = json!({"widgets": [{"type": "metric", "properties": {"metrics": [
        ["Vigil/Gateway", "Count", "route", "/v1/models/{name}/score"],
        [".", "4XXError", ".", "."],
        [".", ".", ".", ".", "extra", "."]]}}]});
    assert_eq!(
        fields(&body),
        [
            "widgets[0].properties.metrics[2][5]: `.` repeats the previous row's value here, but it has none"
        ]
    );
}

#[test]
fn the_grid_has_24_columns() {
    let body = json!({"widgets": [
        {"type": "text", "x": 20, "y": 0, "width": 6, "height": 2, "properties": {"markdown": "a"}},
        {"type": "text", "x": 24, "y": 0, "properties": {"markdown": "a"}},
        {"type": "text", "width": 0, "height": -1, "properties": {"markdown": "a"}},
        {"type": "chart", "properties": {}},
        {"type": "text", "properties": {"markdown": "a"}, "colour": 1}
    ]});
    assert_eq!(
        fields(&body),
        [
            "widgets[0].width: x (20) + width (6) is past the grid's 24 columns",
            "widgets[1].x: expected a whole number from 0 to 23, got 24",
            "widgets[2].width: expected a whole number from 1 to 24, got 0",
            "widgets[2].height: expected a whole number from 1 to 1000, got -1",
            "widgets[3].type: unknown widget type \"chart\", expected metric, text, alarm, log, trace-list or service-map",
            "widgets[4].colour: unknown field, expected type, x, y, width, height or properties",
        ]
    );
}

#[test]
fn views_gauges_annotations_alarms_and_logs_are_checked() {
    let body = json!({"start": "yesterday", "widgets": [
        {"type": "metric", "properties": {"metrics": [["A", "B"]], "view": "pie", "period": 7}},
        {"type": "metric", "properties": {"metrics": [["A", "B"]], "view": "gauge"}},
        {"type": "metric", "properties": {"metrics": [["A", "B"]],
            "annotations": {"horizontal": [{"label": "no value"}]}}},
        {"type": "alarm", "properties": {"alarms": []}},
        {"type": "log", "properties": {"query": "fields @message"}},
        {"type": "trace-list", "properties": {"limit": 0}}
    ]});
    assert_eq!(
        fields(&body),
        [
            "start: expected a relative duration such as `-PT3H` or `-P1D`, or an RFC 3339 time, got \"yesterday\"",
            "widgets[0].properties.view: expected one of timeSeries, singleValue, gauge, bar, got \"pie\"",
            "widgets[0].properties.period: expected 1, 5, 10, 20, 30 or a multiple of 60 seconds, got 7",
            "widgets[1].properties.yAxis.left: a gauge needs the range as yAxis.left.min and yAxis.left.max",
            "widgets[2].properties.annotations.horizontal[0].value: required: a number (got nothing)",
            "widgets[3].properties.alarms: needs at least one alarm",
            "widgets[4].properties.query: expected the log groups first: SOURCE '/vigil/access' | fields ...",
            "widgets[5].properties.limit: expected a whole number from 1 to 1000, got 0",
        ]
    );
    assert_eq!(
        fields(&json!([])),
        [": the dashboard body must be a JSON object"]
    );
    assert_eq!(
        fields(&json!({})),
        ["widgets: required: an array of widgets"]
    );
}

#[test]
fn log_queries_and_alarm_arns_split() {
    assert_eq!(
        split_log_query("SOURCE '/vigil/access' | SOURCE \"/vigil/system\" | stats count(*)"),
        Some((
            vec!["/vigil/access".to_owned(), "/vigil/system".to_owned()],
            "stats count(*)".to_owned()
        ))
    );
    assert_eq!(split_log_query("fields @message"), None);
    assert_eq!(split_log_query("SOURCE '/unterminated"), None);
    assert_eq!(
        alarm_name("arn:aws:cloudwatch:us-east-1:1:alarm:High-Latency-Alarm"),
        "High-Latency-Alarm"
    );
    assert_eq!(alarm_name("Inference-Error-Alarm"), "Inference-Error-Alarm");
    assert_eq!(relative_seconds("-PT3H"), Some(10_800));
    assert_eq!(relative_seconds("-P1D"), Some(86_400));
    assert_eq!(relative_seconds("-PT15M"), Some(900));
    assert_eq!(relative_seconds("-P1H"), None);
    assert_eq!(relative_seconds("PT3H"), None);
}

#[test]
fn names_follow_the_cloud_rule() {
    assert!(validate_name("Inference-Monitoring-Dashboard").is_ok());
    assert!(validate_name("a_1").is_ok());
    assert!(validate_name("").is_err());
    assert!(validate_name("has space").is_err());
    assert!(validate_name(&"x".repeat(256)).is_err());
}

fn text(markdown: &str) -> Value {
    json!({"widgets": [{"type": "text", "properties": {"markdown": markdown}}]})
}

#[test]
fn api_changes_lay_over_config_and_builtins_and_persist() {
    let dir = tempfile::tempdir().expect("tempdir");
    let builtin = vec![("Builtin".to_owned(), text("built in"))];
    let config = vec![("FromConfig".to_owned(), text("config"))];
    let store = Dashboards::open(dir.path(), builtin.clone(), config.clone()).expect("open");
    let names: Vec<(String, Source)> = store
        .list()
        .into_iter()
        .map(|d| (d.name, d.source))
        .collect();
    assert_eq!(
        names,
        [
            ("Builtin".to_owned(), Source::Builtin),
            ("FromConfig".to_owned(), Source::Config)
        ]
    );
    // A built-in is replaced by a PUT, and a DELETE brings it back; an
    // untouched built-in cannot be deleted.
    store.put("Builtin", text("mine")).expect("put");
    assert_eq!(store.get("Builtin").expect("get").source, Source::Api);
    store.delete("Builtin").expect("delete the replacement");
    assert_eq!(store.get("Builtin").expect("back").body, text("built in"));
    assert!(matches!(
        store.delete("Builtin"),
        Err(DashboardError::Builtin(_))
    ));
    // A config dashboard deleted through the API stays deleted.
    store.delete("FromConfig").expect("delete");
    assert!(store.get("FromConfig").is_none());
    assert!(matches!(
        store.delete("FromConfig"),
        Err(DashboardError::NotFound(_))
    ));
    store.put("New", text("new")).expect("put");
    // Invalid bodies are refused and change nothing.
    let err = store
        .put(
            "Bad",
            json!({"widgets": [{"type": "text", "properties": {}}]}),
        )
        .expect_err("invalid");
    assert_eq!(err.to_string(), "widgets[0].properties.markdown: required");
    assert!(store.get("Bad").is_none());
    drop(store);
    let reopened = Dashboards::open(dir.path(), builtin, config).expect("reopen");
    let names: Vec<String> = reopened.list().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["Builtin", "New"]);
    assert_eq!(reopened.get("New").expect("kept").body, text("new"));
    assert!(!dir.path().join("dashboards.json.tmp").exists());
}

#[test]
fn config_problems_name_the_entry() {
    let err = Dashboards::new(
        Vec::new(),
        vec![
            ("ok".to_owned(), text("a")),
            ("bad name".to_owned(), json!({"widgets": 1})),
            ("ok".to_owned(), text("b")),
        ],
    )
    .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "dashboards[1].name: only letters, digits, `-` and `_` are allowed, found ' '; \
         dashboards[1].widgets: expected an array, got a number; \
         dashboards[2].name: `ok` is already the name of another dashboard"
    );
}

#[test]
fn a_reconfigure_replaces_the_config_layers_under_the_api_changes() {
    let store = Dashboards::new(
        vec![("Builtin".to_owned(), text("built in"))],
        vec![
            ("Kept".to_owned(), text("old")),
            ("Gone".to_owned(), text("gone")),
            ("Deleted".to_owned(), text("deleted")),
        ],
    )
    .expect("valid");
    store.delete("Deleted").expect("delete");
    store.put("Kept", text("api")).expect("put");
    store
        .reconfigure(
            vec![("Builtin".to_owned(), text("built in, v2"))],
            vec![
                ("Kept".to_owned(), text("new")),
                ("Deleted".to_owned(), text("back?")),
                ("Added".to_owned(), text("added")),
            ],
        )
        .expect("reconfigure");
    let names: Vec<(String, Source)> = store
        .list()
        .into_iter()
        .map(|d| (d.name, d.source))
        .collect();
    assert_eq!(
        names,
        [
            ("Added".to_owned(), Source::Config),
            ("Builtin".to_owned(), Source::Builtin),
            ("Kept".to_owned(), Source::Api),
        ]
    );
    assert_eq!(
        store.get("Builtin").expect("get").body,
        text("built in, v2")
    );
    // The API's replacement wins, and deleting it deletes the config's too
    // (the store's rule for a replaced config dashboard).
    assert_eq!(store.get("Kept").expect("get").body, text("api"));
    store.delete("Kept").expect("delete the replacement");
    assert!(store.get("Kept").is_none());
    // A bad config changes nothing and names the entry.
    let err = store
        .reconfigure(Vec::new(), vec![("bad name".to_owned(), text("x"))])
        .expect_err("invalid");
    assert!(err.to_string().starts_with("dashboards[0].name: "), "{err}");
    assert!(store.get("Added").is_some() && store.get("Builtin").is_some());
}
