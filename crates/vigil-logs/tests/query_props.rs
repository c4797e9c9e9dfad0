//! Property tests of the query language: the parser never panics, a
//! pretty-printed query parses back to the same tree, and running any
//! query that parses never panics.

use proptest::prelude::*;
use vigil_logs::query::{
    AggFunc, Aggregate, Ast, BinOp, Command, Event, Expr, Func, LikePattern, Literal, ParsePattern,
    Projection, Query, QueryLimits, Regex, SortKey, Span, TimeUnit,
};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}(\\.[a-z0-9]{1,3})?",
        1 => prop::sample::select(vec!["@timestamp", "@message", "@logStream", "@log", "@ingestionTime"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["in", "AND", "as", "by", "desc", "user-agent", "a b", "x:y", "1st", "é"]).prop_map(str::to_owned),
    ]
}

fn regex(sources: &'static [&'static str]) -> impl Strategy<Value = Regex> {
    prop::sample::select(sources).prop_map(|s| Regex {
        source: s.to_owned(),
        compiled: regex::Regex::new(s).unwrap_or_else(|e| panic!("{s}: {e}")),
    })
}

fn span() -> impl Strategy<Value = Span> {
    let units = vec![
        TimeUnit::Millisecond,
        TimeUnit::Second,
        TimeUnit::Minute,
        TimeUnit::Hour,
        TimeUnit::Day,
        TimeUnit::Week,
        TimeUnit::Month,
        TimeUnit::Quarter,
        TimeUnit::Year,
    ];
    (1u32..1000, prop::sample::select(units)).prop_map(|(count, unit)| Span { count, unit })
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        (0i64..i64::MAX).prop_map(Literal::Int),
        (0.0f64..1e300).prop_map(Literal::Float),
        prop::sample::select(vec![0.5, 1e-7, 2.0, 1e20]).prop_map(Literal::Float),
        any::<String>().prop_map(Literal::Str),
        span().prop_map(Literal::Span),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        name().prop_map(Expr::Field),
        literal().prop_map(Expr::Literal)
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        let ops = vec![
            BinOp::Or,
            BinOp::And,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Lt,
            BinOp::Le,
            BinOp::Gt,
            BinOp::Ge,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Rem,
            BinOp::Pow,
        ];
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Neg(Box::new(e))),
            (prop::sample::select(ops), inner.clone(), inner.clone())
                .prop_map(|(op, a, b)| Expr::Binary(op, Box::new(a), Box::new(b))),
            (
                inner.clone(),
                prop_oneof![
                    any::<String>().prop_map(LikePattern::Substring),
                    regex(&["ERROR", "^a.*b$", r"\d{3}", r"(?i)warn|err", r"a\/b"])
                        .prop_map(LikePattern::Regex),
                ],
                any::<bool>()
            )
                .prop_map(|(e, pattern, negated)| Expr::Like {
                    expr: Box::new(e),
                    pattern,
                    negated
                }),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 0..4),
                any::<bool>()
            )
                .prop_map(|(e, list, negated)| Expr::In {
                    expr: Box::new(e),
                    list,
                    negated
                }),
            (
                prop::sample::select(Func::ALL.to_vec()),
                prop::collection::vec(inner, 4),
                span()
            )
                .prop_map(|(f, mut args, span)| {
                    let (min, max) = f.arity();
                    args.truncate(max.unwrap_or(4).max(min));
                    if f == Func::Bin {
                        args = vec![Expr::Literal(Literal::Span(span))];
                    }
                    Expr::Call(f, args)
                }),
        ]
    })
}

fn projection() -> impl Strategy<Value = Projection> {
    (expr(), prop::option::of(name())).prop_map(|(expr, alias)| Projection { expr, alias })
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    (
        prop::sample::select(AggFunc::ALL.to_vec()),
        expr(),
        any::<bool>(),
        prop_oneof![(0u8..=100).prop_map(f64::from), Just(99.5), Just(0.1)],
        prop::option::of(name()),
    )
        .prop_map(|(func, e, star, p, alias)| Aggregate {
            func,
            arg: if func == AggFunc::Count && star {
                None
            } else {
                Some(e)
            },
            percentile: (func == AggFunc::Pct).then_some(p),
            alias,
        })
}

