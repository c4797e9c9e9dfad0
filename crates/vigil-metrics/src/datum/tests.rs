#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000_000;

fn put(body: Value) -> Result<PutBatch, PutError> {
    parse_put("App", body.to_string().as_bytes(), NOW)
}

/// The single rejection of a one-bad-metric request (a good one rides
/// along so the request itself succeeds).
fn reject(metric: Value) -> (String, String) {
    let batch = put(json!({"metrics": [{"name": "ok", "value": 1}, metric]}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.accepted.len(), 1);
    assert_eq!(batch.rejected.len(), 1, "{:?}", batch.rejected);
    let r = &batch.rejected[0];
    assert_eq!(r.index, 1);
    (r.field.clone(), r.reason.clone())
}

fn accept(metric: Value) -> Datum {
    let mut batch = put(json!({ "metrics": [metric] })).unwrap_or_else(|e| panic!("{e}"));
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    batch.accepted.remove(0)
}

#[test]
fn a_full_metric_is_accepted_with_defaults_filled() {
    let d = accept(
        json!({"name": "LatencyMs", "dimensions": {"host": "a", "az": "1"},
        "unit": "Milliseconds", "values": [10, 20], "counts": [3, 1], "resolution": 1}),
    );
    assert_eq!(
        d.key,
        SeriesKey::new("App", "LatencyMs")
            .with_dimension("az", "1")
            .with_dimension("host", "a")
            .with_unit(Unit::Milliseconds)
    );
    assert_eq!(d.timestamp_ms, NOW);
    assert_eq!(d.resolution, Resolution::High);
    assert_eq!((d.aggregate.count, d.aggregate.sum), (4.0, 50.0));
    let plain = accept(json!({"name": "n", "value": 2.5}));
    assert_eq!(plain.key.unit, Unit::None);
    assert_eq!(plain.resolution, Resolution::Standard);
    assert_eq!(plain.aggregate, Aggregate::from_value(2.5));
}

#[test]
fn bad_json_reports_line_and_column() {
    let err = parse_put("App", b"{\n  \"metrics\": [\n    {\"name\": }\n]}", NOW).unwrap_err();
    match err {
        PutError::Json { line, column, .. } => assert_eq!((line, column), (3, 14)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_put("App", br#"{"metric": []}"#, NOW),
        Err(PutError::Json { line: 1, .. })
    ));
}

#[test]
fn namespace_rules() {
    let body = br#"{"metrics": [{"name": "n", "value": 1}]}"#;
    assert_eq!(
        parse_put("", body, NOW).unwrap_err().to_string(),
        "invalid namespace: must be 1 to 255 characters, got 0"
    );
    assert_eq!(
        parse_put(":App", body, NOW).unwrap_err(),
        PutError::Namespace("must not start with `:`".into())
    );
    assert!(parse_put(&"n".repeat(256), body, NOW).is_err());
    assert!(parse_put(&"é".repeat(255), body, NOW).is_ok());
}

#[test]
fn empty_and_oversized_requests_fail_whole() {
    assert_eq!(put(json!({"metrics": []})), Err(PutError::NoMetrics));
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"name": "n", "value": 1}))
        .collect();
    assert_eq!(
        put(json!({ "metrics": many })),
        Err(PutError::TooManyMetrics(1001))
    );
    let thousand: Vec<Value> = (0..1000)
        .map(|_| json!({"name": "n", "value": 1}))
        .collect();
    assert_eq!(
        put(json!({ "metrics": thousand })).unwrap().accepted.len(),
        1000
    );
}

#[test]
fn nothing_valid_carries_every_rejection() {
    let err = put(json!({"metrics": [{"name": ""}, {"value": 1}]})).unwrap_err();
    let PutError::NothingValid(rejected) = &err else {
        panic!("{err:?}")
    };
    let fields: Vec<&str> = rejected.iter().map(|r| r.field.as_str()).collect();
    assert_eq!(fields, ["metrics[0].name", "metrics[1].name"]);
    assert_eq!(
        err.to_string(),
        "no metric was valid; first: metrics[0].name: must be 1 to 255 characters, got 0"
    );
}

#[test]
fn metric_must_be_an_object_without_unknown_fields() {
    assert_eq!(
        reject(json!(3)),
        (
            "metrics[1]".into(),
            "expected an object, got a number".into()
        )
    );
    let (field, reason) = reject(json!({"name": "n", "value": 1, "Value": 2}));
    assert_eq!(field, "metrics[1].Value");
    assert!(
        reason.starts_with("unknown field; expected one of name,"),
        "{reason}"
    );
}

#[test]
fn metric_name_rules() {
    assert_eq!(
        reject(json!({"value": 1})),
        ("metrics[1].name".into(), "is required".into())
    );
    assert_eq!(
        reject(json!({"name": 5, "value": 1})),
        (
            "metrics[1].name".into(),
            "expected a string, got a number".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "x".repeat(256), "value": 1})),
        (
            "metrics[1].name".into(),
            "must be 1 to 255 characters, got 256".into()
        )
    );
    accept(json!({"name": "x".repeat(255), "value": 1}));
}

