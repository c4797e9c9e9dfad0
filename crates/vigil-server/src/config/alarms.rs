//! `[[alarms]]` (metric and composite alarms defined in the file, with the
//! alarm API's JSON field names) and `[notify]` (SMTP, retries,
//! Alertmanager labels for the alarm actions).

use serde_json::Value;
use vigil_metrics::alarm::{CompositeAlarm, CompositeAlarmSpec, MetricAlarm, MetricAlarmSpec};
use vigil_metrics::notify::{NotifierConfig, NotifierSettings};

/// One alarm of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmDef {
    /// On one metric or a metric-math expression.
    Metric(Box<MetricAlarm>),
    /// On other alarms' states (`alarm_rule`).
    Composite(Box<CompositeAlarm>),
}

impl AlarmDef {
    /// The alarm's name.
    pub fn name(&self) -> &str {
        match self {
            AlarmDef::Metric(a) => a.name(),
            AlarmDef::Composite(a) => a.name(),
        }
    }
}

/// Reads one alarm object (the `PUT /api/alarms/{name}` body): a composite
/// when it has `alarm_rule`. Every problem is one string naming its field.
pub fn parse_alarm(value: Value) -> Result<AlarmDef, Vec<String>> {
    let composite = value.get("alarm_rule").is_some();
    let problems = |e: vigil_metrics::alarm::ConfigError| {
        e.problems
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
    };
    if composite {
        let spec: CompositeAlarmSpec =
            serde_json::from_value(value).map_err(|e| vec![e.to_string()])?;
        spec.validate()
            .map(|a| AlarmDef::Composite(Box::new(a)))
            .map_err(problems)
    } else {
        let spec: MetricAlarmSpec =
            serde_json::from_value(value).map_err(|e| vec![e.to_string()])?;
        spec.validate()
            .map(|a| AlarmDef::Metric(Box::new(a)))
            .map_err(problems)
    }
}

/// `[[alarms]]`: every problem prefixed with `alarms[i]`.
pub(super) fn validate_alarms(raw: Vec<Value>, problems: &mut Vec<String>) -> Vec<AlarmDef> {
    let mut out = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for (i, value) in raw.into_iter().enumerate() {
        match parse_alarm(value) {
            Ok(alarm) => {
                if !names.insert(alarm.name().to_owned()) {
                    problems.push(format!(
                        "alarms[{i}].name: duplicate alarm name `{}`",
                        alarm.name()
                    ));
                }
                out.push(alarm);
            }
            Err(list) => problems.extend(list.into_iter().map(|p| format!("alarms[{i}].{p}"))),
        }
    }
    out
}

/// The `[notify]` table, validated.
#[derive(Debug, Clone, Default)]
pub struct NotifySection(pub NotifierConfig);

impl PartialEq for NotifySection {
    fn eq(&self, other: &Self) -> bool {
        // Plain data all the way down (durations, strings, numbers).
        format!("{:?}", self.0) == format!("{:?}", other.0)
    }
}

/// `[notify]`, validated (an absent table is every default).
pub(super) fn validate_notify(raw: &Value, problems: &mut Vec<String>) -> Option<NotifierConfig> {
    let raw = match raw {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    let settings: NotifierSettings = match serde_json::from_value(raw) {
        Ok(settings) => settings,
        Err(err) => {
            problems.push(format!("notify: {err}"));
            return None;
        }
    };
    match settings.validate() {
        Ok(config) => Some(config),
        Err(errors) => {
            problems.extend(errors.0);
            None
        }
    }
}

/// The seed runbook's alarms, served by the demo configuration: p99 of
/// `InferencePipeline` `LatencyMs` above 2,000 ms, and any `ErrorCount`.
/// No action until one is configured.
pub fn demo_alarms() -> Vec<AlarmDef> {
    let specs = [
        serde_json::json!({
            "name": "High-Latency-Alarm",
            "description": "p99 scoring latency above 2 s (the fraud team's runbook)",
            "namespace": "InferencePipeline",
            "metric_name": "LatencyMs",
            "extended_statistic": "p99",
            "period": 60,
            "evaluation_periods": 1,
            "threshold": 2000.0,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching"
        }),
        serde_json::json!({
            "name": "Inference-Error-Alarm",
            "description": "any scoring request not answered 2xx (the fraud team's runbook)",
            "namespace": "InferencePipeline",
            "metric_name": "ErrorCount",
            "statistic": "Sum",
            "period": 60,
            "evaluation_periods": 1,
            "threshold": 0.0,
            "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching"
        }),
    ];
    specs
        .into_iter()
        .filter_map(|spec| parse_alarm(spec).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_alarms_are_valid() {
        let names: Vec<String> = demo_alarms().iter().map(|a| a.name().to_owned()).collect();
        assert_eq!(names, ["High-Latency-Alarm", "Inference-Error-Alarm"]);
    }

    #[test]
    fn alarm_problems_name_the_entry_and_field() {
        let mut problems = Vec::new();
        let raw = vec![
            serde_json::json!({"name": "a", "namespace": "N", "metric_name": "M",
            "statistic": "Sum", "period": 7, "evaluation_periods": 1, "threshold": 1.0,
            "comparison_operator": "GreaterThanThreshold"}),
        ];
        assert!(validate_alarms(raw, &mut problems).is_empty());
        assert!(
            problems.iter().any(|p| p.starts_with("alarms[0].period")),
            "{problems:?}"
        );
    }
}
