//! A sampling rule as users write it (config file, API) and its checks.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The built-in rule's name; it always exists and is evaluated last.
pub const DEFAULT_RULE: &str = "Default";

/// The built-in rule's priority, above every other rule's.
pub const DEFAULT_PRIORITY: u32 = 10_000;

/// The most rules a sampler holds besides [`DEFAULT_RULE`].
pub const MAX_RULES: usize = 100;

/// The longest rule name.
pub const MAX_NAME_LEN: usize = 32;

/// The longest matcher pattern.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Where a rule comes from, shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The built-in `Default` rule, untouched.
    Builtin,
    /// The server's config file (`[[traces.sampling_rules]]`).
    #[default]
    Config,
    /// The API; persisted in `sampling_rules.json`.
    Api,
}

/// One X-Ray sampling rule: which requests it matches (glob matchers with
/// `*` for any run of characters, empty too, and `?` for one) and how many
/// of them it samples: `reservoir` per second, then a `fixed_rate` share of
/// the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1–32 characters of `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// 1–9999; lower is evaluated first, ties by name. Only `Default` has
    /// 10000, which is also the default here (so a config entry for
    /// `Default` may leave it out).
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Traces sampled per second before `fixed_rate` applies (required).
    pub reservoir: u32,
    /// The share (0.0–1.0) sampled once the second's reservoir is used
    /// (required).
    pub fixed_rate: f64,
    /// The service's name (case-sensitive); default `*`.
    #[serde(default = "any")]
    pub service_name: String,
    /// The `Host` (ASCII case-insensitive); default `*`.
    #[serde(default = "any")]
    pub host: String,
    /// The HTTP method (ASCII case-insensitive); default `*`.
    #[serde(default = "any")]
    pub http_method: String,
    /// The URL path (case-sensitive); default `*`.
    #[serde(default = "any")]
    pub url_path: String,
    /// Where it comes from; set by the sampler (a value given in a config
    /// entry or an API body is replaced).
    #[serde(default)]
    pub source: Source,
}

fn default_priority() -> u32 {
    DEFAULT_PRIORITY
}

fn any() -> String {
    "*".to_owned()
}

impl Rule {
    /// A rule matching everything, with the given name, priority, reservoir
    /// and fixed rate.
    pub fn new(name: impl Into<String>, priority: u32, reservoir: u32, fixed_rate: f64) -> Rule {
        Rule {
            name: name.into(),
            priority,
            reservoir,
            fixed_rate,
            service_name: any(),
            host: any(),
            http_method: any(),
            url_path: any(),
            source: Source::Api,
        }
    }

    /// The built-in rule: 1 trace per second, then 5%.
    pub fn builtin_default() -> Rule {
        Rule {
            source: Source::Builtin,
            ..Rule::new(DEFAULT_RULE, DEFAULT_PRIORITY, 1, 0.05)
        }
    }

    /// Whether this is the `Default` rule.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_RULE
    }

    /// Every problem with the rule, each naming its field.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, message: String| {
            out.push(Problem {
                field: field.to_owned(),
                message,
            });
        };
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > MAX_NAME_LEN {
            bad(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} characters, got {name_len}"),
            );
        } else if let Some(c) = self
            .name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            bad(
                "name",
                format!("may hold only A-Z, a-z, 0-9, '_' and '-', got {c:?}"),
            );
        }
        if self.is_default() {
            if self.priority != DEFAULT_PRIORITY {
                bad(
                    "priority",
                    format!(
                        "the Default rule's priority is {DEFAULT_PRIORITY}, got {}",
                        self.priority
                    ),
                );
            }
        } else if !(1..DEFAULT_PRIORITY).contains(&self.priority) {
            bad(
                "priority",
                format!("must be between 1 and 9999, got {}", self.priority),
            );
        }
        if !(0.0..=1.0).contains(&self.fixed_rate) {
            bad(
                "fixed_rate",
                format!("must be between 0.0 and 1.0, got {}", self.fixed_rate),
            );
        }
        for (field, pattern) in self.matchers() {
            if pattern.is_empty() {
                bad(
                    field,
                    "must not be empty (use \"*\" to match anything)".into(),
                );
            } else if pattern.len() > MAX_PATTERN_LEN {
                bad(
                    field,
                    format!(
                        "must be at most {MAX_PATTERN_LEN} bytes, got {}",
                        pattern.len()
                    ),
                );
            } else if self.is_default() && pattern != "*" {
                bad(
                    field,
                    format!("the Default rule matches everything (\"*\"), got {pattern:?}"),
                );
            }
        }
        out
    }

    /// Checks the rule: every problem at once, each naming its field.
    pub fn validate(&self) -> Result<(), RuleError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RuleError::Invalid(problems))
        }
    }

    /// The matchers with their field names.
    pub(crate) fn matchers(&self) -> [(&'static str, &str); 4] {
        [
            ("service_name", &self.service_name),
            ("host", &self.host),
            ("http_method", &self.http_method),
            ("url_path", &self.url_path),
        ]
    }
}

/// One thing wrong with a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field (`priority`, or `sampling_rules[2].priority` for a config
    /// entry).
    pub field: String,
    /// What is wrong, with the value given.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a rule change or the sampler's opening failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A rule is not valid; every problem found.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
    /// Adding the rule would pass [`MAX_RULES`].
    #[error("there are {MAX_RULES} sampling rules besides Default, the most allowed")]
    TooMany,
    /// No rule of that name.
    #[error("sampling rule {0:?} does not exist")]
    NotFound(String),
    /// `Default` cannot be deleted (its reservoir and rate can be changed).
    #[error("the Default sampling rule cannot be deleted")]
    DeleteDefault,
    /// `sampling_rules.json` could not be read or written.
    #[error("{}: {message}", path.display())]
    Storage {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

fn join(problems: &[Problem]) -> String {
    let parts: Vec<String> = problems.iter().map(Problem::to_string).collect();
    parts.join("; ")
}

impl RuleError {
    /// The error code at the API boundary: `bad_request`, `conflict`,
    /// `not_found` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::Invalid(_) | RuleError::DeleteDefault => "bad_request",
            RuleError::TooMany => "conflict",
            RuleError::NotFound(_) => "not_found",
            RuleError::Storage { .. } => "internal",
        }
    }
}
