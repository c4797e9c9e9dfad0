use serde_json::{Value, json};

use super::*;

fn family(namespace: &str, name: &str, unit: Unit, prom: &str, kind: FamilyKind) -> Family {
    Family {
        namespace: namespace.to_owned(),
        metric_name: name.to_owned(),
        unit,
        prom: prom.to_owned(),
        kind,
    }
}

fn families() -> Vec<Family> {
    vec![
        family(
            "InferencePipeline",
            "LatencyMs",
            Unit::Milliseconds,
            "inference_pipeline_latency_seconds",
            FamilyKind::Histogram,
        ),
        family(
            "InferencePipeline",
            "SuccessCount",
            Unit::Count,
            "inference_pipeline_success",
            FamilyKind::Counter,
        ),
        family(
            "InferencePipeline",
            "ErrorCount",
            Unit::Count,
            "inference_pipeline_errors",
            FamilyKind::Counter,
        ),
        family(
            "Vigil/Gateway",
            "4XXError",
            Unit::Count,
            "vigil_gateway_4xx_errors",
            FamilyKind::Counter,
        ),
    ]
}

fn widget(x: u64, y: u64, width: u64, height: u64, properties: Value) -> Value {
    json!({"type": "metric", "x": x, "y": y, "width": width, "height": height, "properties": properties})
}

fn exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["expr"].as_str().expect("expr"))
        .collect()
}

#[test]
fn a_time_series_queries_each_visible_row_in_the_console_units() {
    let body = json!({"start": "-PT3H", "widgets": [widget(0, 0, 16, 6, json!({
        "title": "LatencyMs", "view": "timeSeries", "period": 60, "stat": "Average",
        "metrics": [
            ["InferencePipeline", "LatencyMs", {"stat": "Average", "label": "average"}],
            [".", ".", {"stat": "p99", "label": "p99", "color": "#E69F00"}],
            ["Vigil/Gateway", "4XXError", "route", "/v1/models/{name}/score",
             {"stat": "Sum", "yAxis": "right", "period": 300}],
        ],
        "yAxis": {"left": {"min": 0, "label": "ms"}},
        "annotations": {"horizontal": [{"value": 2000, "label": "High-Latency-Alarm"}]},
    }))]});
    let out = export("Seed", &body, &families());
    assert_eq!(out.skipped, vec![]);
    let d = &out.dashboard;
    assert_eq!(d["schemaVersion"], json!(SCHEMA_VERSION));
    assert_eq!(d["title"], "Seed");
    assert_eq!(d["uid"], "vigil-Seed");
    assert_eq!(d["time"], json!({"from": "now-3h", "to": "now"}));
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panel = &d["panels"][0];
    assert_eq!(panel["type"], "timeseries");
    assert_eq!(panel["title"], "LatencyMs");
    assert_eq!(
        panel["datasource"],
        json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"})
    );
    assert_eq!(panel["gridPos"], json!({"x": 0, "y": 0, "w": 16, "h": 9}));
    assert_eq!(
        exprs(panel),
        [
            "(sum(rate(inference_pipeline_latency_seconds_sum[60s])) / \
             sum(rate(inference_pipeline_latency_seconds_count[60s]))) * 1000",
            "(histogram_quantile(0.99, sum by (le) \
             (rate(inference_pipeline_latency_seconds_bucket[60s])))) * 1000",
            "sum(increase(vigil_gateway_4xx_errors_total{route=\"/v1/models/{name}/score\"}[300s]))",
        ]
    );
    let targets = &panel["targets"];
    assert_eq!(targets[0]["legendFormat"], "average");
    assert_eq!(targets[2]["legendFormat"], "4XXError Sum");
    assert_eq!(targets[0]["interval"], "60s");
    assert_eq!(targets[2]["interval"], "300s");
    assert_eq!(targets[2]["refId"], "C");
    assert_eq!(targets[0]["range"], true);
    let defaults = &panel["fieldConfig"]["defaults"];
    // One row counts: the axis is no longer all milliseconds.
    assert_eq!(defaults["unit"], "short");
    assert_eq!(defaults["min"], 0);
    assert_eq!(defaults["custom"]["axisLabel"], "ms");
    assert_eq!(defaults["thresholds"]["steps"][1]["value"], 2000.0);
    let overrides = &panel["fieldConfig"]["overrides"];
    assert_eq!(overrides[0]["matcher"]["options"], "B");
    assert_eq!(
        overrides[0]["properties"][0]["value"]["fixedColor"],
        "#E69F00"
    );
    assert_eq!(overrides[1]["matcher"]["options"], "C");
    assert_eq!(overrides[1]["properties"][0]["id"], "custom.axisPlacement");
}

