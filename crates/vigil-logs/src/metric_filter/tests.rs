use std::sync::{Arc, Mutex};

use vigil_metrics::Unit;
use vigil_metrics::tsdb::Record;

use super::*;
use crate::store::InputEvent;

#[derive(Debug, Default)]
struct Memory {
    records: Mutex<Vec<Record>>,
    fail: std::sync::atomic::AtomicBool,
}

impl MetricSink for Memory {
    fn put(&self, records: &[Record]) -> Result<(), String> {
        if self.fail.load(Ordering::Relaxed) {
            return Err("disk full".into());
        }
        self.records.lock().unwrap().extend_from_slice(records);
        Ok(())
    }
}

impl Memory {
    fn take(&self) -> Vec<Record> {
        let mut all = std::mem::take(&mut *self.records.lock().unwrap());
        all.sort_by(|a, b| {
            (a.timestamp_ms, &a.key.dimensions).cmp(&(b.timestamp_ms, &b.key.dimensions))
        });
        all
    }
}

/// 2027-01-15T08:00:00Z, on a minute.
const T0: i64 = 1_800_000_000_000;

fn spec(json: &str) -> FilterSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn setup() -> (tempfile::TempDir, Arc<Memory>, MetricFilters) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Memory::default());
    let filters = MetricFilters::open(dir.path(), sink.clone()).unwrap();
    (dir, sink, filters)
}

fn ingest(filters: &MetricFilters, group: &str, events: &[(i64, &str)]) {
    let events: Vec<InputEvent> = events
        .iter()
        .map(|(ts, m)| InputEvent {
            timestamp: *ts,
            message: (*m).to_owned(),
        })
        .collect();
    filters.stored(&Batch::new(group, "s", T0, &events));
}

fn sum_count(r: &Record) -> (f64, f64) {
    (r.aggregate.sum, r.aggregate.count)
}

fn invalid(json: &str) -> (String, String) {
    match MetricFilter::new(FilterDef {
        group: "/g".into(),
        name: "f".into(),
        pattern: spec(json).pattern,
        metric: spec(json).metric,
        created_ms: 0,
    }) {
        Err(FilterError::Invalid { field, message }) => (field, message),
        other => panic!("{json}: {other:?}"),
    }
}

