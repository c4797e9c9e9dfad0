//! Metrics inside log lines: CloudWatch's Embedded Metric Format
//! (SEMANTICS §5). An event whose message is a JSON object with a root
//! `_aws` member is read for metric directives; each metric of a directive
//! becomes one record per dimension set. The event stays a log event
//! either way, and an invalid directive is reported (naming the member)
//! and skipped, never fatal.
//!
//! ```
//! use vigil_logs::emf;
//!
//! let line = r#"{"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [
//!     {"Namespace": "svc", "Dimensions": [["Model"]],
//!      "Metrics": [{"Name": "latencyMs", "Unit": "Milliseconds"}]}]},
//!   "Model": "fraud", "latencyMs": [12, 15]}"#;
//! let out = emf::extract(line, 1700000000000).unwrap();
//! assert_eq!(out.records.len(), 1);
//! assert_eq!(out.records[0].aggregate.sum, 27.0);
//! assert!(out.errors.is_empty());
//! ```
//!
//! Rules: `_aws.Timestamp` (Unix ms, 14 days back to 2 h ahead) and
//! `_aws.CloudWatchMetrics` (an array of directives) are required. A
//! directive has a `Namespace`, `Dimensions` (an array of dimension sets,
//! each an array of at most 30 names; `[]` is a set with no dimension, and
//! a missing or empty `Dimensions` means one such set) and `Metrics` (at
//! most 100 of `{Name, Unit, StorageResolution: 1 | 60}`). Members are
//! looked up at the root, case-sensitively: a metric's is a number or an
//! array of at most 100 numbers, a dimension's a string.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vigil_metrics::tsdb::Record;
use vigil_metrics::{Aggregate, Dimensions, Resolution, SeriesKey, Unit};

use crate::metric_filter::definition::{
    MAX_DIMENSION_VALUE_CHARS, MAX_METRIC_NAME_CHARS, check_dimension_name,
};

/// Most metrics one directive may declare.
pub const MAX_METRICS: usize = 100;
/// Most values one metric member may hold.
pub const MAX_VALUES: usize = 100;
/// Most dimensions one dimension set may name.
pub const MAX_DIMENSIONS: usize = 30;
/// Oldest accepted `_aws.Timestamp`: 14 days before now.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;
/// Latest accepted `_aws.Timestamp`: 2 hours after now.
pub const MAX_AHEAD_MS: i64 = 2 * 3600 * 1000;

static AWS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"_aws\""));

/// What one EMF event yielded: the records of its valid directives, and
/// one message per invalid one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// One per metric and dimension set of each valid directive.
    pub records: Vec<Record>,
    /// What was wrong, naming the member (`_aws.CloudWatchMetrics[0].Namespace: ...`).
    pub errors: Vec<String>,
}

/// The EMF part of a stored batch's answer: present when an event of the
/// batch was EMF.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmfReport {
    /// Records extracted and handed to the metric store.
    pub metrics: usize,
    /// Each invalid directive (or `_aws` member), with its event's index.
    pub invalid: Vec<EmfInvalid>,
}

/// One problem found in an EMF event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmfInvalid {
    /// The event's index in the request.
    pub index: usize,
    /// What was wrong, naming the member.
    pub message: String,
}

/// Whether `message` may be EMF: it holds `"_aws"` (a substring search;
/// nothing is parsed). Every other event costs this search only.
pub fn may_be_emf(message: &str) -> bool {
    AWS.find(message.as_bytes()).is_some()
}

/// Reads `message` as EMF at `now_ms`; `None` when it is not EMF (not a
/// JSON object, or no `_aws` member at its root).
pub fn extract(message: &str, now_ms: i64) -> Option<Extracted> {
    if !may_be_emf(message) {
        return None;
    }
    let root: Map<String, Value> = serde_json::from_str(message).ok()?;
    let aws = root.get("_aws")?;
    let mut out = Extracted::default();
    match header(aws, now_ms) {
        Err(e) => out.errors.push(e),
        Ok((timestamp_ms, directives)) => {
            for (i, d) in directives.iter().enumerate() {
                let at = format!("_aws.CloudWatchMetrics[{i}]");
                match directive(d, &at, &root, timestamp_ms) {
                    Ok(records) => out.records.extend(records),
                    Err(e) => out.errors.push(e),
                }
            }
        }
    }
    Some(out)
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

/// `_aws`: its timestamp and its directives.
fn header(aws: &Value, now_ms: i64) -> Result<(i64, &Vec<Value>), String> {
    let aws = aws
        .as_object()
        .ok_or_else(|| format!("_aws: expected an object, got {}", kind(aws)))?;
    let ts = match aws.get("Timestamp") {
        None => return Err("_aws.Timestamp: is required (Unix milliseconds)".into()),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(ms), _) => ms,
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
            _ => {
                return Err(format!(
                    "_aws.Timestamp: expected whole Unix milliseconds, got {n}"
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "_aws.Timestamp: expected Unix milliseconds, got {}",
                kind(other)
            ));
        }
    };
    if ts < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(format!(
            "_aws.Timestamp: {ts} is more than 14 days in the past"
        ));
    }
    if ts > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(format!(
            "_aws.Timestamp: {ts} is more than 2 hours in the future"
        ));
    }
    match aws.get("CloudWatchMetrics") {
        None => Err("_aws.CloudWatchMetrics: is required (an array of metric directives)".into()),
        Some(Value::Array(d)) => Ok((ts, d)),
        Some(other) => Err(format!(
            "_aws.CloudWatchMetrics: expected an array of metric directives, got {}",
            kind(other)
        )),
    }
}

