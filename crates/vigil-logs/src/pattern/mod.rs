//! The filter-pattern language of metric filters and subscriptions
//! (SEMANTICS §3.1, CloudWatch Logs' filter-pattern syntax): parse a
//! pattern once, then match it against every event and read what it
//! extracted.
//!
//! ```
//! use vigil_logs::pattern::{Pattern, ValueSpec};
//!
//! let p = Pattern::parse("[ip, user, ..., status = 5*, bytes > 1000]").unwrap();
//! let m = p.matches("10.0.0.1 - frank GET / 503 2048").unwrap();
//! assert_eq!(m.field("$status"), Some("503"));
//! assert_eq!(m.value(&ValueSpec::parse("$bytes").unwrap()), Some(2048.0));
//! assert!(p.matches("10.0.0.1 - frank GET / 200 2048").is_none());
//! ```

mod ast;
mod compare;
mod delimited;
mod display;
mod error;
mod json;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;
mod text;
mod value;

use std::fmt;
use std::str::FromStr;

pub use ast::{
    Ast, Comparison, Field, JsonCond, JsonExpr, JsonTest, NumOp, Selector, Step, StrValue,
    TermKind, TextTerm,
};
pub use error::PatternError;
pub use value::ValueSpec;

use delimited::DelimitedMatcher;
use json::JsonMatcher;
use text::TextMatcher;

/// The longest pattern accepted, in characters (CloudWatch's limit).
pub const MAX_PATTERN_CHARS: usize = 1024;
/// How deep parentheses may nest in a JSON pattern.
pub const MAX_DEPTH: usize = 32;
/// How many `%regex%` a pattern may hold.
pub const MAX_REGEXES: usize = 2;

/// A parsed, compiled filter pattern. Equality and `Display` are those of
/// its syntax tree; `Display` prints the canonical pattern text.
#[derive(Debug)]
pub struct Pattern {
    ast: Ast,
    matcher: Matcher,
}

#[derive(Debug)]
enum Matcher {
    All,
    Text(TextMatcher),
    Json(JsonMatcher),
    Delimited(DelimitedMatcher),
    Regex(regex::Regex),
}

impl Pattern {
    /// Parses and compiles `src`; the error says at which column and what
    /// was expected.
    pub fn parse(src: &str) -> Result<Self, PatternError> {
        Self::from_ast(parser::parse(src)?)
    }

    /// Compiles a syntax tree (e.g. one built in code). Fails only on a
    /// regex that does not compile (column 1: the tree has no text).
    pub fn from_ast(ast: Ast) -> Result<Self, PatternError> {
        let matcher = match &ast {
            Ast::All => Matcher::All,
            Ast::Text(terms) if terms.is_empty() => Matcher::All,
            Ast::Text(terms) => Matcher::Text(TextMatcher::new(terms)),
            Ast::Json(expr) => Matcher::Json(JsonMatcher::new(expr)?),
            Ast::Delimited(fields) => Matcher::Delimited(DelimitedMatcher::new(fields)?),
            Ast::Regex(body) => {
                Matcher::Regex(lexer::compile_regex(body).map_err(|m| PatternError::new(1, m))?)
            }
        };
        Ok(Pattern { ast, matcher })
    }

    /// The syntax tree.
    pub fn ast(&self) -> &Ast {
        &self.ast
    }

    /// Whether this is a space-delimited pattern (the only form whose
    /// matches carry `extractedFields` in a subscription payload).
    pub fn is_delimited(&self) -> bool {
        matches!(self.ast, Ast::Delimited(_))
    }

    /// Whether `message` matches, without keeping what it extracted.
    pub fn is_match(&self, message: &str) -> bool {
        match &self.matcher {
            Matcher::All => true,
            Matcher::Text(t) => t.is_match(message),
            Matcher::Regex(re) => re.is_match(message),
            Matcher::Json(j) => j.matches(message).is_some(),
            Matcher::Delimited(d) => d.matches(message).is_some(),
        }
    }

    /// Matches `message`; on a match, what the pattern extracted.
    pub fn matches<'a>(&'a self, message: &'a str) -> Option<Match<'a>> {
        let inner = match &self.matcher {
            Matcher::All => Inner::Plain,
            Matcher::Text(t) => t.is_match(message).then_some(Inner::Plain)?,
            Matcher::Regex(re) => re.is_match(message).then_some(Inner::Plain)?,
            Matcher::Json(j) => {
                let (top, resolved) = j.matches(message)?;
                Inner::Json {
                    message,
                    top,
                    resolved,
                    matcher: j,
                }
            }
            Matcher::Delimited(d) => Inner::Delimited {
                values: d.matches(message)?,
                matcher: d,
            },
        };
        Some(Match { inner })
    }

    /// A metric transformation's value (`"1"`, `"$.latency_us"`,
    /// `"$bytes"`, `"$2"`) for match `m`; `None` when the spec is invalid
    /// or the match has no number there. Parse the spec once with
    /// [`ValueSpec::parse`] on a hot path.
    pub fn value(m: &Match<'_>, spec: &str) -> Option<f64> {
        m.value(&ValueSpec::parse(spec).ok()?)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.ast == other.ast
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ast.fmt(f)
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::parse(s)
    }
}

