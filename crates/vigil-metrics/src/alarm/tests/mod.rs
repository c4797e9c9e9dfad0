//! Behaviour tests of the alarm engine against an in-memory data source.

#![allow(clippy::unwrap_used)]

mod config;
mod engine;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde_json::json;

use super::config::{CompositeAlarm, CompositeAlarmSpec, MetricAlarm, MetricAlarmSpec};
use super::metric::{AlarmData, Point};

/// 2026-01-12T10:00:00Z.
pub(super) const T0: i64 = 1_768_212_000_000;
pub(super) const MIN: i64 = 60_000;

/// Points per alarm name, an optional error, and a fetch counter.
#[derive(Default)]
pub(super) struct Mock {
    pub points: RefCell<HashMap<String, Vec<Point>>>,
    pub error: RefCell<Option<String>>,
    pub fetches: Cell<usize>,
}

impl Mock {
    pub fn push(&self, alarm: &str, timestamp_ms: i64, value: f64) {
        self.push_counted(alarm, timestamp_ms, value, None);
    }
    pub fn push_counted(&self, alarm: &str, timestamp_ms: i64, value: f64, count: Option<f64>) {
        self.points
            .borrow_mut()
            .entry(alarm.to_string())
            .or_default()
            .push(Point {
                timestamp_ms,
                value,
                sample_count: count,
            });
    }
}

impl AlarmData for Mock {
    fn fetch(
        &self,
        alarm: &MetricAlarm,
        start_ms: i64,
        end_ms: i64,
        _period_s: u32,
    ) -> Result<Vec<Point>, String> {
        self.fetches.set(self.fetches.get() + 1);
        if let Some(e) = self.error.borrow().clone() {
            return Err(e);
        }
        Ok(self
            .points
            .borrow()
            .get(alarm.name())
            .map(|v| {
                v.iter()
                    .filter(|p| p.timestamp_ms >= start_ms && p.timestamp_ms < end_ms)
                    .copied()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A valid spec: Average of Vigil/LatencyMs > 2 for 3 of 3 one-minute periods.
pub(super) fn spec(name: &str) -> MetricAlarmSpec {
    serde_json::from_value(json!({
        "name": name,
        "namespace": "Vigil",
        "metric_name": "LatencyMs",
        "dimensions": {"model": "fraud"},
        "statistic": "Average",
        "period": 60,
        "evaluation_periods": 3,
        "threshold": 2.0,
        "comparison_operator": "GreaterThanThreshold",
        "alarm_actions": [{"type": "webhook", "url": "http://127.0.0.1:9/alarm"}],
        "ok_actions": [{"type": "email", "to": ["ops@example.com"]}],
    }))
    .unwrap()
}

pub(super) fn alarm(name: &str) -> MetricAlarm {
    spec(name).validate().unwrap()
}

pub(super) fn composite(name: &str, rule: &str) -> CompositeAlarm {
    CompositeAlarmSpec {
        name: name.into(),
        alarm_rule: rule.into(),
        alarm_actions: vec![crate::notify::Action::Alertmanager {
            url: "http://127.0.0.1:9093".into(),
        }],
        actions_enabled: true,
        ..CompositeAlarmSpec::default()
    }
    .validate()
    .unwrap()
}
