use super::*;

const MIN: i64 = 60_000;

fn metric(id: &str, name: &str) -> MetricDataQuery {
    MetricDataQuery {
        id: id.to_owned(),
        expression: None,
        metric_stat: Some(MetricStat {
            namespace: "svc".to_owned(),
            metric_name: name.to_owned(),
            dimensions: Default::default(),
            period: 60,
            stat: "Sum".to_owned(),
            unit: None,
        }),
        return_data: false,
        label: None,
    }
}

fn expr(id: &str, src: &str) -> MetricDataQuery {
    MetricDataQuery {
        id: id.to_owned(),
        expression: Some(src.to_owned()),
        metric_stat: None,
        return_data: true,
        label: None,
    }
}

fn messages(queries: &[MetricDataQuery]) -> Vec<String> {
    match validate(queries) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn range() -> Range {
    Range {
        start_ms: 0,
        end_ms: 4 * MIN,
        period_s: 60,
    }
}

/// errors: 1, 2, 3 at minutes 0, 1, 2; invocations: 10, 20, 0, 40 at 0..=3;
/// plus a point before and one after the range, which must be dropped.
fn source(stat: &MetricStat) -> Result<Series, String> {
    let pts: &[(i64, f64)] = match stat.metric_name.as_str() {
        "Errors" => &[(-1, 9.0), (0, 1.0), (1, 2.0), (2, 3.0), (4, 9.0)],
        "Invocations" => &[(0, 10.0), (1, 20.0), (2, 0.0), (3, 40.0)],
        other => return Err(format!("no metric {other}")),
    };
    Ok(Series::from_points(pts.iter().map(|&(t, v)| (t * MIN, v))))
}

#[test]
fn a_valid_set_passes() {
    let q = [
        metric("errors", "Errors"),
        metric("invocations", "Invocations"),
        expr("rate", "100 * errors / invocations"),
    ];
    assert_eq!(validate(&q), Ok(()));
}

#[test]
fn ids_must_follow_the_rule_and_be_unique() {
    assert!(is_valid_id("m1_a"));
    for bad in ["", "M1", "1m", "_m", "m-1", "m 1", "é"] {
        assert!(!is_valid_id(bad), "{bad}");
    }
    let q = [
        metric("m1", "Errors"),
        metric("Bad", "Errors"),
        metric("m1", "Errors"),
    ];
    assert_eq!(
        messages(&q),
        vec![
            "metrics[1].id: `Bad` is not a valid id; an id starts with a lowercase letter and holds only letters, digits and `_`",
            "metrics[2].id: duplicate id `m1`, already used by metrics[0]",
        ]
    );
}

#[test]
fn each_entry_holds_exactly_one_of_expression_and_metric_stat() {
    let mut both = metric("a", "Errors");
    both.expression = Some("1".to_owned());
    let mut neither = expr("b", "1");
    neither.expression = None;
    assert_eq!(
        messages(&[both, neither]),
        vec![
            "metrics[0]: needs exactly one of `expression` and `metric_stat`, found both",
            "metrics[1]: needs exactly one of `expression` and `metric_stat`, found neither",
        ]
    );
}

#[test]
fn references_must_exist_and_parse_errors_carry_the_field_and_column() {
    let q = [
        metric("errors", "Errors"),
        expr("e1", "100 * errs / errors"),
        expr("e2", "SUMM(errors)"),
    ];
    assert_eq!(
        messages(&q),
        vec![
            "metrics[1].expression: unknown id `errs` at column 7",
            "metrics[2].expression: unknown function `SUMM` at column 1",
        ]
    );
}

#[test]
fn cycles_are_reported_with_their_path() {
    let q = [
        metric("m", "Errors"),
        expr("a", "b + m"),
        expr("b", "c * 2"),
        expr("c", "a - 1"),
        expr("d", "d + 1"),
        expr("e", "a"),
    ];
    assert_eq!(
        messages(&q),
        vec![
            "metrics[1].expression: cycle among expressions: `a` -> `b` -> `c` -> `a`",
            "metrics[4].expression: cycle among expressions: `d` -> `d`",
        ]
    );
}

#[test]
fn statistics_and_periods_are_checked() {
    let mut q = metric("m", "Errors");
    if let Some(s) = q.metric_stat.as_mut() {
        s.stat = "Median".to_owned();
        s.period = 0;
    }
    assert_eq!(
        messages(&[q]),
        vec![
            "metrics[0].metric_stat.stat: unknown statistic `Median`: expected SampleCount, Sum, \
             Minimum, Maximum, Average, pNN.NN, tmNN, wmNN, tcNN, tsNN, IQM, TM(a:b), WM(a:b), \
             TC(a:b), TS(a:b) or PR(a:b)",
            "metrics[0].metric_stat.period: must be positive",
        ]
    );
}

#[test]
fn too_many_entries_are_refused() {
    let q: Vec<_> = (0..=MAX_QUERIES)
        .map(|i| expr(&format!("e{i}"), "1"))
        .collect();
    assert_eq!(
        messages(&q),
        vec![format!(
            "metrics: at most {MAX_QUERIES} entries, found {}",
            MAX_QUERIES + 1
        )]
    );
}

#[test]
fn run_evaluates_in_dependency_order_whatever_the_list_order() {
    let mut pct = expr("pct", "100 * errors / invocations");
    pct.label = Some("error rate".to_owned());
    let q = [
        expr("doubled", "pct * 2"),
        pct,
        metric("errors", "Errors"),
        metric("invocations", "Invocations"),
    ];
    let out = run(&q, range(), &mut source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].id, "doubled");
    assert_eq!(out[0].label, "doubled");
    assert_eq!(out[0].timestamps, vec![0, MIN]);
    assert_eq!(out[0].values, vec![20.0, 20.0]);
    assert_eq!(out[1].label, "error rate");
    // invocations is 0 at minute 2: no point; errors has none at minute 3
    assert_eq!(out[1].timestamps, vec![0, MIN]);
    assert_eq!(out[1].values, vec![10.0, 10.0]);
}

