//! A metric filter as written (the API body, a config entry), its rules,
//! and the compiled form the tap evaluates (SEMANTICS §3.1, CloudWatch's
//! PutMetricFilter).
//!
//! ```json
//! {"pattern": "[ip, user, ..., status = 5*, bytes]",
//!  "metric": {"name": "Errors5xx", "namespace": "App", "value": "1",
//!             "dimensions": {"Status": "$status"}, "unit": "Count"}}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize};
use vigil_metrics::{SeriesKey, Unit};

use crate::pattern::{Ast, Field, Pattern, PatternError, ValueSpec};
use crate::store::names::check_group_name;

/// Most metric filters one log group may have.
pub const MAX_FILTERS_PER_GROUP: usize = 100;
/// Most dimensions one metric filter may give its metric.
pub const MAX_DIMENSIONS: usize = 3;
/// Longest filter name, in characters.
pub const MAX_FILTER_NAME_CHARS: usize = 512;
/// Longest metric name and namespace, in characters.
pub const MAX_METRIC_NAME_CHARS: usize = 255;
/// Longest dimension value, in characters (longer ones are not emitted).
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;

/// A filter's pattern and what each match becomes: the body of
/// `PUT /api/logs/{group}/metric-filters/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// The filter pattern (SEMANTICS §3.1); `""` matches every event.
    #[serde(default)]
    pub pattern: String,
    /// The metric transformation.
    pub metric: MetricSpec,
}

/// A metric transformation: which metric a match feeds and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The metric's name, 1–255 characters, no `:`, `*` or `$`.
    pub name: String,
    /// Its namespace, 1–255 characters, no `:`, `*` or `$`.
    pub namespace: String,
    /// What each match counts: a number (`"1"`), `$.json.path` (JSON
    /// patterns) or `$field` / `$3` (space-delimited patterns). A number
    /// may also be written unquoted.
    #[serde(deserialize_with = "string_or_number")]
    pub value: String,
    /// Emitted for a minute in which events arrived and none matched; not
    /// allowed together with `dimensions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<f64>,
    /// At most 3: dimension name → `$field` or `$.path` of the match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// A CloudWatch unit name (`Count`, `Milliseconds`…); `None` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Int(i64),
        Float(f64),
    }
    match Either::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "value: expected a string (\"1\", \"$.path\", \"$field\") or a number",
        )
    })? {
        Either::Text(s) => Ok(s),
        Either::Int(n) => Ok(n.to_string()),
        Either::Float(f) => Ok(f.to_string()),
    }
}

/// A stored metric filter: where it applies, its name and its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterDef {
    /// The log group whose events it sees.
    pub group: String,
    /// Its name, unique in the group.
    pub name: String,
    /// The filter pattern.
    pub pattern: String,
    /// The metric transformation.
    pub metric: MetricSpec,
    /// When it was created, Unix ms.
    pub created_ms: i64,
}

/// Why a metric filter was refused, or an operation on filters failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A field breaks a rule: which one, what was expected, what came.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, e.g. `metric.dimensions.Status`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The pattern does not parse (the error has the column).
    #[error("pattern: {0}")]
    Pattern(PatternError),
    /// The group has [`MAX_FILTERS_PER_GROUP`] filters already.
    #[error(
        "log group {group:?} has {MAX_FILTERS_PER_GROUP} metric filters, the most one group may have"
    )]
    TooMany {
        /// The group.
        group: String,
    },
    /// No filter of that name in the group.
    #[error("metric filter {name:?} does not exist in log group {group:?}")]
    NotFound {
        /// The group.
        group: String,
        /// The filter's name.
        name: String,
    },
    /// The definitions file could not be read or written.
    #[error("{}: {message}", path.display())]
    Storage {
        /// `metric_filters.json`.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl FilterError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> FilterError {
        FilterError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The error code at the API boundary: `bad_request`, `conflict`,
    /// `not_found` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::Invalid { .. } | FilterError::Pattern(_) => "bad_request",
            FilterError::TooMany { .. } => "conflict",
            FilterError::NotFound { .. } => "not_found",
            FilterError::Storage { .. } => "internal",
        }
    }
}

/// A validated, compiled metric filter.
#[derive(Debug)]
pub struct MetricFilter {
    def: FilterDef,
    pattern: Pattern,
    value: ValueSpec,
    /// Dimension name and where its value comes from, by name.
    dimensions: Vec<(String, ValueSpec)>,
    default: Option<f64>,
    /// Namespace, name and unit; the dimensions are the match's.
    key: SeriesKey,
    /// Cleared when the filter is replaced or deleted: a minute's default
    /// is then no longer owed.
    live: AtomicBool,
}

