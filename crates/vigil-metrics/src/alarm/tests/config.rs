use proptest::prelude::*;
use serde_json::json;

use super::spec;
use crate::alarm::config::{
    CompositeAlarmSpec, MetricAlarm, MetricAlarmSpec, min_samples_for_percentile, valid_email,
    valid_http_url, valid_period,
};

fn fields(spec: MetricAlarmSpec) -> Vec<String> {
    let err = spec.validate().unwrap_err();
    err.problems.into_iter().map(|p| p.field).collect()
}

#[test]
fn every_problem_is_reported_at_once_naming_its_field() {
    let mut s = spec("bad\u{7}name");
    s.period = Some(45);
    s.datapoints_to_alarm = Some(4);
    s.statistic = Some("p99".into());
    s.comparison_operator = Some("Bigger".into());
    s.treat_missing_data = Some("zero".into());
    s.evaluate_low_sample_count_percentile = Some("maybe".into());
    s.threshold = None;
    s.alarm_actions = serde_json::from_value(json!([
        {"type": "webhook", "url": "ftp://x"},
        {"type": "email", "to": ["not-an-address"]},
    ]))
    .unwrap();
    s.ok_actions = vec![s.ok_actions[0].clone(); 6];
    let got = fields(s);
    for want in [
        "name",
        "period",
        "datapoints_to_alarm",
        "statistic",
        "comparison_operator",
        "treat_missing_data",
        "evaluate_low_sample_count_percentile",
        "threshold",
        "alarm_actions[0].url",
        "alarm_actions[1].to[0]",
        "ok_actions",
    ] {
        assert!(
            got.contains(&want.to_string()),
            "{want} missing from {got:?}"
        );
    }
}

#[test]
fn error_display_names_each_field() {
    let mut s = spec("a");
    s.period = Some(90);
    let msg = s.validate().unwrap_err().to_string();
    assert_eq!(
        msg,
        "period: must be 10, 20, 30 or a multiple of 60, got 90"
    );
}

#[test]
fn periods_are_10_20_30_or_multiples_of_60() {
    for ok in [10, 20, 30, 60, 120, 300, 3600] {
        assert!(valid_period(ok), "{ok}");
    }
    for bad in [0, 1, 5, 15, 45, 90, 61] {
        assert!(!valid_period(bad), "{bad}");
    }
}

#[test]
fn evaluation_range_is_one_day_or_seven_with_hourly_periods() {
    let with = |period, n| {
        let mut s = spec("a");
        s.period = Some(period);
        s.evaluation_periods = Some(n);
        s.datapoints_to_alarm = Some(1);
        s.validate()
    };
    assert!(with(60, 1440).is_ok());
    assert!(with(60, 1441).is_err());
    assert!(with(3600, 168).is_ok());
    assert!(with(3600, 169).is_err());
    assert!(with(1800, 49).is_err());
}

#[test]
fn datapoints_to_alarm_defaults_to_evaluation_periods() {
    let a = spec("a").validate().unwrap();
    assert_eq!((a.evaluation_periods(), a.datapoints_to_alarm()), (3, 3));
    assert_eq!(a.spec().datapoints_to_alarm, Some(3));
}

#[test]
fn statistic_and_extended_statistic_are_exclusive_and_checked() {
    let mut s = spec("a");
    s.extended_statistic = Some("p99".into());
    assert_eq!(fields(s), vec!["extended_statistic"]);
    let mut s = spec("a");
    s.statistic = None;
    s.extended_statistic = Some("p99".into());
    let a = s.validate().unwrap();
    assert_eq!(a.percentile(), Some(99.0));
    let mut s = spec("a");
    s.statistic = None;
    s.extended_statistic = Some("p1000".into());
    assert_eq!(fields(s), vec!["extended_statistic"]);
    let mut s = spec("a");
    s.statistic = None;
    assert_eq!(fields(s), vec!["statistic"]);
}

