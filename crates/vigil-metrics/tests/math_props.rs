//! Property tests of metric math: the parser never panics, the printer
//! round-trips, arithmetic aligns on timestamps, evaluation keeps series
//! well-formed.

use std::collections::HashMap;

use proptest::prelude::*;
use vigil_metrics::math::{
    AggArg, AggFunc, BinOp, Expr, FillWith, Func1, Kind, Series, Value, evaluate, parse,
};

const MIN: i64 = 60_000;
const IDS: [&str; 3] = ["a", "b", "m_1"];

fn binop() -> impl Strategy<Value = BinOp> {
    prop::sample::select(vec![
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Pow,
        BinOp::Eq,
        BinOp::Ne,
        BinOp::Lt,
        BinOp::Le,
        BinOp::Gt,
        BinOp::Ge,
        BinOp::And,
        BinOp::Or,
    ])
}

fn agg() -> impl Strategy<Value = AggFunc> {
    prop::sample::select(vec![
        AggFunc::Sum,
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Stddev,
    ])
}

fn func1() -> impl Strategy<Value = Func1> {
    prop::sample::select(vec![
        Func1::Diff,
        Func1::Rate,
        Func1::Abs,
        Func1::Ceil,
        Func1::Floor,
        Func1::Log,
        Func1::Log10,
        Func1::Sqrt,
    ])
}

fn or(a: Kind, b: Kind) -> Kind {
    if a == Kind::Series || b == Kind::Series {
        Kind::Series
    } else {
        Kind::Scalar
    }
}

/// Well-typed expressions with their kind, as the parser would type them.
fn typed_expr() -> impl Strategy<Value = (Expr, Kind)> {
    let leaf = prop_oneof![
        (0u32..100_000).prop_map(|n| (Expr::Number(f64::from(n) / 100.0), Kind::Scalar)),
        prop::sample::select(IDS.to_vec()).prop_map(|id| (Expr::Id(id.to_owned()), Kind::Series)),
    ];
    leaf.prop_recursive(4, 40, 3, |inner| {
        // a series-typed operand: a scalar one is swapped for an id
        let series = inner.clone().prop_map(|(e, k)| match k {
            Kind::Series => e,
            Kind::Scalar => Expr::Id("a".to_owned()),
        });
        let scalar = inner.clone().prop_map(|(e, k)| match k {
            Kind::Scalar => e,
            Kind::Series => Expr::Number(1.5),
        });
        prop_oneof![
            (binop(), inner.clone(), inner.clone()).prop_map(|(op, (l, lk), (r, rk))| {
                (
                    Expr::Binary {
                        op,
                        lhs: Box::new(l),
                        rhs: Box::new(r),
                    },
                    or(lk, rk),
                )
            }),
            inner.clone().prop_map(|(e, k)| (Expr::Neg(Box::new(e)), k)),
            inner.clone().prop_map(|(e, k)| (Expr::Not(Box::new(e)), k)),
            (agg(), inner.clone()).prop_map(|(func, (e, k))| (
                Expr::Agg {
                    func,
                    arg: AggArg::One(Box::new(e))
                },
                k
            )),
            (agg(), prop::collection::vec(inner.clone(), 1..4)).prop_map(|(func, items)| {
                let kind = items.iter().fold(Kind::Scalar, |acc, (_, k)| or(acc, *k));
                (
                    Expr::Agg {
                        func,
                        arg: AggArg::List(items.into_iter().map(|(e, _)| e).collect()),
                    },
                    kind,
                )
            }),
            (
                series.clone(),
                prop_oneof![
                    Just(FillWith::Repeat),
                    Just(FillWith::Linear),
                    scalar.prop_map(|e| FillWith::Value(Box::new(e))),
                ]
            )
                .prop_map(|(s, with)| (
                    Expr::Fill {
                        series: Box::new(s),
                        with
                    },
                    Kind::Series
                )),
            (
                inner.clone(),
                inner.clone(),
                prop::option::of(inner.clone())
            )
                .prop_map(|((c, ck), (t, tk), o)| {
                    let kind = or(or(ck, tk), o.as_ref().map_or(Kind::Scalar, |(_, k)| *k));
                    (
                        Expr::If {
                            cond: Box::new(c),
                            then: Box::new(t),
                            otherwise: o.map(|(e, _)| Box::new(e)),
                        },
                        kind,
                    )
                }),
            (func1(), inner, series).prop_map(|(func, (e, k), s)| match func {
                Func1::Diff | Func1::Rate => (
                    Expr::Call {
                        func,
                        arg: Box::new(s)
                    },
                    Kind::Series
                ),
                _ => (
                    Expr::Call {
                        func,
                        arg: Box::new(e)
                    },
                    k
                ),
            }),
        ]
    })
}

