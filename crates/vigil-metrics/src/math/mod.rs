//! Metric math (SEMANTICS.md §1.3): queries with ids, expressions over them.
//!
//! - [`parse`] turns an expression into an [`Expr`] (typed as a scalar or a
//!   series), with errors at a 1-based column;
//! - [`evaluate`] computes one expression over the series of its ids;
//! - [`validate`] checks a whole query set (ids, shape, references, cycles,
//!   statistics) and reports every problem; [`run`] fetches each needed
//!   metric once and evaluates in dependency order.
//!
//! The grammar and the choices made where SEMANTICS is silent are in the
//! crate README, section "Metric math".

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod query;
mod series;

pub use ast::{AggArg, AggFunc, BinOp, Expr, FillWith, Func1};
pub use error::{MathError, ParseError};
pub use eval::{Lookup, UnknownId, Value, evaluate};
pub use lexer::MAX_EXPRESSION_CHARS;
pub use parser::{Kind, MAX_DEPTH, Parsed, Reference, parse};
pub use query::{MAX_QUERIES, Output, is_valid_id, run, validate};
pub use series::{MAX_PERIODS, Range, Series};

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
