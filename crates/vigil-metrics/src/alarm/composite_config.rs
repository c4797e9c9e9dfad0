//! Composite alarm configuration (SEMANTICS.md §2.4) and its validation;
//! the engine checks the references.

use serde::{Deserialize, Serialize};

use super::checks::{check_actions, check_description, check_name};
use super::composite::Rule;
use super::config::{ConfigError, Problems, actions_for, default_true};
use crate::notify::{Action, AlarmState};

/// A composite alarm as written by a client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeAlarmSpec {
    /// Unique among all alarms.
    pub name: String,
    /// Free text, ≤ 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The rule (SEMANTICS.md §2.4).
    #[serde(default)]
    pub alarm_rule: String,
    /// Run on a transition to ALARM.
    #[serde(default)]
    pub alarm_actions: Vec<Action>,
    /// Run on a transition to OK.
    #[serde(default)]
    pub ok_actions: Vec<Action>,
    /// Run on a transition to INSUFFICIENT_DATA.
    #[serde(default)]
    pub insufficient_data_actions: Vec<Action>,
    /// `false` suppresses every action (default `true`).
    #[serde(default = "default_true")]
    pub actions_enabled: bool,
    /// An alarm whose ALARM state suppresses this alarm's actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_suppressor: Option<String>,
    /// Seconds to wait for the suppressor after a transition (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_suppressor_wait_period: Option<u32>,
    /// Seconds suppression lasts after the suppressor leaves ALARM (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions_suppressor_extension_period: Option<u32>,
}

/// Default of `actions_suppressor_wait_period` and `actions_suppressor_extension_period`.
pub const DEFAULT_SUPPRESSOR_PERIOD_S: u32 = 60;

/// A validated composite alarm (its references are checked by the engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CompositeAlarmSpec", into = "CompositeAlarmSpec")]
pub struct CompositeAlarm {
    spec: CompositeAlarmSpec,
    rule: Rule,
}

impl TryFrom<CompositeAlarmSpec> for CompositeAlarm {
    type Error = ConfigError;
    fn try_from(spec: CompositeAlarmSpec) -> Result<Self, ConfigError> {
        spec.validate()
    }
}

impl From<CompositeAlarm> for CompositeAlarmSpec {
    fn from(alarm: CompositeAlarm) -> Self {
        alarm.spec
    }
}

impl CompositeAlarmSpec {
    /// Validates into a [`CompositeAlarm`], reporting every problem.
    pub fn validate(self) -> Result<CompositeAlarm, ConfigError> {
        let mut p = Problems::default();
        check_name(&mut p, "name", &self.name);
        check_description(&mut p, self.description.as_deref());
        check_actions(&mut p, "alarm_actions", &self.alarm_actions);
        check_actions(&mut p, "ok_actions", &self.ok_actions);
        check_actions(
            &mut p,
            "insufficient_data_actions",
            &self.insufficient_data_actions,
        );
        let rule = match Rule::parse(&self.alarm_rule) {
            Ok(rule) => {
                if rule.children().contains(self.name.as_str()) {
                    p.add(
                        "alarm_rule",
                        format!("alarm `{}` cannot refer to itself", self.name),
                    );
                }
                Some(rule)
            }
            Err(e) => {
                p.add("alarm_rule", e.to_string());
                None
            }
        };
        match &self.actions_suppressor {
            Some(s) if s == &self.name => {
                p.add("actions_suppressor", "an alarm cannot suppress itself")
            }
            Some(s) => check_name(&mut p, "actions_suppressor", s),
            None => {
                for (field, set) in [
                    (
                        "actions_suppressor_wait_period",
                        self.actions_suppressor_wait_period.is_some(),
                    ),
                    (
                        "actions_suppressor_extension_period",
                        self.actions_suppressor_extension_period.is_some(),
                    ),
                ] {
                    if set {
                        p.add(field, "needs actions_suppressor");
                    }
                }
            }
        }
        match rule {
            Some(rule) if p.0.is_empty() => Ok(CompositeAlarm { spec: self, rule }),
            _ => Err(ConfigError { problems: p.0 }),
        }
    }
}

impl CompositeAlarm {
    /// The configuration as written.
    pub fn spec(&self) -> &CompositeAlarmSpec {
        &self.spec
    }
    /// The alarm's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// The parsed rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }
    /// The suppressor, if any.
    pub fn suppressor(&self) -> Option<&str> {
        self.spec.actions_suppressor.as_deref()
    }
    /// Wait period in milliseconds.
    pub fn wait_period_ms(&self) -> i64 {
        i64::from(
            self.spec
                .actions_suppressor_wait_period
                .unwrap_or(DEFAULT_SUPPRESSOR_PERIOD_S),
        ) * 1000
    }
    /// Extension period in milliseconds.
    pub fn extension_period_ms(&self) -> i64 {
        i64::from(
            self.spec
                .actions_suppressor_extension_period
                .unwrap_or(DEFAULT_SUPPRESSOR_PERIOD_S),
        ) * 1000
    }
    /// The actions for a target state.
    pub fn actions(&self, state: AlarmState) -> &[Action] {
        actions_for(
            state,
            &self.spec.alarm_actions,
            &self.spec.ok_actions,
            &self.spec.insufficient_data_actions,
        )
    }
    /// Whether actions run.
    pub fn actions_enabled(&self) -> bool {
        self.spec.actions_enabled
    }
}
