//! The custom-metrics request (PutMetricData in JSON) and its validation,
//! rule by rule as SEMANTICS.md §1.1 states them.
//!
//! ```json
//! {"metrics": [{"name": "LatencyMs", "dimensions": {"host": "a"},
//!   "unit": "Milliseconds", "timestamp": 1700000000000,
//!   "values": [12.5, 30], "counts": [3, 1], "resolution": 1}]}
//! ```
//!
//! Each metric carries exactly one of `value`, `values` (+ `counts`) or
//! `stats: {count, sum, min, max}`. `timestamp` is Unix milliseconds or an
//! RFC 3339 string and defaults to now. An invalid metric is rejected alone,
//! naming its field; the request fails only when it cannot be read, or when
//! no metric in it is valid. Gzip and the body-size limit are the server's.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::aggregate::Aggregate;
use crate::model::{Dimensions, Resolution, SeriesKey, Unit};

/// Most metrics one request may carry.
pub const MAX_METRICS: usize = 1000;
/// Most dimensions one metric may carry.
pub const MAX_DIMENSIONS: usize = 30;
/// Most distinct values in one `values` array.
pub const MAX_UNIQUE_VALUES: usize = 150;
/// Longest namespace, metric name and dimension name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest dimension value, in characters.
pub const MAX_DIMENSION_VALUE_CHARS: usize = 1024;
/// Oldest accepted timestamp: 14 days before now.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
/// Latest accepted timestamp: 2 hours after now.
pub const MAX_AHEAD_MS: i64 = 2 * 3600 * 1000;

/// 2^360, the largest magnitude a value may have.
fn max_magnitude() -> f64 {
    2f64.powi(360)
}

/// One accepted datum.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The series it belongs to.
    pub key: SeriesKey,
    /// When, in Unix milliseconds.
    pub timestamp_ms: i64,
    /// Its values.
    pub aggregate: Aggregate,
    /// Storage resolution.
    pub resolution: Resolution,
}

/// One rejected metric: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position in `metrics`.
    pub index: usize,
    /// The offending field, e.g. `metrics[3].dimensions.host`.
    pub field: String,
    /// What was expected and what came.
    pub reason: String,
}

/// The outcome of a request that could be read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PutBatch {
    /// The valid metrics, in request order.
    pub accepted: Vec<Datum>,
    /// The invalid ones, in request order.
    pub rejected: Vec<Rejected>,
}

/// Request-level failures (all are bad requests).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PutError {
    /// The body is not JSON of the expected shape.
    #[error("invalid request body at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The namespace breaks §1.1.
    #[error("invalid namespace: {0}")]
    Namespace(String),
    /// `metrics` was empty.
    #[error("metrics must hold at least one metric")]
    NoMetrics,
    /// More than [`MAX_METRICS`] metrics.
    #[error("metrics holds {0} metrics, at most {MAX_METRICS} are accepted per request")]
    TooManyMetrics(usize),
    /// Every metric was rejected.
    #[error("no metric was valid; first: {}", first(.0))]
    NothingValid(Vec<Rejected>),
}

fn first(rejected: &[Rejected]) -> String {
    rejected
        .first()
        .map(|r| format!("{}: {}", r.field, r.reason))
        .unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    metrics: Vec<Value>,
}

/// Parses and validates a PutMetricData body for `namespace`, at `now_ms`.
pub fn parse_put(namespace: &str, body: &[u8], now_ms: i64) -> Result<PutBatch, PutError> {
    check_namespace(namespace).map_err(PutError::Namespace)?;
    let body: Body = serde_json::from_slice(body).map_err(|e| PutError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if body.metrics.is_empty() {
        return Err(PutError::NoMetrics);
    }
    if body.metrics.len() > MAX_METRICS {
        return Err(PutError::TooManyMetrics(body.metrics.len()));
    }
    let mut batch = PutBatch::default();
    for (index, metric) in body.metrics.iter().enumerate() {
        let at = format!("metrics[{index}]");
        match parse_metric(namespace, metric, &at, now_ms) {
            Ok(d) => batch.accepted.push(d),
            Err((field, reason)) => batch.rejected.push(Rejected {
                index,
                field,
                reason,
            }),
        }
    }
    if batch.accepted.is_empty() {
        return Err(PutError::NothingValid(batch.rejected));
    }
    Ok(batch)
}

fn check_namespace(ns: &str) -> Result<(), String> {
    let n = ns.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(format!("must be 1 to {MAX_NAME_CHARS} characters, got {n}"));
    }
    if ns.starts_with(':') {
        return Err("must not start with `:`".into());
    }
    Ok(())
}