#[test]
fn each_rule_names_its_field() {
    let cases = [
        (
            r#"{"pattern": "", "metric": {"name": "", "namespace": "A", "value": "1"}}"#,
            "metric.name",
            "1 to 255",
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a:b", "namespace": "A", "value": "1"}}"#,
            "metric.name",
            "':'",
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a", "namespace": "$A", "value": "1"}}"#,
            "metric.namespace",
            "'$'",
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a", "namespace": "A", "value": "one"}}"#,
            "metric.value",
            "expected a number",
        ),
        (
            r#"{"pattern": "ERROR", "metric": {"name": "a", "namespace": "A", "value": "$.x"}}"#,
            "metric.value",
            "JSON pattern",
        ),
        (
            r#"{"pattern": "{ $.a = 1 }", "metric": {"name": "a", "namespace": "A", "value": "$bytes"}}"#,
            "metric.value",
            "space-delimited",
        ),
        (
            r#"{"pattern": "[ip, bytes]", "metric": {"name": "a", "namespace": "A", "value": "$size"}}"#,
            "metric.value",
            "no field `size`; its fields are $ip, $bytes",
        ),
        (
            r#"{"pattern": "[ip, ..., bytes]", "metric": {"name": "a", "namespace": "A", "value": "$3"}}"#,
            "metric.value",
            "2 named fields",
        ),
        (
            r#"{"pattern": "[a, b, c, d]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "dimensions": {"A": "$a", "B": "$b", "C": "$c", "D": "$d"}}}"#,
            "metric.dimensions",
            "at most 3",
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "default": 0, "dimensions": {"A": "$a"}}}"#,
            "metric.default",
            "cannot have a default value",
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "dimensions": {"A": "web"}}}"#,
            "metric.dimensions.A",
            "must be a field of the match",
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "dimensions": {"A": "7"}}}"#,
            "metric.dimensions.A",
            "must be a field of the match",
        ),
        (
            r#"{"pattern": "[a]", "metric": {"name": "a", "namespace": "A", "value": "1",
                "dimensions": {":A": "$a"}}}"#,
            "metric.dimensions.:A",
            "must not start with `:`",
        ),
        (
            r#"{"pattern": "", "metric": {"name": "a", "namespace": "A", "value": "1", "unit": "Furlongs"}}"#,
            "metric.unit",
            "unknown unit \"Furlongs\"",
        ),
    ];
    for (json, field, needle) in cases {
        let (f, message) = invalid(json);
        assert_eq!(f, field, "{json}: {message}");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

#[test]
fn names_and_patterns_are_checked_too() {
    let (_dir, _sink, filters) = setup();
    let ok = || spec(r#"{"metric": {"name": "a", "namespace": "A", "value": 1}}"#);
    let err = filters.put("/g", "a*b", ok(), 0).unwrap_err();
    assert!(
        matches!(&err, FilterError::Invalid { field, .. } if field == "name"),
        "{err}"
    );
    let err = filters.put("bad group", "f", ok(), 0).unwrap_err();
    assert!(
        matches!(&err, FilterError::Invalid { field, .. } if field == "group"),
        "{err}"
    );
    let bad = spec(
        r#"{"pattern": "{ $.a = }", "metric": {"name": "a", "namespace": "A", "value": "1"}}"#,
    );
    match filters.put("/g", "f", bad, 0).unwrap_err() {
        FilterError::Pattern(e) => assert_eq!(e.column, 9, "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err_code(&FilterError::TooMany { group: "/g".into() }),
        "conflict"
    );
    assert!(filters.is_empty());
}

fn err_code(e: &FilterError) -> &'static str {
    e.code()
}

#[test]
fn unknown_fields_and_a_non_number_value_are_refused_by_the_reader() {
    let e = serde_json::from_str::<FilterSpec>(
        r#"{"metric": {"name": "a", "namespace": "A", "value": "1", "units": "Count"}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `units`"), "{e}");
    let e = serde_json::from_str::<FilterSpec>(
        r#"{"metric": {"name": "a", "namespace": "A", "value": true}}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("value: expected a string"), "{e}");
}

#[test]
fn a_group_holds_at_most_100_filters() {
    let (_dir, _sink, filters) = setup();
    let s = || spec(r#"{"pattern": "x", "metric": {"name": "a", "namespace": "A", "value": "1"}}"#);
    for i in 0..MAX_FILTERS_PER_GROUP {
        filters.put("/g", &format!("f{i:03}"), s(), 0).unwrap();
    }
    let err = filters.put("/g", "one-more", s(), 0).unwrap_err();
    assert_eq!(err, FilterError::TooMany { group: "/g".into() });
    // Replacing one is not adding one; another group has its own 100.
    let (_, created) = filters.put("/g", "f000", s(), 5).unwrap();
    assert!(!created);
    assert!(filters.put("/h", "f", s(), 0).unwrap().1);
    assert_eq!(filters.list("/g").len(), 100);
}

#[test]
fn matches_are_aggregated_per_minute_of_the_event() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/app",
            "latency",
            spec(
                r#"{"pattern": "{ $.latency > 0 }", "metric": {"name": "Latency",
                "namespace": "App", "value": "$.latency", "unit": "Milliseconds"}}"#,
            ),
            0,
        )
        .unwrap();
    ingest(
        &filters,
        "/app",
        &[
            (T0 + 1_000, r#"{"latency": 10}"#),
            (T0 + 59_999, r#"{"latency": 30}"#),
            (T0 + 60_000, r#"{"latency": 5}"#),
            (T0 + 2_000, r#"{"latency": 0}"#),
            (T0 + 3_000, "not json"),
        ],
    );
    assert_eq!(filters.flush(T0 + 70_000), 2);
    let records = sink.take();
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(r.timestamp_ms, T0);
    assert_eq!(r.key.namespace, "App");
    assert_eq!(r.key.name, "Latency");
    assert_eq!(r.key.unit, Unit::Milliseconds);
    assert_eq!(r.resolution, vigil_metrics::Resolution::Standard);
    let a = &r.aggregate;
    assert_eq!((a.count, a.sum, a.min, a.max), (2.0, 40.0, 10.0, 30.0));
    assert_eq!(a.sketch.as_ref().map(|s| s.count()), Some(2));
    assert_eq!(
        (records[1].timestamp_ms, sum_count(&records[1])),
        (T0 + 60_000, (5.0, 1.0))
    );
    assert_eq!(filters.stats().matched_events, 3);
    assert_eq!(filters.stats().filter_records, 2);
    // Nothing gathered since: nothing written.
    assert_eq!(filters.flush(T0 + 80_000), 0);
    assert!(!filters.has_pending());
}

#[test]
fn early_flushes_split_a_minute_that_the_store_adds_up() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/app",
            "errors",
            spec(r#"{"pattern": "ERROR", "metric": {"name": "Errors", "namespace": "App", "value": 1}}"#),
            0,
        )
        .unwrap();
    ingest(
        &filters,
        "/app",
        &[(T0 + 1_000, "ERROR a"), (T0 + 2_000, "ERROR b")],
    );
    assert_eq!(filters.flush(T0 + 5_000), 1);
    ingest(
        &filters,
        "/app",
        &[(T0 + 6_000, "ERROR c"), (T0 + 7_000, "ok")],
    );
    assert_eq!(filters.flush(T0 + 10_000), 1);
    let records = sink.take();
    let total: f64 = records.iter().map(|r| r.aggregate.sum).sum();
    assert!(records.iter().all(|r| r.timestamp_ms == T0));
    assert_eq!(total, 3.0);
}

#[test]
fn values_from_a_field_a_position_and_a_literal_with_dimensions() {
    let (_dir, sink, filters) = setup();
    let pattern = "[ip, user, ..., status = 5*, bytes]";
    filters
        .put(
            "/web",
            "bytes",
            spec(&format!(
                r#"{{"pattern": "{pattern}", "metric": {{"name": "Bytes", "namespace": "Web",
                    "value": "$bytes", "dimensions": {{"Status": "$status", "Ip": "$1"}}, "unit": "Bytes"}}}}"#
            )),
            0,
        )
        .unwrap();
    filters
        .put(
            "/web",
            "count",
            spec(&format!(
                r#"{{"pattern": "{pattern}", "metric": {{"name": "Errors5xx", "namespace": "Web", "value": "1"}}}}"#
            )),
            0,
        )
        .unwrap();
    filters
        .put(
            "/web",
            "by-position",
            spec(&format!(
                r#"{{"pattern": "{pattern}", "metric": {{"name": "Bytes4", "namespace": "Web", "value": "$4"}}}}"#
            )),
            0,
        )
        .unwrap();
    ingest(
        &filters,
        "/web",
        &[
            (T0, "10.0.0.1 - GET / 503 100"),
            (T0, "10.0.0.1 - GET / 503 50"),
            (T0, "10.0.0.2 - GET / 500 7"),
            (T0, "10.0.0.2 - GET / 200 9"),
            (T0, "10.0.0.3 - GET / 502 -"),
        ],
    );
    filters.flush(T0 + 70_000);
    let records = sink.take();
    let find = |name: &str, dims: &[(&str, &str)]| -> (f64, f64) {
        let r = records
            .iter()
            .find(|r| {
                r.key.name == name
                    && r.key.dimensions.len() == dims.len()
                    && dims
                        .iter()
                        .all(|(k, v)| r.key.dimensions.get(*k).map(String::as_str) == Some(*v))
            })
            .unwrap_or_else(|| panic!("{name} {dims:?} not in {records:#?}"));
        sum_count(r)
    };
    assert_eq!(
        find("Bytes", &[("Status", "503"), ("Ip", "10.0.0.1")]),
        (150.0, 2.0)
    );
    assert_eq!(
        find("Bytes", &[("Status", "500"), ("Ip", "10.0.0.2")]),
        (7.0, 1.0)
    );
    // The 502 line matched but has no number: counted by the literal only.
    assert_eq!(find("Errors5xx", &[]), (4.0, 4.0));
    assert_eq!(find("Bytes4", &[]), (157.0, 3.0));
    assert_eq!(records.len(), 4);
    assert_eq!(
        records
            .iter()
            .find(|r| r.key.name == "Bytes")
            .unwrap()
            .key
            .unit,
        Unit::Bytes
    );
}

