//! The documented examples of CloudWatch Logs' filter-pattern syntax and
//! the edge rules of SEMANTICS §3.1, as unit tests.

use super::*;
use serde_json::json;

fn p(src: &str) -> Pattern {
    match Pattern::parse(src) {
        Ok(p) => p,
        Err(e) => panic!("{src:?} does not parse: {e}"),
    }
}

fn err(src: &str) -> String {
    match Pattern::parse(src) {
        Ok(p) => panic!("{src:?} parsed as {:?}", p.ast()),
        Err(e) => e.to_string(),
    }
}

/// Asserts which of `lines` match `pattern`.
fn check(pattern: &str, lines: &[(&str, bool)]) {
    let pat = p(pattern);
    for (line, want) in lines {
        assert_eq!(pat.is_match(line), *want, "pattern {pattern:?} on {line:?}");
        assert_eq!(pat.matches(line).is_some(), *want, "matches() agrees");
    }
}

const ERRORS: &[&str] = &[
    "[ERROR 400] BAD REQUEST",
    "[ERROR 401] UNAUTHORIZED REQUEST",
    "[ERROR 419] MISSING ARGUMENTS",
    "[ERROR 420] INVALID ARGUMENTS",
];

#[test]
fn empty_pattern_matches_everything() {
    check("", &[("anything", true), ("", true)]);
    check("   ", &[("x", true)]);
    assert_eq!(p("").to_string(), "");
}

#[test]
fn single_term_is_a_case_sensitive_substring() {
    let mut lines: Vec<(&str, bool)> = ERRORS.iter().map(|l| (*l, true)).collect();
    lines.extend([("[error 400] lower", false), ("ERRORCODE: 7", true)]);
    check("ERROR", &lines);
}

#[test]
fn bare_terms_must_all_appear() {
    check(
        "ERROR ARGUMENTS",
        &[
            (ERRORS[0], false),
            (ERRORS[2], true),
            (ERRORS[3], true),
            ("ARGUMENTS ERROR reversed", true),
        ],
    );
}

#[test]
fn quoted_phrase_matches_exactly() {
    check(
        "\"INTERNAL SERVER ERROR\"",
        &[
            ("[ERROR 500] INTERNAL SERVER ERROR", true),
            ("INTERNAL ERROR SERVER", false),
        ],
    );
    check(
        "\"Failed to process\"",
        &[
            ("Failed to process the request", true),
            ("failed to process", false),
        ],
    );
    // Terms with non-word characters are written quoted.
    check("\"[ERROR 401]\"", &[(ERRORS[1], true), (ERRORS[0], false)]);
}

#[test]
fn minus_excludes_a_term() {
    check(
        "ERROR -ARGUMENTS",
        &[
            (ERRORS[0], true),
            (ERRORS[1], true),
            (ERRORS[2], false),
            (ERRORS[3], false),
        ],
    );
    check(
        "ERROR -Exiting",
        &[("ERROR: retrying", true), ("ERROR: Exiting now", false)],
    );
    // Only exclusions: everything but them.
    check("-DEBUG", &[("INFO x", true), ("DEBUG x", false)]);
}

#[test]
fn question_mark_terms_are_any_of() {
    check(
        "?ERROR ?WARN",
        &[("[ERROR] x", true), ("[WARN] x", true), ("[INFO] x", false)],
    );
    // Mixed with a bare term: the bare term AND any of the `?` terms.
    check(
        "payment ?ERROR ?WARN",
        &[
            ("payment ERROR", true),
            ("payment WARN", true),
            ("payment INFO", false),
            ("refund ERROR", false),
        ],
    );
}