#[test]
fn at_most_thirty_dimensions() {
    let dims: Map<String, Value> = (0..31).map(|i| (format!("d{i}"), json!("v"))).collect();
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "dimensions": dims})),
        (
            "metrics[1].dimensions".into(),
            "holds 31 dimensions, at most 30 are allowed".into()
        )
    );
    let dims: Map<String, Value> = (0..30).map(|i| (format!("d{i}"), json!("v"))).collect();
    assert_eq!(
        accept(json!({"name": "n", "value": 1, "dimensions": dims}))
            .key
            .dimensions
            .len(),
        30
    );
}

#[test]
fn dimension_name_rules() {
    let cases = [
        ("", "dimension name must be 1 to 255 characters, got 0"),
        ("hôst", "dimension name must be ASCII"),
        ("a\tb", "dimension name must not hold control characters"),
        ("   ", "dimension name must hold a non-space character"),
        (":host", "dimension name must not start with `:`"),
    ];
    for (name, want) in cases {
        let (field, reason) = reject(json!({"name": "n", "value": 1, "dimensions": {name: "v"}}));
        assert_eq!(field, format!("metrics[1].dimensions.{name}"));
        assert_eq!(reason, want, "{name:?}");
    }
    let long = "h".repeat(256);
    let (_, reason) = reject(json!({"name": "n", "value": 1, "dimensions": {long: "v"}}));
    assert_eq!(
        reason,
        "dimension name must be 1 to 255 characters, got 256"
    );
    accept(json!({"name": "n", "value": 1, "dimensions": {" a b ": "v"}}));
}

#[test]
fn dimension_value_rules() {
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "dimensions": {"host": ""}})),
        (
            "metrics[1].dimensions.host".into(),
            "dimension value must be 1 to 1024 characters, got 0".into()
        )
    );
    let (_, reason) =
        reject(json!({"name": "n", "value": 1, "dimensions": {"host": "v".repeat(1025)}}));
    assert_eq!(
        reason,
        "dimension value must be 1 to 1024 characters, got 1025"
    );
    let (_, reason) = reject(json!({"name": "n", "value": 1, "dimensions": {"host": 3}}));
    assert_eq!(reason, "dimension value must be a string, got a number");
    let (field, _) = reject(json!({"name": "n", "value": 1, "dimensions": ["host"]}));
    assert_eq!(field, "metrics[1].dimensions");
    accept(json!({"name": "n", "value": 1, "dimensions": {"host": "v".repeat(1024)}}));
}

#[test]
fn exactly_one_value_form() {
    assert_eq!(
        reject(json!({"name": "n"})),
        (
            "metrics[1]".into(),
            "expected exactly one of `value`, `values` or `stats`, got none".into()
        )
    );
    assert_eq!(
        reject(
            json!({"name": "n", "value": 1, "stats": {"count": 1, "sum": 1, "min": 1, "max": 1}})
        )
        .1,
        "expected exactly one of `value`, `values` or `stats`, got `value` and `stats`"
    );
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "counts": [1]})),
        ("metrics[1].counts".into(), "`counts` needs `values`".into())
    );
}

#[test]
fn values_and_counts_rules() {
    assert_eq!(
        reject(json!({"name": "n", "values": [1, 2], "counts": [1]})),
        (
            "metrics[1].counts".into(),
            "holds 1 counts but values holds 2; they must have the same length".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "values": []})),
        (
            "metrics[1].values".into(),
            "must hold at least one value".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "values": [1, 2], "counts": [1, 0]})),
        (
            "metrics[1].counts[1]".into(),
            "a count must be a whole number of at least 1, got 0".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "values": [1, "x"]})),
        (
            "metrics[1].values[1]".into(),
            "expected a number, got the string `x`".into()
        )
    );
}

#[test]
fn at_most_150_unique_values() {
    let too_many: Vec<f64> = (0..151).map(f64::from).collect();
    assert_eq!(
        reject(json!({"name": "n", "values": too_many})),
        (
            "metrics[1].values".into(),
            "holds 151 distinct values, at most 150 are allowed".into()
        )
    );
    // 300 values, 150 distinct: fine.
    let repeated: Vec<f64> = (0..300).map(|i| f64::from(i % 150)).collect();
    assert_eq!(
        accept(json!({"name": "n", "values": repeated}))
            .aggregate
            .count,
        300.0
    );
}

