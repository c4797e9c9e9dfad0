//! Flag parsing and request building of `vigil metrics`, without a server.

use super::put::put_body;
use super::*;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    metrics: MetricsArgs,
}

fn parse(args: &[&str]) -> Result<MetricsArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("metrics").chain(args.iter().copied())).map(|c| c.metrics)
}

#[test]
fn get_sends_encoded_namespace_dims_and_stats() {
    let args = parse(&[
        "get",
        "Vigil/Gateway",
        "LatencyMs",
        "--dim",
        "model=fraud",
        "--stat",
        "p99",
        "--stat",
        "TM(10%:90%)",
        "--period",
        "300",
        "--start",
        "2026-12-01T00:00:00Z",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Get(get) = args.command else {
        panic!("not get");
    };
    assert_eq!(
        get_path(&get),
        "/api/metrics/Vigil%2FGateway/LatencyMs?dim.model=fraud&stat=p99&\
         stat=TM%2810%25%3A90%25%29&period=300&start=2026-12-01T00%3A00%3A00Z"
    );
}

#[test]
fn put_takes_exactly_one_value_form() {
    assert!(parse(&["put", "Shop", "--name", "N"]).is_err());
    assert!(
        parse(&[
            "put", "Shop", "--name", "N", "--value", "1", "--stats", "1,1,1,1"
        ])
        .is_err()
    );
    assert!(parse(&["put", "Shop", "--file", "x.json", "--name", "N"]).is_err());
    let args = parse(&[
        "put", "Shop", "--name", "N", "--counts", "1", "--value", "1",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Put(put) = args.command else {
        panic!("not put");
    };
    assert!(put_body(&put).is_err(), "--counts without --values");
    let args = parse(&[
        "put",
        "Shop",
        "--name",
        "N",
        "--values",
        "1,2",
        "--counts",
        "3,4",
        "--dim",
        "region=eu",
        "--timestamp",
        "1700000000000",
        "--resolution",
        "1",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Put(put) = args.command else {
        panic!("not put");
    };
    let body = put_body(&put).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({"metrics": [{"name": "N", "dimensions": {"region": "eu"},
            "timestamp": 1_700_000_000_000i64, "resolution": 1,
            "values": [1.0, 2.0], "counts": [3.0, 4.0]}]})
    );
    let args = parse(&[
        "put", "Shop", "--name", "N", "--values", "1,2", "--counts", "3",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Put(put) = args.command else {
        panic!("not put");
    };
    assert!(put_body(&put).is_err(), "counts of another length");
    assert!(parse(&["put", "Shop", "--name", "N", "--value", "-2.5"]).is_ok());
    assert!(
        parse(&[
            "put",
            "Shop",
            "--name",
            "N",
            "--value",
            "1",
            "--resolution",
            "5"
        ])
        .is_err()
    );
}

#[test]
fn query_flags_build_the_body_and_return_only_what_is_asked() {
    let args = parse(&[
        "query",
        "--metric",
        "e=Shop/Errors:Sum:60",
        "--metric",
        "o=Shop/Orders:Sum:60:region=eu",
        "--expr",
        "rate=100*e/o",
        "--return",
        "rate",
        "--start",
        "1700000000000",
        "--end",
        "2026-01-01T00:00:00Z",
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Query(q) = args.command else {
        panic!("not query");
    };
    let body = query_body(&q).unwrap_or_else(|e| panic!("{e}"));
    let entries = body["metrics"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["return_data"], json!(false));
    assert_eq!(
        entries[1]["metric_stat"]["dimensions"]["region"],
        json!("eu")
    );
    assert_eq!(entries[2]["expression"], json!("100*e/o"));
    assert_eq!(entries[2]["return_data"], json!(true));
    assert_eq!(body["start"], json!(1_700_000_000_000i64));
    assert_eq!(body["end"], json!("2026-01-01T00:00:00Z"));

    let dup = parse(&["query", "--metric", "e=A/B:Sum:60", "--expr", "e=1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let MetricsCommand::Query(q) = dup.command else {
        panic!("not query");
    };
    assert!(query_body(&q).is_err(), "duplicate id");
    assert!(parse(&["query", "--metric", "bad"]).is_err());
    assert!(parse(&["query"]).is_err());
}

#[test]
fn query_table_aligns_results_on_timestamps() {
    let results = vec![
        QueryResult {
            id: "a".into(),
            label: "a".into(),
            timestamps: vec![0, 60_000],
            values: vec![Some(1.0), Some(2.0)],
        },
        QueryResult {
            id: "b".into(),
            label: "B".into(),
            timestamps: vec![60_000],
            values: vec![Some(5.0)],
        },
    ];
    let text = query_table(&results);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "timestamp             a  b (B)");
    assert_eq!(lines[1], "1970-01-01T00:00:00Z  1  -");
    assert_eq!(lines[2], "1970-01-01T00:01:00Z  2  5");
}