#[test]
fn json_string_equality() {
    check(
        r#"{ $.eventType = "UpdateTrail" }"#,
        &[
            (r#"{"eventType":"UpdateTrail","x":1}"#, true),
            (r#"{"eventType":"CreateTrail"}"#, false),
            (r#"{"other":"UpdateTrail"}"#, false),
            ("eventType UpdateTrail", false),
        ],
    );
    // Unquoted strings are accepted.
    check(
        "{ $.eventType = UpdateTrail }",
        &[(r#"{"eventType":"UpdateTrail"}"#, true)],
    );
}

#[test]
fn json_or_with_parentheses() {
    check(
        r#"{ ($.errorCode = "ConsoleLogin") || ($.errorCode = "AccessDenied") }"#,
        &[
            (r#"{"errorCode":"ConsoleLogin"}"#, true),
            (r#"{"errorCode":"AccessDenied"}"#, true),
            (r#"{"errorCode":"Throttled"}"#, false),
        ],
    );
}

#[test]
fn json_and_binds_tighter_than_or() {
    let pat = r#"{ $.a = 1 || $.b = 2 && $.c = 3 }"#;
    check(
        pat,
        &[
            (r#"{"a":1}"#, true),
            (r#"{"b":2}"#, false),
            (r#"{"b":2,"c":3}"#, true),
        ],
    );
    check(
        r#"{ ($.a = 1 || $.b = 2) && $.c = 3 }"#,
        &[(r#"{"a":1}"#, false), (r#"{"a":1,"c":3}"#, true)],
    );
    check(
        r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
        &[
            (
                r#"{"user":{"id":1},"users":[{"email":"John.Doe@example.com"}]}"#,
                true,
            ),
            (r#"{"user":{"id":1},"users":[]}"#, false),
        ],
    );
}

#[test]
fn json_numeric_comparisons() {
    check(
        "{ $.latency_us > 2000 }",
        &[
            (r#"{"latency_us":2500}"#, true),
            (r#"{"latency_us":2000}"#, false),
            (r#"{"latency_us":2000.5}"#, true),
            // A numeric operator on a string does not match.
            (r#"{"latency_us":"2500"}"#, false),
            (r#"{"latency_us":null}"#, false),
        ],
    );
    for (op, want) in [
        ("=", [false, true, false]),
        ("!=", [true, false, true]),
        ("<", [true, false, false]),
        (">", [false, false, true]),
        ("<=", [true, true, false]),
        (">=", [false, true, true]),
    ] {
        let pat = format!("{{ $.n {op} -1.5e1 }}");
        check(
            &pat,
            &[
                (r#"{"n":-20}"#, want[0]),
                (r#"{"n":-15}"#, want[1]),
                (r#"{"n":0}"#, want[2]),
            ],
        );
    }
    // `!=` needs a number there too.
    check(
        "{ $.n != 5 }",
        &[(r#"{"m":1}"#, false), (r#"{"n":"x"}"#, false)],
    );
}

#[test]
fn json_array_index_and_range() {
    check(
        "{ $.arr[0] = 1 }",
        &[
            (r#"{"arr":[1,2]}"#, true),
            (r#"{"arr":[2,1]}"#, false),
            (r#"{"arr":[]}"#, false),
            (r#"{"arr":{"0":1}}"#, false),
            (r#"{"arr":1}"#, false),
        ],
    );
    check("{ $.arr[5] NOT EXISTS }", &[(r#"{"arr":[1]}"#, false)]);
    check("{ $.m[1][0] = \"x\" }", &[(r#"{"m":[[],["x"]]}"#, true)]);
}

#[test]
fn json_null_exists_true_false() {
    check(
        "{ $.x IS NULL }",
        &[
            (r#"{"x":null}"#, true),
            (r#"{"y":1}"#, false),
            (r#"{"x":0}"#, false),
        ],
    );
    check(
        "{ $.x NOT EXISTS }",
        &[
            (r#"{"y":1}"#, true),
            (r#"{"x":null}"#, false),
            (r#"{"a":{}}"#, true),
        ],
    );
    check(
        "{ $.a.b NOT EXISTS }",
        &[
            (r#"{"a":{}}"#, true),
            (r#"{}"#, true),
            (r#"{"a":"str"}"#, false),
        ],
    );
    check(
        "{ $.ok IS TRUE }",
        &[(r#"{"ok":true}"#, true), (r#"{"ok":"true"}"#, false)],
    );
    check(
        "{ $.ok IS FALSE }",
        &[(r#"{"ok":false}"#, true), (r#"{"ok":0}"#, false)],
    );
    // Keywords read case-insensitively, print upper-case.
    assert_eq!(p("{ $.x is null }").to_string(), "{ $.x IS NULL }");
}

#[test]
fn json_wildcards_and_existence() {
    check(
        "{ $.sourceIPAddress != 123.123.* }",
        &[
            (r#"{"sourceIPAddress":"123.123.0.1"}"#, false),
            (r#"{"sourceIPAddress":"10.0.0.1"}"#, true),
            (r#"{"other":"10.0.0.1"}"#, false),
        ],
    );
    check(
        r#"{ $.name = "*trail" }"#,
        &[
            (r#"{"name":"mytrail"}"#, true),
            (r#"{"name":"trails"}"#, false),
        ],
    );
    check(
        r#"{ $.name = "*rai*" }"#,
        &[
            (r#"{"name":"mytrails"}"#, true),
            (r#"{"name":"xyz"}"#, false),
        ],
    );
    check(
        "{ $.f = * }",
        &[
            (r#"{"f":"x"}"#, true),
            (r#"{"f":3}"#, true),
            (r#"{"f":false}"#, true),
            (r#"{"g":1}"#, false),
            // A selector landing on an object or array never matches.
            (r#"{"f":{"a":1}}"#, false),
            (r#"{"f":[1]}"#, false),
        ],
    );
    assert!(err(r#"{ $.f = "a*b" }"#).contains("wildcard"));
}

#[test]
fn json_needs_an_object_message() {
    check(
        "{ $.x NOT EXISTS }",
        &[
            ("[1,2]", false),
            ("\"str\"", false),
            ("not json", false),
            ("{broken", false),
            ("  {\"y\":1}", true),
        ],
    );
}

#[test]
fn json_selector_on_object_never_matches() {
    check(
        r#"{ $.a = "x" }"#,
        &[(r#"{"a":{"b":"x"}}"#, false), (r#"{"a":["x"]}"#, false)],
    );
    check("{ $.a IS NULL }", &[(r#"{"a":{}}"#, false)]);
}

#[test]
fn json_regex_values() {
    check(
        "{ $.msg = %ERR[0-9]+% }",
        &[
            (r#"{"msg":"got ERR42"}"#, true),
            (r#"{"msg":"ERR"}"#, false),
        ],
    );
    check(
        "{ $.msg != %^ok% }",
        &[(r#"{"msg":"okay"}"#, false), (r#"{"msg":"bad"}"#, true)],
    );
}

const ACCESS: &str =
    r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534"#;

#[test]
fn delimited_names_every_token() {
    let pat = p("[ip, user, username, timestamp, request, status_code = 4*, bytes]");
    let m = pat.matches(ACCESS).expect("matches");
    assert_eq!(m.field("$ip"), Some("127.0.0.1"));
    assert_eq!(m.field("$timestamp"), Some("10/Oct/2000:13:25:15 -0700"));
    assert_eq!(m.field("$request"), Some("GET /apache_pb.gif HTTP/1.0"));
    assert_eq!(m.field("status_code"), Some("404"));
    assert_eq!(m.field("$7"), Some("1534"));
    assert_eq!(m.field("$0"), None);
    assert_eq!(m.field("$8"), None);
    assert!(!pat.is_match(&ACCESS.replace(" 404 ", " 200 ")));
    // Without `...` the token count must be exact.
    assert!(!pat.is_match(&format!("{ACCESS} extra")));
    assert!(!pat.is_match("127.0.0.1 - frank"));
}

#[test]
fn delimited_ellipsis_and_numeric_conditions() {
    check(
        "[..., status_code = 5*, bytes > 1000]",
        &[
            ("a b c 503 2048", true),
            ("503 2048", true),
            ("a b c 503 999", false),
            ("a b c 200 2048", false),
            ("a b c 503 -", false),
        ],
    );
    let pat = p("[ip, user, ..., status = 404 || status = 410, bytes]");
    let m = pat.matches("1.2.3.4 bob x y z 410 77").expect("matches");
    assert_eq!(m.field("$status"), Some("410"));
    assert_eq!(m.field("$bytes"), Some("77"));
    assert!(!pat.is_match("1.2.3.4 bob x y z 200 77"));
    check(
        "[a, b >= 400 && b < 500, ...]",
        &[("x 404 y", true), ("x 500", false), ("x 399", false)],
    );
    check("[w1 = ERROR, w2]", &[("ERROR x", true), ("WARN x", false)]);
    check("[w1 = %ERR.R%, w2]", &[("ERROR x", true), ("OK x", false)]);
    check("[...]", &[("", true), ("a b", true)]);
    check(
        "[..., last = done]",
        &[("a b done", true), ("done x", false)],
    );
    check(
        "[first, ..., mid = M, ..., last]",
        &[
            ("a x M y z", true),
            ("a M z", true),
            ("a z", false),
            ("a b c", false),
        ],
    );
}

#[test]
fn delimited_extracted_fields() {
    let pat = p("[ip, ..., status]");
    let m = pat.matches("10.0.0.1 GET / 200").expect("matches");
    assert_eq!(
        m.extracted(),
        vec![
            ("$ip".to_owned(), json!("10.0.0.1")),
            ("$status".to_owned(), json!("200")),
            ("$1".to_owned(), json!("10.0.0.1")),
            ("$2".to_owned(), json!("200")),
        ]
    );
}

#[test]
fn regex_pattern() {
    check(
        "%ERROR|WARN%",
        &[("an ERROR", true), ("a WARNING", true), ("info", false)],
    );
    check(
        "%AUTHORIZED%",
        &[
            ("[ERROR 401] UNAUTHORIZED REQUEST", true),
            ("[SUCCESS 200] AUTHORIZED REQUEST", true),
        ],
    );
    check(
        r"%^\d{1,3}\.\d{1,3}\.%",
        &[("10.0.0.1 x", true), ("x 10.0.0.1", false)],
    );
    assert!(err("%(a|b)%").contains("not allowed"));
    assert!(err("{ $.a = %a% || $.b = %b% || $.c = %c% }").contains("at most 2 regexes"));
}

#[test]
fn json_extracted_and_values() {
    let pat = p(r#"{ $.latency_us > 2000 && $.route = "/infer" || $.obj NOT EXISTS }"#);
    let msg = r#"{"latency_us":2500,"route":"/infer","size":"12.5","nested":{"v":[3]}}"#;
    let m = pat.matches(msg).expect("matches");
    assert_eq!(
        m.extracted(),
        vec![
            ("$.latency_us".to_owned(), json!(2500)),
            ("$.route".to_owned(), json!("/infer")),
        ]
    );
    assert_eq!(Pattern::value(&m, "$.latency_us"), Some(2500.0));
    assert_eq!(Pattern::value(&m, "$.size"), Some(12.5));
    assert_eq!(Pattern::value(&m, "$.nested.v[0]"), Some(3.0));
    assert_eq!(Pattern::value(&m, "$.route"), None);
    assert_eq!(Pattern::value(&m, "$.nested"), None);
    assert_eq!(Pattern::value(&m, "1"), Some(1.0));
    assert_eq!(Pattern::value(&m, "$bytes"), None);
    assert_eq!(Pattern::value(&m, "not a spec"), None);
}

#[test]
fn delimited_values() {
    let pat = p("[ip, status, bytes]");
    let m = pat.matches("1.2.3.4 200 1534").expect("matches");
    assert_eq!(Pattern::value(&m, "$bytes"), Some(1534.0));
    assert_eq!(Pattern::value(&m, "$2"), Some(200.0));
    assert_eq!(Pattern::value(&m, "$ip"), None);
    assert_eq!(Pattern::value(&m, "$.x"), None);
    assert_eq!(Pattern::value(&m, "0.5"), Some(0.5));
    let text = p("ERROR");
    let m = text.matches("ERROR").expect("matches");
    assert!(m.extracted().is_empty());
    assert_eq!(Pattern::value(&m, "$bytes"), None);
}

#[test]
fn value_spec_parses() {
    assert_eq!(ValueSpec::parse("1"), Ok(ValueSpec::Literal(1.0)));
    assert_eq!(ValueSpec::parse(" $3 "), Ok(ValueSpec::Position(3)));
    assert_eq!(
        ValueSpec::parse("$bytes"),
        Ok(ValueSpec::Field("bytes".to_owned()))
    );
    assert!(matches!(
        ValueSpec::parse("$.a[0].b"),
        Ok(ValueSpec::Json(_))
    ));
    for bad in ["", "$", "$0", "$.", "$.a[", "x", "$-1", "$1a"] {
        assert!(ValueSpec::parse(bad).is_err(), "{bad:?}");
    }
    let e = ValueSpec::parse("  $.a[x]").err().map(|e| e.column);
    assert_eq!(e, Some(7));
}

#[test]
fn errors_say_where_and_what() {
    assert_eq!(
        err("{ $.eventType = }"),
        "column 17: expected a value after \"=\", found \"}\""
    );
    assert_eq!(
        err("{ $.eventType ="),
        "column 16: expected a value after \"=\", found end of pattern"
    );
    assert_eq!(
        err("{ $.latency > fast }"),
        "column 15: expected a number after \">\", found \"fast\""
    );
    assert_eq!(
        err("{ $.a = 1 "),
        "column 11: expected \"&&\", \"||\" or \"}\", found end of pattern"
    );
    assert_eq!(
        err("{ a = 1 }"),
        "column 3: expected a selector (\"$.…\") or \"(\", found \"a\""
    );
    assert_eq!(
        err("{ $.a }"),
        "column 7: expected an operator (=, !=, <, >, <=, >=), IS or NOT EXISTS after the selector, found \"}\""
    );
    assert!(err("{ $.a IS MAYBE }").starts_with("column 10: expected NULL, TRUE or FALSE"));
    assert!(err("{ $.a NOT THERE }").starts_with("column 11: expected EXISTS"));
    assert!(err("{ ($.a = 1 }").starts_with("column 12: expected \"&&\", \"||\" or \")\""));
    assert!(err("{ $.a = 1 } x").starts_with("column 13: expected end of pattern"));
    assert!(err("ERROR-5").starts_with("column 6: expected a space between terms"));
    assert!(err("user@host").starts_with("column 5:"));
    assert!(err("\"unclosed").starts_with("column 1: expected a closing '\"'"));
    assert!(err("[a, b").starts_with("column 6: expected \",\" or \"]\""));
    assert!(err("[a, , b]").starts_with("column 5: expected a field name or \"...\""));
    assert!(err("[]").starts_with("column 2: expected a field name"));
    assert!(err("[a, a]").starts_with("column 5: field \"a\" is named twice"));
    assert!(err("[a = 1 || b = 2]").starts_with("column 11: expected \"a\""));
    assert!(err("[1x]").contains("field name"));
    assert!(err("%abc").starts_with("column 1: expected a closing \"%\""));
    assert!(err("{ $.a[x] = 1 }").starts_with("column 7: expected an array index"));
    assert!(err("{ $.a[99999999999] = 1 }").contains("out of range"));
    // Columns count characters, not bytes.
    assert!(err("{ $.é = }").starts_with("column 9:"));
}

#[test]
fn limits_are_enforced() {
    let long = "a".repeat(MAX_PATTERN_CHARS + 1);
    assert!(err(&long).starts_with("column 1025: a pattern is at most 1024 characters"));
    assert!(Pattern::parse(&"a".repeat(MAX_PATTERN_CHARS)).is_ok());
    let deep = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(err(&deep).contains("nest at most 32"));
    let ok = format!(
        "{{ {}$.a = 1{} }}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(Pattern::parse(&ok).is_ok());
}

#[test]
fn canonical_printing() {
    for (src, canon) in [
        ("ERROR", "ERROR"),
        ("  ERROR    -Exiting  ", "ERROR -Exiting"),
        ("\"ERROR\" ?\"a b\"", "ERROR ?\"a b\""),
        (
            "{$.eventType=UpdateTrail}",
            "{ $.eventType = \"UpdateTrail\" }",
        ),
        (
            "{ ($.errorCode = \"ConsoleLogin\") || ($.errorCode = \"AccessDenied\") }",
            "{ $.errorCode = \"ConsoleLogin\" || $.errorCode = \"AccessDenied\" }",
        ),
        (
            "{ ($.a = 1 || $.b = 2) && $.c = 3 }",
            "{ ($.a = 1 || $.b = 2) && $.c = 3 }",
        ),
        (
            "{ $.a = 1 || ($.b = 2 && $.c = 3) }",
            "{ $.a = 1 || $.b = 2 && $.c = 3 }",
        ),
        ("{ $.latency_us > 2000.0 }", "{ $.latency_us > 2000 }"),
        ("{ $.x < 1.5E-7 }", "{ $.x < 1.5e-7 }"),
        ("{ $.f = * }", "{ $.f = * }"),
        ("{ $.arr[0] = 1 }", "{ $.arr[0] = 1 }"),
        (
            "[ip,user,...,status=404||status=410,bytes>1000]",
            "[ip, user, ..., status = 404 || status = 410, bytes > 1000]",
        ),
        ("[..., status_code = 5*]", "[..., status_code = \"5*\"]"),
        ("%ERROR|WARN%", "%ERROR|WARN%"),
    ] {
        let pat = p(src);
        assert_eq!(pat.to_string(), canon, "{src:?}");
        assert_eq!(p(canon), pat, "canonical form of {src:?} parses back");
    }
}

#[test]
fn json_keys_repeat_and_escape_as_in_serde_json() {
    check(
        "{ $.a = 2 }",
        &[(r#"{"a":1,"a":2}"#, true), (r#"{"a":2,"a":1}"#, false)],
    );
    check("{ $.ab = 1 }", &[(r#"{"a\u0062":1}"#, true)]);
    check(
        "{ $.s = \"x\\\"y\" }",
        &[(r#"{"s":"x\"y"}"#, true), (r#"{"s":"x\\y"}"#, false)],
    );
    check(
        "{ $.a.b = 1 }",
        &[
            (r#"{"a":{"b":1,"c":[1,{"d":null}]}}"#, true),
            (r#"{"a":[1]}"#, false),
        ],
    );
    // The whole message must still be valid JSON.
    check(
        "{ $.a = 1 }",
        &[(r#"{"a":1,"b":}"#, false), (r#"{"a":1} x"#, false)],
    );
}
