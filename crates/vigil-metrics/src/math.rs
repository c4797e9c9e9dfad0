//! Metric math (SEMANTICS.md §1.3): queries with ids, expressions over them.
//!
//! SKELETON: the query model only; the parser and evaluator come next.

use serde::{Deserialize, Serialize};

use crate::model::{Dimensions, Unit};

/// One entry of a `metrics` list (a query or an alarm): either a metric
/// with a statistic, or an expression over other entries' ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDataQuery {
    /// Starts with a lowercase letter; letters, digits and `_`.
    pub id: String,
    /// An expression over other ids (`100 * errors / invocations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// A metric and a statistic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<MetricStat>,
    /// Whether this entry's result is returned (an alarm evaluates the one
    /// entry with `return_data` true).
    #[serde(default = "default_return_data")]
    pub return_data: bool,
    /// A display label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

fn default_return_data() -> bool {
    true
}

/// A metric and the statistic to take of it, per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricStat {
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric_name: String,
    /// The exact dimension set.
    #[serde(default)]
    pub dimensions: Dimensions,
    /// Period in seconds.
    pub period: u32,
    /// The statistic as written (`Sum`, `p99`, `tm90`); parsed by
    /// [`crate::Statistic`]'s `FromStr`.
    pub stat: String,
    /// Only data sent with this unit; any unit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
}
