#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::alarm::{CompositeAlarmSpec, MetricAlarmSpec};

fn family(namespace: &str, metric_name: &str, unit: Unit, prom: &str, kind: FamilyKind) -> Family {
    Family {
        namespace: namespace.into(),
        metric_name: metric_name.into(),
        unit,
        prom: prom.into(),
        kind,
    }
}

/// A slice of the server's table (the real one is tested in crates/vigil).
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
            "ErrorCount",
            Unit::Count,
            "inference_pipeline_errors",
            FamilyKind::Counter,
        ),
        family(
            "Vigil/Gateway",
            "Count",
            Unit::Count,
            "vigil_gateway_requests",
            FamilyKind::Counter,
        ),
    ]
}

fn alarm(fields: Value) -> MetricAlarm {
    let mut spec = json!({
        "name": "A",
        "namespace": "InferencePipeline",
        "metric_name": "LatencyMs",
        "extended_statistic": "p99",
        "period": 60,
        "evaluation_periods": 1,
        "threshold": 2000.0,
        "comparison_operator": "GreaterThanThreshold",
    });
    for (k, v) in fields.as_object().unwrap() {
        if v.is_null() {
            spec.as_object_mut().unwrap().remove(k);
        } else {
            spec[k] = v.clone();
        }
    }
    serde_json::from_value::<MetricAlarmSpec>(spec)
        .unwrap()
        .validate()
        .unwrap()
}

/// Decodes a YAML double-quoted scalar, the only scalar form `rules` writes;
/// `None` when `s` is not exactly one such scalar.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// One parsed rule: key → value for `alert`, `expr`, `for`, `labels.x`,
/// `annotations.x`.
type Parsed = Vec<(String, String)>;

/// A tiny reader for exactly the shape `rules` writes; panics on any other
/// line, so a malformed file fails the test.
fn parse(yaml: &str) -> Vec<Parsed> {
    let mut rules: Vec<Parsed> = Vec::new();
    let mut section = "";
    let mut header = 0;
    for line in yaml.lines() {
        if line.starts_with('#') {
            continue;
        }
        match line {
            "groups:" | "  - name: \"vigil-alarms\"" | "    rules:" | "    rules: []" => {
                header += 1;
                continue;
            }
            "        labels:" => section = "labels.",
            "        annotations:" => section = "annotations.",
            _ => {
                let (indent, rest) = if let Some(rest) = line.strip_prefix("      - ") {
                    rules.push(Vec::new());
                    section = "";
                    (6, rest)
                } else {
                    let trimmed = line.trim_start();
                    (line.len() - trimmed.len(), trimmed)
                };
                let (key, value) = rest.split_once(": ").unwrap_or_else(|| panic!("{line}"));
                assert!(
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                let expected = if section.is_empty() { 6..=8 } else { 10..=10 };
                assert!(expected.contains(&indent), "indent of {line}");
                let value =
                    unquote(value).unwrap_or_else(|| panic!("not one quoted scalar: {line}"));
                rules
                    .last_mut()
                    .unwrap_or_else(|| panic!("{line}"))
                    .push((format!("{section}{key}"), value));
            }
        }
    }
    assert_eq!(header, 3, "{yaml}");
    rules
}

fn get<'a>(rule: &'a Parsed, key: &str) -> &'a str {
    rule.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {rule:?}"))
}

fn only_rule(export: &RulesExport) -> Parsed {
    assert_eq!(export.skipped, vec![], "{}", export.yaml);
    let mut rules = parse(&export.yaml);
    assert_eq!(rules.len(), 1, "{}", export.yaml);
    rules.remove(0)
}

fn skip_reason(fields: Value) -> String {
    let export = rules(&[alarm(fields)], &families());
    assert_eq!(parse(&export.yaml).len(), 0, "{}", export.yaml);
    assert_eq!(export.skipped.len(), 1);
    export.skipped[0].reason.clone()
}

