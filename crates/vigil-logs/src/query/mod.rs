//! The Insights-style query language (SEMANTICS §4): parse and run.
//!
//! ```
//! use vigil_logs::query::{Event, Query, QueryLimits};
//!
//! let q = Query::parse("filter status >= 500 | stats count(*) by bin(1m)").unwrap();
//! let events = [Event {
//!     timestamp_ms: 60_000,
//!     ingestion_ms: 60_001,
//!     group: "/vigil/access",
//!     stream: "a",
//!     message: r#"{"status": 503}"#,
//! }];
//! let out = q.run(events, QueryLimits::default()).unwrap();
//! assert_eq!(out.rows[0]["count(*)"], 1);
//! assert_eq!(out.rows[0]["bin(1m)"], "1970-01-01T00:01:00.000Z");
//! ```
//!
//! Events are streamed through an [`Executor`]: the store pushes them
//! segment by segment, in any order, and the executor keeps only what can
//! still be in the result (the groups of a `stats`, the first `limit` rows).

mod ast;
mod display;
mod error;
mod eval;
mod exec;
mod functions;
mod json;
mod lexer;
mod parser;
mod plan;
mod stats;
mod time;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value as Json};

pub use ast::{
    AggFunc, Aggregate, Ast, BinOp, Command, Expr, Func, LikePattern, Literal, ParsePattern,
    Projection, Regex, SortKey, Span, TimeUnit,
};
pub use error::{ExecError, QueryError};
pub use exec::Executor;
pub(crate) use time::format_rfc3339;

/// The longest query accepted, in characters (as the cloud's).
pub const MAX_QUERY_CHARS: usize = 10_000;
/// How deep expressions may nest: parentheses, `not`, unary minus, calls.
pub const MAX_NESTING: usize = 32;
/// How deep an expression tree may be, counting each operator of a chain
/// such as `a or b or c` as a level.
pub const MAX_TREE_DEPTH: usize = 128;

/// One log event as the store hands it to a query, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// `@timestamp`: when it happened, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// `@ingestionTime`: when Vigil received it.
    pub ingestion_ms: i64,
    /// `@log`: the log group.
    pub group: &'a str,
    /// `@logStream`: the stream within the group.
    pub stream: &'a str,
    /// `@message`: the raw text (JSON fields are discovered from it).
    pub message: &'a str,
}

/// An owned [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogEvent {
    /// `@timestamp` in ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// `@ingestionTime` in ms since the Unix epoch.
    pub ingestion_ms: i64,
    /// `@log`.
    pub group: String,
    /// `@logStream`.
    pub stream: String,
    /// `@message`.
    pub message: String,
}

impl LogEvent {
    /// The borrowed form a query reads.
    pub fn as_event(&self) -> Event<'_> {
        Event {
            timestamp_ms: self.timestamp_ms,
            ingestion_ms: self.ingestion_ms,
            group: &self.group,
            stream: &self.stream,
            message: &self.message,
        }
    }
}

/// Bounds on what one query may scan and hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Stop after this many events, with partial results and
    /// [`QueryOutput::scan_limit_reached`] set. `None`: no bound.
    pub max_scanned: Option<u64>,
    /// The most rows of a query without `stats` (its default `limit` and
    /// the largest allowed). `stats` results have no such cap.
    pub max_rows: usize,
    /// The most groups of a `stats ... by` (or keys of a `dedup`).
    pub max_groups: usize,
    /// The most values `pct` and `count_distinct` hold, over all groups.
    pub max_aggregate_values: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_scanned: None,
            max_rows: 10_000,
            max_groups: 1_000_000,
            max_aggregate_values: 10_000_000,
        }
    }
}

/// Whether the caller should keep pushing events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Push the next event.
    Continue,
    /// The scan limit is reached: call [`Executor::finish`].
    Stop,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    /// The output columns in order (rows omit missing values).
    pub columns: Vec<String>,
    /// The rows, in the query's order (for `stats` without `sort`: by the
    /// `by` values ascending, so pages of a cursor are stable).
    pub rows: Vec<Map<String, Json>>,
    /// Events read.
    pub scanned: u64,
    /// Events that passed the filters before the first `stats`, `limit` or `dedup`.
    pub matched: u64,
    /// The scan stopped at [`QueryLimits::max_scanned`]: the counts and rows
    /// cover only the events read.
    pub scan_limit_reached: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    ast: Ast,
}

impl Query {
    /// Parses a query; the error names the column and what was expected.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        parser::parse(text).map(|ast| Query { ast })
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// Whether the result is a `stats` result (not capped at
    /// [`QueryLimits::max_rows`]).
    pub fn is_stats(&self) -> bool {
        self.ast
            .commands
            .iter()
            .any(|c| matches!(c, Command::Stats { .. }))
    }

    /// An executor to push events into.
    pub fn executor(&self, limits: QueryLimits) -> Result<Executor, ExecError> {
        Executor::new(plan::Plan::compile(&self.ast), limits)
    }

    /// Runs the query over `events` (stops early at the scan limit).
    pub fn run<'a>(
        &self,
        events: impl IntoIterator<Item = Event<'a>>,
        limits: QueryLimits,
    ) -> Result<QueryOutput, ExecError> {
        let mut ex = self.executor(limits)?;
        for ev in events {
            if ex.push(ev)? == Flow::Stop {
                break;
            }
        }
        ex.finish()
    }
}

impl FromStr for Query {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Query::parse(s)
    }
}

impl fmt::Display for Query {
    /// The canonical text of the query, which parses to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ast.fmt(f)
    }
}
