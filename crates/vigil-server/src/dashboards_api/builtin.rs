//! The two dashboards Vigil ships: the seed runbook's
//! `Inference-Monitoring-Dashboard` and `Vigil-Overview`. Every metric in
//! them is spelled from `telemetry::names`, the module Vigil emits from, so
//! a renamed metric cannot leave a dashboard graphing nothing; the
//! per-model rows and the alarm list follow the running config.

use serde_json::{Value, json};

use crate::config::Config;
use crate::telemetry::names::{
    CACHE_HITS, CACHE_MISSES, DIM_LABEL, DIM_MODEL, DIM_REASON, DIM_ROUTE, DIM_VERSION, DROPPED,
    ERRORS_4XX, ERRORS_5XX, MetricDef, PIPELINE_ERRORS, PIPELINE_LATENCY, PIPELINE_SUCCESS,
    PREDICTIONS, SCORE, SPILLED, THROTTLES, WRITE_LATENCY,
};

/// The seed runbook's dashboard.
pub const SEED: &str = "Inference-Monitoring-Dashboard";
/// Vigil's overview of itself.
pub const OVERVIEW: &str = "Vigil-Overview";

/// The seed runbook's alarms (`config::demo_alarms`).
const SEED_ALARMS: [&str; 2] = ["High-Latency-Alarm", "Inference-Error-Alarm"];
/// `High-Latency-Alarm`'s threshold, drawn on the latency graph.
const SEED_LATENCY_THRESHOLD_MS: f64 = 2000.0;

/// The overview's log widget: every request of the access log, per minute.
const ACCESS_PER_MINUTE: &str = "SOURCE '/vigil/access' | stats count(*) as requests by bin(1m)";

/// The scoring routes' templates (the 4XX/5XX rows).
const SCORING_ROUTES: [&str; 3] = [
    "/v1/models/{name}/score",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
];

fn row(def: &MetricDef, dims: &[(&str, &str)], options: Value) -> Value {
    let mut items = vec![json!(def.namespace), json!(def.name)];
    for (name, value) in dims {
        items.push(json!(name));
        items.push(json!(value));
    }
    if options.as_object().is_some_and(|o| !o.is_empty()) {
        items.push(options);
    }
    Value::Array(items)
}

fn metric(x: u32, y: u32, width: u32, height: u32, properties: Value) -> Value {
    json!({"type": "metric", "x": x, "y": y, "width": width, "height": height, "properties": properties})
}

/// Both dashboards, for `config`.
pub fn dashboards(config: &Config) -> Vec<(String, Value)> {
    vec![
        (SEED.to_owned(), seed()),
        (OVERVIEW.to_owned(), overview(config)),
    ]
}

/// LatencyMs over time, SuccessCount and ErrorCount as numbers over the
/// dashboard's range, and the runbook's two alarms.
pub fn seed() -> Value {
    json!({"start": "-PT3H", "widgets": [
        metric(0, 0, 16, 6, json!({
            "title": "LatencyMs", "view": "timeSeries", "period": 60, "stat": "Average",
            "metrics": [
                row(&PIPELINE_LATENCY, &[], json!({"stat": "Average", "label": "average"})),
                row(&PIPELINE_LATENCY, &[], json!({"stat": "p99", "label": "p99"})),
            ],
            "yAxis": {"left": {"min": 0, "label": "ms"}},
            "annotations": {"horizontal": [{"value": SEED_LATENCY_THRESHOLD_MS, "label": SEED_ALARMS[0]}]},
        })),
        metric(16, 0, 4, 3, json!({
            "title": "SuccessCount", "view": "singleValue", "stat": "Sum", "period": 60,
            "setPeriodToTimeRange": true,
            "metrics": [row(&PIPELINE_SUCCESS, &[], json!({}))],
        })),
        metric(20, 0, 4, 3, json!({
            "title": "ErrorCount", "view": "singleValue", "stat": "Sum", "period": 60,
            "setPeriodToTimeRange": true,
            "metrics": [row(&PIPELINE_ERRORS, &[], json!({}))],
        })),
        {"type": "alarm", "x": 16, "y": 3, "width": 8, "height": 3,
         "properties": {"title": "Runbook alarms", "alarms": SEED_ALARMS}},
    ]})
}