#[test]
fn json_dimensions_take_strings_numbers_and_booleans() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/j",
            "f",
            spec(r#"{"pattern": "{ $.ms > 0 }", "metric": {"name": "Ms", "namespace": "J",
                "value": "$.ms", "dimensions": {"Model": "$.model.name", "Code": "$.code", "Ok": "$.ok"}}}"#),
            0,
        )
        .unwrap();
    ingest(
        &filters,
        "/j",
        &[
            (
                T0,
                r#"{"ms": 4, "model": {"name": "fraud"}, "code": 200, "ok": true}"#,
            ),
            (
                T0,
                r#"{"ms": 4, "model": {"name": "fraud"}, "code": null, "ok": true}"#,
            ),
            (
                T0,
                r#"{"ms": 4, "model": {"name": ""}, "code": 200, "ok": true}"#,
            ),
        ],
    );
    filters.flush(T0 + 70_000);
    let records = sink.take();
    assert_eq!(records.len(), 1, "{records:#?}");
    let dims: Vec<(&str, &str)> = records[0]
        .key
        .dimensions
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        dims,
        vec![("Code", "200"), ("Model", "fraud"), ("Ok", "true")]
    );
    assert_eq!(filters.stats().matched_events, 3);
}

#[test]
fn the_default_is_emitted_only_for_a_closed_minute_with_events_and_no_match() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/app",
            "errors",
            spec(
                r#"{"pattern": "ERROR", "metric": {"name": "Errors", "namespace": "App",
                "value": "1", "default": 0}}"#,
            ),
            0,
        )
        .unwrap();
    // Minute 0: events, none match. Minute 1: a match. Minute 2: nothing.
    // Minute 3: events, none match, not yet closed.
    ingest(
        &filters,
        "/app",
        &[
            (T0 + 5_000, "all good"),
            (T0 + 65_000, "ERROR x"),
            (T0 + 70_000, "fine"),
            (T0 + 185_000, "still fine"),
        ],
    );
    let before_close = T0 + 240_000 + CLOSE_AFTER_MS - 1;
    filters.flush(before_close);
    assert!(filters.has_pending(), "minute 3's default is still owed");
    let records = sink.take();
    let got: Vec<(i64, (f64, f64))> = records
        .iter()
        .map(|r| (r.timestamp_ms - T0, sum_count(r)))
        .collect();
    assert_eq!(got, vec![(0, (0.0, 1.0)), (60_000, (1.0, 1.0))]);
    assert!(records.iter().all(|r| r.key.dimensions.is_empty()));
    // Minute 3 closes now; minute 0 is not emitted again.
    filters.flush(before_close + 1);
    let got: Vec<i64> = sink.take().iter().map(|r| r.timestamp_ms - T0).collect();
    assert_eq!(got, vec![180_000]);
    // A late event in the closed minute 0 does not bring its default again.
    ingest(&filters, "/app", &[(T0 + 6_000, "late and fine")]);
    filters.flush(before_close + 10_000);
    assert!(sink.take().is_empty());
}