/// One directive's records, or the first thing wrong with it.
fn directive(
    d: &Value,
    at: &str,
    root: &Map<String, Value>,
    timestamp_ms: i64,
) -> Result<Vec<Record>, String> {
    let d = d
        .as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {}", kind(d)))?;
    let namespace = name(d.get("Namespace"), &format!("{at}.Namespace"))?;
    let sets = dimension_sets(d.get("Dimensions"), &format!("{at}.Dimensions"), root)?;
    let field = format!("{at}.Metrics");
    let metrics = match d.get("Metrics") {
        None => return Err(format!("{field}: is required (an array of metrics)")),
        Some(Value::Array(m)) => m,
        Some(other) => return Err(format!("{field}: expected an array, got {}", kind(other))),
    };
    if metrics.len() > MAX_METRICS {
        return Err(format!(
            "{field}: holds {} metrics, at most {MAX_METRICS} are allowed",
            metrics.len()
        ));
    }
    let mut records = Vec::with_capacity(metrics.len() * sets.len());
    for (j, m) in metrics.iter().enumerate() {
        let at = format!("{field}[{j}]");
        let m = m
            .as_object()
            .ok_or_else(|| format!("{at}: expected an object, got {}", kind(m)))?;
        let metric = name(m.get("Name"), &format!("{at}.Name"))?;
        let unit = match m.get("Unit") {
            None | Some(Value::Null) => Unit::None,
            Some(Value::String(u)) => {
                Unit::parse(u).ok_or_else(|| format!("{at}.Unit: unknown unit {u:?}"))?
            }
            Some(other) => {
                return Err(format!("{at}.Unit: expected a string, got {}", kind(other)));
            }
        };
        let resolution = match m.get("StorageResolution") {
            None | Some(Value::Null) => Resolution::Standard,
            Some(v) => match v.as_u64() {
                Some(1) => Resolution::High,
                Some(60) => Resolution::Standard,
                _ => return Err(format!("{at}.StorageResolution: must be 1 or 60, got {v}")),
            },
        };
        let aggregate = values(root.get(metric.as_str()), &metric)?;
        for dims in &sets {
            records.push(Record {
                key: SeriesKey {
                    namespace: namespace.clone(),
                    name: metric.clone(),
                    dimensions: dims.clone(),
                    unit,
                },
                timestamp_ms,
                aggregate: aggregate.clone(),
                resolution,
            });
        }
    }
    Ok(records)
}

/// A namespace or metric name: a string of 1–255 characters, not starting
/// with `:`.
fn name(v: Option<&Value>, field: &str) -> Result<String, String> {
    let s = match v {
        None => return Err(format!("{field}: is required")),
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("{field}: expected a string, got {}", kind(other))),
    };
    let n = s.chars().count();
    if n == 0 || n > MAX_METRIC_NAME_CHARS {
        return Err(format!(
            "{field}: must be 1 to {MAX_METRIC_NAME_CHARS} characters, got {n}"
        ));
    }
    if s.starts_with(':') {
        return Err(format!("{field}: must not start with `:`"));
    }
    Ok(s.clone())
}

