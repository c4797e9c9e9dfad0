use std::collections::HashMap;

use super::*;
use crate::math::parse;

const MIN: i64 = 60_000;

fn s(points: &[(i64, f64)]) -> Series {
    Series::from_points(points.iter().map(|&(t, v)| (t * MIN, v)))
}

/// a: minutes 0..=3; b: minutes 1..=4 with a zero at 2; c: minutes 0 and 4.
fn env() -> HashMap<&'static str, Series> {
    HashMap::from([
        ("a", s(&[(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)])),
        ("b", s(&[(1, 10.0), (2, 0.0), (3, 30.0), (4, 40.0)])),
        ("c", s(&[(0, 5.0), (4, 9.0)])),
        ("e", Series::default()),
    ])
}

fn grid() -> Vec<i64> {
    (0..5).map(|k| k * MIN).collect()
}

fn ev<R>(src: &str, then: impl FnOnce(Value<'_>) -> R) -> R {
    let parsed = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let env = env();
    then(evaluate(&parsed.expr, &env, &grid()).unwrap_or_else(|e| panic!("{src}: {e}")))
}

fn series(src: &str) -> Series {
    ev(src, |v| match v {
        Value::Series(x) => x.into_owned(),
        other => panic!("{src} gave {other:?}"),
    })
}

fn scalar(src: &str) -> Option<f64> {
    ev(src, |v| match v {
        Value::Scalar(x) => x,
        other => panic!("{src} gave {other:?}"),
    })
}

#[test]
fn series_arithmetic_aligns_on_common_timestamps() {
    assert_eq!(series("a + b"), s(&[(1, 12.0), (2, 3.0), (3, 34.0)]));
    assert_eq!(series("b - a"), s(&[(1, 8.0), (2, -3.0), (3, 26.0)]));
    assert_eq!(series("a * b"), s(&[(1, 20.0), (2, 0.0), (3, 120.0)]));
    assert_eq!(series("a ^ c"), s(&[(0, 1.0)]));
}

#[test]
fn division_by_zero_gives_no_point() {
    assert_eq!(series("a / b"), s(&[(1, 0.2), (3, 4.0 / 30.0)]));
    assert_eq!(series("b / 0"), Series::default());
    assert_eq!(scalar("1 / 0"), None);
    assert_eq!(scalar("0 / 0 + 1"), None);
}

#[test]
fn scalars_apply_to_every_point() {
    assert_eq!(
        series("100 * a"),
        s(&[(0, 100.0), (1, 200.0), (2, 300.0), (3, 400.0)])
    );
    assert_eq!(
        series("a - 1"),
        s(&[(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)])
    );
    assert_eq!(
        series("12 / a"),
        s(&[(0, 12.0), (1, 6.0), (2, 4.0), (3, 3.0)])
    );
    assert_eq!(
        series("2 ^ a"),
        s(&[(0, 2.0), (1, 4.0), (2, 8.0), (3, 16.0)])
    );
    assert_eq!(
        series("-a"),
        s(&[(0, -1.0), (1, -2.0), (2, -3.0), (3, -4.0)])
    );
    assert_eq!(series("a + 1 / 0"), Series::default());
}

#[test]
fn scalar_arithmetic_follows_precedence() {
    assert_eq!(scalar("2 + 3 * 4"), Some(14.0));
    assert_eq!(scalar("2 ^ 3 ^ 2"), Some(512.0));
    assert_eq!(scalar("-2 ^ 2"), Some(-4.0));
    assert_eq!(scalar("(-2) ^ 2"), Some(4.0));
    assert_eq!(scalar("10 - 4 - 3"), Some(3.0));
    assert_eq!(scalar("2 ^ -1"), Some(0.5));
    assert_eq!(scalar("(-8) ^ 0.5"), None);
}

#[test]
fn comparisons_and_logic_yield_one_or_zero() {
    assert_eq!(
        series("a > 2"),
        s(&[(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)])
    );
    assert_eq!(
        series("a >= 2"),
        s(&[(0, 0.0), (1, 1.0), (2, 1.0), (3, 1.0)])
    );
    assert_eq!(
        series("a < 2"),
        s(&[(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0)])
    );
    assert_eq!(
        series("a <= 2"),
        s(&[(0, 1.0), (1, 1.0), (2, 0.0), (3, 0.0)])
    );
    assert_eq!(
        series("a == 3"),
        s(&[(0, 0.0), (1, 0.0), (2, 1.0), (3, 0.0)])
    );
    assert_eq!(
        series("a != 3"),
        s(&[(0, 1.0), (1, 1.0), (2, 0.0), (3, 1.0)])
    );
    assert_eq!(series("a < b"), s(&[(1, 1.0), (2, 0.0), (3, 1.0)]));
    assert_eq!(series("a AND b"), s(&[(1, 1.0), (2, 0.0), (3, 1.0)]));
    assert_eq!(
        series("b OR 0"),
        s(&[(1, 1.0), (2, 0.0), (3, 1.0), (4, 1.0)])
    );
    assert_eq!(
        series("NOT b"),
        s(&[(1, 0.0), (2, 1.0), (3, 0.0), (4, 0.0)])
    );
    assert_eq!(scalar("1 < 2 AND NOT 0"), Some(1.0));
    assert_eq!(scalar("0 OR 0"), Some(0.0));
}

#[test]
fn aggregates_of_a_list_combine_the_series_present_at_each_timestamp() {
    // minute: 0 → a=1, c=5; 1 → a=2, b=10; 2 → a=3, b=0; 3 → a=4, b=30; 4 → b=40, c=9
    assert_eq!(
        series("SUM([a, b, c])"),
        s(&[(0, 6.0), (1, 12.0), (2, 3.0), (3, 34.0), (4, 49.0)])
    );
    assert_eq!(
        series("AVG([a, b, c])"),
        s(&[(0, 3.0), (1, 6.0), (2, 1.5), (3, 17.0), (4, 24.5)])
    );
    assert_eq!(
        series("MIN([a, b, c])"),
        s(&[(0, 1.0), (1, 2.0), (2, 0.0), (3, 4.0), (4, 9.0)])
    );
    assert_eq!(
        series("MAX([a, b, c])"),
        s(&[(0, 5.0), (1, 10.0), (2, 3.0), (3, 30.0), (4, 40.0)])
    );
    // population standard deviation of two values is half their distance
    assert_eq!(
        series("STDDEV([a, b, c])"),
        s(&[(0, 2.0), (1, 4.0), (2, 1.5), (3, 13.0), (4, 15.5)])
    );
    assert_eq!(series("SUM([a, e])"), series("a"));
}

#[test]
fn aggregates_with_scalars_in_the_list() {
    assert_eq!(series("SUM([c, 10])"), s(&[(0, 15.0), (4, 19.0)]));
    assert_eq!(
        series("MAX([a, 2.5])"),
        s(&[(0, 2.5), (1, 2.5), (2, 3.0), (3, 4.0)])
    );
    assert_eq!(scalar("AVG([1, 2, 6])"), Some(3.0));
    assert_eq!(scalar("SUM([1, 1 / 0])"), Some(1.0));
    assert_eq!(scalar("SUM([1 / 0])"), None);
}

#[test]
fn aggregate_of_one_series_is_per_point() {
    for f in ["SUM", "AVG", "MIN", "MAX"] {
        assert_eq!(series(&format!("{f}(b)")), series("b"), "{f}");
    }
    assert_eq!(
        series("STDDEV(b)"),
        s(&[(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)])
    );
    assert_eq!(scalar("SUM(7)"), Some(7.0));
}

#[test]
fn fill_with_a_value_fills_every_empty_grid_period() {
    assert_eq!(
        series("FILL(c, 0)"),
        s(&[(0, 5.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 9.0)])
    );
    assert_eq!(
        series("FILL(e, -1)"),
        s(&[(0, -1.0), (1, -1.0), (2, -1.0), (3, -1.0), (4, -1.0)])
    );
    assert_eq!(series("FILL(c, 1 / 0)"), series("c"));
}

#[test]
fn fill_repeat_uses_the_last_earlier_value_and_leaves_leading_gaps() {
    assert_eq!(
        series("FILL(c, REPEAT)"),
        s(&[(0, 5.0), (1, 5.0), (2, 5.0), (3, 5.0), (4, 9.0)])
    );
    assert_eq!(
        series("FILL(b, REPEAT)"),
        s(&[(1, 10.0), (2, 0.0), (3, 30.0), (4, 40.0)])
    );
    assert_eq!(
        series("FILL(a, REPEAT)"),
        s(&[(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0), (4, 4.0)])
    );
}

#[test]
fn fill_linear_interpolates_between_neighbours_only() {
    assert_eq!(
        series("FILL(c, LINEAR)"),
        s(&[(0, 5.0), (1, 6.0), (2, 7.0), (3, 8.0), (4, 9.0)])
    );
    // a has no later neighbour for minute 4, b no earlier one for minute 0
    assert_eq!(series("FILL(a, LINEAR)"), series("a"));
    assert_eq!(series("FILL(b, LINEAR)"), series("b"));
}

#[test]
fn diff_and_rate_start_at_the_second_point() {
    assert_eq!(series("DIFF(b)"), s(&[(2, -10.0), (3, 30.0), (4, 10.0)]));
    assert_eq!(
        series("RATE(b)"),
        s(&[(2, -10.0 / 60.0), (3, 0.5), (4, 10.0 / 60.0)])
    );
    assert_eq!(series("RATE(c)"), s(&[(4, 4.0 / 240.0)]));
    assert_eq!(series("DIFF(e)"), Series::default());
}

#[test]
fn if_picks_per_point_from_the_condition_series() {
    assert_eq!(
        series("IF(a > 2, a, 0)"),
        s(&[(0, 0.0), (1, 0.0), (2, 3.0), (3, 4.0)])
    );
    // the chosen branch must have a point there
    assert_eq!(
        series("IF(a > 1, b, c)"),
        s(&[(0, 5.0), (1, 10.0), (2, 0.0), (3, 30.0)])
    );
    assert_eq!(series("IF(b, a)"), s(&[(1, 2.0), (3, 4.0)]));
}

#[test]
fn if_with_a_scalar_condition() {
    assert_eq!(scalar("IF(1, 2, 3)"), Some(2.0));
    assert_eq!(scalar("IF(0, 2, 3)"), Some(3.0));
    assert_eq!(scalar("IF(0, 2)"), None);
    assert_eq!(series("IF(1, c, a)"), series("c"));
    assert_eq!(series("IF(0, 7, c)"), series("c"));
    // a scalar branch spreads over the timestamps of the series branches
    assert_eq!(series("IF(1, 7, c)"), s(&[(0, 7.0), (4, 7.0)]));
    assert_eq!(series("IF(1 / 0, a, c)"), Series::default());
}

#[test]
fn pointwise_functions_drop_undefined_results() {
    let m = HashMap::from([("m", s(&[(0, -2.5), (1, 0.0), (2, 100.0)]))]);
    let run = |src: &str| {
        let p = parse(src).unwrap_or_else(|e| panic!("{e}"));
        evaluate(&p.expr, &m, &grid())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_series(&grid())
    };
    assert_eq!(run("ABS(m)"), s(&[(0, 2.5), (1, 0.0), (2, 100.0)]));
    assert_eq!(run("CEIL(m)"), s(&[(0, -2.0), (1, 0.0), (2, 100.0)]));
    assert_eq!(run("FLOOR(m)"), s(&[(0, -3.0), (1, 0.0), (2, 100.0)]));
    assert_eq!(run("LOG(m)"), s(&[(2, 100f64.ln())]));
    assert_eq!(run("LOG10(m)"), s(&[(2, 2.0)]));
    assert_eq!(run("SQRT(m)"), s(&[(1, 0.0), (2, 10.0)]));
    assert_eq!(scalar("SQRT(-1)"), None);
    assert_eq!(scalar("LOG10(1000)"), Some(3.0));
}

#[test]
fn a_scalar_result_becomes_a_constant_series_over_the_grid() {
    assert_eq!(
        ev("2 * 3", |v| v.into_series(&grid())),
        s(&[(0, 6.0), (1, 6.0), (2, 6.0), (3, 6.0), (4, 6.0)])
    );
    assert_eq!(ev("1 / 0", |v| v.into_series(&grid())), Series::default());
}

#[test]
fn an_id_without_a_series_is_an_error() {
    let p = parse("a + zz").unwrap_or_else(|e| panic!("{e}"));
    let env = env();
    assert_eq!(
        evaluate(&p.expr, &env, &grid()),
        Err(UnknownId("zz".to_owned()))
    );
}
