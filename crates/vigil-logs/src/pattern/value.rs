//! A metric transformation's value: a literal number, a JSON selector or a
//! space-delimited field.

use super::ast::{Selector, is_name};
use super::lexer::parse_number;
use super::{PatternError, parser};

/// Where a metric filter's value comes from, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueSpec {
    /// A number written as is (`1`, `0.5`): every match counts it.
    Literal(f64),
    /// `$.json.path`: the number at that selector of a JSON match.
    Json(Selector),
    /// `$name`: the named field of a space-delimited match.
    Field(String),
    /// `$1`, `$2`…: the field at that 1-based position.
    Position(usize),
}

impl ValueSpec {
    /// Parses `1`, `$.a.b[0]`, `$bytes` or `$3`.
    pub fn parse(src: &str) -> Result<Self, PatternError> {
        let s = src.trim();
        let lead = src.len() - src.trim_start().len();
        let column = src.get(..lead).map_or(1, |p| p.chars().count() + 1);
        if let Some(v) = parse_number(s) {
            return Ok(ValueSpec::Literal(v));
        }
        if s.starts_with("$.") || s.starts_with("$[") {
            return parser::parse_selector(s)
                .map(ValueSpec::Json)
                .map_err(|e| PatternError::new(e.column + column - 1, e.message));
        }
        if let Some(rest) = s.strip_prefix('$') {
            if let Ok(n) = rest.parse::<usize>() {
                if n >= 1 && rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(ValueSpec::Position(n));
                }
            } else if is_name(rest) {
                return Ok(ValueSpec::Field(rest.to_owned()));
            }
        }
        Err(PatternError::new(
            column,
            format!(
                "expected a number, a selector (\"$.path\") or a field (\"$name\", \"$1\"), found {s:?}"
            ),
        ))
    }
}