#[test]
fn a_minute_with_events_elsewhere_owes_no_default() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/a",
            "f",
            spec(r#"{"pattern": "ERROR", "metric": {"name": "E", "namespace": "N", "value": "1", "default": 0}}"#),
            0,
        )
        .unwrap();
    ingest(&filters, "/b", &[(T0, "fine")]);
    filters.flush(T0 + 600_000);
    assert!(sink.take().is_empty());
}

#[test]
fn a_deleted_filter_owes_nothing_and_a_deleted_group_loses_its_filters() {
    let (dir, sink, filters) = setup();
    let s = || {
        spec(
            r#"{"pattern": "ERROR", "metric": {"name": "E", "namespace": "N", "value": "1", "default": 0}}"#,
        )
    };
    filters.put("/a", "f", s(), 0).unwrap();
    filters.put("/b", "f", s(), 0).unwrap();
    ingest(&filters, "/a", &[(T0, "fine")]);
    assert!(filters.delete("/a", "f").unwrap());
    assert!(!filters.delete("/a", "f").unwrap());
    filters.flush(T0 + 600_000);
    assert!(sink.take().is_empty());
    filters.group_deleted("/b");
    assert!(filters.list("/b").is_empty());
    let reopened = MetricFilters::open(dir.path(), sink.clone()).unwrap();
    assert!(reopened.is_empty());
}