#[test]
fn numbers_must_lie_within_2_pow_360() {
    let big = 2f64.powi(361);
    let (field, reason) = reject(json!({"name": "n", "value": big}));
    assert_eq!(field, "metrics[1].value");
    assert!(
        reason.ends_with("is outside the accepted range of ±2^360"),
        "{reason}"
    );
    let (field, _) = reject(json!({"name": "n", "values": [1, -big]}));
    assert_eq!(field, "metrics[1].values[1]");
    let (field, _) =
        reject(json!({"name": "n", "stats": {"count": 1, "sum": big, "min": 1, "max": 1}}));
    assert_eq!(field, "metrics[1].stats.sum");
    accept(json!({"name": "n", "value": 2f64.powi(360)}));
}

#[test]
fn nan_and_infinity_strings_are_rejected_clearly() {
    for s in ["NaN", "Infinity", "-Infinity", "inf"] {
        assert_eq!(
            reject(json!({"name": "n", "value": s})),
            (
                "metrics[1].value".into(),
                format!(
                    "`{s}` is not accepted: values must be finite numbers (no NaN or infinity)"
                )
            )
        );
    }
    assert_eq!(
        reject(json!({"name": "n", "value": null})).1,
        "expected exactly one of `value`, `values` or `stats`, got none"
    );
}

#[test]
fn unit_must_be_known() {
    let (field, reason) = reject(json!({"name": "n", "value": 1, "unit": "Furlongs"}));
    assert_eq!(field, "metrics[1].unit");
    assert!(
        reason.starts_with("unknown unit `Furlongs`; expected one of Seconds, Microseconds"),
        "{reason}"
    );
    assert_eq!(
        accept(json!({"name": "n", "value": 1, "unit": "Bytes/Second"}))
            .key
            .unit,
        Unit::BytesPerSecond
    );
}

#[test]
fn resolution_is_1_or_60() {
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "resolution": 5})),
        (
            "metrics[1].resolution".into(),
            "must be 1 or 60, got 5".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "resolution": "60"})).1,
        "must be 1 or 60, got \"60\""
    );
    assert_eq!(
        accept(json!({"name": "n", "value": 1, "resolution": 60})).resolution,
        Resolution::Standard
    );
}

#[test]
fn timestamps_as_millis_or_rfc3339() {
    let d = accept(json!({"name": "n", "value": 1, "timestamp": NOW - 1000}));
    assert_eq!(d.timestamp_ms, NOW - 1000);
    let d = accept(json!({"name": "n", "value": 1, "timestamp": "2023-11-14T22:13:19.5Z"}));
    assert_eq!(d.timestamp_ms, NOW - 500);
    let d = accept(json!({"name": "n", "value": 1, "timestamp": "2023-11-15T00:13:20+02:00"}));
    assert_eq!(d.timestamp_ms, NOW);
    let (field, reason) = reject(json!({"name": "n", "value": 1, "timestamp": "yesterday"}));
    assert_eq!(field, "metrics[1].timestamp");
    assert!(
        reason.starts_with("expected Unix milliseconds or an RFC 3339 time, got `yesterday`"),
        "{reason}"
    );
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "timestamp": 1.5})).1,
        "expected whole Unix milliseconds, got 1.5"
    );
}

#[test]
fn timestamps_within_14_days_back_and_2_hours_ahead() {
    accept(json!({"name": "n", "value": 1, "timestamp": NOW - MAX_AGE_MS}));
    accept(json!({"name": "n", "value": 1, "timestamp": NOW + MAX_AHEAD_MS}));
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "timestamp": NOW - MAX_AGE_MS - 1})).1,
        format!(
            "{} is more than 14 days in the past (now is {NOW})",
            NOW - MAX_AGE_MS - 1
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "value": 1, "timestamp": NOW + MAX_AHEAD_MS + 1})).1,
        format!(
            "{} is more than 2 hours in the future (now is {NOW})",
            NOW + MAX_AHEAD_MS + 1
        )
    );
}

#[test]
fn statistic_sets_are_checked() {
    let d = accept(json!({"name": "n", "stats": {"count": 4, "sum": 10, "min": 1, "max": 4}}));
    assert_eq!(
        (
            d.aggregate.count,
            d.aggregate.sum,
            d.aggregate.min,
            d.aggregate.max
        ),
        (4.0, 10.0, 1.0, 4.0)
    );
    assert_eq!(d.aggregate.sketch, None);
    assert_eq!(
        reject(json!({"name": "n", "stats": {"count": 4, "sum": 10, "min": 1}})),
        ("metrics[1].stats.max".into(), "is required".into())
    );
    assert_eq!(
        reject(json!({"name": "n", "stats": {"count": 0, "sum": 0, "min": 1, "max": 1}})),
        (
            "metrics[1].stats.count".into(),
            "must be greater than 0, got 0".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "stats": {"count": 2, "sum": 3, "min": 2, "max": 1}})),
        (
            "metrics[1].stats.min".into(),
            "min (2) must not exceed max (1)".into()
        )
    );
    assert_eq!(
        reject(json!({"name": "n", "stats": {"count": 1, "sum": 1, "min": 1, "max": 1, "avg": 1}}))
            .0,
        "metrics[1].stats.avg"
    );
}