fn parse_command(source: String, pattern: ParsePattern) -> Command {
    Command::Parse { source, pattern }
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        prop::collection::vec(projection(), 1..4).prop_map(Command::Fields),
        expr().prop_map(Command::Filter),
        (
            prop::collection::vec(aggregate(), 1..4),
            prop::collection::vec(projection(), 0..3)
        )
            .prop_map(|(aggregates, by)| Command::Stats { aggregates, by }),
        prop::collection::vec(
            (expr(), any::<bool>()).prop_map(|(expr, descending)| SortKey { expr, descending }),
            1..3
        )
        .prop_map(Command::Sort),
        (1u64..1_000_000_000).prop_map(Command::Limit),
        (
            name(),
            prop::collection::vec("[^*]{0,5}", 2..5),
            prop::collection::vec(name(), 4)
        )
            .prop_map(|(source, parts, mut names)| {
                names.truncate(parts.len() - 1);
                let glob = parts.join("*");
                parse_command(source, ParsePattern::Glob { glob, names })
            }),
        (
            name(),
            regex(&[r"(?<a>\w+)", r"user=(?<user>\S+) took=(?<ms>\d+)"])
        )
            .prop_map(|(source, re)| parse_command(source, ParsePattern::Regex(re))),
        prop::collection::vec(name(), 1..4).prop_map(Command::Display),
        prop::collection::vec(name(), 1..4).prop_map(Command::Dedup),
    ]
}

/// Tokens of the language, to build inputs that get past the first token.
fn soup() -> impl Strategy<Value = String> {
    let tokens = vec![
        "fields",
        "filter",
        "stats",
        "sort",
        "limit",
        "parse",
        "display",
        "dedup",
        "|",
        ",",
        "(",
        ")",
        "[",
        "]",
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=~",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "and",
        "or",
        "not",
        "like",
        "in",
        "as",
        "by",
        "asc",
        "desc",
        "count(*)",
        "pct(",
        "bin(5m)",
        "5m",
        "1mo",
        "0",
        "42",
        "1.5e3",
        "\"s\"",
        "\"*\"",
        "\"[*] *\"",
        "/re/",
        "/(?<n>x)/",
        "`a b`",
        "@message",
        "@timestamp",
        "status",
        "a.b",
        "#",
        "\n",
        "abs(",
        "concat(",
        "substr(",
        "datefloor(",
        "'",
        "\"",
        "`",
        "/",
        "\\",
        "é",
        "99999999999999999999",
    ];
    prop::collection::vec(prop::sample::select(tokens), 0..30).prop_map(|t| t.join(" "))
}

fn sample_events() -> Vec<(i64, String)> {
    vec![
        (
            1_796_159_100_000,
            r#"{"status":500,"a":{"b":"x"},"s":"[E] m","n":-1.5}"#.to_owned(),
        ),
        (1_796_159_160_000, "[ERROR] plain text 42".to_owned()),
        (0, r#"{"status":"200","arr":[1,2,{"k":null}]}"#.to_owned()),
        (-1, String::new()),
        (i64::MAX, "{broken".to_owned()),
    ]
}

fn run_all(q: &Query) {
    let events = sample_events();
    let limits = QueryLimits {
        max_rows: 100,
        max_groups: 100,
        max_aggregate_values: 100,
        max_scanned: Some(4),
    };
    let _ = q.run(
        events.iter().map(|(ts, m)| Event {
            timestamp_ms: *ts,
            ingestion_ms: ts.wrapping_add(1),
            group: "g",
            stream: "s",
            message: m,
        }),
        limits,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_text(s in "\\PC{0,200}") {
        let _ = Query::parse(&s);
    }

    #[test]
    fn parser_and_runner_never_panic_on_token_soup(s in soup()) {
        if let Ok(q) = Query::parse(&s) {
            run_all(&q);
            // What parses prints to text that parses to the same tree.
            let again = Query::parse(&q.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&q), "{}", q);
        }
    }

    #[test]
    fn pretty_printed_queries_parse_to_the_same_tree(commands in prop::collection::vec(command(), 1..5)) {
        let ast = Ast { commands };
        let text = ast.to_string();
        let parsed = Query::parse(&text);
        prop_assert!(parsed.is_ok(), "{}: {:?}", text, parsed.err());
        if let Ok(q) = parsed {
            prop_assert_eq!(q.ast(), &ast, "{}", text);
            run_all(&q);
        }
    }
}