/// A field path and the reason it is wrong.
type Problem = (String, String);

fn problem(field: &str, reason: impl Into<String>) -> Problem {
    (field.to_owned(), reason.into())
}

const FIELDS: [&str; 9] = [
    "name",
    "dimensions",
    "unit",
    "timestamp",
    "value",
    "values",
    "counts",
    "stats",
    "resolution",
];

fn parse_metric(ns: &str, metric: &Value, at: &str, now_ms: i64) -> Result<Datum, Problem> {
    let m = metric
        .as_object()
        .ok_or_else(|| problem(at, format!("expected an object, got {}", kind(metric))))?;
    if let Some(k) = m.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(problem(
            &format!("{at}.{k}"),
            format!("unknown field; expected one of {}", FIELDS.join(", ")),
        ));
    }
    let name = parse_name(m, at)?;
    let dimensions = parse_dimensions(m, at)?;
    let unit = match m.get("unit") {
        None | Some(Value::Null) => Unit::None,
        Some(Value::String(u)) => Unit::parse(u).ok_or_else(|| {
            let all: Vec<&str> = Unit::ALL.iter().map(|u| u.as_str()).collect();
            problem(
                &format!("{at}.unit"),
                format!("unknown unit `{u}`; expected one of {}", all.join(", ")),
            )
        })?,
        Some(other) => {
            return Err(problem(
                &format!("{at}.unit"),
                format!("expected a string, got {}", kind(other)),
            ));
        }
    };
    let timestamp_ms = parse_timestamp(m.get("timestamp"), &format!("{at}.timestamp"), now_ms)?;
    let resolution = match m.get("resolution") {
        None | Some(Value::Null) => Resolution::Standard,
        Some(v) => {
            let field = format!("{at}.resolution");
            match v.as_u64().map(u32::try_from) {
                Some(Ok(1)) => Resolution::High,
                Some(Ok(60)) => Resolution::Standard,
                _ => return Err(problem(&field, format!("must be 1 or 60, got {v}"))),
            }
        }
    };
    let aggregate = parse_value_form(m, at)?;
    Ok(Datum {
        key: SeriesKey {
            namespace: ns.to_owned(),
            name,
            dimensions,
            unit,
        },
        timestamp_ms,
        aggregate,
        resolution,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_name(m: &Map<String, Value>, at: &str) -> Result<String, Problem> {
    let field = format!("{at}.name");
    let name = match m.get("name") {
        None => return Err(problem(&field, "is required")),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(problem(
                &field,
                format!("expected a string, got {}", kind(other)),
            ));
        }
    };
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(problem(
            &field,
            format!("must be 1 to {MAX_NAME_CHARS} characters, got {n}"),
        ));
    }
    Ok(name.clone())
}