/// Each dimension set, its names resolved to the root's string members.
fn dimension_sets(
    v: Option<&Value>,
    field: &str,
    root: &Map<String, Value>,
) -> Result<Vec<Dimensions>, String> {
    let sets = match v {
        None | Some(Value::Null) => return Ok(vec![Dimensions::new()]),
        Some(Value::Array(s)) if s.is_empty() => return Ok(vec![Dimensions::new()]),
        Some(Value::Array(s)) => s,
        Some(other) => {
            return Err(format!(
                "{field}: expected an array of dimension sets, got {}",
                kind(other)
            ));
        }
    };
    let mut out: Vec<Dimensions> = Vec::with_capacity(sets.len());
    for (k, set) in sets.iter().enumerate() {
        let at = format!("{field}[{k}]");
        let names = set.as_array().ok_or_else(|| {
            format!(
                "{at}: expected an array of dimension names, got {}",
                kind(set)
            )
        })?;
        if names.len() > MAX_DIMENSIONS {
            return Err(format!(
                "{at}: names {} dimensions, at most {MAX_DIMENSIONS} are allowed",
                names.len()
            ));
        }
        let mut dims = Dimensions::new();
        for (l, n) in names.iter().enumerate() {
            let n = n
                .as_str()
                .ok_or_else(|| format!("{at}[{l}]: expected a dimension name, got {}", kind(n)))?;
            check_dimension_name(n).map_err(|e| format!("{at}[{l}]: {e}"))?;
            let value = match root.get(n) {
                None => {
                    return Err(format!(
                        "{at}: dimension {n:?} has no member at the root of the event"
                    ));
                }
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(format!(
                        "{at}: dimension {n:?} must be a string member, got {}",
                        kind(other)
                    ));
                }
            };
            let len = value.chars().count();
            if len == 0 || len > MAX_DIMENSION_VALUE_CHARS {
                return Err(format!(
                    "{at}: dimension {n:?}'s value must be 1 to {MAX_DIMENSION_VALUE_CHARS} characters, got {len}"
                ));
            }
            dims.insert(n.to_owned(), value.clone());
        }
        // A set named twice would count its data twice.
        if !out.contains(&dims) {
            out.push(dims);
        }
    }
    Ok(out)
}

