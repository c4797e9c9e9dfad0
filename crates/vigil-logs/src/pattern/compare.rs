//! Compiled comparisons, shared by JSON conditions and space-delimited
//! fields: globs become prefix/suffix/substring tests (substrings through a
//! `memmem` finder built once), regexes are compiled once.

use memchr::memmem::Finder;

use super::PatternError;
use super::ast::{Comparison, NumOp, StrValue};
use super::lexer::{compile_regex, parse_number};

#[derive(Debug)]
pub(crate) enum Compiled {
    /// `= *`: any scalar.
    Any {
        negated: bool,
    },
    Exact {
        negated: bool,
        text: String,
    },
    Prefix {
        negated: bool,
        text: String,
    },
    Suffix {
        negated: bool,
        text: String,
    },
    Contains {
        negated: bool,
        finder: Box<Finder<'static>>,
    },
    Regex {
        negated: bool,
        re: regex::Regex,
    },
    Num {
        op: NumOp,
        value: f64,
    },
}

impl Compiled {
    pub(crate) fn new(c: &Comparison) -> Result<Self, PatternError> {
        Ok(match c {
            Comparison::Num { op, value } => Compiled::Num {
                op: *op,
                value: *value,
            },
            Comparison::Str { negated, value } => {
                let negated = *negated;
                match value {
                    StrValue::Any => Compiled::Any { negated },
                    StrValue::Regex(body) => Compiled::Regex {
                        negated,
                        re: compile_regex(body).map_err(|m| PatternError::new(1, m))?,
                    },
                    StrValue::Glob {
                        leading,
                        text,
                        trailing,
                    } => {
                        let text = text.clone();
                        match (leading, trailing) {
                            (false, false) => Compiled::Exact { negated, text },
                            (false, true) => Compiled::Prefix { negated, text },
                            (true, false) => Compiled::Suffix { negated, text },
                            (true, true) => Compiled::Contains {
                                negated,
                                finder: Box::new(Finder::new(text.as_bytes()).into_owned()),
                            },
                        }
                    }
                }
            }
        })
    }

    /// Applied to a string value (a JSON string, a delimited token). String
    /// comparisons test it; numeric ones do not match a string.
    pub(crate) fn on_str(&self, s: &str) -> bool {
        let (negated, hit) = match self {
            Compiled::Any { negated } => (*negated, true),
            Compiled::Exact { negated, text } => (*negated, s == text),
            Compiled::Prefix { negated, text } => (*negated, s.starts_with(text.as_str())),
            Compiled::Suffix { negated, text } => (*negated, s.ends_with(text.as_str())),
            Compiled::Contains { negated, finder } => {
                (*negated, finder.find(s.as_bytes()).is_some())
            }
            Compiled::Regex { negated, re } => (*negated, re.is_match(s)),
            Compiled::Num { .. } => return false,
        };
        hit != negated
    }

    /// Applied to a number: numeric comparisons test it; of the string
    /// ones only the `= *` existence test matches.
    pub(crate) fn on_num(&self, n: f64) -> bool {
        match self {
            Compiled::Num { op, value } => op.holds(n, *value),
            Compiled::Any { negated } => !*negated,
            _ => false,
        }
    }

    /// Applied to a scalar that is neither string nor number (`true`,
    /// `false`, `null`): only `= *` matches.
    pub(crate) fn on_other_scalar(&self) -> bool {
        matches!(self, Compiled::Any { negated: false })
    }

    /// Applied to a space-delimited token, which is text that may spell a
    /// number: numeric comparisons read it as one.
    pub(crate) fn on_token(&self, token: &str) -> bool {
        match self {
            Compiled::Num { op, value } => parse_number(token).is_some_and(|n| op.holds(n, *value)),
            _ => self.on_str(token),
        }
    }
}