fn parse_dimensions(m: &Map<String, Value>, at: &str) -> Result<Dimensions, Problem> {
    let field = format!("{at}.dimensions");
    let dims = match m.get("dimensions") {
        None | Some(Value::Null) => return Ok(Dimensions::new()),
        Some(Value::Object(d)) => d,
        Some(other) => {
            return Err(problem(
                &field,
                format!("expected an object of name to value, got {}", kind(other)),
            ));
        }
    };
    if dims.len() > MAX_DIMENSIONS {
        return Err(problem(
            &field,
            format!(
                "holds {} dimensions, at most {MAX_DIMENSIONS} are allowed",
                dims.len()
            ),
        ));
    }
    let mut out = Dimensions::new();
    for (name, value) in dims {
        let f = format!("{field}.{name}");
        let n = name.chars().count();
        if n == 0 || n > MAX_NAME_CHARS {
            return Err(problem(
                &f,
                format!("dimension name must be 1 to {MAX_NAME_CHARS} characters, got {n}"),
            ));
        }
        if !name.is_ascii() {
            return Err(problem(&f, "dimension name must be ASCII"));
        }
        if name.bytes().any(|b| b.is_ascii_control()) {
            return Err(problem(
                &f,
                "dimension name must not hold control characters",
            ));
        }
        if name.bytes().all(|b| b == b' ') {
            return Err(problem(
                &f,
                "dimension name must hold a non-space character",
            ));
        }
        if name.starts_with(':') {
            return Err(problem(&f, "dimension name must not start with `:`"));
        }
        let value = value.as_str().ok_or_else(|| {
            problem(
                &f,
                format!("dimension value must be a string, got {}", kind(value)),
            )
        })?;
        let n = value.chars().count();
        if n == 0 || n > MAX_DIMENSION_VALUE_CHARS {
            return Err(problem(
                &f,
                format!(
                    "dimension value must be 1 to {MAX_DIMENSION_VALUE_CHARS} characters, got {n}"
                ),
            ));
        }
        out.insert(name.clone(), value.to_owned());
    }
    Ok(out)
}

fn parse_timestamp(v: Option<&Value>, field: &str, now_ms: i64) -> Result<i64, Problem> {
    let ts = match v {
        None | Some(Value::Null) => return Ok(now_ms),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(ms), _) => ms,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
            _ => {
                return Err(problem(
                    field,
                    format!("expected whole Unix milliseconds, got {n}"),
                ));
            }
        },
        Some(Value::String(s)) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
                problem(
                    field,
                    format!("expected Unix milliseconds or an RFC 3339 time, got `{s}` ({e})"),
                )
            })?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| problem(field, "time out of range"))?
        }
        Some(other) => {
            return Err(problem(
                field,
                format!(
                    "expected Unix milliseconds or an RFC 3339 time, got {}",
                    kind(other)
                ),
            ));
        }
    };
    if ts < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(problem(
            field,
            format!("{ts} is more than 14 days in the past (now is {now_ms})"),
        ));
    }
    if ts > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(problem(
            field,
            format!("{ts} is more than 2 hours in the future (now is {now_ms})"),
        ));
    }
    Ok(ts)
}

/// A finite number within ±2^360.
fn number(v: &Value, field: &str) -> Result<f64, Problem> {
    match v {
        Value::Number(n) => {
            let f = n
                .as_f64()
                .ok_or_else(|| problem(field, format!("{n} is not representable")))?;
            if f.abs() > max_magnitude() {
                return Err(problem(
                    field,
                    format!("{f} is outside the accepted range of ±2^360"),
                ));
            }
            Ok(f)
        }
        Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            let special = [
                "nan",
                "inf",
                "+inf",
                "-inf",
                "infinity",
                "+infinity",
                "-infinity",
            ];
            if special.contains(&lower.as_str()) {
                Err(problem(
                    field,
                    format!(
                        "`{s}` is not accepted: values must be finite numbers (no NaN or infinity)"
                    ),
                ))
            } else {
                Err(problem(
                    field,
                    format!("expected a number, got the string `{s}`"),
                ))
            }
        }
        other => Err(problem(
            field,
            format!("expected a number, got {}", kind(other)),
        )),
    }
}