/// A metric member: a number, or an array of 1–100 numbers.
fn values(v: Option<&Value>, metric: &str) -> Result<Aggregate, String> {
    let number = |v: &Value| -> Option<f64> {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() <= 2f64.powi(360))
    };
    match v {
        None => Err(format!(
            "metric {metric:?} has no member at the root of the event"
        )),
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > MAX_VALUES {
                return Err(format!(
                    "metric {metric:?}: an array of values must hold 1 to {MAX_VALUES} numbers, got {}",
                    items.len()
                ));
            }
            let mut all = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                all.push(number(item).ok_or_else(|| {
                    format!(
                        "metric {metric:?}[{i}]: expected a number within ±2^360, got {}",
                        kind(item)
                    )
                })?);
            }
            Aggregate::from_values(&all, &[]).map_err(|e| format!("metric {metric:?}: {e}"))
        }
        Some(other) => number(other).map(Aggregate::from_value).ok_or_else(|| {
            format!(
                "metric {metric:?}: expected a number or an array of numbers, got {}",
                kind(other)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_574_109_732_004;

    fn example() -> String {
        r#"{"_aws":{"Timestamp":1574109732004,
          "CloudWatchMetrics":[{"Namespace":"svc","Dimensions":[["Model"],["Model","Stage"],[]],
            "Metrics":[{"Name":"latencyMs","Unit":"Milliseconds","StorageResolution":1}]}]},
         "Model":"fraud","Stage":"prod","latencyMs":[12,15,40],"requestId":"r-1"}"#
            .to_owned()
    }

    fn one_error(line: &str) -> String {
        let out = extract(line, NOW).expect("emf");
        assert!(out.records.is_empty(), "{:?}", out.records);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        out.errors[0].clone()
    }

    #[test]
    fn the_semantics_example_gives_three_series_with_12_15_40() {
        let out = extract(&example(), NOW).expect("emf");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.records.len(), 3);
        let dims: Vec<Vec<(&str, &str)>> = out
            .records
            .iter()
            .map(|r| {
                r.key
                    .dimensions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            })
            .collect();
        assert_eq!(
            dims,
            vec![
                vec![("Model", "fraud")],
                vec![("Model", "fraud"), ("Stage", "prod")],
                vec![],
            ]
        );
        for r in &out.records {
            assert_eq!(r.key.namespace, "svc");
            assert_eq!(r.key.name, "latencyMs");
            assert_eq!(r.key.unit, Unit::Milliseconds);
            assert_eq!(r.timestamp_ms, 1_574_109_732_004);
            assert_eq!(r.resolution, Resolution::High);
            let a = &r.aggregate;
            assert_eq!((a.count, a.sum, a.min, a.max), (3.0, 67.0, 12.0, 40.0));
            let sketch = a.sketch.as_ref().expect("values keep a sketch");
            assert_eq!(sketch.count(), 3);
        }
    }

    #[test]
    fn lines_without_aws_are_not_emf_and_cost_a_search() {
        assert!(!may_be_emf(r#"{"level": "info", "aws": 1}"#));
        assert_eq!(extract("GET / 200", NOW), None);
        assert_eq!(
            extract(r#"{"a": {"_aws": {}}}"#, NOW),
            None,
            "nested is not root"
        );
        assert_eq!(extract(r#"not json "_aws""#, NOW), None);
    }

    #[test]
    fn a_single_number_and_standard_resolution_by_default() {
        let line = r#"{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[
            {"Namespace":"svc","Dimensions":[],"Metrics":[{"Name":"Errors"}]}]},"Errors":2}"#;
        let out = extract(line, NOW).expect("emf");
        assert_eq!(out.records.len(), 1);
        let r = &out.records[0];
        assert!(r.key.dimensions.is_empty());
        assert_eq!(r.key.unit, Unit::None);
        assert_eq!(r.resolution, Resolution::Standard);
        assert_eq!((r.aggregate.count, r.aggregate.sum), (1.0, 2.0));
    }

    #[test]
    fn an_invalid_directive_is_reported_and_the_valid_one_kept() {
        let line = r#"{"_aws":{"Timestamp":1574109732004,"CloudWatchMetrics":[
            {"Namespace":"svc","Dimensions":[["Model"]],"Metrics":[{"Name":"a"}]},
            {"Namespace":"svc","Dimensions":[["Missing"]],"Metrics":[{"Name":"a"}]}]},
            "Model":"m","a":1}"#;
        let out = extract(line, NOW).expect("emf");
        assert_eq!(out.records.len(), 1);
        assert_eq!(
            out.errors,
            vec![
                "_aws.CloudWatchMetrics[1].Dimensions[0]: dimension \"Missing\" has no member at the root of the event"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn each_rule_names_its_member() {
        let cases = [
            (r#"{"_aws": 3}"#, "_aws: expected an object"),
            (
                r#"{"_aws": {"CloudWatchMetrics": []}}"#,
                "_aws.Timestamp: is required",
            ),
            (
                r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}}"#,
                "_aws.Timestamp: 1 is more than 14 days in the past",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004}}"#,
                "_aws.CloudWatchMetrics: is required",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Dimensions": [], "Metrics": []}]}}"#,
                "_aws.CloudWatchMetrics[0].Namespace: is required",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Dimensions": [["Model"]], "Metrics": [{"Name": "a"}]}]},
                    "Model": 3, "a": 1}"#,
                "_aws.CloudWatchMetrics[0].Dimensions[0]: dimension \"Model\" must be a string member, got a number",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Metrics": [{"Name": "a"}]}]}, "A": 1}"#,
                "metric \"a\" has no member at the root",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Metrics": [{"Name": "a"}]}]}, "a": "12"}"#,
                "metric \"a\": expected a number or an array of numbers, got a string",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Metrics": [{"Name": "a", "StorageResolution": 5}]}]}, "a": 1}"#,
                "_aws.CloudWatchMetrics[0].Metrics[0].StorageResolution: must be 1 or 60, got 5",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Metrics": [{"Name": "a", "Unit": "Furlongs"}]}]}, "a": 1}"#,
                "_aws.CloudWatchMetrics[0].Metrics[0].Unit: unknown unit \"Furlongs\"",
            ),
            (
                r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
                    {"Namespace": "n", "Metrics": [{"Name": "a"}]}]}, "a": []}"#,
                "an array of values must hold 1 to 100 numbers, got 0",
            ),
        ];
        for (line, needle) in cases {
            let e = one_error(line);
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
        }
    }

    #[test]
    fn limits_on_metrics_values_and_dimensions() {
        let metrics: Vec<String> = (0..101).map(|i| format!(r#"{{"Name": "m{i}"}}"#)).collect();
        let line = format!(
            r#"{{"_aws": {{"Timestamp": {NOW}, "CloudWatchMetrics": [
                {{"Namespace": "n", "Metrics": [{}]}}]}}}}"#,
            metrics.join(",")
        );
        assert!(one_error(&line).contains("holds 101 metrics, at most 100"));
        let values: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let line = format!(
            r#"{{"_aws": {{"Timestamp": {NOW}, "CloudWatchMetrics": [
                {{"Namespace": "n", "Metrics": [{{"Name": "a"}}]}}]}}, "a": [{}]}}"#,
            values.join(",")
        );
        assert!(one_error(&line).contains("1 to 100 numbers, got 101"));
        let names: Vec<String> = (0..31).map(|i| format!(r#""d{i}""#)).collect();
        let line = format!(
            r#"{{"_aws": {{"Timestamp": {NOW}, "CloudWatchMetrics": [
                {{"Namespace": "n", "Dimensions": [[{}]], "Metrics": [{{"Name": "a"}}]}}]}}, "a": 1}}"#,
            names.join(",")
        );
        assert!(one_error(&line).contains("names 31 dimensions, at most 30"));
    }

    #[test]
    fn members_are_case_sensitive() {
        let line = r#"{"_aws": {"Timestamp": 1574109732004, "CloudWatchMetrics": [
            {"Namespace": "n", "Metrics": [{"Name": "Latency"}]}]}, "latency": 1}"#;
        assert!(one_error(line).contains("metric \"Latency\" has no member"));
    }
}