#[test]
fn metrics_need_exactly_one_returned_entry_and_take_their_period() {
    let mut s = spec("a");
    s.namespace = None;
    s.metric_name = None;
    s.dimensions.clear();
    s.statistic = None;
    s.period = None;
    s.metrics = serde_json::from_value(json!([
        {"id": "errors", "return_data": false, "metric_stat": {"namespace": "Vigil",
            "metric_name": "Errors", "period": 300, "stat": "Sum"}},
        {"id": "calls", "return_data": false, "metric_stat": {"namespace": "Vigil",
            "metric_name": "Calls", "period": 300, "stat": "Sum"}},
        {"id": "rate", "expression": "100 * errors / calls"},
    ]))
    .unwrap();
    let a = s.clone().validate().unwrap();
    assert_eq!(a.period_s(), 300);
    assert_eq!(a.spec().period, None);
    let mut two = s.clone();
    two.metrics[0].return_data = true;
    assert_eq!(fields(two), vec!["metrics"]);
    let mut mixed = s.clone();
    mixed.period = Some(60);
    mixed.metrics[1].id = "Calls".into();
    assert_eq!(fields(mixed), vec!["period", "metrics[1].id"]);
}

#[test]
fn validators_of_urls_and_addresses() {
    assert!(valid_http_url("https://hooks.example.com/x?y=1"));
    assert!(valid_http_url("http://127.0.0.1:9093"));
    for bad in [
        "ftp://x",
        "http://",
        "https:///path",
        "http://a b",
        "example.com",
    ] {
        assert!(!valid_http_url(bad), "{bad}");
    }
    assert!(valid_email("ops@example.com"));
    assert!(valid_email("first.last+tag@sub.example.co"));
    for bad in [
        "ops",
        "@example.com",
        "ops@",
        "ops@example",
        "a@b@c.d",
        "a b@c.d",
        "a@c..d",
    ] {
        assert!(!valid_email(bad), "{bad}");
    }
}

#[test]
fn low_sample_thresholds_follow_semantics() {
    assert_eq!(min_samples_for_percentile(99.0), 1000.0);
    assert_eq!(min_samples_for_percentile(90.0), 100.0);
    assert_eq!(min_samples_for_percentile(50.0), 20.0);
    assert_eq!(min_samples_for_percentile(10.0), 100.0);
    assert_eq!(min_samples_for_percentile(25.0), 40.0);
}

#[test]
fn composite_validation_reports_rule_column_and_suppressor_fields() {
    let err = CompositeAlarmSpec {
        name: "c".into(),
        alarm_rule: "ALARM(a) AND".into(),
        actions_suppressor_wait_period: Some(10),
        ..CompositeAlarmSpec::default()
    }
    .validate()
    .unwrap_err();
    let got: Vec<(String, String)> = err
        .problems
        .into_iter()
        .map(|p| (p.field, p.message))
        .collect();
    assert_eq!(got[0].0, "alarm_rule");
    assert!(got[0].1.starts_with("column 13:"), "{}", got[0].1);
    assert_eq!(got[1].0, "actions_suppressor_wait_period");
    let err = CompositeAlarmSpec {
        name: "c".into(),
        alarm_rule: "ALARM(c)".into(),
        ..CompositeAlarmSpec::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("refer to itself"));
}

#[test]
fn unknown_fields_are_rejected() {
    let r: Result<MetricAlarmSpec, _> = serde_json::from_value(json!({"name": "a", "perod": 60}));
    assert!(r.unwrap_err().to_string().contains("perod"));
}

proptest! {
    #[test]
    fn valid_configs_round_trip_through_json(
        period in prop_oneof![Just(10u32), Just(20), Just(30), (1u32..60).prop_map(|k| k * 60)],
        n in 1u32..10,
        m_frac in 0.0f64..1.0,
        threshold in -1e6f64..1e6,
        op in 0usize..4,
        treat in 0usize..4,
        ext in any::<bool>(),
    ) {
        let mut s = spec("round trip");
        s.period = Some(period);
        s.evaluation_periods = Some(n);
        s.datapoints_to_alarm = Some(1 + (m_frac * f64::from(n - 1)).round() as u32);
        s.threshold = Some(threshold);
        s.comparison_operator = Some([
            "GreaterThanOrEqualToThreshold", "GreaterThanThreshold",
            "LessThanThreshold", "LessThanOrEqualToThreshold",
        ][op].into());
        s.treat_missing_data = Some(["missing", "notBreaching", "breaching", "ignore"][treat].into());
        if ext {
            s.statistic = None;
            s.extended_statistic = Some("p95".into());
            s.evaluate_low_sample_count_percentile = Some("ignore".into());
        }
        let a = s.validate().unwrap();
        let json = serde_json::to_string(&a).unwrap();
        let back: MetricAlarm = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }
}