fn with_label<'a>(dims: &[(&'a str, &'a str)], label: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut out = dims.to_vec();
    out.push((DIM_LABEL, label));
    out
}

/// Requests, latency, errors, throttles, the cache, each model's decisions
/// and scores, the inference log and every configured alarm.
pub fn overview(config: &Config) -> Value {
    let errors: Vec<Value> = SCORING_ROUTES
        .iter()
        .flat_map(|&route| {
            [
                row(
                    &ERRORS_4XX,
                    &[(DIM_ROUTE, route)],
                    json!({"label": format!("4XX {route}")}),
                ),
                row(
                    &ERRORS_5XX,
                    &[(DIM_ROUTE, route)],
                    json!({"label": format!("5XX {route}")}),
                ),
            ]
        })
        .collect();
    let throttles: Vec<Value> = ["rate", "key_rate", "concurrency"]
        .iter()
        .map(|&reason| {
            row(
                &THROTTLES,
                &[(DIM_REASON, reason)],
                json!({"label": reason}),
            )
        })
        .collect();
    let mut widgets = vec![
        metric(
            0,
            0,
            8,
            6,
            json!({
                "title": "Scoring requests per second", "view": "timeSeries", "period": 60,
                "metrics": [
                    row(&PIPELINE_SUCCESS, &[], json!({"stat": "Sum", "id": "ok", "visible": false})),
                    row(&PIPELINE_ERRORS, &[], json!({"stat": "Sum", "id": "err", "visible": false})),
                    [{"expression": "(ok + err) / 60", "label": "req/s", "id": "rps"}],
                ],
            }),
        ),
        metric(
            8,
            0,
            8,
            6,
            json!({
                "title": "Scoring latency (ms)", "view": "timeSeries", "period": 60,
                "metrics": [
                    row(&PIPELINE_LATENCY, &[], json!({"stat": "p50", "label": "p50"})),
                    row(&PIPELINE_LATENCY, &[], json!({"stat": "p99", "label": "p99"})),
                ],
                "yAxis": {"left": {"min": 0, "label": "ms"}},
            }),
        ),
        metric(
            16,
            0,
            8,
            6,
            json!({
                "title": "4XX and 5XX answers (scoring routes)", "view": "timeSeries",
                "stat": "Sum", "period": 60, "metrics": errors,
            }),
        ),
        metric(
            0,
            6,
            8,
            6,
            json!({
                "title": "Throttles", "view": "timeSeries", "stat": "Sum", "period": 60,
                "metrics": throttles,
            }),
        ),
        metric(
            8,
            6,
            8,
            6,
            json!({
                "title": "Prediction cache hit ratio (%)", "view": "timeSeries", "period": 60,
                "metrics": [
                    row(&CACHE_HITS, &[], json!({"stat": "Sum", "id": "hits", "visible": false})),
                    row(&CACHE_MISSES, &[], json!({"stat": "Sum", "id": "misses", "visible": false})),
                    [{"expression": "100 * hits / (hits + misses)", "label": "hit ratio", "id": "ratio"}],
                ],
                "yAxis": {"left": {"min": 0, "max": 100, "label": "%"}},
            }),
        ),
        metric(
            16,
            6,
            8,
            6,
            json!({
                "title": "Inference log: write latency (ms), spilled and dropped records",
                "view": "timeSeries", "period": 60,
                "metrics": [
                    row(&WRITE_LATENCY, &[], json!({"stat": "p99", "label": "write p99 (ms)"})),
                    row(&SPILLED, &[], json!({"stat": "Sum", "label": "spilled", "yAxis": "right"})),
                    row(&DROPPED, &[], json!({"stat": "Sum", "label": "dropped", "yAxis": "right"})),
                ],
            }),
        ),
    ];
    let mut shares = Vec::new();
    let mut scores = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        let dims = [
            (DIM_MODEL, model.name.as_str()),
            (DIM_VERSION, model.version.as_str()),
        ];
        let [negative, positive] = &model.labels;
        let tag = format!("{}@{}", model.name, model.version);
        shares.push(row(
            &PREDICTIONS,
            &with_label(&dims, positive),
            json!({"stat": "Sum", "id": format!("pos{i}"), "visible": false}),
        ));
        shares.push(row(
            &PREDICTIONS,
            &with_label(&dims, negative),
            json!({"stat": "Sum", "id": format!("neg{i}"), "visible": false}),
        ));
        shares.push(json!([{
            "expression": format!("100 * pos{i} / (pos{i} + neg{i})"),
            "label": format!("{positive} share {tag}"), "id": format!("share{i}")}]));
        scores.push(row(
            &SCORE,
            &dims,
            json!({"stat": "p50", "label": format!("p50 {tag}")}),
        ));
        scores.push(row(
            &SCORE,
            &dims,
            json!({"stat": "p99", "label": format!("p99 {tag}")}),
        ));
    }
    if !shares.is_empty() {
        widgets.push(metric(0, 12, 12, 6, json!({
            "title": "Share of positive decisions (%) per model and version", "view": "timeSeries",
            "period": 60, "metrics": shares, "yAxis": {"left": {"min": 0, "max": 100, "label": "%"}},
        })));
        widgets.push(metric(
            12,
            12,
            12,
            6,
            json!({
                "title": "Score p50 and p99 per model and version", "view": "timeSeries",
                "period": 60, "metrics": scores, "yAxis": {"left": {"min": 0, "max": 1}},
            }),
        ));
    }
    let alarms: Vec<&str> = config.alarms.iter().map(|a| a.name()).collect();
    if !alarms.is_empty() {
        widgets.push(
            json!({"type": "alarm", "x": 0, "y": 18, "width": 24, "height": 3,
            "properties": {"title": "Alarm states", "alarms": alarms}}),
        );
    }
    widgets.push(
        json!({"type": "log", "x": 0, "y": 21, "width": 24, "height": 5,
        "properties": {"title": "Requests per minute (the access log)", "view": "timeSeries",
            "query": ACCESS_PER_MINUTE}}),
    );
    json!({"start": "-PT3H", "widgets": widgets})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::names;

    /// The sample names `GET /metrics` shows once every family has a
    /// series (a model and a subscription resolved).
    fn exposed_series() -> std::collections::BTreeSet<String> {
        use std::sync::Arc;
        let t =
            crate::telemetry::Telemetry::new(Arc::new(vigil_metrics::registry::Registry::new()));
        let _model = crate::telemetry::ModelHandles::resolve(
            t.registry(),
            "fraud",
            "1",
            &["legit".into(), "fraud".into()],
        );
        let _subscription = crate::telemetry::SubscriptionHandles::resolve(t.registry(), "/g:f");
        t.registry()
            .render_prometheus()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The metric names a PromQL expression selects: identifiers followed
    /// by `{` or `[`.
    fn selectors(expr: &str) -> Vec<&str> {
        let bytes = expr.as_bytes();
        let mut out = Vec::new();
        let mut start = None;
        for (i, &b) in bytes.iter().enumerate() {
            let word = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
            match (start, word) {
                (None, true) if !b.is_ascii_digit() => start = Some(i),
                (Some(s), false) => {
                    // Label values are quoted, `$__range` is Grafana's.
                    let quoted = expr[..s].matches('"').count() % 2 == 1;
                    if (b == b'{' || b == b'[')
                        && !quoted
                        && bytes.get(s.wrapping_sub(1)) != Some(&b'$')
                    {
                        out.push(&expr[s..i]);
                    }
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_built_ins_export_to_grafana_over_series_metrics_exposes() {
        use vigil_metrics::dashboard::grafana;
        let exposed = exposed_series();
        assert!(
            exposed.contains("inference_pipeline_success_total"),
            "{exposed:?}"
        );
        let config = Config::demo();
        let mut kinds = Vec::new();
        for (name, body) in dashboards(&config) {
            let out = grafana::export(&name, &body, &names::families());
            let skipped: Vec<(String, usize)> = out
                .skipped
                .iter()
                .map(|s| (s.kind.clone(), s.index))
                .collect();
            let panels = out.dashboard["panels"].as_array().expect("panels");
            assert_eq!(
                panels.len(),
                body["widgets"].as_array().expect("widgets").len()
            );
            kinds.push((
                name.clone(),
                skipped,
                panels
                    .iter()
                    .map(|p| p["type"].as_str().expect("type").to_owned())
                    .collect::<Vec<_>>(),
            ));
            for panel in panels {
                for target in panel["targets"].as_array().into_iter().flatten() {
                    let expr = target["expr"].as_str().expect("expr");
                    let names = selectors(expr);
                    assert!(!names.is_empty(), "{name}: no series in {expr}");
                    for series in names {
                        assert!(
                            exposed.contains(series),
                            "{name}: {series} (in {expr}) is not on /metrics"
                        );
                    }
                }
            }
        }
        assert_eq!(kinds[0].0, SEED);
        assert_eq!(kinds[0].1, [("alarm".to_owned(), 3)]);
        assert_eq!(kinds[0].2, ["timeseries", "stat", "stat", "text"]);
        assert_eq!(kinds[1].0, OVERVIEW);
        assert_eq!(kinds[1].1, [("alarm".to_owned(), 8), ("log".to_owned(), 9)]);
        let mut want = vec!["timeseries"; 8];
        want.extend(["text", "text"]);
        assert_eq!(kinds[1].2, want);
        assert_eq!(
            selectors(r#"sum(increase(a_total{route="/x{y}"}[60s])) / b_count[$__range] + c"#),
            ["a_total", "b_count"]
        );
    }

    #[test]
    fn the_built_ins_are_valid_and_use_emitted_metrics() {
        let config = Config::demo();
        for (name, body) in dashboards(&config) {
            let problems = vigil_metrics::dashboard::store::check(&name, &body);
            assert!(problems.is_empty(), "{name}: {problems:?}");
            // Every metric row names a metric Vigil emits.
            for widget in body["widgets"].as_array().expect("widgets") {
                for row in widget["properties"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let Some(namespace) = row[0].as_str() else {
                        continue;
                    };
                    let metric = row[1].as_str().expect("name");
                    assert!(
                        names::ALL
                            .iter()
                            .any(|d| d.namespace == namespace && d.name == metric),
                        "{name}: {namespace}/{metric} is not emitted"
                    );
                }
            }
        }
        let seed = seed();
        let titles: Vec<&str> = seed["widgets"]
            .as_array()
            .expect("widgets")
            .iter()
            .filter_map(|w| w["properties"]["title"].as_str())
            .collect();
        assert_eq!(
            titles,
            ["LatencyMs", "SuccessCount", "ErrorCount", "Runbook alarms"]
        );
        assert_eq!(
            seed["widgets"][3]["properties"]["alarms"],
            json!(SEED_ALARMS)
        );
        let overview = overview(&config);
        let text = overview.to_string();
        assert!(
            text.contains(r#""model","fraud","version","1","label","fraud""#),
            "{text}"
        );
        assert!(text.contains("High-Latency-Alarm") && text.contains("Inference-Error-Alarm"));
        // The log widget's query parses (the API checks PUT bodies so).
        let (groups, query) =
            vigil_metrics::dashboard::split_log_query(ACCESS_PER_MINUTE).expect("SOURCE");
        assert_eq!(groups, ["/vigil/access"]);
        vigil_logs::query::Query::parse(&query).expect("the overview's log query parses");
    }
}