fn parse_value_form(m: &Map<String, Value>, at: &str) -> Result<Aggregate, Problem> {
    let present: Vec<&str> = ["value", "values", "stats"]
        .into_iter()
        .filter(|k| m.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if m.get("counts").is_some_and(|v| !v.is_null()) && !present.contains(&"values") {
        return Err(problem(&format!("{at}.counts"), "`counts` needs `values`"));
    }
    match present.as_slice() {
        [] => Err(problem(
            at,
            "expected exactly one of `value`, `values` or `stats`, got none",
        )),
        ["value"] => {
            let field = format!("{at}.value");
            Ok(Aggregate::from_value(number(
                m.get("value").unwrap_or(&Value::Null),
                &field,
            )?))
        }
        ["values"] => parse_values(m, at),
        ["stats"] => parse_stats(
            m.get("stats").unwrap_or(&Value::Null),
            &format!("{at}.stats"),
        ),
        many => Err(problem(
            at,
            format!(
                "expected exactly one of `value`, `values` or `stats`, got {}",
                many.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>, Problem> {
    v.as_array()
        .ok_or_else(|| problem(field, format!("expected an array, got {}", kind(v))))
}

fn parse_values(m: &Map<String, Value>, at: &str) -> Result<Aggregate, Problem> {
    let field = format!("{at}.values");
    let raw = array(m.get("values").unwrap_or(&Value::Null), &field)?;
    if raw.is_empty() {
        return Err(problem(&field, "must hold at least one value"));
    }
    let values = raw
        .iter()
        .enumerate()
        .map(|(i, v)| number(v, &format!("{field}[{i}]")))
        .collect::<Result<Vec<f64>, Problem>>()?;
    let mut unique: Vec<u64> = values.iter().map(|v| (v + 0.0).to_bits()).collect();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() > MAX_UNIQUE_VALUES {
        return Err(problem(
            &field,
            format!(
                "holds {} distinct values, at most {MAX_UNIQUE_VALUES} are allowed",
                unique.len()
            ),
        ));
    }
    let counts = match m.get("counts") {
        None | Some(Value::Null) => Vec::new(),
        Some(c) => {
            let cfield = format!("{at}.counts");
            let raw = array(c, &cfield)?;
            if raw.len() != values.len() {
                return Err(problem(
                    &cfield,
                    format!(
                        "holds {} counts but values holds {}; they must have the same length",
                        raw.len(),
                        values.len()
                    ),
                ));
            }
            let mut counts = Vec::with_capacity(raw.len());
            for (i, c) in raw.iter().enumerate() {
                let f = format!("{cfield}[{i}]");
                let n = number(c, &f)?;
                if n < 1.0 || n.fract() != 0.0 || n > 9_007_199_254_740_992.0 {
                    return Err(problem(
                        &f,
                        format!("a count must be a whole number of at least 1, got {n}"),
                    ));
                }
                counts.push(n);
            }
            counts
        }
    };
    Aggregate::from_values(&values, &counts).map_err(|e| problem(&field, e.to_string()))
}

fn parse_stats(v: &Value, field: &str) -> Result<Aggregate, Problem> {
    let s = v.as_object().ok_or_else(|| {
        problem(
            field,
            format!(
                "expected an object with count, sum, min and max, got {}",
                kind(v)
            ),
        )
    })?;
    const KEYS: [&str; 4] = ["count", "sum", "min", "max"];
    if let Some(k) = s.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(problem(
            &format!("{field}.{k}"),
            "unknown field; expected count, sum, min and max",
        ));
    }
    let mut got = [0.0; 4];
    for (slot, key) in got.iter_mut().zip(KEYS) {
        let f = format!("{field}.{key}");
        *slot = number(s.get(key).ok_or_else(|| problem(&f, "is required"))?, &f)?;
    }
    let [count, sum, min, max] = got;
    if count <= 0.0 {
        return Err(problem(
            &format!("{field}.count"),
            format!("must be greater than 0, got {count}"),
        ));
    }
    if min > max {
        return Err(problem(
            &format!("{field}.min"),
            format!("min ({min}) must not exceed max ({max})"),
        ));
    }
    Aggregate::from_stats(count, sum, min, max).map_err(|e| problem(field, e.to_string()))
}

#[cfg(test)]
mod tests;
