//! The errors of metric math: a [`ParseError`] for one expression (with its
//! 1-based column), and [`MathError`] for a query set, naming the field.

use std::fmt;

/// An expression that does not parse, or does not type-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What was wrong or expected (`expected `)``, `unknown function `SUMM``).
    pub what: String,
    /// What was found there, when that helps (`` `,` ``, `end of input`).
    pub found: Option<String>,
}

impl ParseError {
    pub(crate) fn new(column: usize, what: impl Into<String>) -> Self {
        ParseError {
            column,
            what: what.into(),
            found: None,
        }
    }

    pub(crate) fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.what, self.column)?;
        if let Some(found) = &self.found {
            write!(f, ", found {found}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Why a query set is invalid or could not be run.
///
/// `field` is a path into the request (`metrics[2].expression`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MathError {
    /// An expression does not parse.
    #[error("{field}: {error}")]
    Parse {
        /// `metrics[i].expression`.
        field: String,
        /// The parser's error, with its column.
        error: ParseError,
    },
    /// An id that breaks the id rule.
    #[error(
        "{field}: `{id}` is not a valid id; an id starts with a lowercase letter and holds only letters, digits and `_`"
    )]
    InvalidId {
        /// `metrics[i].id`.
        field: String,
        /// The id as sent.
        id: String,
    },
    /// Two entries with one id.
    #[error("{field}: duplicate id `{id}`, already used by metrics[{first}]")]
    DuplicateId {
        /// `metrics[i].id`.
        field: String,
        /// The repeated id.
        id: String,
        /// Index of the entry that used it first.
        first: usize,
    },
    /// An entry with both or neither of `expression` and `metric_stat`.
    #[error("{field}: needs exactly one of `expression` and `metric_stat`, found {found}")]
    Shape {
        /// `metrics[i]`.
        field: String,
        /// `neither` or `both`.
        found: &'static str,
    },
    /// An expression that refers to an id no entry has.
    #[error("{field}: unknown id `{id}` at column {column}")]
    UnknownId {
        /// `metrics[i].expression`.
        field: String,
        /// The id referred to.
        id: String,
        /// 1-based column of the reference.
        column: usize,
    },
    /// Expressions that refer to each other in a circle.
    #[error("{field}: cycle among expressions: {}", cycle_path(.ids))]
    Cycle {
        /// `metrics[i].expression` of the first entry of the cycle.
        field: String,
        /// The ids along the cycle, the first repeated at the end.
        ids: Vec<String>,
    },
    /// A statistic that does not parse.
    #[error("{field}: {message}")]
    Statistic {
        /// `metrics[i].metric_stat.stat`.
        field: String,
        /// The statistic parser's message.
        message: String,
    },
    /// A bad value in a field that is not an expression (a zero period).
    #[error("{field}: {message}")]
    Field {
        /// The field path (`metrics[i].metric_stat.period`, `range.end_ms`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// More entries than one query set may hold.
    #[error("metrics: at most {max} entries, found {found}")]
    TooManyQueries {
        /// The limit.
        max: usize,
        /// The number sent.
        found: usize,
    },
    /// The data source failed for one metric.
    #[error("{field}: fetching the data failed: {message}")]
    Fetch {
        /// `metrics[i].metric_stat`.
        field: String,
        /// The source's message.
        message: String,
    },
    /// The data source returned a series that breaks [`crate::math::Series`]'s
    /// invariants (a bug in the source, not in the request).
    #[error("{field}: the fetched series is malformed: {message}")]
    BadSeries {
        /// `metrics[i].metric_stat`.
        field: String,
        /// Which invariant broke.
        message: String,
    },
    /// The fleet's shared store (`metrics.url`) did not answer.
    #[error("the fleet's metric store is unavailable")]
    Unavailable,
    /// Several problems at once (from [`crate::math::run`]; [`crate::math::validate`]
    /// returns the list itself).
    #[error("{} problems: {}", .0.len(), join(.0))]
    Invalid(Vec<MathError>),
}

impl MathError {
    /// The error code this maps to at the API boundary: `bad_request` for
    /// anything in the request, `unavailable` when the data source failed,
    /// `internal` when it returned malformed data.
    pub fn code(&self) -> &'static str {
        match self {
            // The embedded store refuses only what it cannot answer (a period
            // or range the data do not allow): the query's mistake.
            MathError::Fetch { .. } => "bad_request",
            MathError::BadSeries { .. } => "internal",
            MathError::Unavailable => "unavailable",
            _ => "bad_request",
        }
    }
}

fn cycle_path(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn join(errors: &[MathError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
