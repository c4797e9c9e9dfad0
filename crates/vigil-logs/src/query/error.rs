//! The two ways a query fails: it does not parse ([`QueryError`]) or it
//! needs more than the limits allow while running ([`ExecError`]).

/// A query that does not parse, or is too large to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The text is not in the language.
    #[error("column {column}: expected {expected}, found {found}")]
    Syntax {
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// What the parser expected there.
        expected: String,
        /// What it found (a token, or `end of query`).
        found: String,
    },
    /// The query is longer than [`super::MAX_QUERY_CHARS`].
    #[error("the query has {len} characters, more than the {max} allowed")]
    TooLong {
        /// Its length in characters.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Expressions nest deeper than [`super::MAX_NESTING`].
    #[error("column {column}: expressions nest deeper than {max} levels")]
    TooDeep {
        /// 1-based column where the bound was crossed.
        column: usize,
        /// The bound.
        max: usize,
    },
}

impl QueryError {
    /// The error code at the API boundary: always `bad_request`.
    pub fn code(&self) -> &'static str {
        "bad_request"
    }

    /// The 1-based column the error points at, if any.
    pub fn column(&self) -> Option<usize> {
        match self {
            QueryError::Syntax { column, .. } | QueryError::TooDeep { column, .. } => Some(*column),
            QueryError::TooLong { .. } => None,
        }
    }
}

/// A query that parsed but cannot run within its [`super::QueryLimits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// `limit n` asks for more rows than a non-`stats` query may return.
    #[error("limit {asked} is more than the {max} rows a query without stats may return")]
    LimitTooLarge {
        /// The `limit` written.
        asked: u64,
        /// [`super::QueryLimits::max_rows`].
        max: usize,
    },
    /// `stats ... by` or `dedup` produced more groups than allowed.
    #[error("more than {max} groups: narrow the query or coarsen the by fields")]
    TooManyGroups {
        /// [`super::QueryLimits::max_groups`].
        max: usize,
    },
    /// `pct` and `count_distinct` together hold more values than allowed.
    #[error(
        "pct and count_distinct hold more than {max} values: narrow the time range or the groups"
    )]
    TooManyValues {
        /// [`super::QueryLimits::max_aggregate_values`].
        max: usize,
    },
}

impl ExecError {
    /// The error code at the API boundary: always `bad_request` (the query
    /// asks for more than the limits give).
    pub fn code(&self) -> &'static str {
        "bad_request"
    }
}
