//! Unit tests of the language: every command and function, the examples of
//! SEMANTICS §4, errors and limits.

use serde_json::{Value as Json, json};

use super::{Event, ExecError, LogEvent, Query, QueryError, QueryLimits, QueryOutput};

/// 2026-12-01T21:05:00.000Z
const T0: i64 = 1_796_159_100_000;

fn ev(ts: i64, message: &str) -> LogEvent {
    LogEvent {
        timestamp_ms: ts,
        ingestion_ms: ts + 5,
        group: "/vigil/access".to_owned(),
        stream: "i-1".to_owned(),
        message: message.to_owned(),
    }
}

fn run_with(q: &str, events: &[LogEvent], limits: QueryLimits) -> QueryOutput {
    let query = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    query
        .run(events.iter().map(LogEvent::as_event), limits)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn run(q: &str, events: &[LogEvent]) -> QueryOutput {
    run_with(q, events, QueryLimits::default())
}

/// The values of `col` in the rows (missing as null).
fn col(out: &QueryOutput, col: &str) -> Vec<Json> {
    out.rows
        .iter()
        .map(|r| r.get(col).cloned().unwrap_or(Json::Null))
        .collect()
}

/// One value computed by `fields <expr> as v` over one JSON event.
fn eval(expr: &str, msg: &str) -> Json {
    let out = run(&format!("fields {expr} as v"), &[ev(T0, msg)]);
    out.rows[0].get("v").cloned().unwrap_or(Json::Null)
}

fn parse_err(q: &str) -> QueryError {
    match Query::parse(q) {
        Ok(_) => panic!("{q} parsed"),
        Err(e) => e,
    }
}

fn access_log() -> Vec<LogEvent> {
    let lines = [
        (
            0,
            r#"{"level":"INFO","status":200,"latencyMs":120,"model":"fraud","path":"/infer"}"#,
        ),
        (
            1_000,
            r#"{"level":"ERROR","status":500,"latencyMs":2500,"model":"fraud","path":"/infer"}"#,
        ),
        (
            2_000,
            r#"{"level":"ERROR","status":503,"latencyMs":3100,"model":"churn","path":"/infer"}"#,
        ),
        (
            61_000,
            r#"{"level":"WARN","status":429,"latencyMs":10,"model":"fraud","path":"/predict"}"#,
        ),
        (
            62_000,
            r#"{"level":"ERROR","status":500,"latencyMs":4000,"model":"fraud","path":"/infer"}"#,
        ),
        (
            301_000,
            r#"{"level":"INFO","status":200,"latencyMs":2200.5,"model":"churn","path":"/infer"}"#,
        ),
    ];
    lines.iter().map(|(dt, m)| ev(T0 + dt, m)).collect()
}

#[test]
fn example_errors_latest_first() {
    let out = run(
        r#"fields @timestamp, @message | filter level = "ERROR" | sort @timestamp desc | limit 20"#,
        &access_log(),
    );
    assert_eq!(out.columns, ["@timestamp", "@message"]);
    assert_eq!(
        col(&out, "@timestamp"),
        [
            json!("2026-12-01T21:06:02.000Z"),
            json!("2026-12-01T21:05:02.000Z"),
            json!("2026-12-01T21:05:01.000Z")
        ]
    );
    assert!(
        out.rows[0]["@message"]
            .as_str()
            .is_some_and(|m| m.contains("4000"))
    );
    assert_eq!((out.scanned, out.matched), (6, 3));
}

#[test]
fn example_slow_requests_by_model_and_bin() {
    let out = run(
        "filter latencyMs > 2000 | stats count(*) as slow, pct(latencyMs, 99) by model, bin(5m)",
        &access_log(),
    );
    assert_eq!(
        out.columns,
        ["model", "bin(5m)", "slow", "pct(latencyMs, 99)"]
    );
    assert_eq!(
        out.rows,
        [
            json!({"model": "churn", "bin(5m)": "2026-12-01T21:05:00.000Z", "slow": 1, "pct(latencyMs, 99)": 3100}),
            json!({"model": "churn", "bin(5m)": "2026-12-01T21:10:00.000Z", "slow": 1, "pct(latencyMs, 99)": 2200.5}),
            json!({"model": "fraud", "bin(5m)": "2026-12-01T21:05:00.000Z", "slow": 2, "pct(latencyMs, 99)": 4000}),
        ]
        .map(|v| v.as_object().cloned().unwrap_or_default())
    );
}

#[test]
fn example_parse_glob_then_display() {
    let events = [
        ev(T0, "[ERROR] disk full"),
        ev(T0 + 1, "[INFO] all good"),
        ev(T0 + 2, "no brackets"),
    ];
    let out = run(
        r#"parse @message "[*] *" as lvl, msg | filter lvl = "ERROR" | display msg"#,
        &events,
    );
    assert_eq!(out.columns, ["msg"]);
    assert_eq!(col(&out, "msg"), [json!("disk full")]);
}

#[test]
fn stats_count_by_bin_1m_is_exact() {
    // 10,000 events over 17 minutes; the count per minute is known.
    let events: Vec<LogEvent> = (0..10_000i64)
        .map(|i| {
            ev(
                T0 + i * 100 + (i % 7),
                &format!(r#"{{"status": {}}}"#, if i % 3 == 0 { 500 } else { 200 }),
            )
        })
        .collect();
    let out = run("filter status >= 500 | stats count(*) by bin(1m)", &events);
    let mut want = std::collections::BTreeMap::<i64, i64>::new();
    for (i, e) in events.iter().enumerate() {
        if i % 3 == 0 {
            *want
                .entry(e.timestamp_ms.div_euclid(60_000) * 60_000)
                .or_default() += 1;
        }
    }
    let got: Vec<(Json, Json)> = out
        .rows
        .iter()
        .map(|r| (r["bin(1m)"].clone(), r["count(*)"].clone()))
        .collect();
    let want: Vec<(Json, Json)> = want
        .into_iter()
        .map(|(b, n)| (json!(super::time::format_rfc3339(b)), json!(n)))
        .collect();
    assert_eq!(got, want);
    assert_eq!(out.matched, 3334);
}

#[test]
fn default_output_and_order() {
    let out = run("filter status = 200", &access_log());
    assert_eq!(out.columns, ["@timestamp", "@message"]);
    assert_eq!(
        col(&out, "@timestamp"),
        [
            json!("2026-12-01T21:10:01.000Z"),
            json!("2026-12-01T21:05:00.000Z")
        ]
    );
}

#[test]
fn fields_project_and_compute() {
    let out = run(
        "fields model, latencyMs / 1000 as secs, strlen(path) | limit 2",
        &access_log(),
    );
    assert_eq!(out.columns, ["model", "secs", "strlen(path)"]);
    assert_eq!(
        out.rows[0],
        json!({"model": "churn", "secs": 2.2005, "strlen(path)": 6})
            .as_object()
            .cloned()
            .unwrap_or_default()
    );
    assert_eq!(out.rows.len(), 2);
}

#[test]
fn system_fields() {
    let out = run(
        "fields @timestamp, @ingestionTime, @log, @logStream, @message",
        &[ev(T0, "hi")],
    );
    assert_eq!(
        out.rows[0],
        json!({
            "@timestamp": "2026-12-01T21:05:00.000Z",
            "@ingestionTime": "2026-12-01T21:05:00.005Z",
            "@log": "/vigil/access",
            "@logStream": "i-1",
            "@message": "hi",
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    );
}

#[test]
fn json_fields_keep_types_and_flatten() {
    let msg = r#"{"a":{"b":"x","n":[10,{"k":true}]},"f":1.5,"s":"7","nil":null,"obj":{"z":1}}"#;
    assert_eq!(eval("a.b", msg), json!("x"));
    assert_eq!(eval("a.n.0", msg), json!(10));
    assert_eq!(eval("a.n.1.k", msg), json!(true));
    assert_eq!(eval("f", msg), json!(1.5));
    assert_eq!(eval("s", msg), json!("7"));
    assert_eq!(eval("obj", msg), json!({"z": 1}));
    assert_eq!(eval("nil", msg), Json::Null);
    assert_eq!(eval("`a.b`", msg), json!("x"));
    assert_eq!(eval("missing", msg), Json::Null);
    assert_eq!(eval("status", "status=500 not json"), Json::Null);
}

#[test]
fn filter_operators() {
    let events = access_log();
    let count =
        |q: &str| run(&format!("filter {q} | stats count(*) as n"), &events).rows[0]["n"].clone();
    assert_eq!(count("status = 500"), json!(2));
    assert_eq!(count("status != 500"), json!(4));
    assert_eq!(count("status < 429"), json!(2));
    assert_eq!(count("status <= 429"), json!(3));
    assert_eq!(count("status > 500"), json!(1));
    assert_eq!(count("status >= 500"), json!(3));
    assert_eq!(count(r#"level = "ERROR" and model = "fraud""#), json!(2));
    assert_eq!(count(r#"level = "WARN" or model = "churn""#), json!(3));
    assert_eq!(count(r#"not level = "ERROR""#), json!(3));
    assert_eq!(
        count(r#"(status = 200 or status = 429) and not (model = "churn")"#),
        json!(2)
    );
    assert_eq!(count(r#"@message like "predict""#), json!(1));
    assert_eq!(count(r#"@message not like "predict""#), json!(5));
    assert_eq!(count(r#"@message like /"status":5\d\d/"#), json!(3));
    assert_eq!(count(r#"model =~ /^fr/"#), json!(4));
    assert_eq!(count("status in [200, 429]"), json!(3));
    assert_eq!(count(r#"model not in ["fraud"]"#), json!(2));
    assert_eq!(count("latencyMs * 2 > 5000 + 1000"), json!(2));
    assert_eq!(count("status % 100 = 0 and -status < -250"), json!(2));
    assert_eq!(count("missing = 1 or missing != 1"), json!(0));
    assert_eq!(count("ispresent(model)"), json!(6));
    assert_eq!(count(r#"level = 'ERROR'"#), json!(3));
    assert_eq!(count(r#"LEVEL = "ERROR""#), json!(0));
    assert_eq!(count(r#"level = "ERROR" AND status = 503"#), json!(1));
}

#[test]
fn numeric_strings_compare_as_numbers() {
    let events = [ev(T0, "took 1500 ms"), ev(T0 + 1, "took 90 ms")];
    let out = run(
        r#"parse @message "took * ms" as ms | filter ms > 100 | display ms"#,
        &events,
    );
    assert_eq!(col(&out, "ms"), [json!("1500")]);
}

#[test]
fn every_aggregate() {
    let out = run(
        "stats count(*) as n, count(latencyMs) as c, count_distinct(model) as models, sum(status) as s, \
         avg(latencyMs) as a, min(latencyMs) as lo, max(latencyMs) as hi, pct(latencyMs, 50) as p50, \
         stddev(status) as sd, earliest(status) as first, latest(status) as last, count(missing) as none, sum(missing) as nosum",
        &access_log(),
    );
    let r = &out.rows[0];
    assert_eq!(r["n"], json!(6));
    assert_eq!(r["c"], json!(6));
    assert_eq!(r["models"], json!(2));
    assert_eq!(r["s"], json!(2332));
    assert_eq!(
        r["a"],
        json!((120.0 + 2500.0 + 3100.0 + 10.0 + 4000.0 + 2200.5) / 6.0)
    );
    assert_eq!(r["lo"], json!(10));
    assert_eq!(r["hi"], json!(4000));
    assert_eq!(r["p50"], json!(2200.5));
    let mean = 2332.0 / 6.0;
    let var = [200.0, 500.0, 503.0, 429.0, 500.0, 200.0]
        .iter()
        .map(|x: &f64| (x - mean).powi(2))
        .sum::<f64>()
        / 5.0;
    let sd = r["sd"].as_f64().unwrap_or(0.0);
    assert!((sd - var.sqrt()).abs() < 1e-9, "{sd}");
    assert_eq!(r["first"], json!(200));
    assert_eq!(r["last"], json!(200));
    assert_eq!(r["none"], json!(0));
    assert!(!r.contains_key("nosum"));
}

#[test]
fn pct_nearest_rank() {
    let events: Vec<LogEvent> = (1..=100)
        .map(|i| ev(T0 + i, &format!(r#"{{"x": {i}}}"#)))
        .collect();
    let out = run(
        "stats pct(x, 99), pct(x, 50), pct(x, 0), pct(x, 100), pct(x, 99.5)",
        &events,
    );
    let r = &out.rows[0];
    assert_eq!(r["pct(x, 99)"], json!(99));
    assert_eq!(r["pct(x, 50)"], json!(50));
    assert_eq!(r["pct(x, 0)"], json!(1));
    assert_eq!(r["pct(x, 100)"], json!(100));
    assert_eq!(r["pct(x, 99.5)"], json!(100));
}

#[test]
fn stats_on_no_events_is_one_row_without_by() {
    let out = run("stats count(*) as n", &[]);
    assert_eq!(col(&out, "n"), [json!(0)]);
    assert!(run("stats count(*) by model", &[]).rows.is_empty());
}

#[test]
fn stats_then_sort_limit_and_fields() {
    let out = run(
        "stats count(*) as n, sum(latencyMs) as total by model | sort n desc | fields model, total / n as mean | limit 1",
        &access_log(),
    );
    assert_eq!(out.columns, ["model", "mean"]);
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0]["model"], json!("fraud"));
    assert_eq!(
        out.rows[0]["mean"],
        json!((120.0 + 2500.0 + 10.0 + 4000.0) / 4.0)
    );
}

#[test]
fn stats_of_stats() {
    let out = run(
        "stats count(*) as n by model, path | stats max(n) as most",
        &access_log(),
    );
    assert_eq!(col(&out, "most"), [json!(3)]);
}

#[test]
fn stats_result_has_no_row_cap() {
    let events: Vec<LogEvent> = (0..12_000)
        .map(|i| ev(T0 + i, &format!(r#"{{"id": {i}}}"#)))
        .collect();
    let out = run("stats count(*) by id", &events);
    assert_eq!(out.rows.len(), 12_000);
    assert_eq!(out.rows[0]["id"], json!(0));
    assert_eq!(out.rows[11_999]["id"], json!(11_999));
    let out = run("fields id", &events);
    assert_eq!(out.rows.len(), 10_000);
    assert_eq!(out.rows[0]["id"], json!(11_999));
}

#[test]
fn sort_and_limit() {
    let events = access_log();
    let q = |q: &str| col(&run(q, &events), "latencyMs");
    assert_eq!(
        q("sort latencyMs | limit 3 | display latencyMs"),
        [json!(10), json!(120), json!(2200.5)]
    );
    assert_eq!(
        q("sort latencyMs desc | limit 2 | display latencyMs"),
        [json!(4000), json!(3100)]
    );
    assert_eq!(
        q("sort model asc, latencyMs desc | limit 3 | display latencyMs"),
        [json!(3100), json!(2200.5), json!(4000)]
    );
    // `sort a | sort b` is stable: b first, then a.
    assert_eq!(
        q("sort latencyMs | sort model | limit 2 | display latencyMs"),
        [json!(2200.5), json!(3100)]
    );
    // Without sort, limit takes the latest events.
    assert_eq!(
        q("limit 2 | display latencyMs"),
        [json!(2200.5), json!(4000)]
    );
    // Sorting gathered rows again in memory.
    assert_eq!(
        q("limit 3 | sort latencyMs | display latencyMs"),
        [json!(10), json!(2200.5), json!(4000)]
    );
}

#[test]
fn limit_keeps_the_right_rows_over_many_events() {
    let events: Vec<LogEvent> = (0..5_000)
        .map(|i| {
            ev(
                T0 + (i * 7919) % 5_000,
                &format!(r#"{{"i": {}}}"#, (i * 7919) % 5_000),
            )
        })
        .collect();
    let out = run("sort i asc | limit 5 | display i", &events);
    assert_eq!(col(&out, "i"), [0, 1, 2, 3, 4].map(|n| json!(n)));
    let out = run("limit 3 | display i", &events);
    assert_eq!(col(&out, "i"), [4999, 4998, 4997].map(|n| json!(n)));
}

#[test]
fn dedup_keeps_first_in_order_and_missing_keys() {
    let events = [
        ev(T0, r#"{"server":"a","v":1}"#),
        ev(T0 + 1, r#"{"server":"b","v":2}"#),
        ev(T0 + 2, r#"{"server":"a","v":3}"#),
        ev(T0 + 3, r#"{"v":4}"#),
        ev(T0 + 4, r#"{"v":5}"#),
    ];
    let out = run("fields server, v | dedup server", &events);
    assert_eq!(col(&out, "v"), [5, 4, 3, 2].map(|n| json!(n)));
    let out = run(
        "fields server, v | sort v asc | dedup server | limit 3",
        &events,
    );
    assert_eq!(col(&out, "v"), [1, 2, 4].map(|n| json!(n)));
    let out = run("limit 5 | dedup server | display v", &events);
    assert_eq!(col(&out, "v"), [5, 4, 3, 2].map(|n| json!(n)));
}

#[test]
fn parse_regex_named_groups() {
    let events = [
        ev(T0, "user=alice took=35ms"),
        ev(T0 + 1, "user=bob took=9ms"),
    ];
    let out = run(
        r"parse @message /user=(?<user>\w+) took=(?<took>\d+)ms/ | sort took desc | display user, took",
        &events,
    );
    assert_eq!(col(&out, "user"), [json!("alice"), json!("bob")]);
    assert_eq!(col(&out, "took"), [json!("35"), json!("9")]);
}

#[test]
fn parse_of_a_json_field() {
    let out = run(
        r#"parse path "/*" as route | display route"#,
        &access_log()[..1],
    );
    assert_eq!(col(&out, "route"), [json!("infer")]);
}

#[test]
fn glob_stars_are_lazy_except_a_trailing_one() {
    assert_eq!(super::plan::glob_regex("[*] *"), r"(?s)\[(.*?)\] (.*)");
    let out = run(
        r#"parse @message "a=*, b=*," as a, b | display a, b"#,
        &[ev(T0, "x a=1, b=2, c=3, b=9,")],
    );
    assert_eq!(
        (out.rows[0]["a"].clone(), out.rows[0]["b"].clone()),
        (json!("1"), json!("2"))
    );
}

#[test]
fn display_last_wins() {
    let out = run(
        "fields model, status | display status | display model",
        &access_log()[..1],
    );
    assert_eq!(out.columns, ["model"]);
    assert_eq!(out.rows[0].len(), 1);
}

#[test]
fn backticks_and_comments() {
    let events = [ev(T0, r#"{"user-agent":"curl","as":1}"#)];
    let q = "# agents\nfields `user-agent` as ua, `as` # trailing comment\n| filter ua = \"curl\"";
    let out = run(q, &events);
    assert_eq!(out.rows[0]["ua"], json!("curl"));
    assert_eq!(out.rows[0]["as"], json!(1));
}

#[test]
fn scalar_functions() {
    let m =
        r#"{"n":-2.5,"i":7,"s":"  Hello World  ","e":"","b":"   ","t":"2026-12-01T21:07:33.250Z"}"#;
    let cases: &[(&str, Json)] = &[
        ("abs(n)", json!(2.5)),
        ("abs(-i)", json!(7)),
        ("ceil(n)", json!(-2)),
        ("floor(n)", json!(-3)),
        ("ceil(i)", json!(7)),
        ("greatest(i, n, 3)", json!(7)),
        ("least(i, n, 3)", json!(-2.5)),
        ("log(1)", json!(0.0)),
        ("log(-1)", Json::Null),
        ("sqrt(16)", json!(4.0)),
        ("sqrt(n)", Json::Null),
        ("ispresent(i)", json!(true)),
        ("ispresent(nope)", json!(false)),
        ("coalesce(nope, e, i)", json!("")),
        ("coalesce(nope, i)", json!(7)),
        ("isempty(e)", json!(true)),
        ("isempty(nope)", json!(true)),
        ("isempty(b)", json!(false)),
        ("isblank(b)", json!(true)),
        ("isblank(s)", json!(false)),
        ("concat(\"a\", i, \"-\", n)", json!("a7--2.5")),
        ("trim(s)", json!("Hello World")),
        ("strlen(trim(s))", json!(11)),
        ("toupper(trim(s))", json!("HELLO WORLD")),
        ("tolower(trim(s))", json!("hello world")),
        ("substr(trim(s), 6)", json!("World")),
        ("substr(trim(s), 0, 5)", json!("Hello")),
        ("replace(s, \"o\", \"0\")", json!("  Hell0 W0rld  ")),
        ("strcontains(s, \"World\")", json!(1)),
        ("strcontains(s, \"world\")", json!(0)),
        (
            "datefloor(@timestamp, 1h)",
            json!("2026-12-01T21:00:00.000Z"),
        ),
        (
            "dateceil(@timestamp, 1d)",
            json!("2026-12-02T00:00:00.000Z"),
        ),
        ("datefloor(t, 1m)", json!("2026-12-01T21:07:00.000Z")),
        ("bin(1mo)", json!("2026-12-01T00:00:00.000Z")),
        ("i + 1", json!(8)),
        ("i - 10", json!(-3)),
        ("i * n", json!(-17.5)),
        ("i / 2", json!(3.5)),
        ("i % 4", json!(3)),
        ("2 ^ 10", json!(1024)),
        ("2 ^ 0.5", json!(2f64.sqrt())),
        ("i / 0", Json::Null),
        ("i % 0", Json::Null),
        ("9223372036854775807 + 1", json!(9.223372036854776e18)),
        ("s + 1", Json::Null),
        ("-(i + 1) * 2", json!(-16)),
        ("1 + 2 * 3 ^ 2", json!(19)),
    ];
    for (expr, want) in cases {
        assert_eq!(&eval(expr, m), want, "{expr}");
    }
}

#[test]
fn errors_point_at_the_column() {
    let cases: &[(&str, usize, &str)] = &[
        ("filter status >", 16, "a field, value, function or `(`"),
        ("fields a,", 10, "a field, value, function or `(`"),
        ("filtr x = 1", 1, "a command"),
        ("stats count(*) by", 18, "a field, value, function or `(`"),
        ("stats median(x)", 7, "an aggregate"),
        ("filter nosuch(x)", 8, "a known function"),
        ("filter abs(1, 2)", 8, "1 arguments for abs"),
        ("limit 0", 7, "a positive whole number"),
        ("limit x", 7, "a positive whole number"),
        ("stats pct(x, 101)", 14, "a percentile from 0 to 100"),
        (r#"parse @message "* *" as a"#, 22, "2 names"),
        (r#"parse @message "x" as a"#, 16, "at least one `*`"),
        ("parse @message /(x)/", 16, "named groups"),
        ("filter x like /(/", 15, "a valid regular expression"),
        ("filter x = \"open", 12, "a closing quote"),
        ("filter x = 1 x", 14, "`|` or end of query"),
        ("stats count(*) by bin(5 m)", 25, "`,` or `)`"),
        ("stats count(*) by bin(5x)", 23, "a time span"),
        ("filter é = 1", 8, "a name, value or operator"),
        ("filter x not 1", 14, "`like` or `in` after `not`"),
        ("", 1, "a command"),
        ("fields and", 8, "a field, value, function or `(`"),
    ];
    for (q, column, expected) in cases {
        match parse_err(q) {
            QueryError::Syntax {
                column: c,
                expected: e,
                ..
            } => {
                assert_eq!(
                    (c, e.contains(expected)),
                    (*column, true),
                    "{q}: got {e:?} at {c}"
                );
            }
            other => panic!("{q}: {other}"),
        }
    }
}

#[test]
fn bounds_on_length_and_nesting() {
    let long = format!("filter x = \"{}\"", "a".repeat(super::MAX_QUERY_CHARS));
    assert!(matches!(parse_err(&long), QueryError::TooLong { .. }));
    let deep = format!("filter {}1{}", "(".repeat(60), ")".repeat(60));
    assert!(matches!(
        parse_err(&deep),
        QueryError::TooDeep { max: 32, .. }
    ));
    let deep_not = format!("filter {}x", "not ".repeat(120));
    assert!(matches!(parse_err(&deep_not), QueryError::TooDeep { .. }));
    let chain = format!("filter x = 0{}", " or x = 1".repeat(200));
    assert!(matches!(
        parse_err(&chain),
        QueryError::TooDeep { max: 128, .. }
    ));
    let sum = format!("fields 1{}", " + 1".repeat(200));
    assert!(matches!(
        parse_err(&sum),
        QueryError::TooDeep { max: 128, .. }
    ));
    assert!(Query::parse(&format!("filter x = 0{}", " or x = 1".repeat(100))).is_ok());
}

#[test]
fn the_deepest_query_fits_in_a_small_stack() {
    // Half of a default thread stack, in an unoptimised build.
    let worker = std::thread::Builder::new().stack_size(1 << 20).spawn(|| {
        let n = super::MAX_NESTING - 1;
        for q in [
            format!("filter {}x{} = 1", "(".repeat(n), ")".repeat(n)),
            format!("filter {}{}x", "not ".repeat(n / 2), "- ".repeat(n / 2)),
            format!("fields {}1{} as v", "abs(".repeat(n), ")".repeat(n)),
            format!(
                "filter x = 0{}",
                " or x = 1".repeat(super::MAX_TREE_DEPTH - 1)
            ),
            format!("filter {}x{}", "(".repeat(n), " + 1 - 2)".repeat(n)),
        ] {
            let query = Query::parse(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
            let printed = Query::parse(&query.to_string());
            assert_eq!(printed.as_ref().ok(), Some(&query));
            let out = query.run(
                access_log().iter().map(LogEvent::as_event),
                QueryLimits::default(),
            );
            assert!(out.is_ok());
        }
    });
    assert!(worker.is_ok_and(|w| w.join().is_ok()));
}

#[test]
fn scan_limit_stops_with_partial_counts() {
    let events = access_log();
    let limits = QueryLimits {
        max_scanned: Some(4),
        ..QueryLimits::default()
    };
    let out = run_with(
        "filter status >= 500 | stats count(*) as n",
        &events,
        limits,
    );
    assert!(out.scan_limit_reached);
    assert_eq!((out.scanned, out.matched), (4, 2));
    assert_eq!(out.rows[0]["n"], json!(2));
    let limits = QueryLimits {
        max_scanned: Some(6),
        ..QueryLimits::default()
    };
    assert!(!run_with("stats count(*)", &events, limits).scan_limit_reached);
}

#[test]
fn group_and_value_bounds_are_errors() {
    let events: Vec<LogEvent> = (0..100)
        .map(|i| ev(T0 + i, &format!(r#"{{"id": {i}}}"#)))
        .collect();
    let q = |text: &str, limits: QueryLimits| {
        Query::parse(text).map_err(|e| e.to_string()).and_then(|q| {
            q.run(events.iter().map(LogEvent::as_event), limits)
                .map_err(|e| e.to_string())
        })
    };
    let small = QueryLimits {
        max_groups: 10,
        max_aggregate_values: 50,
        max_rows: 20,
        ..QueryLimits::default()
    };
    assert_eq!(
        q("stats count(*) by id", small),
        Err(ExecError::TooManyGroups { max: 10 }.to_string())
    );
    assert_eq!(
        q("stats pct(id, 50)", small),
        Err(ExecError::TooManyValues { max: 50 }.to_string())
    );
    assert_eq!(
        q("stats count_distinct(id)", small),
        Err(ExecError::TooManyValues { max: 50 }.to_string())
    );
    assert_eq!(
        q("limit 21", small),
        Err(ExecError::LimitTooLarge { asked: 21, max: 20 }.to_string())
    );
    assert!(q("stats count(*) by id | limit 50000", QueryLimits::default()).is_ok());
    assert_eq!(
        q("stats count_distinct(id) as d", QueryLimits::default()).map(|o| o.rows[0]["d"].clone()),
        Ok(json!(100))
    );
}

#[test]
fn executor_takes_events_in_any_order_in_pieces() {
    let events = access_log();
    let query = Query::parse("filter level = \"ERROR\" | limit 2 | display status")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ex = query
        .executor(QueryLimits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    for e in events.iter().rev() {
        let owned = e.clone();
        assert_eq!(ex.push(owned.as_event()).ok(), Some(super::Flow::Continue));
    }
    let out = ex.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(col(&out, "status"), [json!(500), json!(503)]);
}

#[test]
fn pretty_printing_reparses_to_the_same_tree() {
    let queries = [
        r#"fields @timestamp, @message | filter level = "ERROR" | sort @timestamp desc | limit 20"#,
        "filter latencyMs > 2000 | stats count(*) as slow, pct(latencyMs, 99) by model, bin(5m)",
        r#"parse @message "[*] *" as lvl, msg | filter lvl = "ERROR" | display msg"#,
        r#"filter not (a = 1 or b != "x\"y") and c like /a\/b/ and d not in [1, 2.5, "z"] | dedup a, `b c`"#,
        "fields -x ^ 2 as y, abs(-(1 - 2)) | sort y asc, z desc | stats stddev(y), count(*) by floor(y / 10) as bucket",
    ];
    for q in queries {
        let a = Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let text = a.to_string();
        let b = Query::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(a, b, "{text}");
    }
    let q =
        Query::parse("filter x=1|stats count ( * ) by bin( 5m )").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(q.to_string(), "filter x = 1 | stats count(*) by bin(5m)");
}

#[test]
fn events_are_borrowed() {
    let msg = String::from(r#"{"status": 500}"#);
    let e = Event {
        timestamp_ms: T0,
        ingestion_ms: T0,
        group: "g",
        stream: "s",
        message: &msg,
    };
    let out = Query::parse("fields status")
        .ok()
        .and_then(|q| q.run([e], QueryLimits::default()).ok());
    assert_eq!(out.map(|o| col(&o, "status")), Some(vec![json!(500)]));
}

#[test]
fn each_row_knows_the_event_it_came_from_and_stats_rows_none() {
    let events = [
        ev(T0, r#"{"status": 500}"#),
        ev(T0 + 1, r#"{"status": 200}"#),
        ev(T0 + 2, r#"{"status": 503}"#),
    ];
    let sources = |q: &str| {
        let query = Query::parse(q).unwrap();
        let mut ex = query.executor(QueryLimits::default()).unwrap();
        for e in &events {
            ex.push(e.as_event()).unwrap();
        }
        ex.finish_with_sources().unwrap()
    };
    let (out, src) = sources("filter status >= 500 | fields status | sort status asc");
    assert_eq!(col(&out, "status"), [json!(500), json!(503)]);
    let src: Vec<LogEvent> = src.into_iter().map(Option::unwrap).collect();
    assert_eq!(src, [events[0].clone(), events[2].clone()]);
    let (out, src) = sources("stats count(*)");
    assert_eq!(out.rows.len(), 1);
    assert_eq!(src, [None]);
}
