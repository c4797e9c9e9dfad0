//! Property tests of the filter-pattern language: the canonical printer
//! round-trips generated syntax trees, the parser never panics and agrees
//! with the printer on whatever it accepts, matching never panics, and the
//! space-delimited matcher agrees with a brute-force reference.

use proptest::prelude::*;
use vigil_logs::pattern::{
    Ast, Comparison, Field, JsonCond, JsonExpr, JsonTest, MAX_PATTERN_CHARS, MAX_REGEXES, NumOp,
    Pattern, Selector, Step, StrValue, TermKind, TextTerm, ValueSpec,
};

// ---- syntax-tree generators ----

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_]{1,8}",
        // Anything at all, including quotes, backslashes, spaces, `*`.
        any::<String>().prop_map(|s| s.chars().take(10).collect()),
        Just(String::new()),
        Just("a \"b\" \\ c".to_owned()),
    ]
}

fn term() -> impl Strategy<Value = TextTerm> {
    (
        prop_oneof![
            Just(TermKind::Required),
            Just(TermKind::AnyOf),
            Just(TermKind::Excluded)
        ],
        any_text(),
    )
        .prop_map(|(kind, text)| TextTerm { kind, text })
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<i32>().prop_map(f64::from),
        -1e6..1e6f64,
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        Just(1.5e-7),
        Just(1e20),
    ]
}

fn regex_body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ERROR|WARN"),
        Just(r"\d+"),
        Just("^a.b$"),
        Just("[a-z]{1,3}"),
        Just("x*y+"),
        Just(r"\d{1,3}\.\d{1,3}"),
    ]
    .prop_map(str::to_owned)
}

fn glob_text() -> impl Strategy<Value = String> {
    any_text().prop_filter("a glob's literal part is non-empty and has no `*`", |t| {
        !t.is_empty() && !t.contains('*')
    })
}

fn str_value() -> impl Strategy<Value = StrValue> {
    prop_oneof![
        1 => Just(StrValue::Any),
        6 => (any::<bool>(), glob_text(), any::<bool>()).prop_map(|(leading, text, trailing)| {
            StrValue::Glob { leading, text, trailing }
        }),
        1 => regex_body().prop_map(StrValue::Regex),
    ]
}

fn num_op() -> impl Strategy<Value = NumOp> {
    prop_oneof![
        Just(NumOp::Eq),
        Just(NumOp::Ne),
        Just(NumOp::Lt),
        Just(NumOp::Gt),
        Just(NumOp::Le),
        Just(NumOp::Ge),
    ]
}

fn comparison() -> impl Strategy<Value = Comparison> {
    prop_oneof![
        (any::<bool>(), str_value())
            .prop_map(|(negated, value)| Comparison::Str { negated, value }),
        (num_op(), number()).prop_map(|(op, value)| Comparison::Num { op, value }),
    ]
}

fn selector() -> impl Strategy<Value = Selector> {
    prop::collection::vec(
        prop_oneof![
            "[A-Za-z0-9_@-]{1,6}".prop_map(Step::Key),
            (0u32..2000).prop_map(Step::Index),
        ],
        0..4,
    )
    .prop_map(Selector)
}

fn json_test() -> impl Strategy<Value = JsonTest> {
    prop_oneof![
        4 => comparison().prop_map(JsonTest::Compare),
        1 => Just(JsonTest::IsNull),
        1 => Just(JsonTest::NotExists),
        1 => Just(JsonTest::IsTrue),
        1 => Just(JsonTest::IsFalse),
    ]
}

fn json_expr() -> impl Strategy<Value = JsonExpr> {
    let leaf = (selector(), json_test())
        .prop_map(|(selector, test)| JsonExpr::Cond(JsonCond { selector, test }));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(JsonExpr::And),
            prop::collection::vec(inner, 2..4).prop_map(JsonExpr::Or),
        ]
    })
}

fn fields() -> impl Strategy<Value = Vec<Field>> {
    let field = prop_oneof![
        1 => Just(None),
        4 => (
            "[a-z_][a-z0-9_]{0,5}",
            prop::collection::vec(prop::collection::vec(comparison(), 1..3), 0..3),
        )
            .prop_map(Some),
    ];
    prop::collection::vec(field, 1..7).prop_map(|fs| {
        fs.into_iter()
            .enumerate()
            .map(|(i, f)| match f {
                None => Field::Ellipsis,
                // The index makes names unique.
                Some((name, any_of)) => Field::Named {
                    name: format!("{name}{i}"),
                    any_of,
                },
            })
            .collect()
    })
}

fn ast() -> impl Strategy<Value = Ast> {
    prop_oneof![
        1 => Just(Ast::All),
        3 => prop::collection::vec(term(), 1..6).prop_map(Ast::Text),
        4 => json_expr().prop_map(Ast::Json),
        3 => fields().prop_map(Ast::Delimited),
        1 => regex_body().prop_map(Ast::Regex),
    ]
    .prop_filter("within the pattern limits", |a| {
        regexes(a) <= MAX_REGEXES && a.to_string().chars().count() <= MAX_PATTERN_CHARS
    })
}

