//! The Prometheus Alertmanager target: `POST {url}/api/v2/alerts`.
//!
//! One alarm is one alert, identified by its labels (alarm name, namespace,
//! metric name, dimensions and the optional severity), which are the same
//! in every state so that each post updates the same alert:
//! - ALARM: `startsAt` = transition time, `endsAt` = transition time +
//!   `alertmanager_firing_ttl` (alarms notify on transitions only, so without
//!   an `endsAt` Alertmanager would resolve the alert after its
//!   `resolve_timeout` while the alarm still fires);
//! - OK: `endsAt` = now, which resolves the alert;
//! - INSUFFICIENT_DATA: resolved as for OK (Alertmanager knows only firing
//!   and resolved, and an alarm without data no longer asserts a breach); the
//!   `vigil_state` annotation tells the two apart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::retry::SendError;
use super::{AlarmState, Notification, rfc3339};

/// Label names Vigil sets itself; a dimension with one of these names gets a
/// `dimension_` prefix.
const RESERVED: [&str; 4] = ["alertname", "namespace", "metric_name", "severity"];

/// A Prometheus label name (the same rule as `/metrics`' labels).
pub use crate::registry::label_name as sanitize_label_name;

/// The labels of `n`'s alert.
pub fn labels(n: &Notification, severity: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), n.alarm_name.clone());
    if let Some(namespace) = &n.namespace {
        labels.insert("namespace".to_owned(), namespace.clone());
    }
    if let Some(metric) = &n.metric_name {
        labels.insert("metric_name".to_owned(), metric.clone());
    }
    if let Some(severity) = severity {
        labels.insert("severity".to_owned(), severity.to_owned());
    }
    for (name, value) in &n.dimensions {
        let mut label = sanitize_label_name(name);
        // Two dimensions can sanitise to one name (`a.b`, `a-b`), and a
        // dimension can be called `namespace`: neither overwrites a label.
        while RESERVED.contains(&label.as_str()) || labels.contains_key(&label) {
            label.insert_str(0, "dimension_");
        }
        labels.insert(label, value.clone());
    }
    labels
}

/// The request body for `n`, sent at `now_ms` (Unix milliseconds).
pub fn payload(
    n: &Notification,
    severity: Option<&str>,
    firing_ttl: Duration,
    now_ms: i64,
) -> Result<Value, SendError> {
    let mut annotations = json!({
        "summary": n.reason,
        "vigil_state": n.new_state.as_str(),
    });
    if let Some(description) = &n.alarm_description {
        annotations["description"] = json!(description);
    }
    let mut alert = json!({
        "labels": labels(n, severity),
        "annotations": annotations,
    });
    match n.new_state {
        AlarmState::Alarm => {
            let ttl_ms = i64::try_from(firing_ttl.as_millis()).unwrap_or(i64::MAX);
            alert["startsAt"] = json!(rfc3339(n.timestamp_ms)?);
            alert["endsAt"] = json!(rfc3339(n.timestamp_ms.saturating_add(ttl_ms))?);
        }
        // Now rather than the transition time: an `endsAt` before the alert's
        // `startsAt` (a late or reordered OK) would be refused.
        AlarmState::Ok | AlarmState::InsufficientData => {
            alert["endsAt"] = json!(rfc3339(now_ms.max(n.timestamp_ms))?);
        }
    }
    Ok(json!([alert]))
}

/// `{url}/api/v2/alerts`, with or without a trailing slash on `url`.
pub fn alerts_url(url: &str) -> String {
    format!("{}/api/v2/alerts", url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn notification(state: AlarmState) -> Notification {
        Notification {
            alarm_name: "High-Latency-Alarm".into(),
            alarm_description: Some("p99 latency".into()),
            old_state: AlarmState::Ok,
            new_state: state,
            reason: "Threshold Crossed".into(),
            reason_data: json!({}),
            timestamp_ms: 1_700_000_000_000,
            namespace: Some("InferencePipeline".into()),
            metric_name: Some("LatencyMs".into()),
            dimensions: [
                ("Model".to_owned(), "fraud".to_owned()),
                ("model.version".to_owned(), "3".to_owned()),
                ("model-version".to_owned(), "4".to_owned()),
                ("namespace".to_owned(), "prod".to_owned()),
                ("9lives".to_owned(), "cat".to_owned()),
            ]
            .into(),
        }
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(sanitize_label_name("Model"), "Model");
        assert_eq!(sanitize_label_name("model.version"), "model_version");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
        assert_eq!(sanitize_label_name("héllo wörld"), "h_llo_w_rld");
    }

    #[test]
    fn dimensions_become_labels_without_overwriting() {
        let labels = labels(&notification(AlarmState::Alarm), Some("page"));
        let expected: BTreeMap<String, String> = [
            ("alertname", "High-Latency-Alarm"),
            ("namespace", "InferencePipeline"),
            ("metric_name", "LatencyMs"),
            ("severity", "page"),
            ("Model", "fraud"),
            ("_9lives", "cat"),
            // BTreeMap order: "model-version" < "model.version".
            ("model_version", "4"),
            ("dimension_model_version", "3"),
            ("dimension_namespace", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn alarm_fires_from_the_transition_time() {
        let body = payload(
            &notification(AlarmState::Alarm),
            None,
            Duration::from_secs(3600),
            1_700_000_999_000,
        )
        .unwrap();
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(alert["labels"]["alertname"], "High-Latency-Alarm");
        assert_eq!(alert["annotations"]["summary"], "Threshold Crossed");
        assert_eq!(alert["annotations"]["description"], "p99 latency");
        assert_eq!(alert["annotations"]["vigil_state"], "ALARM");
        assert_eq!(alert["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(alert["endsAt"], "2023-11-14T23:13:20Z");
    }

    #[test]
    fn ok_and_insufficient_data_resolve_with_the_same_labels() {
        let firing = payload(
            &notification(AlarmState::Alarm),
            Some("page"),
            Duration::from_secs(60),
            0,
        )
        .unwrap();
        for state in [AlarmState::Ok, AlarmState::InsufficientData] {
            let body = payload(
                &notification(state),
                Some("page"),
                Duration::from_secs(60),
                1_700_000_005_000,
            )
            .unwrap();
            let alert = &body[0];
            assert_eq!(alert["labels"], firing[0]["labels"]);
            assert_eq!(alert["endsAt"], "2023-11-14T22:13:25Z");
            assert!(alert.get("startsAt").is_none());
            assert_eq!(alert["annotations"]["vigil_state"], state.as_str());
        }
    }

    #[test]
    fn url_gets_the_v2_path() {
        assert_eq!(
            alerts_url("http://am:9093/"),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            alerts_url("https://ops.example.com/alertmanager"),
            "https://ops.example.com/alertmanager/api/v2/alerts"
        );
    }
}
