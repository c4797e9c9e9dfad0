//! The alarm engine (SEMANTICS.md §2): metric alarms evaluated over period
//! slots, composite alarms over other alarms' states, forced states,
//! history, and what to notify on each transition.
//!
//! - [`evaluate`]: the pure "M out of N" decision over slots (§2.2).
//! - [`config`]: configurations as written, validated all at once (§2.1).
//! - [`composite`]: the composite rule language (§2.4).
//! - [`metric`]: one metric alarm's evaluation against an [`AlarmData`].
//! - [`engine`]: [`AlarmEngine`], the alarms, their state and history,
//!   persisted to one JSON file.

mod checks;
pub mod composite;
mod composite_config;
pub mod config;
pub mod engine;
pub mod evaluate;
pub mod history;
pub mod metric;
pub mod prometheus;
pub mod view;

pub use composite::{Rule, RuleError};
pub use config::{
    ComparisonOperator, CompositeAlarm, CompositeAlarmSpec, ConfigError, LowSampleCount,
    MetricAlarm, MetricAlarmSpec, MetricSource, Problem,
};
pub use engine::{AlarmEngine, AlarmError, Dispatch};
pub use evaluate::{Basis, Decision, Outcome, Slot, TreatMissingData, decide, range_len};
pub use history::{HistoryItem, HistoryItemType};
pub use metric::{AlarmData, Point};
pub use view::{AlarmConfig, AlarmView};

#[cfg(test)]
mod tests;