impl MetricFilter {
    /// Checks every rule and compiles `def`; the first broken rule is the
    /// error, naming its field.
    pub fn new(def: FilterDef) -> Result<MetricFilter, FilterError> {
        check_group_name(&def.group).map_err(|m| FilterError::invalid("group", m))?;
        check_filter_name(&def.name)?;
        let pattern = Pattern::parse(&def.pattern).map_err(FilterError::Pattern)?;
        let m = &def.metric;
        check_metric_name("metric.name", &m.name)?;
        check_metric_name("metric.namespace", &m.namespace)?;
        let value = ValueSpec::parse(&m.value)
            .map_err(|e| FilterError::invalid("metric.value", e.to_string()))?;
        check_source(&pattern, &value, "metric.value")?;
        if let Some(d) = m.default {
            check_number("metric.default", d)?;
        }
        if m.dimensions.len() > MAX_DIMENSIONS {
            return Err(FilterError::invalid(
                "metric.dimensions",
                format!(
                    "holds {} dimensions, at most {MAX_DIMENSIONS} are allowed",
                    m.dimensions.len()
                ),
            ));
        }
        if m.default.is_some() && !m.dimensions.is_empty() {
            return Err(FilterError::invalid(
                "metric.default",
                "a metric filter with dimensions cannot have a default value (CloudWatch refuses \
                 the pair): leave out `default` or `dimensions`",
            ));
        }
        let mut dimensions = Vec::with_capacity(m.dimensions.len());
        for (name, source) in &m.dimensions {
            let field = format!("metric.dimensions.{name}");
            check_dimension_name(name).map_err(|msg| FilterError::invalid(&field, msg))?;
            let spec = match ValueSpec::parse(source) {
                Ok(ValueSpec::Literal(_)) | Err(_) => {
                    return Err(FilterError::invalid(
                        &field,
                        format!(
                            "a dimension's value must be a field of the match (\"$name\", \"$1\" \
                             or \"$.path\"), found {source:?}"
                        ),
                    ));
                }
                Ok(spec) => spec,
            };
            check_source(&pattern, &spec, &field)?;
            dimensions.push((name.clone(), spec));
        }
        let unit = match m.unit.as_deref() {
            None => Unit::None,
            Some(u) => Unit::parse(u).ok_or_else(|| {
                let all: Vec<&str> = Unit::ALL.iter().map(|u| u.as_str()).collect();
                FilterError::invalid(
                    "metric.unit",
                    format!("unknown unit {u:?}; expected one of {}", all.join(", ")),
                )
            })?,
        };
        let key = SeriesKey::new(m.namespace.clone(), m.name.clone()).with_unit(unit);
        Ok(MetricFilter {
            default: m.default,
            def,
            pattern,
            value,
            dimensions,
            key,
            live: AtomicBool::new(true),
        })
    }

    /// The definition as written.
    pub fn def(&self) -> &FilterDef {
        &self.def
    }

    /// The default value, if any.
    pub fn default_value(&self) -> Option<f64> {
        self.default
    }

    /// The series with no dimensions (a default's, or a filter's without
    /// dimensions).
    pub(crate) fn key(&self) -> &SeriesKey {
        &self.key
    }