#[test]
fn the_seed_alarms_export() {
    let latency = alarm(json!({"name": "High-Latency-Alarm"}));
    let errors = alarm(json!({
        "name": "Inference-Error-Alarm",
        "metric_name": "ErrorCount",
        "extended_statistic": null,
        "statistic": "Sum",
        "threshold": 0.0,
    }));
    let export = rules(&[latency, errors], &families());
    assert_eq!(export.skipped, vec![]);
    let parsed = parse(&export.yaml);
    assert_eq!(parsed.len(), 2, "{}", export.yaml);
    assert_eq!(get(&parsed[0], "alert"), "High_Latency_Alarm");
    assert_eq!(
        get(&parsed[0], "expr"),
        "(histogram_quantile(0.99, sum by (le) (rate(inference_pipeline_latency_seconds_bucket[60s])))) > 2"
    );
    assert_eq!(get(&parsed[0], "for"), "0s");
    assert_eq!(get(&parsed[0], "labels.vigil_alarm"), "High-Latency-Alarm");
    assert_eq!(
        get(&parsed[0], "labels.vigil_namespace"),
        "InferencePipeline"
    );
    assert_eq!(get(&parsed[0], "labels.vigil_metric"), "LatencyMs");
    assert!(get(&parsed[0], "annotations.summary").contains("p99 of InferencePipeline/LatencyMs"));
    let description = get(&parsed[0], "annotations.description");
    assert!(
        description.contains("greater than 2000 for 1 of the last 1"),
        "{description}"
    );
    assert!(
        description.contains("(/metrics has seconds: 2)"),
        "{description}"
    );
    assert!(description.ends_with("value {{ $value }}"), "{description}");
    assert!(!get(&parsed[1], "annotations.description").contains("/metrics has seconds"));
    assert_eq!(get(&parsed[1], "alert"), "Inference_Error_Alarm");
    assert_eq!(
        get(&parsed[1], "expr"),
        "(sum(increase(inference_pipeline_errors_total[60s]))) > 0"
    );
}

#[test]
fn n_of_n_waits_n_minus_one_periods() {
    let r = only_rule(&rules(
        &[alarm(json!({"evaluation_periods": 3, "period": 300}))],
        &families(),
    ));
    assert_eq!(get(&r, "for"), "600s");
    assert!(get(&r, "expr").contains("[300s]"));
}

#[test]
fn m_of_n_counts_breaching_periods_in_a_subquery() {
    let r = only_rule(&rules(
        &[alarm(
            json!({"evaluation_periods": 5, "datapoints_to_alarm": 2}),
        )],
        &families(),
    ));
    assert_eq!(
        get(&r, "expr"),
        "sum_over_time(((histogram_quantile(0.99, sum by (le) (rate(inference_pipeline_latency_seconds_bucket[60s])))) > bool 2)[300s:60s]) >= 2"
    );
    assert_eq!(get(&r, "for"), "0s");
}

#[test]
fn operators_and_histogram_statistics_map() {
    let cases = [
        (
            "GreaterThanOrEqualToThreshold",
            "SampleCount",
            "(sum(increase(inference_pipeline_latency_seconds_count[60s]))) >= 5",
        ),
        (
            "LessThanThreshold",
            "Sum",
            "(sum(increase(inference_pipeline_latency_seconds_sum[60s]))) < 0.005",
        ),
        (
            "LessThanOrEqualToThreshold",
            "Average",
            "(sum(rate(inference_pipeline_latency_seconds_sum[60s])) / sum(rate(inference_pipeline_latency_seconds_count[60s]))) <= 0.005",
        ),
        (
            "GreaterThanThreshold",
            "Maximum",
            "(histogram_quantile(1, sum by (le) (rate(inference_pipeline_latency_seconds_bucket[60s])))) > 0.005",
        ),
    ];
    for (op, stat, expected) in cases {
        let r = only_rule(&rules(
            &[alarm(json!({
                "comparison_operator": op,
                "extended_statistic": null,
                "statistic": stat,
                "threshold": 5.0,
            }))],
            &families(),
        ));
        assert_eq!(get(&r, "expr"), expected, "{op} {stat}");
    }
    let r = only_rule(&rules(
        &[alarm(
            json!({"extended_statistic": "p99.9", "threshold": -0.25}),
        )],
        &families(),
    ));
    assert!(
        get(&r, "expr").starts_with("(histogram_quantile(0.999, ")
            && get(&r, "expr").ends_with(" > -0.00025"),
        "{}",
        get(&r, "expr")
    );
}