#[test]
fn single_values_over_the_range_are_instant_queries_of_the_whole_range() {
    let body = json!({"widgets": [
        widget(16, 0, 4, 3, json!({"title": "SuccessCount", "view": "singleValue", "stat": "Sum",
            "period": 60, "setPeriodToTimeRange": true,
            "metrics": [["InferencePipeline", "SuccessCount"]]})),
        widget(20, 0, 4, 3, json!({"view": "singleValue", "period": 60,
            "setPeriodToTimeRange": true,
            "metrics": [["InferencePipeline", "LatencyMs", {"stat": "p50"}]]})),
        widget(0, 3, 8, 3, json!({"view": "gauge", "stat": "p99", "period": 60,
            "yAxis": {"left": {"min": 0, "max": 5000}},
            "metrics": [["InferencePipeline", "LatencyMs"]]})),
        widget(8, 3, 8, 3, json!({"view": "bar", "stat": "Sum", "period": 60,
            "metrics": [["InferencePipeline", "SuccessCount"], [".", "ErrorCount"]]})),
    ]});
    let out = export("Numbers", &body, &families());
    assert_eq!(out.skipped, vec![]);
    let panels = out.dashboard["panels"].as_array().expect("panels");
    assert_eq!(panels[0]["type"], "stat");
    assert_eq!(
        exprs(&panels[0]),
        ["sum(increase(inference_pipeline_success_total[$__range]))"]
    );
    assert_eq!(panels[0]["targets"][0]["instant"], true);
    assert_eq!(panels[0]["targets"][0]["range"], false);
    assert_eq!(
        panels[0]["options"]["reduceOptions"]["calcs"],
        json!(["lastNotNull"])
    );
    // A percentile over the range is the latest period's, as on the console.
    assert!(
        exprs(&panels[1])[0].contains("[60s]"),
        "{:?}",
        exprs(&panels[1])
    );
    assert_eq!(panels[1]["fieldConfig"]["defaults"]["unit"], "ms");
    assert_eq!(panels[2]["type"], "gauge");
    assert_eq!(panels[2]["fieldConfig"]["defaults"]["max"], 5000);
    assert_eq!(panels[3]["type"], "barchart");
    assert_eq!(
        exprs(&panels[3]),
        [
            "sum(increase(inference_pipeline_success_total[60s]))",
            "sum(increase(inference_pipeline_errors_total[60s]))",
        ]
    );
    assert_eq!(panels[3]["transformations"][0]["id"], "reduce");
    let requires: Vec<&str> = out.dashboard["__requires"]
        .as_array()
        .expect("requires")
        .iter()
        .filter(|r| r["type"] == "panel")
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(requires, ["stat", "gauge", "barchart"]);
}

#[test]
fn metric_math_is_translated_over_the_rows_it_names() {
    let body = json!({"widgets": [widget(0, 0, 8, 6, json!({
        "title": "req/s", "period": 60,
        "metrics": [
            ["InferencePipeline", "SuccessCount", {"stat": "Sum", "id": "ok", "visible": false}],
            [".", "ErrorCount", {"stat": "Sum", "id": "err", "visible": false}],
            [{"expression": "(ok + err) / 60", "label": "req/s", "id": "rps"}],
            [{"expression": "100 * err / (ok + err)", "id": "share"}],
            [{"expression": "ABS(rps - 1) > 2", "label": "far", "id": "far"}],
        ],
    }))]});
    let out = export("Math", &body, &families());
    assert_eq!(out.skipped, vec![]);
    let panel = &out.dashboard["panels"][0];
    let ok = "(sum(increase(inference_pipeline_success_total[60s])))";
    let err = "(sum(increase(inference_pipeline_errors_total[60s])))";
    assert_eq!(
        exprs(panel),
        [
            format!("(({ok}) + ({err})) / (60)"),
            format!("((100) * ({err})) / (({ok}) + ({err}))"),
            format!("(abs((((({ok}) + ({err})) / (60))) - (1))) > bool (2)"),
        ]
    );
    // An expression without a label is named by its text.
    assert_eq!(
        panel["targets"][1]["legendFormat"],
        "100 * err / (ok + err)"
    );
}