fn regexes(a: &Ast) -> usize {
    fn cmp(c: &Comparison) -> usize {
        usize::from(matches!(
            c,
            Comparison::Str {
                value: StrValue::Regex(_),
                ..
            }
        ))
    }
    fn expr(e: &JsonExpr) -> usize {
        match e {
            JsonExpr::And(all) | JsonExpr::Or(all) => all.iter().map(expr).sum(),
            JsonExpr::Cond(JsonCond {
                test: JsonTest::Compare(c),
                ..
            }) => cmp(c),
            JsonExpr::Cond(_) => 0,
        }
    }
    match a {
        Ast::Regex(_) => 1,
        Ast::Json(e) => expr(e),
        Ast::Delimited(fs) => fs
            .iter()
            .map(|f| match f {
                Field::Ellipsis => 0,
                Field::Named { any_of, .. } => any_of.iter().flatten().map(cmp).sum(),
            })
            .sum(),
        _ => 0,
    }
}

// ---- input generators ----

/// Strings made of the language's own pieces, so that the parser gets deep
/// into every branch (plain random strings rarely get past the first
/// character).
fn pattern_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just("("),
        Just(")"),
        Just("$"),
        Just("$.a"),
        Just("$.b[0]"),
        Just("."),
        Just("[12]"),
        Just("="),
        Just("!="),
        Just("<"),
        Just(">="),
        Just("<="),
        Just("!"),
        Just("&&"),
        Just("||"),
        Just("&"),
        Just("|"),
        Just(","),
        Just("..."),
        Just("\"x y\""),
        Just("\""),
        Just("\\"),
        Just("*"),
        Just("5*"),
        Just("12"),
        Just("-3.5e2"),
        Just("1e999"),
        Just("%ab%"),
        Just("%"),
        Just("%(a)%"),
        Just("IS"),
        Just("NULL"),
        Just("NOT"),
        Just("EXISTS"),
        Just("TRUE"),
        Just("ip"),
        Just("ERROR"),
        Just("-"),
        Just("?"),
        Just(" "),
        Just("é"),
        Just("\t"),
        Just("\n"),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|ps| ps.concat())
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        // JSON documents of every shape.
        any_json().prop_map(|v| v.to_string()),
        // Token soup for the space-delimited matcher.
        prop::collection::vec(
            prop_oneof![
                Just("a"),
                Just("404"),
                Just("5x"),
                Just("-1.5"),
                Just("\"q q\""),
                Just("[b b]"),
                Just("\""),
                Just("["),
                Just("ERROR"),
                Just("é"),
            ],
            0..12,
        )
        .prop_map(|ts| ts.join(" ")),
    ]
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1e4..1e4f64).prop_map(|n| serde_json::json!(n)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[a-z*]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn exercise(p: &Pattern, message: &str) {
    let hit = p.matches(message);
    assert_eq!(p.is_match(message), hit.is_some());
    if let Some(m) = hit {
        let _ = m.extracted();
        for spec in ["1", "$.a", "$.b[0]", "$1", "$ip"] {
            let _ = Pattern::value(&m, spec);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printing_then_parsing_gives_the_tree_back(a in ast()) {
        let text = a.to_string();
        let parsed = Pattern::parse(&text).map_err(|e| {
            TestCaseError::fail(format!("{text:?} does not parse: {e}"))
        })?;
        prop_assert_eq!(parsed.ast(), &a, "printed as {:?}", text);
    }

    #[test]
    fn parser_never_panics_and_accepts_its_own_output(src in prop_oneof![any::<String>(), pattern_soup()]) {
        if let Ok(p) = Pattern::parse(&src) {
            let printed = p.to_string();
            let again = Pattern::parse(&printed).map_err(|e| {
                TestCaseError::fail(format!("{src:?} printed as {printed:?}, which fails: {e}"))
            })?;
            prop_assert_eq!(again.ast(), p.ast(), "printed as {:?}", printed);
        }
        let _ = ValueSpec::parse(&src);
    }

    #[test]
    fn matching_never_panics(a in ast(), messages in prop::collection::vec(message(), 1..8)) {
        let p = Pattern::from_ast(a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for m in &messages {
            exercise(&p, m);
        }
    }

    #[test]
    fn soup_patterns_match_without_panicking(src in pattern_soup(), msg in message()) {
        if let Ok(p) = Pattern::parse(&src) {
            exercise(&p, &msg);
        }
    }

    #[test]
    fn delimited_matcher_agrees_with_brute_force(
        shape in prop::collection::vec(prop_oneof![Just(None), Just(Some(None)), "[ab]".prop_map(|t| Some(Some(t)))], 1..6),
        tokens in prop::collection::vec("[abc]", 0..8),
    ) {
        let fields: Vec<Field> = shape.iter().enumerate().map(|(i, s)| match s {
            None => Field::Ellipsis,
            Some(cond) => Field::Named {
                name: format!("f{i}"),
                any_of: cond.iter().map(|t| vec![Comparison::Str {
                    negated: false,
                    value: StrValue::Glob { leading: false, text: t.clone(), trailing: false },
                }]).collect(),
            },
        }).collect();
        let p = Pattern::from_ast(Ast::Delimited(fields)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = reference(&shape, &tokens);
        prop_assert_eq!(p.is_match(&tokens.join(" ")), want);
    }
}

/// Brute force: `None` is `...`, `Some(None)` any one token, `Some(Some(t))`
/// exactly `t`.
fn reference(shape: &[Option<Option<String>>], tokens: &[String]) -> bool {
    match shape.split_first() {
        None => tokens.is_empty(),
        Some((None, rest)) => (0..=tokens.len()).any(|k| reference(rest, &tokens[k..])),
        Some((Some(cond), rest)) => match tokens.split_first() {
            None => false,
            Some((t, more)) => cond.as_ref().is_none_or(|c| c == t) && reference(rest, more),
        },
    }
}
