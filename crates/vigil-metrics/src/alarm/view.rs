//! What a read of an alarm returns: its configuration as written plus its
//! state (`state_value`, `state_reason`, `state_reason_data`,
//! `state_updated_at` in RFC 3339).

use serde::ser::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Value, json};

use super::config::{CompositeAlarm, MetricAlarm};
use super::history::format_rfc3339_ms;
use crate::notify::AlarmState;

/// A metric or a composite alarm's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmConfig {
    /// A metric alarm.
    Metric(Box<MetricAlarm>),
    /// A composite alarm.
    Composite(Box<CompositeAlarm>),
}

impl AlarmConfig {
    /// The alarm's name.
    pub fn name(&self) -> &str {
        match self {
            AlarmConfig::Metric(a) => a.name(),
            AlarmConfig::Composite(a) => a.name(),
        }
    }

    /// `metric` or `composite`.
    pub fn kind(&self) -> &'static str {
        match self {
            AlarmConfig::Metric(_) => "metric",
            AlarmConfig::Composite(_) => "composite",
        }
    }
}

/// An alarm's configuration and state, as a read returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    /// The configuration.
    pub config: AlarmConfig,
    /// Current state.
    pub state_value: AlarmState,
    /// Why ("Threshold Crossed: ...").
    pub state_reason: String,
    /// Reason data (JSON).
    pub state_reason_data: Value,
    /// When the state last changed, Unix milliseconds (served as RFC 3339).
    pub state_updated_at_ms: i64,
    /// The last data-source error, while it lasts (the state is then unchanged).
    pub evaluation_error: Option<String>,
}

impl Serialize for AlarmView {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let config = match &self.config {
            AlarmConfig::Metric(a) => serde_json::to_value(a.spec()),
            AlarmConfig::Composite(a) => serde_json::to_value(a.spec()),
        }
        .map_err(S::Error::custom)?;
        let mut out = match config {
            Value::Object(map) => map,
            _ => return Err(S::Error::custom("alarm configuration is not an object")),
        };
        out.insert("alarm_type".into(), json!(self.config.kind()));
        out.insert("state_value".into(), json!(self.state_value));
        out.insert("state_reason".into(), json!(self.state_reason));
        out.insert("state_reason_data".into(), self.state_reason_data.clone());
        out.insert(
            "state_updated_at".into(),
            json!(format_rfc3339_ms(self.state_updated_at_ms)),
        );
        if let Some(e) = &self.evaluation_error {
            out.insert("evaluation_error".into(), json!(e));
        }
        Value::Object(out).serialize(s)
    }
}