/// A series on a subset of minutes 0..40, with values in a modest range
/// (including zeros, for division).
fn series() -> impl Strategy<Value = Series> {
    prop::collection::btree_map(0i64..40, -50i32..50, 0..40).prop_map(|m| {
        Series::from_points(m.into_iter().map(|(k, v)| (k * MIN, f64::from(v) / 4.0)))
    })
}

fn grid() -> Vec<i64> {
    (0..40).map(|k| k * MIN).collect()
}

fn eval_series(src: &str, env: &HashMap<&str, Series>) -> Series {
    let p = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    evaluate(&p.expr, env, &grid())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_series(&grid())
}

proptest! {
    #[test]
    fn the_parser_never_panics_on_any_string(src in any::<String>()) {
        let _ = parse(&src);
    }

    #[test]
    fn the_parser_never_panics_on_expression_like_noise(
        src in "[a-zA-Z0-9_ ()\\[\\],+*/^<>=!.-]{0,1100}"
    ) {
        let _ = parse(&src);
    }

    #[test]
    fn the_parser_never_panics_on_long_runs_of_openers(n in 0usize..1100, c in prop::sample::select(vec!["(", "-", "NOT ", "ABS(", "SUM([", "2^"])) {
        let _ = parse(&c.repeat(n));
    }

    #[test]
    fn printing_an_expression_parses_back_to_the_same_tree((expr, kind) in typed_expr()) {
        let printed = expr.to_string();
        let back = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(&back.expr, &expr, "printed as {}", printed);
        prop_assert_eq!(back.kind, kind);
        // and printing is a fixed point
        prop_assert_eq!(back.expr.to_string(), printed);
    }

    #[test]
    fn evaluation_keeps_series_well_formed(
        (expr, kind) in typed_expr(), a in series(), b in series(), m in series()
    ) {
        let env = HashMap::from([("a", a), ("b", b), ("m_1", m)]);
        let v = evaluate(&expr, &env, &grid()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match (&v, kind) {
            (Value::Scalar(x), Kind::Scalar) => prop_assert!(x.is_none_or(f64::is_finite)),
            (Value::Series(s), Kind::Series) => prop_assert_eq!(s.check(), Ok(())),
            _ => prop_assert!(false, "{} typed {:?} gave {:?}", expr, kind, v),
        }
    }

    #[test]
    fn arithmetic_keeps_exactly_the_common_timestamps(a in series(), b in series()) {
        let common: Vec<i64> = a.timestamps.iter().copied().filter(|t| b.get(*t).is_some()).collect();
        let env = HashMap::from([("a", a.clone()), ("b", b.clone())]);
        for (src, f) in [
            ("a + b", (|x, y| x + y) as fn(f64, f64) -> f64),
            ("a - b", |x, y| x - y),
            ("a * b", |x, y| x * y),
        ] {
            let r = eval_series(src, &env);
            prop_assert_eq!(&r.timestamps, &common, "{}", src);
            for (t, v) in r.points() {
                let want = f(a.get(t).unwrap_or(f64::NAN), b.get(t).unwrap_or(f64::NAN));
                prop_assert_eq!(v, want);
            }
        }
        let quotient = eval_series("a / b", &env);
        let nonzero: Vec<i64> = common.iter().copied().filter(|t| b.get(*t) != Some(0.0)).collect();
        prop_assert_eq!(quotient.timestamps, nonzero);
        let scaled = eval_series("100 * a", &env);
        prop_assert_eq!(&scaled.timestamps, &a.timestamps);
    }

    #[test]
    fn list_aggregates_keep_the_union_of_timestamps(a in series(), b in series()) {
        let mut union: Vec<i64> = a.timestamps.iter().chain(&b.timestamps).copied().collect();
        union.sort_unstable();
        union.dedup();
        let env = HashMap::from([("a", a), ("b", b)]);
        for f in ["SUM", "AVG", "MIN", "MAX", "STDDEV"] {
            let r = eval_series(&format!("{f}([a, b])"), &env);
            prop_assert_eq!(&r.timestamps, &union, "{}", f);
        }
    }

    #[test]
    fn fill_with_a_value_covers_the_whole_grid(a in series()) {
        let env = HashMap::from([("a", a.clone())]);
        let r = eval_series("FILL(a, 0)", &env);
        prop_assert_eq!(&r.timestamps, &grid());
        for (t, v) in r.points() {
            prop_assert_eq!(v, a.get(t).unwrap_or(0.0));
        }
    }
}
