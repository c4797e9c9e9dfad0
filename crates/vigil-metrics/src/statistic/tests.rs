#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn agg(values: &[f64]) -> Aggregate {
    let mut a = Aggregate::from_value(values[0]);
    for &v in &values[1..] {
        a.merge(&Aggregate::from_value(v));
    }
    a
}

fn one_to(n: u32) -> Aggregate {
    agg(&(1..=n).map(f64::from).collect::<Vec<_>>())
}

fn stat(s: &str) -> Statistic {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts `stat` of `a` is within 1% of `want` (sketch values are).
fn assert_near(a: &Aggregate, s: &str, want: f64) {
    let got = stat(s).value(a).unwrap_or_else(|| panic!("{s}: no value"));
    assert!(
        (got - want).abs() <= 0.01 * want.abs() + 1e-12,
        "{s}: got {got}, want {want}"
    );
}

#[test]
fn basic_statistics_are_exact() {
    let a = one_to(10);
    assert_eq!(stat("SampleCount").value(&a), Some(10.0));
    assert_eq!(stat("Sum").value(&a), Some(55.0));
    assert_eq!(stat("Minimum").value(&a), Some(1.0));
    assert_eq!(stat("Maximum").value(&a), Some(10.0));
    assert_eq!(stat("Average").value(&a), Some(5.5));
}

#[test]
fn percentiles_pick_the_lower_rank_and_clamp_to_min_and_max() {
    let a = one_to(10);
    // rank ⌊0.5·9⌋ = 4 → the 5th value; ⌊0.9·9⌋ = 8 → the 9th.
    assert_near(&a, "p50", 5.0);
    assert_near(&a, "p90", 9.0);
    assert_eq!(stat("p100").value(&a), Some(10.0));
    assert_eq!(stat("p0").value(&a), Some(1.0));
    let same = agg(&[7.0, 7.0, 7.0]);
    assert_eq!(stat("p99.9").value(&same), Some(7.0));
}

#[test]
fn trimmed_means_by_percentage() {
    let a = one_to(10);
    // tm90 drops the top value: mean of 1..=9.
    assert_near(&a, "tm90", 5.0);
    // TM(10%:90%) keeps ranks (1, 9]: 2..=9.
    assert_near(&a, "TM(10%:90%)", 5.5);
    // TM(20%:) keeps 3..=10.
    assert_near(&a, "TM(20%:)", 6.5);
    // IQM of 1..=8 keeps ranks (2, 6]: 3, 4, 5, 6.
    assert_near(&one_to(8), "IQM", 4.5);
    // IQM of 1..=10 keeps ranks (2.5, 7.5]: half of 3, 4..=7, half of 8.
    assert_near(&a, "IQM", (1.5 + 22.0 + 4.0) / 5.0);
}

#[test]
fn trimmed_count_and_sum_by_percentage() {
    let a = one_to(10);
    assert_eq!(stat("TC(10%:90%)").value(&a), Some(8.0));
    assert_eq!(stat("tc50").value(&a), Some(5.0));
    assert_near(&a, "TS(10%:90%)", 44.0);
    assert_near(&a, "ts50", 15.0);
}

#[test]
fn winsorized_means() {
    let a = one_to(10);
    // 1 → 2 and 10 → 9: (2 + 44 + 9) / 10.
    assert_near(&a, "WM(10%:90%)", 5.5);
    // wm80: 9 and 10 → 8: (36 + 16) / 10.
    assert_near(&a, "wm80", 5.2);
    // Kept: 3, 4, 5; 1 and 2 become 3, 6..=10 become 5.
    assert_near(&a, "WM(2.5:5.5)", 4.3);
    assert_eq!(stat("WM(100:200)").value(&a), None);
}

#[test]
fn absolute_bounds_keep_values_in_lower_exclusive_upper_inclusive() {
    let a = one_to(10);
    assert_near(&a, "TM(2.5:5.5)", 4.0);
    assert_eq!(stat("TC(2.5:5.5)").value(&a), Some(3.0));
    assert_near(&a, "TS(2.5:5.5)", 12.0);
    assert_eq!(stat("TM(100:200)").value(&a), None);
    assert_eq!(stat("TC(100:200)").value(&a), Some(0.0));
}

#[test]
fn percent_rank_is_a_percentage_of_points() {
    let a = one_to(10);
    assert_eq!(stat("PR(:5.5)").value(&a), Some(50.0));
    assert_eq!(stat("PR(2.5:)").value(&a), Some(80.0));
    assert_eq!(stat("PR(2.5:5.5)").value(&a), Some(30.0));
    let signed = agg(&[-5.0, -1.0, 0.0, 1.0, 5.0]);
    // (−∞, 0] holds −5, −1 and 0.
    assert_eq!(stat("PR(:0)").value(&signed), Some(60.0));
    assert_eq!(stat("PR(0:)").value(&signed), Some(40.0));
}

#[test]
fn statistic_sets_without_a_sketch_answer_only_the_basic_five() {
    let a = Aggregate {
        count: 3.0,
        sum: 6.0,
        min: 1.0,
        max: 3.0,
        sketch: None,
    };
    assert_eq!(stat("Average").value(&a), Some(2.0));
    for s in [
        "p50",
        "tm90",
        "IQM",
        "WM(10%:90%)",
        "PR(:2)",
        "TC(1:2)",
        "TS(:2)",
    ] {
        assert_eq!(stat(s).value(&a), None, "{s}");
        assert!(stat(s).needs_sketch());
    }
    assert!(!stat("Sum").needs_sketch());
}

#[test]
fn corrupt_aggregates_do_not_panic() {
    let mut a = one_to(10);
    (a.min, a.max) = (f64::NAN, 1.0);
    assert!(stat("p50").value(&a).is_some());
    (a.min, a.max) = (10.0, 1.0);
    assert!(stat("tm90").value(&a).is_some());
}

#[test]
fn display_is_canonical() {
    for (written, canonical) in [
        ("p99", "p99"),
        ("p99.90", "p99.9"),
        ("TM(:90%)", "tm90"),
        ("tm(10%:90%)", "TM(10%:90%)"),
        ("TM(25%:75%)", "IQM"),
        ("WM(0%:95%)", "WM(0%:95%)"),
        ("pr(:300)", "PR(:300)"),
        ("TC(10:)", "TC(10:)"),
        ("ts99.5", "ts99.5"),
        ("TM(-5:1e3)", "TM(-5:1000)"),
    ] {
        assert_eq!(stat(written).to_string(), canonical, "{written}");
    }
}

#[test]
fn parse_errors_say_what_was_expected() {
    for (s, want) in [
        ("p101", "a percentile must be between 0 and 100"),
        ("p99.999", "a percentile has at most two decimal places"),
        ("p", "a percentile must be a number like 99 or 99.9"),
        ("p-1", "a percentile must be a number like 99 or 99.9"),
        ("tm101", "a percentage must be between 0 and 100"),
        (
            "TM(10%:90)",
            "bounds must both be percentages or both be values",
        ),
        (
            "TM(90%:10%)",
            "the lower bound must be below the upper bound",
        ),
        ("TM(5:5)", "the lower bound must be below the upper bound"),
        ("TM(:)", "at least one bound is needed"),
        (
            "TM(10%)",
            "expected two bounds separated by `:`, like (10%:90%) or (0:300)",
        ),
        ("TM(10%:90%", "expected `)` at the end"),
        ("PR(10%:90%)", "PR bounds are values, not percentages"),
        ("PR(a:3)", "bound `a` is not a finite number"),
        ("PR(NaN:3)", "bound `NaN` is not a finite number"),
        ("TM(:150%)", "a bound percentage must be between 0 and 100"),
        ("average", EXPECTED),
        ("XX(1:2)", EXPECTED),
    ] {
        let err = s.parse::<Statistic>().unwrap_err();
        assert_eq!(err, format!("unknown statistic `{s}`: {want}"));
    }
}

fn pct() -> impl Strategy<Value = f64> + Clone {
    (0u32..=10_000).prop_map(|n| f64::from(n) / 100.0)
}

fn finite() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn pair(
    side: impl Strategy<Value = f64> + Clone,
) -> impl Strategy<Value = (Option<f64>, Option<f64>)> {
    (prop::option::of(side.clone()), prop::option::of(side)).prop_filter(
        "a valid range",
        |(l, u)| match (l, u) {
            (None, None) => false,
            (Some(l), Some(u)) => l < u,
            _ => true,
        },
    )
}

fn bounds() -> impl Strategy<Value = Bounds> {
    prop_oneof![
        pair(pct()).prop_map(|(lower, upper)| Bounds::Percent { lower, upper }),
        pair(finite()).prop_map(|(lower, upper)| Bounds::Value { lower, upper }),
    ]
}

fn statistic() -> impl Strategy<Value = Statistic> {
    prop_oneof![
        Just(Statistic::SampleCount),
        Just(Statistic::Sum),
        Just(Statistic::Minimum),
        Just(Statistic::Maximum),
        Just(Statistic::Average),
        pct().prop_map(Statistic::Percentile),
        bounds().prop_map(Statistic::TrimmedMean),
        bounds().prop_map(Statistic::WinsorizedMean),
        bounds().prop_map(Statistic::TrimmedCount),
        bounds().prop_map(Statistic::TrimmedSum),
        pair(finite()).prop_map(|(lower, upper)| Statistic::PercentRank { lower, upper }),
    ]
}

proptest! {
    #[test]
    fn display_parses_back(s in statistic()) {
        let text = s.to_string();
        let back: Statistic = text.parse().unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(back, s, "{}", text);
    }

    #[test]
    fn parse_never_panics(s in "\\PC{0,16}") {
        let _ = s.parse::<Statistic>();
    }

    #[test]
    fn trimmed_mean_lies_between_min_and_max(
        values in prop::collection::vec(-1e6f64..1e6, 1..100),
        s in statistic(),
    ) {
        let a = agg(&values);
        if let (Some(v), Statistic::TrimmedMean(_) | Statistic::WinsorizedMean(_)) = (s.value(&a), s) {
            prop_assert!(v >= a.min && v <= a.max, "{s}: {v}");
        }
    }
}