#[test]
fn what_prometheus_cannot_say_becomes_a_text_panel_with_the_reason() {
    let body = json!({"widgets": [
        {"type": "alarm", "x": 0, "y": 0, "width": 8, "height": 3,
         "properties": {"title": "Runbook alarms", "alarms": ["a"]}},
        {"type": "log", "x": 8, "y": 0, "width": 8, "height": 3,
         "properties": {"query": "SOURCE '/vigil/access' | stats count(*) by bin(1m)"}},
        {"type": "trace-list", "x": 16, "y": 0, "width": 8, "height": 3, "properties": {}},
        {"type": "service-map", "x": 0, "y": 3, "width": 8, "height": 3, "properties": {}},
        widget(8, 3, 8, 3, json!({"metrics": [["Checkout", "LatencyMs"]]})),
        widget(16, 3, 8, 3, json!({"metrics": [["InferencePipeline", "LatencyMs", {"stat": "Minimum"}]]})),
        widget(0, 6, 8, 3, json!({"metrics": [["InferencePipeline", "SuccessCount", {"id": "a", "stat": "Sum"}],
            [{"expression": "FILL(a, 0)"}]]})),
        widget(8, 6, 8, 3, json!({"metrics": [["InferencePipeline", "SuccessCount"]]})),
        {"type": "text", "x": 16, "y": 6, "width": 8, "height": 3,
         "properties": {"markdown": "# Runbook\nsee **here**", "background": "transparent"}},
    ]});
    let out = export("Hard", &body, &families());
    let skipped: Vec<(usize, &str, &str)> = out
        .skipped
        .iter()
        .map(|s| (s.index, s.kind.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 8, "{skipped:#?}");
    assert_eq!(skipped[0].0, 0);
    assert!(skipped[0].2.contains("vigil alarms export"), "{skipped:?}");
    assert!(skipped[1].2.contains("log store"), "{skipped:?}");
    assert_eq!((skipped[2].1, skipped[3].1), ("trace-list", "service-map"));
    assert!(
        skipped[4]
            .2
            .contains("Checkout/LatencyMs is not exposed on /metrics"),
        "{skipped:?}"
    );
    assert!(
        skipped[5]
            .2
            .contains("Minimum: prometheus histograms keep no minimum"),
        "{skipped:?}"
    );
    assert!(skipped[6].2.contains("FILL"), "{skipped:?}");
    // The default statistic, Average, of a counter has no PromQL form.
    assert!(skipped[7].2.contains("Average of a counter"), "{skipped:?}");
    let panels = out.dashboard["panels"].as_array().expect("panels");
    assert!(panels[..8].iter().all(|p| p["type"] == "text"));
    let content = panels[0]["options"]["content"].as_str().expect("content");
    assert!(
        content.starts_with("**Runbook alarms** (alarm widget) is not exported to Grafana: "),
        "{content}"
    );
    assert_eq!(panels[0]["title"], "Runbook alarms");
    assert_eq!(panels[8]["options"]["mode"], "markdown");
    assert_eq!(panels[8]["options"]["content"], "# Runbook\nsee **here**");
    assert_eq!(panels[8]["transparent"], true);
}

#[test]
fn positions_keep_the_columns_and_scale_rows_so_neighbours_still_touch() {
    let body = json!({"widgets": [
        widget(16, 0, 4, 3, json!({"metrics": [["InferencePipeline", "SuccessCount", {"stat": "Sum"}]]})),
        widget(16, 3, 8, 3, json!({"metrics": [["InferencePipeline", "SuccessCount", {"stat": "Sum"}]]})),
        widget(0, 6, 24, 1, json!({"metrics": [["InferencePipeline", "SuccessCount", {"stat": "Sum"}]]})),
        json!({"type": "text", "properties": {"markdown": "x"}}),
    ]});
    let out = export("Grid", &body, &families());
    let pos: Vec<&Value> = out.dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| &p["gridPos"])
        .collect();
    assert_eq!(*pos[0], json!({"x": 16, "y": 0, "w": 4, "h": 5}));
    assert_eq!(*pos[1], json!({"x": 16, "y": 5, "w": 8, "h": 4}));
    assert_eq!(*pos[2], json!({"x": 0, "y": 9, "w": 24, "h": 2}));
    // The cloud's defaults: x and y 0, 6 × 6.
    assert_eq!(*pos[3], json!({"x": 0, "y": 0, "w": 6, "h": 9}));
    for (a, b) in [(0, 1), (1, 2)] {
        let bottom = pos[a]["y"].as_u64().expect("y") + pos[a]["h"].as_u64().expect("h");
        assert_eq!(bottom, pos[b]["y"].as_u64().expect("y"));
    }
}

#[test]
fn times_uids_and_ref_ids() {
    assert_eq!(time(Some(&json!("-PT15M")), "now-3h"), "now-15m");
    assert_eq!(time(Some(&json!("-P2W")), "now-3h"), "now-14d");
    assert_eq!(time(Some(&json!("-PT90S")), "now-3h"), "now-90s");
    assert_eq!(
        time(Some(&json!("2026-12-01T00:00:00Z")), "now"),
        "2026-12-01T00:00:00Z"
    );
    assert_eq!(time(None, "now"), "now");
    assert_eq!(uid("Vigil-Overview"), "vigil-Vigil-Overview");
    let long = "A".repeat(100);
    let a = uid(&long);
    let b = uid(&format!("{long}B"));
    assert_eq!(a.len(), 40);
    assert_ne!(a, b);
    assert!(a.starts_with("vigil-AAAA"));
    let ids: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
        .into_iter()
        .map(ref_id)
        .collect();
    assert_eq!(ids, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
}