#[test]
fn definitions_survive_a_reopen() {
    let (dir, sink, filters) = setup();
    let s = spec(
        r#"{"pattern": "[ip, status, bytes]", "metric": {"name": "Bytes", "namespace": "Web",
        "value": "$bytes", "dimensions": {"Status": "$status"}, "unit": "Bytes"}}"#,
    );
    let (def, created) = filters.put("/web", "bytes", s.clone(), 42).unwrap();
    assert!(created);
    assert_eq!(def.created_ms, 42);
    let (again, created) = filters.put("/web", "bytes", s, 99).unwrap();
    assert!(!created);
    assert_eq!(
        again.created_ms, 42,
        "a replaced filter keeps its creation time"
    );
    filters
        .put(
            "/app",
            "e",
            spec(r#"{"pattern": "", "metric": {"name": "E", "namespace": "N", "value": "0.5", "default": 0}}"#),
            7,
        )
        .unwrap();
    assert!(!dir.path().join("metric_filters.json.tmp").exists());
    let reopened = MetricFilters::open(dir.path(), sink).unwrap();
    assert_eq!(reopened.list("/web"), vec![def]);
    assert_eq!(reopened.get("/app", "e").unwrap().metric.default, Some(0.0));
    assert_eq!(reopened.len(), 2);
}

#[test]
fn a_corrupt_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
    let err = MetricFilters::open(dir.path(), Arc::new(Memory::default())).unwrap_err();
    assert!(err.to_string().contains("metric_filters.json"), "{err}");
    assert_eq!(err.code(), "internal");
}

#[test]
fn a_failing_sink_is_counted() {
    let (_dir, sink, filters) = setup();
    filters
        .put(
            "/a",
            "f",
            spec(r#"{"pattern": "", "metric": {"name": "E", "namespace": "N", "value": "1"}}"#),
            0,
        )
        .unwrap();
    ingest(&filters, "/a", &[(T0, "x")]);
    sink.fail.store(true, Ordering::Relaxed);
    assert_eq!(filters.flush(T0 + 70_000), 0);
    assert_eq!(filters.stats().sink_errors, 1);
    assert_eq!(filters.stats().filter_records, 0);
}

#[test]
fn the_pipeline_reports_emf_and_feeds_the_filters() {
    use crate::pipeline::Logs;
    use crate::store::{LogStore, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
    let sink = Arc::new(Memory::default());
    let filters = Arc::new(MetricFilters::open(dir.path(), sink.clone()).unwrap());
    let logs = Logs::new(store).with_metric_filters(Arc::clone(&filters));
    filters
        .put(
            "/g",
            "models",
            spec(r#"{"pattern": "{ $.Model = \"fraud\" }", "metric": {"name": "Fraud", "namespace": "N", "value": "1"}}"#),
            0,
        )
        .unwrap();
    let now = T0 + 1_000;
    let emf = format!(
        r#"{{"_aws": {{"Timestamp": {now}, "CloudWatchMetrics": [{{"Namespace": "svc",
            "Dimensions": [["Model"], ["Model", "Stage"], []], "Metrics": [{{"Name": "latencyMs"}}]}}]}},
            "Model": "fraud", "Stage": "prod", "latencyMs": [12, 15, 40]}}"#
    );
    let bad =
        format!(r#"{{"_aws": {{"Timestamp": {now}, "CloudWatchMetrics": [{{"Metrics": []}}]}}}}"#);
    let events = [
        InputEvent {
            timestamp: now,
            message: emf,
        },
        InputEvent {
            timestamp: now,
            message: "plain".into(),
        },
        InputEvent {
            timestamp: now,
            message: bad,
        },
    ];
    let outcome = logs.put("/g", "s", &events, now).unwrap();
    assert_eq!(outcome.accepted, 3);
    let report = outcome.emf.expect("the batch had EMF events");
    assert_eq!(report.metrics, 3);
    assert_eq!(report.invalid.len(), 1);
    assert_eq!(report.invalid[0].index, 2);
    assert!(
        report.invalid[0]
            .message
            .contains("_aws.CloudWatchMetrics[0].Namespace")
    );
    // EMF records are stored at once, the filter's at the flush.
    let emf_records = sink.take();
    assert_eq!(emf_records.len(), 3);
    assert!(emf_records.iter().all(|r| r.aggregate.sum == 67.0));
    filters.flush(now + 70_000);
    let records = sink.take();
    assert_eq!(records.len(), 1);
    assert_eq!(sum_count(&records[0]), (1.0, 1.0));
    let stats = filters.stats();
    assert_eq!(
        (stats.emf_records, stats.emf_invalid, stats.matched_events),
        (3, 1, 1)
    );
    // A batch with no EMF event reports none.
    let plain = [InputEvent {
        timestamp: now,
        message: "x".into(),
    }];
    assert_eq!(logs.put("/g", "s", &plain, now).unwrap().emf, None);
}
