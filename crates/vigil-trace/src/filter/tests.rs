use proptest::prelude::*;

use super::*;
use crate::model::{AnnotationValue, Http, TraceId};

/// A trace in services `vigil` and `caller`: root `vigil` answered `POST
/// https://api.example.com/v1/score` with 500 in 80 ms, the whole trace
/// lasting 1.2 s; annotations model = "fraud", cached = true, rows = 3.
fn trace() -> TraceSummary {
    TraceSummary {
        trace_id: TraceId([1; 16]),
        start_us: 1_000_000,
        end_us: 2_200_000,
        response_time_us: 80_000,
        service: "vigil".into(),
        name: "vigil".into(),
        http: Some(Http {
            method: Some("POST".into()),
            url: Some("https://api.example.com/v1/score".into()),
            user_agent: Some("curl/8.5.0".into()),
            client_ip: Some("10.0.0.7".into()),
            status: Some(500),
            content_length: None,
        }),
        error: false,
        throttle: false,
        fault: true,
        services: vec!["caller".into(), "vigil".into()],
        annotations: vec![
            ("cached".into(), AnnotationValue::Bool(true)),
            ("model".into(), AnnotationValue::String("fraud".into())),
            ("rows".into(), AnnotationValue::Number(3.0)),
        ],
        spans: 4,
    }
}

/// A trace with no HTTP block, no annotations and no flags.
fn bare() -> TraceSummary {
    TraceSummary {
        http: None,
        fault: false,
        annotations: Vec::new(),
        ..trace()
    }
}

