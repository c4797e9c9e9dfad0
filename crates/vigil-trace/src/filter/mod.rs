//! X-Ray's filter-expression language (a subset, §6), parsed once into an
//! [`Expr`] and evaluated against a [`TraceSummary`] without allocating.
//!
//! ```text
//! service("vigil") AND responsetime > 0.05 AND NOT (http.status = 429 OR ok)
//! annotation.model = "fraud" && http.url CONTAINS "/v1" || fault
//! ```
//!
//! Keys: `service("name")`; numbers `responsetime` and `duration` (seconds),
//! `http.status`; strings `http.url`, `http.method`, `http.useragent`,
//! `http.clientip`; booleans `fault`, `error`, `throttle`, `ok` (bare, or
//! `= true|false`, `!= …`); `annotation.<key>` compared with a number, a
//! string or a boolean. Numbers take `= != < <= > >=`; strings `= !=
//! CONTAINS BEGINSWITH ENDSWITH`; booleans `= !=`. `AND`/`&&`, `OR`/`||`,
//! `NOT`/`!` and parentheses combine them, NOT binding tightest, then AND,
//! then OR. Keywords are case-insensitive; string values are compared as
//! written. A comparison on a field the trace lacks (no `http.url`, no
//! annotation with that key, an annotation of another type) is false, for
//! `!=` too. The empty filter matches every trace.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::model::TraceSummary;

/// Why a filter did not parse: where (1-based column, in characters) and
/// what was expected and found there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based column of the offending character, counted in characters.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl FilterError {
    fn new(column: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            column,
            message: message.into(),
        }
    }
}

/// A parsed filter expression; build it with [`Filter::parse`] once, then
/// call [`Filter::matches`] per trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Option<Expr>,
}

impl Filter {
    /// Parses `text`; an empty (or all-blank) filter matches everything.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        Ok(Filter {
            expr: parser::parse(text)?,
        })
    }

    /// Whether the trace satisfies the filter. Never allocates.
    pub fn matches(&self, trace: &TraceSummary) -> bool {
        self.expr.as_ref().is_none_or(|expr| expr.matches(trace))
    }

    /// The expression, `None` for the empty filter.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }
}

impl fmt::Display for Filter {
    /// The canonical text, which parses back to the same filter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(expr) => write!(f, "{expr}"),
            None => Ok(()),
        }
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every operand holds (two or more; n-ary, so a long chain of `AND`s
    /// stays one level deep).
    And(Vec<Expr>),
    /// Some operand holds (two or more).
    Or(Vec<Expr>),
    /// The inner expression does not hold.
    Not(Box<Expr>),
    /// One comparison.
    Pred(Predicate),
}

/// One comparison on one key of the trace.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `service("name")`: some span of the trace is in this service.
    Service(String),
    /// A number key against a number (seconds for the times).
    Number(NumberKey, NumberOp, f64),
    /// A string key against a string.
    Text(TextKey, TextOp, String),
    /// A boolean key: `fault`, `fault = true` (`equal` true), `fault !=
    /// false`, …; the flag must equal `value` when `equal`, differ otherwise.
    Flag {
        /// The flag.
        key: FlagKey,
        /// `=` (true) or `!=` (false).
        equal: bool,
        /// The literal compared with.
        value: bool,
    },
    /// `annotation.<key> <op> <value>`: some annotation with this key
    /// satisfies the comparison.
    Annotation(String, AnnotationTest),
}

/// The number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKey {
    /// The root span's duration, seconds.
    ResponseTime,
    /// First start to last end, seconds.
    Duration,
    /// The root span's HTTP status.
    HttpStatus,
}

/// The string keys (all of the root span's HTTP block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKey {
    /// `http.url`.
    Url,
    /// `http.method`.
    Method,
    /// `http.useragent`.
    UserAgent,
    /// `http.clientip`.
    ClientIp,
}

/// The boolean keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKey {
    /// Some span is a server error.
    Fault,
    /// Some span is a client error.
    Error,
    /// Some span was throttled.
    Throttle,
    /// No span has an error, a fault or a throttle.
    Ok,
}

/// Comparisons of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberOp {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// Comparisons of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `CONTAINS`.
    Contains,
    /// `BEGINSWITH`.
    BeginsWith,
    /// `ENDSWITH`.
    EndsWith,
}

/// What an annotation is compared with; the literal's type picks it.
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationTest {
    /// A number.
    Number(NumberOp, f64),
    /// A string.
    Text(TextOp, String),
    /// A boolean, `=` (`equal`) or `!=`.
    Bool {
        /// `=` (true) or `!=` (false).
        equal: bool,
        /// The literal.
        value: bool,
    },
}

impl NumberKey {
    fn name(self) -> &'static str {
        match self {
            NumberKey::ResponseTime => "responsetime",
            NumberKey::Duration => "duration",
            NumberKey::HttpStatus => "http.status",
        }
    }
}

impl TextKey {
    fn name(self) -> &'static str {
        match self {
            TextKey::Url => "http.url",
            TextKey::Method => "http.method",
            TextKey::UserAgent => "http.useragent",
            TextKey::ClientIp => "http.clientip",
        }
    }
}

impl FlagKey {
    fn name(self) -> &'static str {
        match self {
            FlagKey::Fault => "fault",
            FlagKey::Error => "error",
            FlagKey::Throttle => "throttle",
            FlagKey::Ok => "ok",
        }
    }
}

impl NumberOp {
    fn symbol(self) -> &'static str {
        match self {
            NumberOp::Eq => "=",
            NumberOp::Ne => "!=",
            NumberOp::Lt => "<",
            NumberOp::Le => "<=",
            NumberOp::Gt => ">",
            NumberOp::Ge => ">=",
        }
    }
}

impl TextOp {
    fn symbol(self) -> &'static str {
        match self {
            TextOp::Eq => "=",
            TextOp::Ne => "!=",
            TextOp::Contains => "CONTAINS",
            TextOp::BeginsWith => "BEGINSWITH",
            TextOp::EndsWith => "ENDSWITH",
        }
    }
}

/// Writes `s` as a double-quoted literal, escaping `"` and `\`.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

/// `(a SEP b SEP c)`.
fn write_joined(f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Expr {
    /// Fully parenthesised, so it parses back to the same tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::And(items) => write_joined(f, items, " AND "),
            Expr::Or(items) => write_joined(f, items, " OR "),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::Pred(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Service(name) => {
                f.write_str("service(")?;
                write_quoted(f, name)?;
                f.write_str(")")
            }
            Predicate::Number(key, op, v) => write!(f, "{} {} {v}", key.name(), op.symbol()),
            Predicate::Text(key, op, v) => {
                write!(f, "{} {} ", key.name(), op.symbol())?;
                write_quoted(f, v)
            }
            Predicate::Flag { key, equal, value } => {
                let op = if *equal { "=" } else { "!=" };
                write!(f, "{} {op} {value}", key.name())
            }
            Predicate::Annotation(key, test) => {
                write!(f, "annotation.{key} ")?;
                match test {
                    AnnotationTest::Number(op, v) => write!(f, "{} {v}", op.symbol()),
                    AnnotationTest::Text(op, v) => {
                        write!(f, "{} ", op.symbol())?;
                        write_quoted(f, v)
                    }
                    AnnotationTest::Bool { equal, value } => {
                        let op = if *equal { "=" } else { "!=" };
                        write!(f, "{op} {value}")
                    }
                }
            }
        }
    }
}