#[test]
fn run_fetches_each_needed_metric_once_and_clips_it_to_the_range() {
    let q = [
        metric("errors", "Errors"),
        metric("errors_again", "Errors"),
        metric("unused", "Invocations"),
        expr("e", "errors + errors_again + errors"),
        MetricDataQuery {
            return_data: true,
            ..metric("raw", "Errors")
        },
    ];
    let mut calls = Vec::new();
    let out = run(&q, range(), &mut |stat: &MetricStat| {
        calls.push(stat.metric_name.clone());
        source(stat)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(calls, vec!["Errors"]);
    let ids: Vec<&str> = out.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec!["e", "raw"]);
    assert_eq!(out[0].timestamps, vec![0, MIN, 2 * MIN]);
    assert_eq!(out[0].values, vec![3.0, 6.0, 9.0]);
    assert_eq!(out[1].values, vec![1.0, 2.0, 3.0]);
}

#[test]
fn a_scalar_expression_runs_as_a_constant_over_the_grid() {
    let q = [expr("k", "6 * 7")];
    let out = run(&q, range(), &mut source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0].timestamps, vec![0, MIN, 2 * MIN, 3 * MIN]);
    assert_eq!(out[0].values, vec![42.0; 4]);
}

#[test]
fn run_reports_invalid_sets_fetch_failures_bad_series_and_bad_ranges() {
    let one = run(&[expr("a", "b")], range(), &mut source)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        one.as_deref(),
        Some("metrics[0].expression: unknown id `b` at column 1")
    );

    let two = run(&[expr("a", "b"), expr("A", "1")], range(), &mut source);
    assert!(
        matches!(two, Err(MathError::Invalid(ref v)) if v.len() == 2),
        "{two:?}"
    );

    let q = [metric("m", "Latency"), expr("e", "m + 1")];
    let err = run(&q, range(), &mut source).err();
    assert_eq!(
        err.as_ref().map(ToString::to_string).as_deref(),
        Some("metrics[0].metric_stat: fetching the data failed: no metric Latency")
    );
    assert_eq!(err.map(|e| e.code()), Some("bad_request"));

    let err = run(&q, range(), &mut |_: &MetricStat| {
        Ok(Series::from_points([(2, 1.0), (1, 2.0)]))
    })
    .err();
    assert_eq!(
        err.as_ref().map(ToString::to_string).as_deref(),
        Some(
            "metrics[0].metric_stat: the fetched series is malformed: timestamps are not strictly ascending at index 1"
        )
    );
    assert_eq!(err.map(|e| e.code()), Some("internal"));

    let bad = Range {
        start_ms: 10,
        end_ms: 10,
        period_s: 60,
    };
    let err = run(&q, bad, &mut source).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("range.end_ms: must be after start_ms (10)")
    );
}

#[test]
fn the_query_model_keeps_its_serde_shape() {
    let json = r#"{"id":"m1","metric_stat":{"namespace":"svc","metric_name":"Errors","period":60,"stat":"Sum"}}"#;
    let q: MetricDataQuery = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
    assert!(q.return_data);
    assert_eq!(q.metric_stat.map(|s| s.stat), Some("Sum".to_owned()));
    assert!(serde_json::from_str::<MetricDataQuery>(r#"{"id":"a","expr":"1"}"#).is_err());
}