fn matches(filter: &str, trace: &TraceSummary) -> bool {
    Filter::parse(filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(trace)
}

fn error(filter: &str) -> FilterError {
    match Filter::parse(filter) {
        Ok(f) => panic!("{filter} parsed as {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_empty_filter_matches_everything() {
    assert!(matches("", &trace()));
    assert!(matches("   ", &bare()));
    assert_eq!(Filter::parse(" ").unwrap().expr(), None);
}

#[test]
fn service_is_any_of_the_traces_services() {
    assert!(matches("service(\"vigil\")", &trace()));
    assert!(matches("service(\"caller\")", &trace()));
    assert!(!matches("service(\"redis\")", &trace()));
    assert!(!matches("service(\"Vigil\")", &trace()));
}

#[test]
fn times_are_in_seconds() {
    let t = trace();
    for (filter, want) in [
        ("responsetime > 0.05", true),
        ("responsetime > 0.08", false),
        ("responsetime >= 0.08", true),
        ("responsetime = 0.08", true),
        ("responsetime != 0.08", false),
        ("responsetime < 0.1", true),
        ("responsetime <= 0.079", false),
        ("duration >= 1", true),
        ("duration > 1.2", false),
        ("duration = 1.2", true),
        ("duration < 2e0", true),
    ] {
        assert_eq!(matches(filter, &t), want, "{filter}");
    }
}

#[test]
fn http_status_compares_numbers() {
    let t = trace();
    assert!(matches("http.status = 500", &t));
    assert!(matches("http.status >= 500", &t));
    assert!(!matches("http.status < 500", &t));
    assert!(matches("http.status != 404", &t));
    // No HTTP block: no comparison holds, not even !=.
    assert!(!matches("http.status != 404", &bare()));
    assert!(!matches("http.status = 500", &bare()));
}

#[test]
fn http_strings_take_every_string_operator() {
    let t = trace();
    for (filter, want) in [
        ("http.url CONTAINS \"/v1\"", true),
        ("http.url contains \"/v2\"", false),
        ("http.url BEGINSWITH \"https://\"", true),
        ("http.url BeginsWith \"http://\"", false),
        ("http.url ENDSWITH \"/score\"", true),
        ("http.url endswith \"/v1\"", false),
        ("http.url = \"https://api.example.com/v1/score\"", true),
        ("http.method = \"POST\"", true),
        ("http.method = \"post\"", false),
        ("http.method != \"GET\"", true),
        ("http.useragent BEGINSWITH \"curl/\"", true),
        ("http.clientip = \"10.0.0.7\"", true),
        ("http.clientip != \"10.0.0.7\"", false),
    ] {
        assert_eq!(matches(filter, &t), want, "{filter}");
    }
    assert!(!matches("http.url != \"x\"", &bare()));
    assert!(!matches("http.method CONTAINS \"\"", &bare()));
}

#[test]
fn flags_are_bare_or_compared_with_booleans() {
    let t = trace();
    for (filter, want) in [
        ("fault", true),
        ("fault = true", true),
        ("fault = false", false),
        ("fault != false", true),
        ("FAULT = TRUE", true),
        ("error", false),
        ("error = false", true),
        ("throttle", false),
        ("throttle != true", true),
        ("ok", false),
        ("ok = false", true),
    ] {
        assert_eq!(matches(filter, &t), want, "{filter}");
    }
    assert!(matches("ok", &bare()));
    let throttled = TraceSummary {
        error: true,
        throttle: true,
        ..bare()
    };
    assert!(matches(
        "throttle AND error AND NOT ok AND NOT fault",
        &throttled
    ));
}

#[test]
fn annotations_compare_by_their_type() {
    let t = trace();
    for (filter, want) in [
        ("annotation.model = \"fraud\"", true),
        ("annotation.model != \"fraud\"", false),
        ("annotation.model BEGINSWITH \"fr\"", true),
        ("annotation.cached = true", true),
        ("annotation.cached != true", false),
        ("annotation.cached = false", false),
        ("annotation.rows > 2", true),
        ("annotation.rows <= 2", false),
        ("annotation.rows = 3", true),
        // Type mismatches and unknown keys are false, not errors.
        ("annotation.model > 2", false),
        ("annotation.rows = \"3\"", false),
        ("annotation.cached = 1", false),
        ("annotation.missing = 1", false),
        ("annotation.missing != 1", false),
    ] {
        assert_eq!(matches(filter, &t), want, "{filter}");
    }
}

#[test]
fn any_annotation_with_the_key_may_satisfy_it() {
    let mut t = trace();
    t.annotations
        .push(("rows".into(), AnnotationValue::Number(10.0)));
    t.annotations
        .push(("rows".into(), AnnotationValue::String("many".into())));
    assert!(matches("annotation.rows > 5", &t));
    assert!(matches("annotation.rows < 5", &t));
    assert!(matches("annotation.rows = \"many\"", &t));
}

#[test]
fn not_binds_tighter_than_and_and_and_than_or() {
    let t = trace();
    // fault OR (error AND service("x")): true via fault.
    assert!(matches("fault OR error AND service(\"x\")", &t));
    // (fault OR error) AND service("x") would be false.
    assert!(!matches("(fault OR error) AND service(\"x\")", &t));
    // (NOT fault) AND error = false; NOT (fault AND error) = true.
    assert!(!matches("NOT fault AND error", &t));
    assert!(matches("NOT (fault AND error)", &t));
    assert!(matches("! error && fault || throttle", &t));
    assert!(matches("not not fault", &t));
    assert!(matches("error or fault and not throttle", &t));
    assert_eq!(
        Filter::parse("a1 OR b AND NOT c").err().map(|e| e.column),
        Some(1)
    );
    let f = Filter::parse("fault OR error AND NOT throttle").unwrap();
    assert_eq!(
        f.to_string(),
        "(fault = true OR (error = true AND NOT throttle = true))"
    );
}

#[test]
fn escapes_in_strings() {
    let mut t = trace();
    if let Some(http) = t.http.as_mut() {
        http.url = Some(r#"/a"b\c"#.into());
    }
    assert!(matches(r#"http.url = "/a\"b\\c""#, &t));
    let f = Filter::parse(r#"http.url = "/a\"b\\c""#).unwrap();
    assert_eq!(f.to_string(), r#"http.url = "/a\"b\\c""#);
}

#[test]
fn errors_name_the_column_what_was_expected_and_what_came() {
    let e = error("responsetime >  abc");
    assert_eq!(e.column, 17);
    assert_eq!(
        e.to_string(),
        "column 17: expected a number after '>', found \"abc\""
    );
    let e = error("fault AND htp.status = 500");
    assert_eq!(e.column, 11);
    assert!(
        e.message
            .starts_with("unknown key \"htp.status\"; valid keys: "),
        "{e}"
    );
    assert!(e.message.contains("http.status"), "{e}");
    let e = error("http.url CONTAINS \"/v1");
    assert_eq!(
        (e.column, e.message.as_str()),
        (19, "unterminated string: expected a closing '\"'")
    );
    let e = error("fault error");
    assert_eq!(
        e.to_string(),
        "column 7: expected AND, OR or the end of the filter, found \"error\""
    );
    let e = error("http.url > 3");
    assert_eq!(
        e.to_string(),
        "column 10: operator '>' does not apply to http.url, a string: use =, !=, CONTAINS, BEGINSWITH, ENDSWITH"
    );
    let e = error("http.status CONTAINS \"5\"");
    assert_eq!(e.column, 13);
    assert!(e.message.contains("a number"), "{e}");
    assert_eq!(error("fault < true").column, 7);
    assert_eq!(
        error("fault = yes").to_string(),
        "column 9: expected true or false after '=', found \"yes\""
    );
    assert_eq!(
        error("annotation.model > \"x\"").to_string(),
        "column 18: operator '>' does not apply to annotation.model, a string here: use =, !=, CONTAINS, BEGINSWITH, ENDSWITH"
    );
    assert_eq!(error("annotation.a.b = 1").column, 12);
    assert_eq!(error("annotation. = 1").column, 12);
    assert_eq!(
        error("(fault OR error").to_string(),
        "column 16: expected ')' to close the '(' at column 1, found the end of the filter"
    );
    assert_eq!(
        error("fault AND").to_string(),
        "column 10: expected a key, '(' or NOT, found the end of the filter"
    );
    assert_eq!(error("fault )").column, 7);
    assert_eq!(error("service(vigil)").column, 9);
    assert_eq!(error("service(\"vigil\"").column, 16);
    assert_eq!(error("http.method = POST").column, 15);
    assert_eq!(error("http.status").column, 12);
    assert_eq!(error("fault & error").column, 7);
    assert_eq!(error("fault # x").column, 7);
    assert_eq!(error("duration > 1x").column, 12);
    assert_eq!(error("duration > 1e999").column, 12);
    assert_eq!(error(r#"http.url = "\n""#).column, 13);
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes but one column.
    let e = error("http.url = \"é\" AND nope");
    assert_eq!(e.column, 20);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}fault{}", "(".repeat(101), ")".repeat(101));
    assert_eq!(error(&deep).column, 101);
    let ok = format!("{}fault{}", "(".repeat(100), ")".repeat(100));
    assert!(matches(&ok, &trace()));
    // A long flat chain is one level, not a deep tree.
    let chain = vec!["fault"; 10_000].join(" AND ");
    assert!(matches(&chain, &trace()));
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        -1e9f64..1e9,
        Just(0.05),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "[a-z/\"\\\\é .:]{0,8}"
}

fn number_op() -> impl Strategy<Value = NumberOp> {
    prop_oneof![
        Just(NumberOp::Eq),
        Just(NumberOp::Ne),
        Just(NumberOp::Lt),
        Just(NumberOp::Le),
        Just(NumberOp::Gt),
        Just(NumberOp::Ge),
    ]
}

fn text_op() -> impl Strategy<Value = TextOp> {
    prop_oneof![
        Just(TextOp::Eq),
        Just(TextOp::Ne),
        Just(TextOp::Contains),
        Just(TextOp::BeginsWith),
        Just(TextOp::EndsWith),
    ]
}

fn predicate() -> impl Strategy<Value = Predicate> {
    let number_key = prop_oneof![
        Just(NumberKey::ResponseTime),
        Just(NumberKey::Duration),
        Just(NumberKey::HttpStatus),
    ];
    let text_key = prop_oneof![
        Just(TextKey::Url),
        Just(TextKey::Method),
        Just(TextKey::UserAgent),
        Just(TextKey::ClientIp),
    ];
    let flag_key = prop_oneof![
        Just(FlagKey::Fault),
        Just(FlagKey::Error),
        Just(FlagKey::Throttle),
        Just(FlagKey::Ok),
    ];
    let test = prop_oneof![
        (number_op(), number()).prop_map(|(op, v)| AnnotationTest::Number(op, v)),
        (text_op(), text()).prop_map(|(op, v)| AnnotationTest::Text(op, v)),
        (any::<bool>(), any::<bool>())
            .prop_map(|(equal, value)| AnnotationTest::Bool { equal, value }),
    ];
    prop_oneof![
        text().prop_map(Predicate::Service),
        (number_key, number_op(), number()).prop_map(|(k, op, v)| Predicate::Number(k, op, v)),
        (text_key, text_op(), text()).prop_map(|(k, op, v)| Predicate::Text(k, op, v)),
        (flag_key, any::<bool>(), any::<bool>()).prop_map(|(key, equal, value)| Predicate::Flag {
            key,
            equal,
            value
        }),
        ("[A-Za-z0-9_]{1,12}", test).prop_map(|(k, t)| Predicate::Annotation(k, t)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    predicate()
        .prop_map(Expr::Pred)
        .prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_tree(e in expr()) {
        let text = e.to_string();
        let parsed = Filter::parse(&text);
        prop_assert_eq!(parsed.map(|f| f.expr).map_err(|e| e.to_string()), Ok(Some(e)), "{}", text);
    }

    #[test]
    fn random_input_never_panics(s in "\\PC{0,40}") {
        if let Err(e) = Filter::parse(&s) {
            prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{} for {:?}", e, s);
        }
    }

    #[test]
    fn token_soup_never_panics(words in prop::collection::vec(prop_oneof![
        Just("("), Just(")"), Just("AND"), Just("or"), Just("!"), Just("&&"), Just("NOT"),
        Just("fault"), Just("="), Just("true"), Just("http.url"), Just("\"x\""), Just("3"),
        Just(">"), Just("CONTAINS"), Just("annotation.k"), Just("service"), Just("\""),
    ], 0..12)) {
        let text = words.join(" ");
        if let Ok(f) = Filter::parse(&text) {
            let _ = f.matches(&trace());
            prop_assert_eq!(Filter::parse(&f.to_string()).map(|g| g.expr), Ok(f.expr));
        }
    }
}
