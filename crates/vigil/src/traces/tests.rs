use clap::{CommandFactory, Parser};

use super::*;

/// `vigil traces ...` as main.rs wires it.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, clap::Subcommand)]
enum Top {
    Traces(TracesArgs),
}

fn parse(args: &[&str]) -> Result<TracesCommand, clap::Error> {
    let cli = Cli::try_parse_from(["vigil", "traces"].iter().chain(args))?;
    let Top::Traces(traces) = cli.command;
    Ok(traces.command)
}

#[test]
fn the_cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn list_flags_parse_and_conflict() {
    let TracesCommand::List(list) = parse(&[
        "list", "--filter", "fault", "--since", "15m", "--limit", "200", "--output", "json",
    ])
    .unwrap() else {
        panic!("not list");
    };
    assert_eq!(list.filter.as_deref(), Some("fault"));
    assert_eq!(list.range.since.as_deref(), Some("15m"));
    assert_eq!(list.limit, Some(200));
    assert_eq!(list.output, Output::Json);
    assert!(!list.all);

    let TracesCommand::List(list) = parse(&["list", "--all"]).unwrap() else {
        panic!("not list");
    };
    assert!(list.all && list.limit.is_none() && list.range.since.is_none());

    for bad in [
        &["list", "--since", "1h", "--start", "2h"][..],
        &["list", "--end", "1h"],
        &["list", "--limit", "0"],
        &["list", "--limit", "1001"],
        &["list", "--all", "--cursor", "c1"],
        &["list", "--output", "waterfall"],
        &["get"],
        &["get", "abc", "--output", "table"],
        &["map", "--since", "1h", "--end", "0"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn get_and_map_flags_parse() {
    let TracesCommand::Get(get) = parse(&["get", "1-5759e988-bd862e3fe1be46a994272793"]).unwrap()
    else {
        panic!("not get");
    };
    assert_eq!(get.id, "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(get.output, GetOutput::Waterfall);

    let TracesCommand::Map(map) = parse(&[
        "--url",
        "http://h:1",
        "map",
        "--start",
        "2026-12-01T00:00:00Z",
        "--end",
        "1764633600000",
    ])
    .unwrap() else {
        panic!("not map");
    };
    assert_eq!(map.range.start.as_deref(), Some("2026-12-01T00:00:00Z"));
    assert_eq!(map.output, Output::Table);
}

#[test]
fn ranges_pin_since_to_now_and_pass_times_on() {
    let now = 1_800_000_000_000;
    let args = |since: Option<&str>, start: Option<&str>, end: Option<&str>| RangeArgs {
        since: since.map(str::to_owned),
        start: start.map(str::to_owned),
        end: end.map(str::to_owned),
    };
    assert_eq!(
        range(&args(None, None, None), now).unwrap(),
        ((now - 3_600_000).to_string(), Some(now.to_string()))
    );
    assert_eq!(
        range(&args(Some("15m"), None, None), now).unwrap(),
        ((now - 900_000).to_string(), Some(now.to_string()))
    );
    assert_eq!(
        range(&args(None, Some("2026-12-01T20:00:00Z"), None), now).unwrap(),
        ("2026-12-01T20:00:00Z".to_owned(), None)
    );
    assert_eq!(
        range(&args(None, Some("2h"), Some("1h")), now).unwrap(),
        (
            (now - 7_200_000).to_string(),
            Some((now - 3_600_000).to_string())
        )
    );
    let err = range(&args(None, Some("2h"), Some("later")), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--end"), "{err}");
    let err = range(&args(Some("1 hour"), None, None), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--since"), "{err}");

    let query = range_query("2026-12-01T20:00:00Z", Some("1764633600000"));
    assert_eq!(query, "start=2026-12-01T20%3A00%3A00Z&end=1764633600000");
    assert_eq!(
        list_path(&query, 50, Some("http.status = 500"), Some("c1.3.1f")),
        "/api/traces?start=2026-12-01T20%3A00%3A00Z&end=1764633600000&limit=50\
         &filter=http.status%20%3D%20500&cursor=c1.3.1f"
    );
    assert_eq!(
        list_path("start=1", 1000, None, None),
        "/api/traces?start=1&limit=1000"
    );
    assert_eq!(
        more_hint("1", Some("2"), "c1.3.1f"),
        "more: --start 1 --end 2 --cursor c1.3.1f (with the same --filter), or use --all"
    );
}

#[test]
fn summaries_render_as_a_table() {
    let page: Page = serde_json::from_str(
        r#"{"traces": [
        {"trace_id": "5759e988bd862e3fe1be46a994272793", "start_us": 1764633600123456,
         "end_us": 1764633600135956, "response_time_us": 12500, "service": "vigil",
         "name": "vigil", "http": {"method": "POST", "url": "/v2/models/fraud/infer",
         "status": 200, "client_ip": "10.0.0.1"}, "services": ["vigil"],
         "annotations": [["model", "fraud"], ["cached", false], ["version", 3.0], ["label", "1"]],
         "spans": 4},
        {"trace_id": "0af7651916cd43dd8448eb211c80319c", "start_us": 1764633599000000,
         "end_us": 1764633599000900, "response_time_us": 900, "name": "vigil",
         "http": {"status": 503}, "error": true, "fault": true, "throttle": true, "spans": 1},
        {"trace_id": "11111111111111111111111111111111", "start_us": 0, "name": "batch", "spans": 1}
    ], "next_cursor": "c1.3.1f"}"#,
    )
    .unwrap();
    assert_eq!(page.next_cursor.as_deref(), Some("c1.3.1f"));
    let summaries: Vec<Summary> = page
        .traces
        .iter()
        .map(|t| Summary::deserialize(t).unwrap())
        .collect();
    let text = list_table(&summaries);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "START                     TRACE ID                          REQUEST                      STATUS  MS      FLAGS  ANNOTATIONS",
            "2025-12-02T00:00:00.123Z  5759e988bd862e3fe1be46a994272793  POST /v2/models/fraud/infer  200     12.500  -      model=fraud version=3 label=1",
            "2025-12-01T23:59:59.000Z  0af7651916cd43dd8448eb211c80319c  vigil                        503     0.900   FET",
            "1970-01-01T00:00:00.000Z  11111111111111111111111111111111  batch                        -       0.000   -",
        ]
    );
    assert_eq!(flags(false, true, false), "E");
    assert_eq!(utc_ms(i64::MAX), i64::MAX.to_string());
}

#[test]
fn the_service_map_renders_its_edges() {
    let graph: Value = serde_json::from_str(
        r#"{"start_ms": 1764633600000, "end_ms": 1764637200000,
        "nodes": [
            {"id": "client", "name": "client", "type": "client"},
            {"id": "service:vigil", "name": "vigil", "type": "service", "count": 10},
            {"id": "remote:redis", "name": "redis", "type": "remote"}
        ],
        "edges": [
            {"caller": "client", "callee": "service:vigil", "ok": 7, "error": 2, "throttle": 1,
             "fault": 1, "count": 10, "total_response_time_s": 0.5, "p50_s": 0.0125, "p99_s": 0.2,
             "histogram": [{"value_s": 0.001, "count": 3}]},
            {"caller": "service:vigil", "callee": "remote:redis",
             "stats": {"ok": 3, "count": 3, "p50_s": 0.001}, "colour": "red"},
            {"caller": "service:vigil", "callee": "gone"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        map_table(&graph).lines().collect::<Vec<_>>(),
        [
            "CALLER  CALLEE  TOTAL  OK  ERROR  THROTTLE  FAULT  P50 MS  P99 MS  OTHER",
            "client  vigil   10     7   2      1         1      12.5    200",
            "vigil   redis   3      3   -      -         -      1       -       colour=\"red\"",
            "vigil   gone    -      -   -      -         -      -       -",
        ]
    );
    let bare = serde_json::json!({"edges": [{"caller": "a", "callee": "b", "ok": 1}]});
    assert_eq!(
        map_table(&bare).lines().collect::<Vec<_>>(),
        [
            "CALLER  CALLEE  TOTAL  OK  ERROR  THROTTLE  FAULT  P50 MS  P99 MS",
            "a       b       -      1   -      -         -      -       -",
        ]
    );
    assert_eq!(map_table(&Value::Null).lines().count(), 1);
}

#[test]
fn whole_numbers_read_as_such_and_map_latencies_keep_three_decimals() {
    assert_eq!(value_text(&serde_json::json!(1.0)), "1");
    assert_eq!(value_text(&serde_json::json!(0.25)), "0.25");
    assert_eq!(value_text(&serde_json::json!("fraud")), "fraud");
    let graph = serde_json::json!({"edges": [{"caller": "a", "callee": "b", "count": 2,
        "p50_s": 0.000279169979562, "p99_s": 0.00157922388522}]});
    assert_eq!(
        map_table(&graph).lines().nth(1),
        Some("a       b       2      -   -      -         -      0.279   1.579")
    );
}