/// What a matching event yielded: nothing for text, regex and the empty
/// pattern; the parsed document (and the pattern's selectors) for JSON; the
/// token of each named field for space-delimited patterns.
#[derive(Debug)]
pub struct Match<'a> {
    inner: Inner<'a>,
}

#[derive(Debug)]
enum Inner<'a> {
    Plain,
    Json {
        message: &'a str,
        top: json::TopLevel<'a>,
        resolved: Vec<Option<json::Resolved>>,
        matcher: &'a JsonMatcher,
    },
    Delimited {
        values: Vec<&'a str>,
        matcher: &'a DelimitedMatcher,
    },
}

impl Match<'_> {
    /// A space-delimited field's token, by `$name`, `name` or position
    /// `$1`…; `None` for other patterns or unknown fields.
    pub fn field(&self, key: &str) -> Option<&str> {
        let Inner::Delimited { values, matcher } = &self.inner else {
            return None;
        };
        let key = key.strip_prefix('$').unwrap_or(key);
        let index = match key.parse::<usize>() {
            Ok(n) => n.checked_sub(1)?,
            Err(_) => matcher.names.iter().position(|n| n == key)?,
        };
        values.get(index).copied()
    }

    /// The named fields of a space-delimited match as `$name` → token, in
    /// pattern order (a subscription payload's `extractedFields`); empty
    /// for other patterns.
    pub fn named_fields(&self) -> Vec<(String, String)> {
        let Inner::Delimited { values, matcher } = &self.inner else {
            return Vec::new();
        };
        matcher
            .names
            .iter()
            .zip(values)
            .map(|(n, v)| (format!("${n}"), (*v).to_owned()))
            .collect()
    }

    /// The event's whole JSON document, parsed on demand, for JSON
    /// patterns.
    pub fn json_document(&self) -> Option<serde_json::Value> {
        match &self.inner {
            Inner::Json { message, .. } => serde_json::from_str(message).ok(),
            _ => None,
        }
    }

    /// What the match extracted, in pattern order, as the "test pattern"
    /// answer shows it. Space-delimited: each named field as `$name`, then
    /// each again by position `$1`…, all strings. JSON: each of the
    /// pattern's selectors that lands on a scalar, as `$.path` (canonical
    /// form) with its JSON value. Other forms extract nothing.
    pub fn extracted(&self) -> Vec<(String, serde_json::Value)> {
        match &self.inner {
            Inner::Plain => Vec::new(),
            Inner::Json {
                top,
                resolved,
                matcher,
                ..
            } => matcher
                .selectors
                .iter()
                .zip(resolved)
                .filter_map(|(sel, r)| {
                    let value = match r {
                        Some(r) => r.scalar().cloned(),
                        None => top.resolve(sel).scalar().cloned(),
                    };
                    Some((sel.to_string(), value?))
                })
                .collect(),
            Inner::Delimited { values, matcher } => {
                let named = matcher
                    .names
                    .iter()
                    .zip(values)
                    .map(|(n, v)| (format!("${n}"), (*v).into()));
                let positional = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("${}", i + 1), (*v).into()));
                named.chain(positional).collect()
            }
        }
    }

    /// The number a metric transformation's value spec gives for this
    /// match: the literal itself; a `$.path` landing on a number (or a
    /// string spelling one) in a JSON match; a `$field` token spelling a
    /// number in a space-delimited match. `None` otherwise.
    pub fn value(&self, spec: &ValueSpec) -> Option<f64> {
        match spec {
            ValueSpec::Literal(v) => Some(*v),
            ValueSpec::Json(sel) => {
                let Inner::Json { top, .. } = &self.inner else {
                    return None;
                };
                match top.resolve(sel) {
                    json::Resolved::Scalar(serde_json::Value::Number(n)) => {
                        n.as_f64().filter(|v| v.is_finite())
                    }
                    json::Resolved::Scalar(serde_json::Value::String(s)) => {
                        lexer::parse_number(s.trim())
                    }
                    _ => None,
                }
            }
            ValueSpec::Field(name) => lexer::parse_number(self.field(name)?),
            ValueSpec::Position(n) => lexer::parse_number(self.field(&n.to_string())?),
        }
    }

    /// The text a metric transformation's dimension takes from this match:
    /// a `$field` token of a space-delimited match, or the scalar a
    /// `$.path` lands on in a JSON match (a string as is, a number or a
    /// boolean as written). `None` for a literal, a `null`, a container or
    /// nothing there.
    pub fn text(&self, spec: &ValueSpec) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match spec {
            ValueSpec::Literal(_) => None,
            ValueSpec::Field(name) => self.field(name).map(Cow::Borrowed),
            ValueSpec::Position(n) => self.field(&n.to_string()).map(Cow::Borrowed),
            ValueSpec::Json(sel) => {
                let Inner::Json { top, .. } = &self.inner else {
                    return None;
                };
                match top.resolve(sel) {
                    json::Resolved::Scalar(serde_json::Value::String(s)) => Some(Cow::Owned(s)),
                    json::Resolved::Scalar(
                        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)),
                    ) => Some(Cow::Owned(v.to_string())),
                    _ => None,
                }
            }
        }
    }
}