#[test]
fn dimensions_become_escaped_label_matchers() {
    let r = only_rule(&rules(
        &[alarm(json!({
            "metric_name": "ErrorCount",
            "namespace": "InferencePipeline",
            "extended_statistic": null,
            "statistic": "Sum",
            "dimensions": {"model": "a\"b\\c", "Route.Name": "/v1/models/{name}/score"},
        }))],
        &families(),
    ));
    // BTreeMap order: "Route.Name" < "model".
    assert_eq!(
        get(&r, "expr"),
        r#"(sum(increase(inference_pipeline_errors_total{Route_Name="/v1/models/{name}/score",model="a\"b\\c"}[60s]))) > 2000"#
    );
    assert!(
        get(&r, "annotations.description")
            .contains("(Route.Name=/v1/models/{name}/score, model=a\"b\\c)")
    );
}

#[test]
fn annotations_survive_quotes_newlines_and_template_braces() {
    let description = "p99 \"fraud\"\\ line\nnext {{ .Bad }}\ttab";
    let r = only_rule(&rules(
        &[alarm(
            json!({"name": "9 lives: ünïcode", "description": description}),
        )],
        &families(),
    ));
    assert_eq!(get(&r, "alert"), "_9_lives___n_code");
    assert_eq!(get(&r, "labels.vigil_alarm"), "9 lives: ünïcode");
    assert_eq!(
        get(&r, "annotations.summary"),
        "p99 \"fraud\"\\ line\nnext {{ \"{{\" }} .Bad }}\ttab"
    );
}

#[test]
fn low_sample_percentiles_can_be_ignored() {
    let r = only_rule(&rules(
        &[alarm(
            json!({"evaluate_low_sample_count_percentile": "ignore"}),
        )],
        &families(),
    ));
    assert_eq!(
        get(&r, "expr"),
        "(histogram_quantile(0.99, sum by (le) (rate(inference_pipeline_latency_seconds_bucket[60s])))) > 2 and on() (sum(increase(inference_pipeline_latency_seconds_count[60s])) >= 1000)"
    );
    // Basic statistics have no low-sample rule.
    let r = only_rule(&rules(
        &[alarm(json!({
            "evaluate_low_sample_count_percentile": "ignore",
            "extended_statistic": null,
            "statistic": "Average",
        }))],
        &families(),
    ));
    assert!(!get(&r, "expr").contains(" and on() "));
}

#[test]
fn what_promql_cannot_say_is_skipped_with_a_reason() {
    let cases = [
        (
            json!({"extended_statistic": null, "statistic": "Minimum"}),
            "no minimum",
        ),
        (json!({"extended_statistic": "tm90"}), "cannot compute"),
        (
            json!({"metric_name": "ErrorCount", "extended_statistic": null, "statistic": "Average"}),
            "only Sum maps",
        ),
        (
            json!({"namespace": "Custom/App"}),
            "not exposed on /metrics",
        ),
        (json!({"unit": "Seconds"}), "unit Seconds differs"),
        (json!({"treat_missing_data": "breaching"}), "breaching"),
        (
            json!({
                "namespace": null, "metric_name": null, "extended_statistic": null, "period": null,
                "metrics": [{"id": "e", "metric_stat": {"namespace": "InferencePipeline",
                    "metric_name": "ErrorCount", "period": 60, "stat": "Sum"}}],
            }),
            "metric-math",
        ),
    ];
    for (fields, expected) in cases {
        let reason = skip_reason(fields.clone());
        assert!(reason.contains(expected), "{fields}: {reason}");
    }
}

#[test]
fn a_matching_unit_is_fine_and_order_is_kept() {
    let export = rules(
        &[
            alarm(json!({"name": "skip-me", "namespace": "Nope"})),
            alarm(json!({"name": "keep", "unit": "Milliseconds"})),
        ],
        &families(),
    );
    assert_eq!(export.skipped.len(), 1);
    assert_eq!(export.skipped[0].alarm, "skip-me");
    let parsed = parse(&export.yaml);
    assert_eq!(parsed.len(), 1);
    assert_eq!(get(&parsed[0], "alert"), "keep");
}

#[test]
fn nothing_to_export_is_an_empty_rules_list() {
    let export = rules(&[], &families());
    assert!(export.yaml.contains("    rules: []\n"), "{}", export.yaml);
    assert_eq!(parse(&export.yaml).len(), 0);
}

#[test]
fn composites_are_skipped() {
    let composite = serde_json::from_value::<CompositeAlarmSpec>(json!({
        "name": "Both",
        "alarm_rule": "ALARM(A) AND ALARM(B)",
    }))
    .unwrap()
    .validate()
    .unwrap();
    let skipped = skip_composites(&[composite]);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].alarm, "Both");
    assert!(skipped[0].reason.contains("composite"));
}
