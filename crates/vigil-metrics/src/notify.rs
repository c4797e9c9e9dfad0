//! Notification targets of alarm actions: webhook, Prometheus Alertmanager
//! and email (SMTP).
//!
//! SKELETON: the action and notification types only; sending comes next.

use serde::{Deserialize, Serialize};

use crate::model::Dimensions;

/// One action of an alarm, as written in its `alarm_actions`, `ok_actions`
/// or `insufficient_data_actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// POST a JSON body to `url`, signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        /// http(s) URL.
        url: String,
        /// Key for the `X-Vigil-Signature` header.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    /// POST to a Prometheus Alertmanager's `/api/v2/alerts`.
    Alertmanager {
        /// The Alertmanager's base URL (`http://127.0.0.1:9093`).
        url: String,
    },
    /// Send an email through the configured SMTP server.
    Email {
        /// Recipients.
        to: Vec<String>,
    },
}

/// The alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// Within the threshold.
    Ok,
    /// Breaching.
    Alarm,
    /// Not enough data to decide (a new alarm starts here).
    InsufficientData,
}

impl AlarmState {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

/// What an alarm's transition sends to its actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The alarm's name.
    pub alarm_name: String,
    /// The alarm's description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_description: Option<String>,
    /// State before the transition.
    pub old_state: AlarmState,
    /// State after the transition.
    pub new_state: AlarmState,
    /// Reason text ("Threshold Crossed: ...").
    pub reason: String,
    /// Reason data (JSON), as the alarm history has it.
    pub reason_data: serde_json::Value,
    /// Transition time, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The metric's namespace (metric alarms on one metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The metric's name (metric alarms on one metric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// The metric's dimensions.
    #[serde(default)]
    pub dimensions: Dimensions,
}