    /// The series of a match whose dimension values are `values` (in
    /// [`MetricFilter::dimension_names`] order).
    pub(crate) fn key_with(&self, values: &[String]) -> SeriesKey {
        let mut key = self.key.clone();
        for ((name, _), value) in self.dimensions.iter().zip(values) {
            key.dimensions.insert(name.clone(), value.clone());
        }
        key
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn retire(&self) {
        self.live.store(false, Ordering::Relaxed);
    }

    /// What `message` gives: `None` when the pattern does not match;
    /// `Some(None)` when it matches but has no number for the value or no
    /// usable text for a dimension (nothing is emitted); otherwise the
    /// value and the dimension values.
    pub fn evaluate(&self, message: &str) -> Option<Option<(f64, Vec<String>)>> {
        let m = self.pattern.matches(message)?;
        let Some(value) = m.value(&self.value) else {
            return Some(None);
        };
        let mut dims = Vec::with_capacity(self.dimensions.len());
        for (_, spec) in &self.dimensions {
            match m.text(spec) {
                Some(t) if !t.is_empty() && t.chars().count() <= MAX_DIMENSION_VALUE_CHARS => {
                    dims.push(t.into_owned());
                }
                _ => return Some(None),
            }
        }
        Some(Some((value, dims)))
    }
}

fn check_filter_name(name: &str) -> Result<(), FilterError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_FILTER_NAME_CHARS {
        return Err(FilterError::invalid(
            "name",
            format!(
                "a metric filter name must be 1 to {MAX_FILTER_NAME_CHARS} characters, got {n}"
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, ':' | '*') || c.is_control())
    {
        return Err(FilterError::invalid(
            "name",
            format!(
                "metric filter name {name:?} holds {bad:?}: `:`, `*` and control characters are not allowed"
            ),
        ));
    }
    Ok(())
}

fn check_metric_name(field: &str, name: &str) -> Result<(), FilterError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_METRIC_NAME_CHARS {
        return Err(FilterError::invalid(
            field,
            format!("must be 1 to {MAX_METRIC_NAME_CHARS} characters, got {n}"),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, ':' | '*' | '$') || c.is_control())
    {
        return Err(FilterError::invalid(
            field,
            format!("{name:?} holds {bad:?}: `:`, `*`, `$` and control characters are not allowed"),
        ));
    }
    Ok(())
}

fn check_number(field: &str, v: f64) -> Result<(), FilterError> {
    if !v.is_finite() || v.abs() > 2f64.powi(360) {
        return Err(FilterError::invalid(
            field,
            format!("must be a finite number within ±2^360, got {v}"),
        ));
    }
    Ok(())
}

/// A dimension name as the metric store accepts it: 1–255 ASCII
/// characters, not only spaces, no control characters, no leading `:`.
pub(crate) fn check_dimension_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > MAX_METRIC_NAME_CHARS {
        return Err(format!(
            "dimension name must be 1 to {MAX_METRIC_NAME_CHARS} characters, got {n}"
        ));
    }
    if !name.is_ascii() {
        return Err(format!("dimension name {name:?} must be ASCII"));
    }
    if name.bytes().any(|b| b.is_ascii_control()) {
        return Err(format!(
            "dimension name {name:?} must not hold control characters"
        ));
    }
    if name.bytes().all(|b| b == b' ') {
        return Err("dimension name must hold a non-space character".into());
    }
    if name.starts_with(':') {
        return Err(format!("dimension name {name:?} must not start with `:`"));
    }
    Ok(())
}

/// Whether the pattern can give `spec` anything: `$.path` needs a JSON
/// pattern; `$name` a space-delimited one with that field; `$N` one with
/// at least N named fields. Literals go with any pattern.
fn check_source(pattern: &Pattern, spec: &ValueSpec, field: &str) -> Result<(), FilterError> {
    let named = |ast: &Ast| -> Option<Vec<String>> {
        match ast {
            Ast::Delimited(fields) => Some(
                fields
                    .iter()
                    .filter_map(|f| match f {
                        Field::Named { name, .. } => Some(name.clone()),
                        Field::Ellipsis => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    };
    match spec {
        ValueSpec::Literal(v) => check_number(field, *v),
        ValueSpec::Json(_) => {
            if matches!(pattern.ast(), Ast::Json(_)) {
                Ok(())
            } else {
                Err(FilterError::invalid(
                    field,
                    "a `$.path` takes its value from a JSON pattern (`{ $.a = ... }`); this \
                     filter's pattern is not one",
                ))
            }
        }
        ValueSpec::Field(name) => match named(pattern.ast()) {
            Some(names) if names.iter().any(|n| n == name) => Ok(()),
            Some(names) => Err(FilterError::invalid(
                field,
                format!(
                    "the pattern has no field `{name}`; its fields are {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names
                            .iter()
                            .map(|n| format!("${n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )),
            None => Err(FilterError::invalid(
                field,
                format!(
                    "`${name}` takes its value from a space-delimited pattern (`[a, b, ...]`); \
                     this filter's pattern is not one"
                ),
            )),
        },
        ValueSpec::Position(n) => match named(pattern.ast()) {
            Some(names) if *n <= names.len() => Ok(()),
            Some(names) => Err(FilterError::invalid(
                field,
                format!("`${n}`: the pattern has {} named fields", names.len()),
            )),
            None => Err(FilterError::invalid(
                field,
                format!(
                    "`${n}` takes its value from a space-delimited pattern (`[a, b, ...]`); \
                     this filter's pattern is not one"
                ),
            )),
        },
    }
}
