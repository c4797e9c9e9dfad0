use super::*;

fn ok(src: &str) -> Parsed {
    parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn err(src: &str) -> String {
    match parse(src) {
        Ok(p) => panic!("{src} parsed as {}", p.expr),
        Err(e) => e.to_string(),
    }
}

fn id(s: &str) -> Box<Expr> {
    Box::new(Expr::Id(s.to_owned()))
}

fn num(n: f64) -> Box<Expr> {
    Box::new(Expr::Number(n))
}

fn bin(op: BinOp, lhs: Box<Expr>, rhs: Box<Expr>) -> Box<Expr> {
    Box::new(Expr::Binary { op, lhs, rhs })
}

#[test]
fn multiplication_binds_tighter_than_addition_and_both_are_left_associative() {
    assert_eq!(
        ok("a + b * c - d").expr,
        *bin(
            BinOp::Sub,
            bin(BinOp::Add, id("a"), bin(BinOp::Mul, id("b"), id("c"))),
            id("d")
        )
    );
    assert_eq!(
        ok("a / b / c").expr,
        *bin(BinOp::Div, bin(BinOp::Div, id("a"), id("b")), id("c"))
    );
}

#[test]
fn power_is_right_associative_and_binds_tighter_than_unary_minus() {
    assert_eq!(
        ok("2 ^ 3 ^ 2").expr,
        *bin(BinOp::Pow, num(2.0), bin(BinOp::Pow, num(3.0), num(2.0)))
    );
    assert_eq!(
        ok("-a ^ 2").expr,
        Expr::Neg(bin(BinOp::Pow, id("a"), num(2.0)))
    );
    assert_eq!(
        ok("a ^ -2").expr,
        *bin(BinOp::Pow, id("a"), Box::new(Expr::Neg(num(2.0))))
    );
    assert_eq!(
        ok("-a * b").expr,
        *bin(BinOp::Mul, Box::new(Expr::Neg(id("a"))), id("b"))
    );
}

#[test]
fn logic_is_looser_than_comparison_with_not_over_and_over_or() {
    assert_eq!(
        ok("NOT a == 1 AND b OR c").expr,
        *bin(
            BinOp::Or,
            bin(
                BinOp::And,
                Box::new(Expr::Not(bin(BinOp::Eq, id("a"), num(1.0)))),
                id("b")
            ),
            id("c")
        )
    );
    assert_eq!(
        ok("a + 1 >= b * 2").expr,
        *bin(
            BinOp::Ge,
            bin(BinOp::Add, id("a"), num(1.0)),
            bin(BinOp::Mul, id("b"), num(2.0))
        )
    );
}

#[test]
fn every_comparison_operator_parses() {
    for (src, op) in [
        ("a == b", BinOp::Eq),
        ("a != b", BinOp::Ne),
        ("a < b", BinOp::Lt),
        ("a <= b", BinOp::Le),
        ("a > b", BinOp::Gt),
        ("a >= b", BinOp::Ge),
    ] {
        assert_eq!(ok(src).expr, *bin(op, id("a"), id("b")), "{src}");
    }
}

#[test]
fn functions_parse_into_their_nodes() {
    assert_eq!(
        ok("SUM([a, b * 2])").expr,
        Expr::Agg {
            func: AggFunc::Sum,
            arg: AggArg::List(vec![
                Expr::Id("a".into()),
                *bin(BinOp::Mul, id("b"), num(2.0))
            ]),
        }
    );
    assert_eq!(
        ok("STDDEV(a)").expr,
        Expr::Agg {
            func: AggFunc::Stddev,
            arg: AggArg::One(id("a")),
        }
    );
    assert_eq!(
        ok("FILL(a, REPEAT)").expr,
        Expr::Fill {
            series: id("a"),
            with: FillWith::Repeat
        }
    );
    assert_eq!(
        ok("FILL(a, -1)").expr,
        Expr::Fill {
            series: id("a"),
            with: FillWith::Value(Box::new(Expr::Neg(num(1.0))))
        }
    );
    assert_eq!(
        ok("IF(a > 0, a)").expr,
        Expr::If {
            cond: bin(BinOp::Gt, id("a"), num(0.0)),
            then: id("a"),
            otherwise: None
        }
    );
    for (name, func) in [
        ("DIFF", Func1::Diff),
        ("RATE", Func1::Rate),
        ("ABS", Func1::Abs),
        ("CEIL", Func1::Ceil),
        ("FLOOR", Func1::Floor),
        ("LOG", Func1::Log),
        ("LOG10", Func1::Log10),
        ("SQRT", Func1::Sqrt),
    ] {
        let src = format!("{name}(a)");
        assert_eq!(ok(&src).expr, Expr::Call { func, arg: id("a") }, "{src}");
    }
}

#[test]
fn kinds_follow_the_operands() {
    assert_eq!(ok("1 + 2 * 3").kind, Kind::Scalar);
    assert_eq!(ok("1 + a").kind, Kind::Series);
    assert_eq!(ok("SUM([1, 2])").kind, Kind::Scalar);
    assert_eq!(ok("SUM([1, a])").kind, Kind::Series);
    assert_eq!(ok("IF(1, 2, a)").kind, Kind::Series);
    assert_eq!(ok("IF(1, 2)").kind, Kind::Scalar);
    assert_eq!(ok("ABS(-3)").kind, Kind::Scalar);
    assert_eq!(ok("FILL(a, 0)").kind, Kind::Series);
}

#[test]
fn references_carry_their_columns() {
    let refs: Vec<(String, usize)> = ok("100 * errs / invocations + errs")
        .references
        .into_iter()
        .map(|r| (r.id, r.column))
        .collect();
    assert_eq!(
        refs,
        vec![
            ("errs".to_owned(), 7),
            ("invocations".to_owned(), 14),
            ("errs".to_owned(), 28)
        ]
    );
}

#[test]
fn errors_name_what_was_expected_and_the_column() {
    let cases = [
        ("SUMM(a)", "unknown function `SUMM` at column 1"),
        (
            "100 * (errors / invocations",
            "expected `)` at column 28, found end of input",
        ),
        ("(a + b]", "expected `)` at column 7, found `]`"),
        ("ABS(a b)", "expected `,` or `)` at column 7, found `b`"),
        ("SUM([a, b)", "expected `,` or `]` at column 10, found `)`"),
        ("", "expected an expression at column 1, found end of input"),
        (
            "a +",
            "expected an expression at column 4, found end of input",
        ),
        ("a b", "expected an operator at column 3, found `b`"),
        ("(a))", "expected an operator at column 4, found `)`"),
        (
            "a AND",
            "expected an expression at column 6, found end of input",
        ),
        (
            "DIFF(5)",
            "`DIFF` takes a series at column 6, found a scalar",
        ),
        (
            "RATE(1 + 2)",
            "`RATE` takes a series at column 6, found a scalar",
        ),
        (
            "FILL(3, 0)",
            "`FILL` takes a series at column 6, found a scalar",
        ),
        (
            "FILL(a, b)",
            "`FILL` takes a number, REPEAT or LINEAR as its second argument at column 9, found a series",
        ),
        ("ABS(a, b)", "`ABS` takes 1 argument at column 1, found 2"),
        ("IF(a)", "`IF` takes 2 or 3 arguments at column 1, found 1"),
        ("FILL(a)", "`FILL` takes 2 arguments at column 1, found 1"),
        ("SUM()", "`SUM` takes 1 argument at column 1, found 0"),
        (
            "a < b < c",
            "comparisons do not chain; add parentheses at column 7, found `<`",
        ),
        (
            "[a, b]",
            "a list `[...]` is only allowed as the argument of SUM, AVG, MIN, MAX or STDDEV at column 1",
        ),
        (
            "ABS([a])",
            "a list `[...]` is only allowed as the argument of SUM, AVG, MIN, MAX or STDDEV at column 5",
        ),
        ("SUM([])", "empty list at column 5"),
        (
            "REPEAT + 1",
            "`REPEAT` is only allowed as the second argument of FILL at column 1",
        ),
        (
            "ABS(LINEAR)",
            "`LINEAR` is only allowed as the second argument of FILL at column 5",
        ),
        (
            "Errors * 2",
            "unknown name `Errors` (ids start with a lowercase letter) at column 1",
        ),
        ("SUM + 1", "expected `(` after `SUM` at column 5, found `+`"),
        ("a $ b", "unexpected character at column 3, found `$`"),
    ];
    for (src, want) in cases {
        assert_eq!(err(src), want, "{src}");
    }
}

#[test]
fn nesting_deeper_than_the_limit_is_an_error_not_a_stack_overflow() {
    let at_limit = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(ok(&at_limit).expr, Expr::Id("a".into()));
    let deep = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert_eq!(
        err(&deep),
        format!(
            "expression nests deeper than {MAX_DEPTH} levels at column {}",
            MAX_DEPTH + 1
        )
    );
    let minus = format!("{}a", "-".repeat(500));
    assert!(err(&minus).starts_with("expression nests deeper"));
    let calls = format!("{}a{}", "ABS(".repeat(200), ")".repeat(200));
    assert!(err(&calls).starts_with("expression nests deeper"));
    let not = format!("{}a", "NOT ".repeat(200));
    assert!(err(&not).starts_with("expression nests deeper"));
}

#[test]
fn display_adds_only_the_parentheses_needed() {
    for (src, printed) in [
        ("(a + b) * c", "(a + b) * c"),
        ("a + (b * c)", "a + b * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("(2 ^ 3) ^ 2", "(2 ^ 3) ^ 2"),
        ("2 ^ (3 ^ 2)", "2 ^ 3 ^ 2"),
        ("(-2) ^ 2", "(-2) ^ 2"),
        ("-(2 ^ 2)", "-2 ^ 2"),
        ("(a < b) == 1", "(a < b) == 1"),
        ("NOT (a AND b)", "NOT (a AND b)"),
        ("SUM([a,b])", "SUM([a, b])"),
        ("FILL(a,LINEAR)", "FILL(a, LINEAR)"),
        ("IF(a,b,0.5)", "IF(a, b, 0.5)"),
    ] {
        let p = ok(src);
        assert_eq!(p.expr.to_string(), printed, "{src}");
        assert_eq!(ok(printed).expr, p.expr, "{printed}");
    }
}
